//! Task and run statuses. Unknown stored values (older tools wrote `RUNNING` on tasks)
//! read without error and are kept verbatim.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Status of one task record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    FailedPermanent,
    RetryQueued,
    /// A value this product does not write; counted as in flight.
    Other(String),
}

impl TaskStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::FailedPermanent => "FAILED_PERMANENT",
            Self::RetryQueued => "RETRY_QUEUED",
            Self::Other(s) => s,
        }
    }

    /// Still being worked on by some execution (unknown values included).
    pub fn is_in_flight(&self) -> bool {
        matches!(self, Self::Pending | Self::InProgress | Self::Other(_))
    }

    /// A failure of either kind.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed | Self::FailedPermanent)
    }
}

impl From<String> for TaskStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "PENDING" => Self::Pending,
            "IN_PROGRESS" => Self::InProgress,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "FAILED_PERMANENT" => Self::FailedPermanent,
            "RETRY_QUEUED" => Self::RetryQueued,
            _ => Self::Other(s),
        }
    }
}

impl From<TaskStatus> for String {
    fn from(s: TaskStatus) -> String {
        s.as_str().to_owned()
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a run record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RunStatus {
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    /// Stopped for good by an operator (`arcctl runs cancel`): its tasks are left as they are,
    /// never re-queued, never repaired, until `arcctl runs resume`.
    Cancelled,
    Other(String),
}

impl RunStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Other(s) => s,
        }
    }

    /// A run no execution is working on any more: COMPLETED, COMPLETED_WITH_ERRORS, FAILED or
    /// CANCELLED (a later retry may still re-open the first three).
    pub fn is_ended(&self) -> bool {
        matches!(self, Self::Completed | Self::CompletedWithErrors | Self::Failed | Self::Cancelled)
    }

    /// The final status of a run from its counts: all failed → FAILED, any failed →
    /// COMPLETED_WITH_ERRORS, else COMPLETED.
    pub fn from_counts(total_tasks: u64, failed_tasks: u64) -> Self {
        if total_tasks > 0 && failed_tasks >= total_tasks {
            Self::Failed
        } else if failed_tasks > 0 {
            Self::CompletedWithErrors
        } else {
            Self::Completed
        }
    }
}

impl From<String> for RunStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "RUNNING" => Self::Running,
            "COMPLETED" => Self::Completed,
            "COMPLETED_WITH_ERRORS" => Self::CompletedWithErrors,
            "FAILED" => Self::Failed,
            "CANCELLED" => Self::Cancelled,
            _ => Self::Other(s),
        }
    }
}

impl From<RunStatus> for String {
    fn from(s: RunStatus) -> String {
        s.as_str().to_owned()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_task_status_reads_and_counts_as_in_flight() {
        let s = TaskStatus::from("RUNNING".to_owned());
        assert_eq!(s, TaskStatus::Other("RUNNING".into()));
        assert!(s.is_in_flight());
        assert_eq!(s.as_str(), "RUNNING");
    }

    #[test]
    fn known_statuses_round_trip() {
        for s in ["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "FAILED_PERMANENT", "RETRY_QUEUED"] {
            let parsed = TaskStatus::from(s.to_owned());
            assert!(!matches!(parsed, TaskStatus::Other(_)), "{s}");
            assert_eq!(String::from(parsed), s);
        }
    }

    #[test]
    fn run_statuses_round_trip_and_cancelled_is_ended() {
        for s in ["RUNNING", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"] {
            let parsed = RunStatus::from(s.to_owned());
            assert!(!matches!(parsed, RunStatus::Other(_)), "{s}");
            assert_eq!(String::from(parsed), s);
        }
        assert!(RunStatus::Cancelled.is_ended());
        assert!(!RunStatus::Running.is_ended());
        assert!(!RunStatus::Other("PAUSED".into()).is_ended());
    }

    #[test]
    fn run_status_from_counts() {
        assert_eq!(RunStatus::from_counts(3, 3), RunStatus::Failed);
        assert_eq!(RunStatus::from_counts(3, 1), RunStatus::CompletedWithErrors);
        assert_eq!(RunStatus::from_counts(3, 0), RunStatus::Completed);
        assert_eq!(RunStatus::from_counts(0, 0), RunStatus::Completed);
    }
}
