//! Budgets over calendar periods: tokens per UTC day, money per UTC month.
//!
//! A period is named by an integer (days since the Unix epoch; months since January 1970), so
//! a counter knows which period it belongs to and rolls over by comparing two integers. Money
//! is counted in nano-dollars (`u64`): integer arithmetic keeps the memory and Redis backends
//! exact and identical (Redis' `HINCRBY` is integer), and 10⁻⁹ USD is finer than any price.

use std::time::Duration;

/// Seconds in a UTC day (UTC has no leap seconds in Unix time).
const DAY_SECS: u64 = 86_400;
/// Nano-dollars in a dollar.
const NANOS_PER_USD: f64 = 1e9;

/// The two calendar periods a budget can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A UTC calendar day (`tokens_per_day`).
    Day,
    /// A UTC calendar month (`usd_per_month`).
    Month,
}

impl Period {
    /// The index of the period containing `unix_secs`: days or months since 1970-01.
    pub fn index(self, unix_secs: u64) -> u32 {
        let day = unix_secs / DAY_SECS;
        match self {
            Period::Day => u32::try_from(day).unwrap_or(u32::MAX),
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                u32::try_from(y.saturating_sub(1970) * 12 + u64::from(m) - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Unix second at which period `index` starts.
    pub fn start(self, index: u32) -> u64 {
        match self {
            Period::Day => u64::from(index) * DAY_SECS,
            Period::Month => {
                let y = 1970 + u64::from(index) / 12;
                let m = index % 12 + 1;
                days_from_civil(y, m, 1) * DAY_SECS
            }
        }
    }

    /// Unix second at which the period containing `unix_secs` ends (the next one starts).
    pub fn end(self, unix_secs: u64) -> u64 {
        self.start(self.index(unix_secs).saturating_add(1))
    }

    /// Time from `unix` (with sub-second precision) to the start of the next period: the
    /// `retry-after` of a spent budget.
    pub fn until_next(self, unix: Duration) -> Duration {
        let end = Duration::from_secs(self.end(unix.as_secs()));
        end.saturating_sub(unix)
    }
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (proleptic Gregorian).
/// Howard Hinnant's `civil_from_days`, restricted to dates from 1970 on.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a date from 1970 on: the inverse of [`civil_from_days`].
fn days_from_civil(y: u64, m: u32, d: u32) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let m = u64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// Dollars → nano-dollars, rounded up: a reservation never under-counts.
pub fn usd_to_nanos_ceil(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * NANOS_PER_USD).ceil() as u64
    } else {
        0
    }
}

/// Dollars → nano-dollars, rounded to the nearest: what was really spent.
pub fn usd_to_nanos(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * NANOS_PER_USD).round() as u64
    } else {
        0
    }
}

/// A budget's cap in its own unit (tokens, or nano-dollars for money).
pub fn money_cap(usd: f64) -> u64 {
    usd_to_nanos(usd)
}

/// What one budget holds for one key or team in one period: what was spent (settled with real
/// usage) and what in-flight requests have reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// The period the numbers belong to ([`Period::index`]).
    pub period: u32,
    pub spent: u64,
    pub reserved: u64,
}

impl Budget {
    /// Starts over when `period` is a later one than the numbers are for: a new day or month
    /// begins with nothing spent, and the reservations of the old one are settled against it
    /// (see [`Budget::release`]).
    pub fn roll(&mut self, period: u32) {
        if period != self.period {
            *self = Budget {
                period,
                spent: 0,
                reserved: 0,
            };
        }
    }

    /// Whether `demand` fits under `cap` next to what is spent and reserved. A demand of zero
    /// always fits: a request that costs nothing here (a model without prices) is not refused.
    pub fn fits(&self, demand: u64, cap: u64) -> bool {
        demand == 0 || demand <= self.left(cap)
    }

