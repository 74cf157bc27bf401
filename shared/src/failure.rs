//! What a failed Batch job means for its task: parsing the Step Functions error, and the
//! retry accounting decision. Pure functions; handle-error does the I/O.

use crate::status::TaskStatus;
use serde::Deserialize;

/// `last_error_cause` is kept to this many characters.
pub const MAX_CAUSE_CHARS: usize = 4000;
/// `error_message` in handle-error's output carries this many characters of the cause.
pub const MESSAGE_CAUSE_CHARS: usize = 200;

/// Cuts `s` to at most `max` characters, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

/// The parts of a Batch `.sync` failure Cause (the job description as a JSON string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCause {
    pub job_id: Option<String>,
    pub status_reason: Option<String>,
    pub exit_code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawCause {
    job_id: Option<String>,
    status_reason: Option<String>,
    #[serde(default)]
    attempts: Vec<RawAttempt>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAttempt {
    container: Option<RawContainer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    exit_code: Option<i64>,
}

/// Reads a Batch job description out of `cause`; `None` for plain-text causes.
pub fn parse_batch_cause(cause: &str) -> Option<BatchCause> {
    let raw: RawCause = serde_json::from_str(cause.trim()).ok()?;
    if raw.job_id.is_none() && raw.status_reason.is_none() && raw.attempts.is_empty() {
        return None;
    }
    Some(BatchCause {
        job_id: raw.job_id.filter(|j| !j.is_empty()),
        status_reason: raw.status_reason,
        exit_code: raw.attempts.iter().rev().find_map(|a| a.container.as_ref().and_then(|c| c.exit_code)),
    })
}

/// The state of a task as read, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailureState {
    pub status: TaskStatus,
    pub retry_count: u32,
    pub worker_id: Option<String>,
    pub last_failed_job_id: Option<String>,
}

/// What to do with one failure delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureDecision {
    /// This job's failure was already recorded by us: change nothing.
    AlreadyCounted { permanent: bool, retry_count: u32 },
    /// The task already completed; a late failure does not undo it.
    TaskCompleted,
    /// Record the failure. `counted` is false when the Python worker already bumped
    /// `retry_count` for this job (we annotate, not count again).
    Record { retry_count: u32, permanent: bool, counted: bool },
}

/// Decides how a failure delivery changes the task. `job_id` is the Batch job id when
/// the cause carried one.
pub fn decide_failure(
    state: &TaskFailureState,
    job_id: Option<&str>,
    error_type: &str,
    max_retries: u32,
    non_retryable: &std::collections::BTreeSet<String>,
) -> FailureDecision {
    let already_permanent = state.status == TaskStatus::FailedPermanent;
    if let Some(job) = job_id {
        if state.last_failed_job_id.as_deref() == Some(job) {
            return FailureDecision::AlreadyCounted { permanent: already_permanent, retry_count: state.retry_count };
        }
    }
    if state.status == TaskStatus::Completed {
        return FailureDecision::TaskCompleted;
    }
    if already_permanent {
        // Nothing can make a permanent failure more permanent; keep the count.
        return FailureDecision::AlreadyCounted { permanent: true, retry_count: state.retry_count };
    }
    let worker_recorded =
        matches!((job_id, state.worker_id.as_deref()), (Some(j), Some(w)) if j == w) && state.status.is_failed();
    let retry_count = if worker_recorded { state.retry_count } else { state.retry_count.saturating_add(1) };
    let permanent = retry_count >= max_retries || non_retryable.contains(error_type);
    FailureDecision::Record { retry_count, permanent, counted: !worker_recorded }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn state(status: TaskStatus, retry_count: u32) -> TaskFailureState {
        TaskFailureState { status, retry_count, worker_id: None, last_failed_job_id: None }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 10), "abc");
        let s = "€".repeat(5000);
        let t = truncate_chars(&s, MAX_CAUSE_CHARS);
        assert_eq!(t.chars().count(), 4000);
        assert_eq!(t.len(), 12000);
    }

    #[test]
    fn parses_batch_sync_cause() {
        let cause = r#"{"JobId":"abc-123","JobName":"t1","Status":"FAILED","StatusReason":"Essential container in task exited","Attempts":[{"Container":{"ExitCode":137,"Reason":"OOM"}},{"Container":{"ExitCode":1}}]}"#;
        let c = parse_batch_cause(cause).unwrap();
        assert_eq!(c.job_id.as_deref(), Some("abc-123"));
        assert_eq!(c.status_reason.as_deref(), Some("Essential container in task exited"));
        assert_eq!(c.exit_code, Some(1));
        assert_eq!(parse_batch_cause("Task timed out after 3600 seconds"), None);
        assert_eq!(parse_batch_cause("{\"errorMessage\":\"x\"}"), None);
    }

    #[test]
    fn third_failure_is_permanent_with_three_retries() {
        let none = BTreeSet::new();
        let d1 = decide_failure(&state(TaskStatus::InProgress, 0), Some("j1"), "States.TaskFailed", 3, &none);
        assert_eq!(d1, FailureDecision::Record { retry_count: 1, permanent: false, counted: true });
        let d3 = decide_failure(&state(TaskStatus::InProgress, 2), Some("j3"), "States.TaskFailed", 3, &none);
        assert_eq!(d3, FailureDecision::Record { retry_count: 3, permanent: true, counted: true });
    }

    #[test]
    fn same_job_twice_is_counted_once() {
        let mut s = state(TaskStatus::Failed, 1);
        s.last_failed_job_id = Some("j1".into());
        let d = decide_failure(&s, Some("j1"), "States.TaskFailed", 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::AlreadyCounted { permanent: false, retry_count: 1 });
    }

    #[test]
    fn worker_recorded_failure_is_annotated_not_counted() {
        let mut s = state(TaskStatus::Failed, 1);
        s.worker_id = Some("j1".into());
        let d = decide_failure(&s, Some("j1"), "States.TaskFailed", 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::Record { retry_count: 1, permanent: false, counted: false });
        // The worker's bump reached MAX_RETRIES: permanent, still not counted twice.
        let mut s = state(TaskStatus::Failed, 3);
        s.worker_id = Some("j9".into());
        let d = decide_failure(&s, Some("j9"), "States.TaskFailed", 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::Record { retry_count: 3, permanent: true, counted: false });
    }

    #[test]
    fn non_retryable_errors_are_permanent_at_once() {
        let set: BTreeSet<String> = ["InvalidTask".to_owned()].into();
        let d = decide_failure(&state(TaskStatus::InProgress, 0), None, "InvalidTask", 3, &set);
        assert_eq!(d, FailureDecision::Record { retry_count: 1, permanent: true, counted: true });
    }

    #[test]
    fn completed_tasks_are_not_downgraded() {
        let d = decide_failure(&state(TaskStatus::Completed, 0), Some("j"), "X", 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::TaskCompleted);
    }

    proptest! {
        #[test]
        fn count_never_decreases_and_grows_by_at_most_one(n in 0u32..10, max in 1u32..6, worker in any::<bool>(), failed in any::<bool>()) {
            let mut s = state(if failed { TaskStatus::Failed } else { TaskStatus::InProgress }, n);
            if worker { s.worker_id = Some("j".into()); }
            match decide_failure(&s, Some("j"), "E", max, &BTreeSet::new()) {
                FailureDecision::Record { retry_count, permanent, .. } => {
                    prop_assert!(retry_count == n || retry_count == n + 1);
                    prop_assert_eq!(permanent, retry_count >= max);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
