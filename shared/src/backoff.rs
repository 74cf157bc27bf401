//! The retry backoff policy, shared by handle-error (`next_retry_at`) and the sweeper (due
//! time). Pure: the same (run, task, retry_count, last_error_at) always gives the same time.

use crate::config::BackoffConfig;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

/// Jitter factor in [0.5, 1.0], a pure function of (run_id, task_id, retry_count).
pub fn jitter_factor(run_id: &str, task_id: &str, retry_count: u32) -> f64 {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0u8]);
    h.update(task_id.as_bytes());
    h.update([0u8]);
    h.update(retry_count.to_be_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    0.5 + unit * 0.5
}

/// The delay before retry number `retry_count` (the count of failures so far, ≥ 1):
/// `min(max, base * 2^(retry_count-1))` scaled by the jitter factor.
pub fn retry_delay(cfg: &BackoffConfig, run_id: &str, task_id: &str, retry_count: u32) -> Duration {
    let base_ms = cfg.base_delay.as_millis() as u64;
    let max_ms = cfg.max_delay.as_millis() as u64;
    let exp = retry_count.saturating_sub(1).min(40);
    let raw = base_ms.saturating_mul(1u64 << exp).min(max_ms);
    let jittered = (raw as f64 * jitter_factor(run_id, task_id, retry_count)).round() as i64;
    Duration::milliseconds(jittered)
}

/// When a task that failed at `last_error_at` with `retry_count` failures becomes due.
pub fn due_at(
    cfg: &BackoffConfig,
    run_id: &str,
    task_id: &str,
    retry_count: u32,
    last_error_at: DateTime<Utc>,
) -> DateTime<Utc> {
    last_error_at + retry_delay(cfg, run_id, task_id, retry_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration as StdDuration;

    fn cfg(base: u64, max: u64) -> BackoffConfig {
        BackoffConfig { base_delay: StdDuration::from_secs(base), max_delay: StdDuration::from_secs(max) }
    }

    #[test]
    fn doubles_until_the_cap() {
        let c = cfg(300, 21_600);
        let f = jitter_factor("r", "t", 1);
        assert_eq!(retry_delay(&c, "r", "t", 1).num_milliseconds(), (300_000.0 * f).round() as i64);
        let f3 = jitter_factor("r", "t", 3);
        assert_eq!(retry_delay(&c, "r", "t", 3).num_milliseconds(), (1_200_000.0 * f3).round() as i64);
        let f20 = jitter_factor("r", "t", 20);
        assert_eq!(retry_delay(&c, "r", "t", 20).num_milliseconds(), (21_600_000.0 * f20).round() as i64);
    }

    proptest! {
        #[test]
        fn jitter_is_in_range_and_stable(run in "[a-z0-9-]{1,40}", task in "[a-z0-9_-]{1,20}", n in 0u32..1000) {
            let a = jitter_factor(&run, &task, n);
            prop_assert!((0.5..=1.0).contains(&a));
            prop_assert_eq!(a, jitter_factor(&run, &task, n));
        }

        #[test]
        fn delay_is_bounded(base in 1u64..10_000, extra in 0u64..100_000, n in 0u32..200, run in "[a-z]{1,8}", task in "[a-z]{1,8}") {
            let c = cfg(base, base + extra);
            let d = retry_delay(&c, &run, &task, n).num_milliseconds();
            prop_assert!(d >= (base * 1000 / 2) as i64);
            prop_assert!(d <= ((base + extra) * 1000) as i64);
        }

        #[test]
        fn delay_never_shrinks_with_more_failures_before_jitter(base in 1u64..1000, n in 1u32..60) {
            // Undo the jitter and the raw delay is monotone in retry_count.
            let c = cfg(base, 86_400);
            let raw = |k: u32| retry_delay(&c, "r", "t", k).num_milliseconds() as f64 / jitter_factor("r", "t", k);
            prop_assert!(raw(n + 1) + 2.5 >= raw(n), "rounding to whole ms is the only slack");
        }
    }
}
