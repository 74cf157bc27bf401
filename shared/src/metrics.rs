//! The aggregation math: counts, exact cost, accuracy. Pure; aggregate does the I/O.

use crate::status::TaskStatus;
use rust_decimal::Decimal;
use serde::Serialize;

/// The part of one task record the report and the metrics need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub task_id: String,
    pub status: String,
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    pub cost_usd: Option<Decimal>,
    pub is_correct: Option<bool>,
    pub retry_count: u32,
    pub tokens_input: Option<u64>,
    pub tokens_output: Option<u64>,
    pub last_error_type: Option<String>,
    pub result_s3_key: Option<String>,
    /// Whose fault the last failure was (`task`, `infrastructure`, `provider`), when one was
    /// classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
}

impl From<crate::records::TaskRecord> for TaskRow {
    fn from(t: crate::records::TaskRecord) -> Self {
        Self {
            task_id: t.task_id,
            status: t.status.as_str().to_owned(),
            cost_usd: t.cost_usd,
            is_correct: t.is_correct,
            retry_count: t.retry_count,
            tokens_input: t.tokens_input,
            tokens_output: t.tokens_output,
            last_error_type: t.last_error_type,
            result_s3_key: t.result_s3_key,
            failure_class: t.failure_class,
        }
    }
}

/// Run metrics accumulated one task at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub total_tasks: u64,
    pub completed_tasks: u64,
    /// FAILED + FAILED_PERMANENT.
    pub failed_tasks: u64,
    pub failed_permanent_tasks: u64,
    pub correct_tasks: u64,
    /// PENDING, IN_PROGRESS and statuses this product does not know.
    pub pending_tasks: u64,
    /// FAILED (retryable) + RETRY_QUEUED: work the sweeper will still do.
    pub retries_pending: u64,
    #[serde(with = "crate::json::decimal_number")]
    pub total_cost_usd: Decimal,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
}

impl Metrics {
    pub fn add(
        &mut self,
        status: &TaskStatus,
        cost_usd: Option<Decimal>,
        is_correct: Option<bool>,
        tokens: (Option<u64>, Option<u64>),
    ) {
        self.total_tasks += 1;
        match status {
            TaskStatus::Completed => {
                self.completed_tasks += 1;
                if is_correct == Some(true) {
                    self.correct_tasks += 1;
                }
            }
            TaskStatus::Failed => {
                self.failed_tasks += 1;
                self.retries_pending += 1;
            }
            TaskStatus::FailedPermanent => {
                self.failed_tasks += 1;
                self.failed_permanent_tasks += 1;
            }
            TaskStatus::RetryQueued => self.retries_pending += 1,
            TaskStatus::Pending | TaskStatus::InProgress | TaskStatus::Other(_) => self.pending_tasks += 1,
        }
        if let Some(c) = cost_usd {
            self.total_cost_usd += c;
        }
        self.total_input_tokens += tokens.0.unwrap_or(0);
        self.total_output_tokens += tokens.1.unwrap_or(0);
    }

    pub fn add_row(&mut self, row: &TaskRow) {
        let status = TaskStatus::from(row.status.clone());
        self.add(&status, row.cost_usd, row.is_correct, (row.tokens_input, row.tokens_output));
    }

    /// correct / completed; 0 when none completed.
    pub fn accuracy(&self) -> f64 {
        if self.completed_tasks == 0 {
            0.0
        } else {
            self.correct_tasks as f64 / self.completed_tasks as f64
        }
    }

    /// The run's five headline figures.
    pub fn figures(&self) -> crate::contracts::RunFigures {
        crate::contracts::RunFigures {
            total_tasks: self.total_tasks,
            completed_tasks: self.completed_tasks,
            failed_tasks: self.failed_tasks,
            accuracy: self.accuracy(),
            total_cost_usd: self.total_cost_usd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn counts_each_status_once() {
        let mut m = Metrics::default();
        m.add(&TaskStatus::Completed, Some(d("0.1")), Some(true), (Some(10), Some(5)));
        m.add(&TaskStatus::Completed, Some(d("0.2")), Some(false), (None, None));
        m.add(&TaskStatus::Failed, None, None, (None, None));
        m.add(&TaskStatus::FailedPermanent, Some(d("0.05")), None, (None, None));
        m.add(&TaskStatus::RetryQueued, None, None, (None, None));
        m.add(&TaskStatus::Other("RUNNING".into()), None, None, (None, None));
        assert_eq!(m.total_tasks, 6);
        assert_eq!(m.completed_tasks, 2);
        assert_eq!(m.failed_tasks, 2);
        assert_eq!(m.failed_permanent_tasks, 1);
        assert_eq!(m.retries_pending, 2);
        assert_eq!(m.pending_tasks, 1);
        assert_eq!(m.correct_tasks, 1);
        assert_eq!(m.total_cost_usd, d("0.35"));
        assert_eq!(m.accuracy(), 0.5);
    }

    #[test]
    fn cost_is_exact_where_floats_are_not() {
        let mut m = Metrics::default();
        for _ in 0..10 {
            m.add(&TaskStatus::Completed, Some(d("0.1")), None, (None, None));
        }
        assert_eq!(m.total_cost_usd, d("1.0"));
        assert_ne!((0..10).map(|_| 0.1f64).sum::<f64>(), 1.0);
    }

    #[test]
    fn accuracy_is_zero_without_completions() {
        let mut m = Metrics::default();
        m.add(&TaskStatus::Failed, None, None, (None, None));
        assert_eq!(m.accuracy(), 0.0);
    }

    fn status_strategy() -> impl Strategy<Value = TaskStatus> {
        prop_oneof![
            Just(TaskStatus::Pending),
            Just(TaskStatus::InProgress),
            Just(TaskStatus::Completed),
            Just(TaskStatus::Failed),
            Just(TaskStatus::FailedPermanent),
            Just(TaskStatus::RetryQueued),
            Just(TaskStatus::Other("RUNNING".into())),
        ]
    }

    proptest! {
        #[test]
        fn partitions_add_up(tasks in proptest::collection::vec((status_strategy(), 0i64..100_000, any::<bool>()), 0..200)) {
            let mut m = Metrics::default();
            let mut cents = 0i64;
            for (s, c, ok) in &tasks {
                m.add(s, Some(Decimal::new(*c, 4)), Some(*ok), (None, None));
                cents += c;
            }
            prop_assert_eq!(m.total_tasks as usize, tasks.len());
            let retry_queued = tasks.iter().filter(|(s, _, _)| *s == TaskStatus::RetryQueued).count() as u64;
            prop_assert_eq!(m.completed_tasks + m.failed_tasks + m.pending_tasks + retry_queued, m.total_tasks);
            prop_assert_eq!(m.total_cost_usd, Decimal::new(cents, 4));
            prop_assert!(m.correct_tasks <= m.completed_tasks);
            let acc = m.accuracy();
            prop_assert!((0.0..=1.0).contains(&acc));
        }
    }
}
