//! Compressed time for the local lifecycle: the wall clock plus an offset that jumps forward
//! past the retry backoff between rounds, so hours of backoff pass in an instant while
//! timestamps within a round still advance naturally.

use arc_shared::time::Clock;
use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct CompressedClock {
    offset: Mutex<Duration>,
}

impl CompressedClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock `d` further ahead of the wall clock.
    pub fn jump(&self, d: Duration) {
        match self.offset.lock() {
            Ok(mut o) => *o += d,
            Err(poisoned) => *poisoned.into_inner() += d,
        }
    }

    /// How far ahead of the wall clock this clock is.
    pub fn offset(&self) -> Duration {
        match self.offset.lock() {
            Ok(o) => *o,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

impl Clock for CompressedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_add_up_and_time_still_moves() {
        let c = CompressedClock::new();
        let before = Utc::now();
        c.jump(Duration::hours(6));
        c.jump(Duration::minutes(1));
        assert_eq!(c.offset(), Duration::minutes(361));
        assert!(c.now() >= before + Duration::minutes(361));
    }
}
