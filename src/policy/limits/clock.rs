//! The limiter's clock: monotonic time for the GCRA buckets, wall-clock time for the calendar
//! budgets. Tests use [`Clock::manual`] and move time by hand instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::nanos::Nanos;

/// A clock for the limiter; clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    /// The process's monotonic clock (from `origin`) and the system's wall clock.
    System {
        origin: Instant,
    },
    Manual(Arc<Manual>),
}

/// Time that moves only when told to, for tests.
#[derive(Debug)]
struct Manual {
    /// Nanoseconds of monotonic time.
    mono: AtomicU64,
    /// Nanoseconds since the Unix epoch.
    unix: AtomicU64,
}

impl Clock {
    /// The real clocks.
    pub fn system() -> Clock {
        Clock(Source::System {
            origin: Instant::now(),
        })
    }

    /// A clock standing still at `unix` (time since the Unix epoch) until [`Clock::advance`]
    /// or [`Clock::set_unix`] moves it.
    pub fn manual(unix: Duration) -> Clock {
        Clock(Source::Manual(Arc::new(Manual {
            mono: AtomicU64::new(0),
            unix: AtomicU64::new(nanos_u64(unix)),
        })))
    }

    /// Moves a manual clock forward (both its monotonic and wall time); no-op on the system one.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(m) = &self.0 {
            m.mono.fetch_add(nanos_u64(by), Ordering::SeqCst);
            m.unix.fetch_add(nanos_u64(by), Ordering::SeqCst);
        }
    }

    /// Sets a manual clock's wall time (e.g. to just before midnight); monotonic time moves
    /// forward by the same amount when that is later, never backwards.
    pub fn set_unix(&self, unix: Duration) {
        if let Source::Manual(m) = &self.0 {
            let new = nanos_u64(unix);
            let old = m.unix.swap(new, Ordering::SeqCst);
            m.mono.fetch_add(new.saturating_sub(old), Ordering::SeqCst);
        }
    }

    /// Time since the Unix epoch.
    pub fn unix(&self) -> Duration {
        match &self.0 {
            Source::System { .. } => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            Source::Manual(m) => Duration::from_nanos(m.unix.load(Ordering::SeqCst)),
        }
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match &self.0 {
            Source::System { origin } => Nanos::from(origin.elapsed()),
            Source::Manual(m) => Nanos::from(m.mono.load(Ordering::SeqCst)),
        }
    }
}

fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