    /// What is left under `cap` after what is spent and reserved.
    pub fn left(&self, cap: u64) -> u64 {
        cap.saturating_sub(self.spent.saturating_add(self.reserved))
    }

    /// What to reserve for a request of `demand` whose likely cost is `floor` (≤ `demand`):
    /// the whole demand when it fits; else, when what is left covers the floor, all that is
    /// left (the next request then finds nothing left until this one settles); else `None`,
    /// refused.
    pub fn grant(&self, demand: u64, floor: u64, cap: u64) -> Option<u64> {
        let left = self.left(cap);
        if self.fits(demand, cap) {
            Some(demand)
        } else if left > 0 && floor <= left {
            Some(left)
        } else {
            None
        }
    }

    /// Drops a reservation made in period `made_in`; a reservation of a period that has since
    /// rolled over is gone with it.
    pub fn release(&mut self, made_in: u32, reserved: u64) {
        if made_in == self.period {
            self.reserved = self.reserved.saturating_sub(reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [0u64, 31, 59, 365, 10_957, 19_782, 20_000, 47_482, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        // 2024-02-29 (a leap day) is day 19782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn periods_and_their_ends() {
        // 2026-03-31T23:59:59Z
        let t = days_from_civil(2026, 3, 31) * DAY_SECS + DAY_SECS - 1;
        assert_eq!(Period::Day.end(t), t + 1);
        assert_eq!(Period::Month.end(t), t + 1);
        assert_eq!(
            Period::Month.index(t + 1),
            Period::Month.index(t) + 1,
            "April follows March"
        );
        // Mid-month: the month ends on the first of the next one; December rolls the year.
        let dec = days_from_civil(2026, 12, 15) * DAY_SECS + 3600;
        assert_eq!(
            Period::Month.end(dec),
            days_from_civil(2027, 1, 1) * DAY_SECS
        );
        assert_eq!(Period::Month.index(0), 0);
        assert_eq!(
            Period::Month.start(Period::Month.index(dec)),
            days_from_civil(2026, 12, 1) * DAY_SECS
        );
        let half = Duration::from_millis(DAY_SECS * 1000 - 500);
        assert_eq!(Period::Day.until_next(half), Duration::from_millis(500));
    }

    #[test]
    fn budget_arithmetic() {
        let mut b = Budget::default();
        b.roll(7);
        assert!(b.fits(100, 100));
        b.reserved += 60;
        assert!(!b.fits(41, 100));
        assert!(b.fits(40, 100));
        assert!(b.fits(0, 100), "a free request always fits");
        b.release(7, 60);
        b.spent += 30;
        assert!(b.fits(70, 100) && !b.fits(71, 100));
        b.release(6, 10); // a reservation of an earlier day is not taken off today's numbers
        assert_eq!(b.reserved, 0);
        b.roll(8);
        assert_eq!((b.spent, b.reserved, b.period), (0, 0, 8));
    }

    #[test]
    fn a_large_demand_gets_what_is_left_when_its_floor_fits() {
        let mut b = Budget {
            spent: 900,
            ..Budget::default()
        };
        assert_eq!(b.grant(50, 50, 1000), Some(50), "fits whole");
        assert_eq!(b.grant(130_000, 100, 1000), Some(100), "all that is left");
        assert_eq!(
            b.grant(130_000, 101, 1000),
            None,
            "cannot pay the likely cost"
        );
        b.reserved = 100;
        assert_eq!(b.grant(130_000, 1, 1000), None, "nothing left");
        assert_eq!(b.grant(0, 0, 1000), Some(0), "a free request");
    }

    #[test]
    fn money_in_nano_dollars() {
        assert_eq!(usd_to_nanos(1.5), 1_500_000_000);
        assert_eq!(usd_to_nanos_ceil(1e-10), 1);
        assert_eq!(usd_to_nanos(f64::NAN), 0);
        assert_eq!(usd_to_nanos(-1.0), 0);
    }
}
