//! The value rules the config file and the admin key API (`crate::policy::runtime_keys`) share,
//! on bare values: each returns the reason a value is refused, and the caller names where it
//! was written (the file's line and path, or the JSON field). One rule, one place.

use std::time::SystemTime;

use super::MAX_NAME_LEN;

/// A name (team, key id, …): non-empty, at most [`MAX_NAME_LEN`] characters, no whitespace or
/// control characters (it is matched exactly and becomes a metric label).
pub(crate) fn name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} must not contain whitespace or control characters"
        ));
    }
    Ok(())
}

/// A key id is a metric label and a log field: a [`name`] of a conservative character set.
pub(crate) fn key_id(id: &str) -> Result<(), String> {
    name(id)?;
    let ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(format!(
            "{id:?} may contain only A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A positive integer no larger than `max` (the runtime type's range).
pub(crate) fn positive(v: i64, max: u64) -> Result<u64, String> {
    match u64::try_from(v) {
        Ok(n) if n >= 1 && n <= max => Ok(n),
        Ok(n) if n > max => Err(format!("must be at most {max}, not {v}")),
        _ => Err(format!("must be a positive integer, not {v}")),
    }
}

/// A positive integer that fits a `u32` (rpm, tpm, max_concurrent).
pub(crate) fn positive_u32(v: i64) -> Result<u32, String> {
    let n = positive(v, u64::from(u32::MAX))?;
    u32::try_from(n).map_err(|_| "out of range".to_string())
}

/// A price or a money budget: finite and not negative (zero is a free model or no spending).
pub(crate) fn money(v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, not {v}"))
    }
}

/// RFC 3339 with `Z` or a numeric offset (`+02:00`), parsed by jiff. jiff's timestamps also
/// take offsets up to ±25:59 (Temporal's range); RFC 3339's are at most ±23:59.
pub(crate) fn rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 date-time such as 2027-01-01T00:00:00Z");
    let text = text.trim();
    let t: jiff::Timestamp = text.parse().map_err(|_| bad())?;
    if offset_hours(text).is_some_and(|h| h > 23) {
        return Err(bad());
    }
    Ok(SystemTime::from(t))
}

/// The hours of a numeric offset at the end of `text` (`…+HH:MM`), if it has one.
fn offset_hours(text: &str) -> Option<u32> {
    let at = text.len().checked_sub(6)?;
    let off = text.get(at..)?;
    off.starts_with(['+', '-'])
        .then(|| off.get(1..3)?.parse().ok())?
}
