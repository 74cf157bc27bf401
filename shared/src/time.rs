//! Timestamps: written as RFC 3339 UTC with microseconds and `+00:00` (the shape the
//! Python writers use, so string order is time order); read leniently.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Formats `t` the way every writer of these tables does: `2026-01-02T03:04:05.000006+00:00`.
pub fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Reads a stored or supplied timestamp: RFC 3339 with any offset, `Z`, with or without
/// fraction; a naive `YYYY-MM-DDTHH:MM:SS[.f]` is taken as UTC (Python's `isoformat()`
/// without tz).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// A source of the current time, injected so tests and the local runner can compress time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that reads a settable instant (tests, the local runner).
#[derive(Debug)]
pub struct FixedClock(std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(t))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
    pub fn advance(&self, d: chrono::Duration) {
        if let Ok(mut g) = self.0.lock() {
            *g += d;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        match self.0.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_with_micros_and_offset() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(6);
        assert_eq!(format_ts(t), "2026-01-02T03:04:05.000006+00:00");
    }

    #[test]
    fn parses_leniently() {
        let want = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        for s in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T03:04:05.000000+00:00",
            "2026-01-02T04:04:05+01:00",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.0",
        ] {
            assert_eq!(parse_ts(s), Some(want), "{s}");
        }
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn string_order_is_time_order() {
        let a = format_ts(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let b = format_ts(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(1));
        assert!(a < b);
    }
}
