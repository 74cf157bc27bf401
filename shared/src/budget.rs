//! A run's budget (`max_cost_usd`): how many of its retryable tasks a retry may take without
//! passing it. The one rule, used by the sweeper (which re-queues only what fits) and by
//! Aggregate and `arcctl runs show` (which report it). Pure.
//!
//! Spend is the run's `total_cost_usd`, the sum the worker adds each completed task's
//! `cost_usd` to. A retry's cost is estimated from the run's own completed tasks: their mean
//! cost × the tasks retried. Before any task completed nothing is spent and there is nothing
//! to estimate from: every task fits.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A run's budget and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    #[serde(with = "crate::json::decimal_number")]
    pub max_cost_usd: Decimal,
    #[serde(with = "crate::json::decimal_number")]
    pub spent_usd: Decimal,
    /// Mean cost of a completed task; `null` before any completed.
    #[serde(default, with = "crate::json::decimal_number_opt")]
    pub estimate_per_task_usd: Option<Decimal>,
    /// Tasks that could still be retried (FAILED, not permanent).
    pub retryable_tasks: u64,
    /// What retrying all of them is expected to cost.
    #[serde(default, with = "crate::json::decimal_number_opt")]
    pub projected_retry_cost_usd: Option<Decimal>,
    /// Of them, how many fit the budget.
    pub fit_tasks: u64,
    /// The rest: not retried for the budget.
    pub over_budget_tasks: u64,
}

/// A budget as written (`max_cost_usd`, `RUN_MAX_COST_USD`, `--max-cost-usd`): a positive
/// number of US dollars; `None` for anything else.
pub fn parse_usd(text: &str) -> Option<Decimal> {
    crate::records::parse_decimal(text).filter(|d| *d > Decimal::ZERO)
}

/// How many of `retryable` tasks a retry may take: all when nothing can be estimated yet,
/// none once the spend reached the budget, else as many as the mean completed cost allows.
pub fn tasks_that_fit(max_cost_usd: Decimal, spent: Decimal, completed: u64, retryable: u64) -> u64 {
    if spent >= max_cost_usd {
        return 0;
    }
    if completed == 0 || spent <= Decimal::ZERO {
        return retryable;
    }
    // (max - spent) ÷ (spent ÷ completed), with one division so that an exact fit stays exact.
    match (max_cost_usd - spent).checked_mul(Decimal::from(completed)).and_then(|x| x.checked_div(spent)) {
        Some(n) => u64::try_from(n.floor()).unwrap_or(u64::MAX).min(retryable),
        None => retryable,
    }
}

/// The mean cost of a completed task.
pub fn estimate(spent: Decimal, completed: u64) -> Option<Decimal> {
    (completed > 0).then(|| spent / Decimal::from(completed))
}

impl Budget {
    pub fn of(max_cost_usd: Decimal, spent: Decimal, completed: u64, retryable: u64) -> Self {
        let per_task = estimate(spent, completed);
        let fit = tasks_that_fit(max_cost_usd, spent, completed, retryable);
        Self {
            max_cost_usd,
            spent_usd: spent,
            estimate_per_task_usd: per_task.map(|d| d.round_dp(6).normalize()),
            retryable_tasks: retryable,
            projected_retry_cost_usd: per_task.map(|d| (d * Decimal::from(retryable)).round_dp(6).normalize()),
            fit_tasks: fit,
            over_budget_tasks: retryable - fit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_run_at_95_percent_retries_only_what_fits() {
        // $10 budget, 19 tasks completed at $0.50: $9.50 spent, $0.50 left = one task.
        assert_eq!(tasks_that_fit(d("10"), d("9.50"), 19, 10), 1);
        let b = Budget::of(d("10"), d("9.50"), 19, 10);
        assert_eq!((b.fit_tasks, b.over_budget_tasks), (1, 9));
        assert_eq!(b.projected_retry_cost_usd, Some(d("5")));
        assert_eq!(b.estimate_per_task_usd, Some(d("0.5")));
    }

    #[test]
    fn edges() {
        assert_eq!(tasks_that_fit(d("10"), d("10"), 5, 3), 0, "spent");
        assert_eq!(tasks_that_fit(d("10"), d("12"), 5, 3), 0, "overspent");
        assert_eq!(tasks_that_fit(d("10"), d("0"), 0, 3), 3, "nothing to estimate from");
        assert_eq!(tasks_that_fit(d("10"), d("0"), 4, 3), 3, "free tasks");
        assert_eq!(tasks_that_fit(d("1"), d("0.999999"), 1, 3), 0, "less than one task left");
    }

    proptest! {
        #[test]
        fn what_fits_never_passes_the_budget(max in 1u64..100_000, spent in 0u64..100_000, completed in 1u64..1000, retryable in 0u64..5000) {
            let (max, spent) = (Decimal::new(max as i64, 2), Decimal::new(spent as i64, 2));
            let fit = tasks_that_fit(max, spent, completed, retryable);
            prop_assert!(fit <= retryable);
            // spent + (spent / completed) * fit <= max, multiplied out to stay exact.
            let c = Decimal::from(completed);
            prop_assert!(spent * (c + Decimal::from(fit)) <= max * c || fit == 0);
            // One more would not have fitted (unless all fitted).
            if fit < retryable && spent > Decimal::ZERO && spent < max {
                prop_assert!(spent * (c + Decimal::from(fit + 1)) > max * c);
            }
        }
    }
}
