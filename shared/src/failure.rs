//! The one failure model every writer follows (handle-error, the sweeper's repair, Complete):
//! what a failed Batch job means for its task, parsed from the Step Functions error, and how
//! it changes the count. Pure functions; the handlers do the I/O.
//!
//! Counting rule (docs/ARCHITECTURE.md, "Failure model"): every failed attempt of the task
//! counts once in `retry_count`, whoever records it. The Python worker records the attempts it
//! sees fail (its failure path) itself; handle-error counts a failed job only when the worker
//! could not record it (killed, OOM, timeout, failed before the claim), recognising the
//! worker's record by status and timestamps (its `worker_id` is `<pid>@<host>`, never a job
//! id), and annotates it otherwise. A failure reaching `MAX_RETRIES` is permanent.

use crate::class::FailureClass;
use crate::status::TaskStatus;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeSet;

/// `last_error_cause` is kept to this many characters.
pub const MAX_CAUSE_CHARS: usize = 4000;
/// `error_message` in handle-error's output carries this many characters of the cause.
pub const MESSAGE_CAUSE_CHARS: usize = 200;
/// `last_error_type` (the Step Functions `Error` name) is kept to this many characters.
pub const MAX_ERROR_TYPE_CHARS: usize = 256;
/// Parsed text fields (status reason, container reason) are kept to this many characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// Cuts `s` to at most `max` characters, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

/// Whether a task with `retry_count` failed attempts has used up `max_retries` (the one
/// place this rule is written).
pub fn is_exhausted(retry_count: u32, max_retries: u32) -> bool {
    retry_count >= max_retries
}

/// What operators need of a Batch `.sync` failure Cause (the job description as a JSON
/// string), parsed; never the container's environment, secrets or command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCause {
    pub job_id: Option<String>,
    pub status_reason: Option<String>,
    /// The exit code of the last attempt that has one.
    pub exit_code: Option<i64>,
    /// The last attempt's container `Reason` (OOM, image pull).
    pub container_reason: Option<String>,
    pub log_stream_name: Option<String>,
    /// Container attempts the job made.
    pub attempts: u32,
    /// Where its last attempt that ran, ran.
    pub last_attempt: LastAttempt,
}

/// Where the last container attempt of a failed job that reached RUNNING ran, as its Cause
/// tells it: what says whether the worker's claim of the task (`started_at`) belongs to this
/// job. A job counts one failure: its last attempt that ran (earlier ones exited 1 after the
/// worker recorded them; attempts that never ran are the infrastructure's, not the task's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LastAttempt {
    /// Not a Batch job description (a timeout, a Lambda error, plain or truncated text).
    #[default]
    Unknown,
    /// No attempt of the job reached RUNNING (none has a `StartedAt`): no worker of this job
    /// claimed the task.
    NeverRan,
    /// It ran from `started_ms` to `stopped_ms` (milliseconds since the epoch; `None`: no stop
    /// time given).
    Ran { started_ms: i64, stopped_ms: Option<i64> },
}

/// How far a claim may lie outside its attempt's Batch times (clocks of the container host
/// and of Batch).
const CLAIM_SLACK_MS: i64 = 1_000;

impl LastAttempt {
    fn of(attempts: &[Value]) -> Self {
        let ms = |a: &Value, k: &str| a.get(k).and_then(Value::as_i64).filter(|t| *t > 0);
        attempts
            .iter()
            .rev()
            .find_map(|a| ms(a, "StartedAt").map(|started_ms| Self::Ran { started_ms, stopped_ms: ms(a, "StoppedAt") }))
            .unwrap_or(Self::NeverRan)
    }

    /// Whether a claim at `claimed_at` may have been made by this attempt (`Unknown`: it may).
    pub fn may_have_claimed(&self, claimed_at: Option<DateTime<Utc>>) -> bool {
        match (self, claimed_at) {
            (Self::Unknown, _) => true,
            (Self::NeverRan, _) | (_, None) => false,
            (Self::Ran { started_ms, stopped_ms }, Some(c)) => {
                let c = c.timestamp_millis();
                c >= started_ms.saturating_sub(CLAIM_SLACK_MS)
                    && stopped_ms.is_none_or(|stop| c <= stop.saturating_add(CLAIM_SLACK_MS))
            }
        }
    }
}

fn text(v: Option<&Value>, max: usize) -> Option<String> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| truncate_chars(s, max).to_owned())
}

/// Reads a Batch job description out of `cause`; `None` for plain-text causes, JSON of another
/// shape, or truncated JSON.
pub fn parse_batch_cause(cause: &str) -> Option<BatchCause> {
    let v: Value = serde_json::from_str(cause.trim()).ok()?;
    let obj = v.as_object()?;
    let attempts: &[Value] = obj.get("Attempts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if !obj.contains_key("JobId") && !obj.contains_key("StatusReason") && attempts.is_empty() {
        return None;
    }
    let containers = || attempts.iter().rev().filter_map(|a| a.get("Container"));
    Some(BatchCause {
        job_id: text(obj.get("JobId"), 128),
        status_reason: text(obj.get("StatusReason"), MAX_REASON_CHARS),
        exit_code: containers().find_map(|c| c.get("ExitCode").and_then(Value::as_i64)),
        container_reason: containers().find_map(|c| text(c.get("Reason"), MAX_REASON_CHARS)),
        log_stream_name: containers()
            .find_map(|c| text(c.get("LogStreamName"), 512))
            .or_else(|| obj.get("Container").and_then(|c| text(c.get("LogStreamName"), 512))),
        attempts: u32::try_from(attempts.len()).unwrap_or(u32::MAX),
        last_attempt: LastAttempt::of(attempts),
    })
}

/// Keys whose values may carry secrets (job definition environment, secrets, command line,
/// job parameters): removed at any depth, compared case-insensitively.
const SENSITIVE_KEYS: [&str; 5] = ["environment", "secrets", "command", "parameters", "environmentfiles"];

fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SENSITIVE_KEYS.iter().any(|s| k == *s)
}

fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| is_sensitive(k)).cloned().collect();
            for k in keys {
                map.insert(k, Value::String("[redacted]".to_owned()));
            }
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// The cause as it may be stored, logged and returned: JSON with every sensitive key's value
/// replaced by `[redacted]`; text that is not JSON (or truncated JSON) cut before the first
/// sensitive key name it mentions. At most [`MAX_CAUSE_CHARS`] characters.
pub fn redact_cause(cause: &str) -> String {
    let redacted = match serde_json::from_str::<Value>(cause.trim()) {
        Ok(mut v @ (Value::Object(_) | Value::Array(_))) => {
            scrub(&mut v);
            v.to_string()
        }
        Ok(other) => other.as_str().map(redact_text).unwrap_or_else(|| other.to_string()),
        Err(_) => redact_text(cause),
    };
    truncate_chars(&redacted, MAX_CAUSE_CHARS).to_owned()
}

fn redact_text(cause: &str) -> String {
    let lower = cause.to_ascii_lowercase();
    match SENSITIVE_KEYS.iter().filter_map(|k| lower.find(k)).min() {
        // ASCII lowercasing keeps byte offsets, and a match starts on an ASCII byte.
        Some(at) => format!("{}[redacted]", &cause[..at]),
        None => cause.to_owned(),
    }
}

/// The state of a task as read, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailureState {
    pub status: TaskStatus,
    pub retry_count: u32,
    /// The worker's last claim (`started_at`), as written and as a time.
    pub claim: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    /// The task's last write (`updated_at`).
    pub updated_at: Option<DateTime<Utc>>,
    /// Our last recorded failure (`last_error_at`).
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_failed_job_id: Option<String>,
    pub last_failure_key: Option<String>,
    /// `retry_count` as our last failure write left it (`recorded_retry_count`).
    pub recorded_retry_count: Option<u32>,
    /// The claim whose failure record by the worker a write of ours has seen
    /// (`worker_recorded_claim`).
    pub worker_recorded_claim: Option<String>,
    /// The claim whose worker record was taken as some delivered job's failure
    /// (`attributed_claim`): it answers for one job only.
    pub attributed_claim: Option<String>,
    /// Infrastructure failures spared from `retry_count` so far (`infra_failures`).
    pub infra_failures: u32,
}

impl TaskFailureState {
    /// The worker recorded the failure of its current claim: the task is failed, and a write of
    /// ours already saw that record, or the count grew since our last failure write (besides
    /// ours, only the worker's failure path adds to it, and only after a claim). On an item no
    /// failure write of this version touched: the claim came after our last record.
    pub fn worker_recorded_current_claim(&self) -> bool {
        if !self.status.is_failed() || self.claim.is_none() {
            return false;
        }
        if self.worker_recorded_claim.is_some() && self.worker_recorded_claim == self.claim {
            return true;
        }
        match self.recorded_retry_count {
            Some(ours) => self.retry_count > ours,
            None => match (self.claimed_at, self.last_error_at) {
                (Some(claim), Some(ours)) => claim > ours,
                (Some(_), None) => true,
                (None, _) => false,
            },
        }
    }

    /// The worker's record of its current claim is the failure of the delivered job: it
    /// recorded one, the job's last attempt may have made that claim (the claim lies within
    /// the attempt's Batch times), and no other delivery was taken for it already.
    pub fn worker_recorded(&self, delivery: &Delivery<'_>) -> bool {
        self.worker_recorded_current_claim()
            && delivery.last_attempt.may_have_claimed(self.claimed_at)
            && !(self.attributed_claim.is_some() && self.attributed_claim == self.claim)
    }
}

/// One delivery of a failed job: the key it is deduplicated on, and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The Batch job id, when the Cause carries one.
    pub job_id: Option<&'a str>,
    /// `job:<id>`, else `sfn:<execution>#<entered time>` from the state machine's delivery
    /// key, else `None` (nothing to deduplicate on).
    pub key: Option<String>,
    pub error_type: &'a str,
    /// Where the job's last attempt ran.
    pub last_attempt: LastAttempt,
    /// Whose fault it was (`crate::class::classify`).
    pub class: FailureClass,
    /// `INFRA_MAX_RETRIES`: infrastructure failures a task is spared before they count.
    pub infra_cap: u32,
}

impl<'a> Delivery<'a> {
    pub fn new(
        job_id: Option<&'a str>,
        sfn_key: Option<(&str, &str)>,
        error_type: &'a str,
        last_attempt: LastAttempt,
    ) -> Self {
        let key = match (job_id, sfn_key) {
            (Some(j), _) => Some(format!("job:{j}")),
            (None, Some((exec, entered))) => Some(format!("sfn:{exec}#{entered}")),
            (None, None) => None,
        };
        Self { job_id, key, error_type, last_attempt, class: FailureClass::Task, infra_cap: 0 }
    }

    /// The delivery classified as `class`, with `infra_cap` infrastructure failures spared.
    pub fn classified(self, class: FailureClass, infra_cap: u32) -> Self {
        Self { class, infra_cap, ..self }
    }
}

/// What to do with one failure delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureDecision {
    /// This delivery was already recorded: change nothing.
    AlreadyCounted { permanent: bool, retry_count: u32 },
    /// The task already completed; a late failure does not undo it.
    TaskCompleted,
    /// Record the failure.
    Record(Recorded),
}

/// How a failure is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub retry_count: u32,
    pub permanent: bool,
    /// `retry_count` was bumped by this delivery (false: the worker already counted it).
    pub counted: bool,
    /// This write moves the task to FAILED_PERMANENT, so the run's `failed_tasks` gains one
    /// (false when the worker already made it permanent and counted it on the run).
    pub newly_permanent: bool,
    /// The failure happened at the worker's last write (`updated_at`), not now.
    pub at_workers_record: bool,
    /// The claim whose worker record this write has seen (`worker_recorded_claim`), if any.
    pub seen_workers_claim: Option<String>,
    /// The delivery's class, stored as `failure_class`.
    pub class: FailureClass,
    /// An infrastructure failure spared from `retry_count` (it counts in `infra_failures`).
    pub spared: bool,
    /// `infra_failures` after this write.
    pub infra_failures: u32,
}

/// Decides how a failure delivery changes the task.
pub fn decide_failure(
    state: &TaskFailureState,
    delivery: &Delivery<'_>,
    max_retries: u32,
    non_retryable: &BTreeSet<String>,
) -> FailureDecision {
    let already_permanent = state.status == TaskStatus::FailedPermanent;
    let seen_job = delivery.job_id.is_some() && state.last_failed_job_id.as_deref() == delivery.job_id;
    let seen_key = delivery.key.is_some() && state.last_failure_key == delivery.key;
    if seen_job || seen_key {
        return FailureDecision::AlreadyCounted { permanent: already_permanent, retry_count: state.retry_count };
    }
    if state.status == TaskStatus::Completed {
        return FailureDecision::TaskCompleted;
    }
    let worker_recorded = state.worker_recorded(delivery);
    if already_permanent && !worker_recorded {
        // Made permanent by an earlier record of ours: nothing can make it more permanent.
        return FailureDecision::AlreadyCounted { permanent: true, retry_count: state.retry_count };
    }
    // An infrastructure failure nobody recorded is spared from the task's retries while the
    // task has infrastructure retries left; past them it counts like any other.
    let spared =
        !worker_recorded && delivery.class == FailureClass::Infrastructure && state.infra_failures < delivery.infra_cap;
    let retry_count = if worker_recorded || spared { state.retry_count } else { state.retry_count.saturating_add(1) };
    let permanent =
        already_permanent || is_exhausted(retry_count, max_retries) || non_retryable.contains(delivery.error_type);
    FailureDecision::Record(Recorded {
        retry_count,
        permanent,
        counted: !worker_recorded && !spared,
        newly_permanent: permanent && !already_permanent,
        at_workers_record: worker_recorded,
        seen_workers_claim: state.worker_recorded_current_claim().then(|| state.claim.clone()).flatten(),
        class: delivery.class,
        spared,
        infra_failures: state.infra_failures.saturating_add(u32::from(spared)),
    })
}

/// What an in-flight task of a finished or ended execution becomes (Complete, and the
/// sweeper's repair of an ended execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub retry_count: u32,
    pub permanent: bool,
    pub counted: bool,
    /// Spared from `retry_count` as an infrastructure failure ([`spare_left_claimed`]).
    pub spared: bool,
}

/// Whether an in-flight task is charged an attempt when its execution is over: a task some
/// worker claimed (`IN_PROGRESS`, or a status this product does not know) always is; a
/// `PENDING` one only when its job is known to have run (`job_ran`: Complete, after the Map
/// gave every task a job), never when the execution ended before it (a stopped execution).
pub fn settle_in_flight(status: &TaskStatus, retry_count: u32, max_retries: u32, job_ran: bool) -> Option<Settled> {
    let counted = match status {
        TaskStatus::Pending => job_ran,
        s if s.is_in_flight() => true,
        _ => return None,
    };
    let retry_count = if counted { retry_count.saturating_add(1) } else { retry_count };
    Some(Settled { retry_count, permanent: is_exhausted(retry_count, max_retries), counted, spared: false })
}

/// A task its worker claimed (`IN_PROGRESS`) and left so while its job ended well: the
/// claiming container was killed and Batch ran the job again (a spot reclaim, `Host EC2 ...
/// terminated`, is the job definition's retried reason), and the next attempt found the task
/// claimed and exited 0. Not the task's fault: spared from `retry_count` while it has
/// infrastructure retries left (`infra_failures < infra_cap`).
pub fn spare_left_claimed(
    s: Settled,
    status: &TaskStatus,
    infra_failures: u32,
    infra_cap: u32,
    max_retries: u32,
) -> Settled {
    if !s.counted || *status != TaskStatus::InProgress || infra_failures >= infra_cap {
        return s;
    }
    let retry_count = s.retry_count.saturating_sub(1);
    Settled { retry_count, permanent: is_exhausted(retry_count, max_retries), counted: false, spared: true }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(min: u32) -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(2026, 11, 27, 10, min, 0).unwrap())
    }

    fn state(status: TaskStatus, retry_count: u32) -> TaskFailureState {
        TaskFailureState {
            status,
            retry_count,
            claim: None,
            claimed_at: None,
            updated_at: None,
            last_error_at: None,
            last_failed_job_id: None,
            last_failure_key: None,
            recorded_retry_count: None,
            worker_recorded_claim: None,
            attributed_claim: None,
            infra_failures: 0,
        }
    }

    /// Claimed at minute `min`.
    fn claimed(s: &mut TaskFailureState, min: u32) {
        s.claimed_at = t(min);
        s.claim = t(min).map(crate::time::format_ts);
    }

    fn job(j: &str) -> Delivery<'_> {
        Delivery::new(Some(j), None, "States.TaskFailed", LastAttempt::Unknown)
    }

    /// Job `j` whose last attempt ran from minute `from` to minute `to`.
    fn ran(j: &str, from: u32, to: u32) -> Delivery<'_> {
        let ms = |m: u32| t(m).map_or(0, |t| t.timestamp_millis());
        Delivery::new(
            Some(j),
            None,
            "States.TaskFailed",
            LastAttempt::Ran { started_ms: ms(from), stopped_ms: Some(ms(to)) },
        )
    }

    fn never_ran(j: &str) -> Delivery<'_> {
        Delivery::new(Some(j), None, "States.TaskFailed", LastAttempt::NeverRan)
    }

    fn counted(d: FailureDecision) -> Option<(u32, bool)> {
        match d {
            FailureDecision::Record(r) => Some((r.retry_count, r.counted)),
            _ => None,
        }
    }

    fn rec(retry_count: u32, permanent: bool, counted: bool) -> FailureDecision {
        FailureDecision::Record(Recorded {
            retry_count,
            permanent,
            counted,
            newly_permanent: permanent,
            at_workers_record: !counted,
            seen_workers_claim: None,
            class: FailureClass::Task,
            spared: false,
            infra_failures: 0,
        })
    }

    #[test]
    fn a_claim_left_by_a_job_that_ended_well_is_spared_up_to_the_cap() {
        let s = settle_in_flight(&TaskStatus::InProgress, 2, 3, true).unwrap();
        assert_eq!(s, Settled { retry_count: 3, permanent: true, counted: true, spared: false });
        let spared = spare_left_claimed(s, &TaskStatus::InProgress, 0, 5, 3);
        assert_eq!(spared, Settled { retry_count: 2, permanent: false, counted: false, spared: true });
        assert_eq!(spare_left_claimed(s, &TaskStatus::InProgress, 5, 5, 3), s, "cap reached");
        let pending = settle_in_flight(&TaskStatus::Pending, 0, 3, true).unwrap();
        assert_eq!(spare_left_claimed(pending, &TaskStatus::Pending, 0, 5, 3), pending, "never claimed: counted");
    }

    #[test]
    fn infrastructure_failures_are_spared_up_to_their_cap() {
        let none = BTreeSet::new();
        let mut s = state(TaskStatus::InProgress, 1);
        let spot = |j| never_ran(j).classified(FailureClass::Infrastructure, 2);
        // Spared: retry_count unchanged, counted in infra_failures.
        let FailureDecision::Record(r) = decide_failure(&s, &spot("a"), 3, &none) else { panic!("not recorded") };
        assert_eq!((r.retry_count, r.counted, r.spared, r.infra_failures, r.permanent), (1, false, true, 1, false));
        s.infra_failures = 2;
        // The cap reached: it counts like any failure.
        let FailureDecision::Record(r) = decide_failure(&s, &spot("b"), 3, &none) else { panic!("not recorded") };
        assert_eq!((r.retry_count, r.counted, r.spared, r.infra_failures), (2, true, false, 2));
        // Other classes always count.
        s.infra_failures = 0;
        let p = job("c").classified(FailureClass::Provider, 2);
        let FailureDecision::Record(r) = decide_failure(&s, &p, 3, &none) else { panic!("not recorded") };
        assert_eq!((r.retry_count, r.counted, r.class), (2, true, FailureClass::Provider));
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
        let cause = r#"{"JobId":"abc-123","JobName":"t1","Status":"FAILED","StatusReason":"Essential container in task exited","Attempts":[{"Container":{"ExitCode":137,"Reason":"OOM"}},{"Container":{"ExitCode":1,"LogStreamName":"w/d/abc"}}]}"#;
        let c = parse_batch_cause(cause).unwrap();
        assert_eq!(c.job_id.as_deref(), Some("abc-123"));
        assert_eq!(c.status_reason.as_deref(), Some("Essential container in task exited"));
        assert_eq!(c.exit_code, Some(1));
        assert_eq!(c.container_reason.as_deref(), Some("OOM"));
        assert_eq!(c.log_stream_name.as_deref(), Some("w/d/abc"));
        assert_eq!(c.attempts, 2);
        assert_eq!(parse_batch_cause("Task timed out after 3600 seconds"), None);
        assert_eq!(parse_batch_cause("{\"errorMessage\":\"x\"}"), None);
        assert_eq!(parse_batch_cause("{\"JobId\":\"abc\",\"Attempts\":[{"), None);
        assert_eq!(parse_batch_cause("[1,2]"), None);
    }

    #[test]
    fn redaction_removes_environment_and_command_at_any_depth_and_case() {
        let cause = r#"{"JobId":"j","Container":{"Environment":[{"Name":"OPENAI_API_KEY","Value":"sk-live-123"}],"Command":["run","--key","sk-cmd-456"],"secrets":[{"name":"x","valueFrom":"arn"}]},"Attempts":[{"Container":{"environment":[{"name":"A","value":"sk-att-789"}],"ExitCode":1}}],"Parameters":{"k":"sk-par"}}"#;
        let r = redact_cause(cause);
        for secret in ["sk-live-123", "sk-cmd-456", "sk-att-789", "sk-par", "valueFrom"] {
            assert!(!r.contains(secret), "{secret} left in {r}");
        }
        assert!(r.contains("\"JobId\":\"j\""), "{r}");
        assert_eq!(parse_batch_cause(&r).unwrap().exit_code, Some(1));
        // Truncated JSON: cut before the first sensitive key.
        let truncated = &cause[..60];
        let r = redact_cause(truncated);
        assert!(!r.contains("sk-live"), "{r}");
        assert!(r.ends_with("[redacted]"), "{r}");
        assert_eq!(redact_cause("Task timed out"), "Task timed out");
        assert!(redact_cause(&"x".repeat(10_000)).chars().count() <= MAX_CAUSE_CHARS);
    }

    #[test]
    fn third_failure_is_permanent_with_three_retries() {
        let none = BTreeSet::new();
        assert_eq!(decide_failure(&state(TaskStatus::InProgress, 0), &job("j1"), 3, &none), rec(1, false, true));
        assert_eq!(decide_failure(&state(TaskStatus::InProgress, 2), &job("j3"), 3, &none), rec(3, true, true));
    }

    #[test]
    fn same_job_twice_is_counted_once() {
        let mut s = state(TaskStatus::Failed, 1);
        s.last_failed_job_id = Some("j1".into());
        let d = decide_failure(&s, &job("j1"), 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::AlreadyCounted { permanent: false, retry_count: 1 });
    }

    #[test]
    fn a_delivery_without_job_id_is_counted_once_by_its_key() {
        let d =
            Delivery::new(None, Some(("arn:exec:1", "2026-11-27T10:00:00Z")), "States.Timeout", LastAttempt::Unknown);
        let mut s = state(TaskStatus::Failed, 1);
        s.last_failure_key = d.key.clone();
        assert_eq!(
            decide_failure(&s, &d, 3, &BTreeSet::new()),
            FailureDecision::AlreadyCounted { permanent: false, retry_count: 1 }
        );
        let other =
            Delivery::new(None, Some(("arn:exec:2", "2026-11-27T10:00:00Z")), "States.Timeout", LastAttempt::Unknown);
        let mut fresh = state(TaskStatus::InProgress, 1);
        fresh.last_failure_key = d.key.clone();
        assert_eq!(decide_failure(&fresh, &other, 3, &BTreeSet::new()), rec(2, false, true));
    }

    #[test]
    fn worker_recorded_failure_is_annotated_not_counted() {
        // Claimed at :05 after our last record at :01, failed by the worker.
        let mut s = state(TaskStatus::Failed, 2);
        claimed(&mut s, 5);
        s.last_error_at = t(1);
        assert_eq!(counted(decide_failure(&s, &job("j2"), 3, &BTreeSet::new())), Some((2, false)));
        // The worker's own count reached MAX_RETRIES and it counted the run: annotate only.
        let mut p = s.clone();
        p.status = TaskStatus::FailedPermanent;
        p.retry_count = 3;
        let d = decide_failure(&p, &job("j3"), 3, &BTreeSet::new());
        assert_eq!(
            d,
            FailureDecision::Record(Recorded {
                retry_count: 3,
                permanent: true,
                counted: false,
                newly_permanent: false,
                at_workers_record: true,
                seen_workers_claim: t(5).map(crate::time::format_ts),
                class: FailureClass::Task,
                spared: false,
                infra_failures: 0,
            })
        );
        // FAILED by our own earlier record (no claim since): a new job failing before the
        // claim is a new failure.
        let mut ours = state(TaskStatus::Failed, 1);
        claimed(&mut ours, 0);
        ours.last_error_at = t(1);
        assert_eq!(decide_failure(&ours, &job("j9"), 3, &BTreeSet::new()), rec(2, false, true));
    }

    #[test]
    fn the_workers_record_answers_only_for_the_job_whose_last_attempt_claimed() {
        // The worker job claimed at :05 (its last attempt ran :04–:06) and recorded: count 3,
        // ours 2.
        let mut s = state(TaskStatus::Failed, 3);
        claimed(&mut s, 5);
        s.recorded_retry_count = Some(2);
        s.last_error_at = t(6);
        let none = BTreeSet::new();
        assert_eq!(counted(decide_failure(&s, &ran("w", 4, 6), 3, &none)), Some((3, false)));
        // Another job that never ran, delivered now: counted, and the worker's record seen.
        let d = decide_failure(&s, &never_ran("o"), 9, &none);
        assert_eq!(counted(d.clone()), Some((4, true)));
        assert!(matches!(d, FailureDecision::Record(r) if r.seen_workers_claim == s.claim));
        // A job whose last attempt ran before the claim: counted.
        assert_eq!(counted(decide_failure(&s, &ran("old", 1, 3), 9, &none)), Some((4, true)));
        // After our write for the other job (count 4, the claim's record seen), the worker job
        // is still the worker's record; once taken, no other job is.
        let mut after = s.clone();
        after.retry_count = 4;
        after.recorded_retry_count = Some(4);
        after.worker_recorded_claim = s.claim.clone();
        assert_eq!(counted(decide_failure(&after, &ran("w", 4, 6), 9, &none)), Some((4, false)));
        after.attributed_claim = s.claim.clone();
        assert_eq!(counted(decide_failure(&after, &ran("w2", 4, 6), 9, &none)), Some((5, true)));
    }

    #[test]
    fn our_record_during_a_claim_does_not_hide_the_workers_record_after_it() {
        // Claimed at :05; another job's failure recorded by us at :06 (count 4); then the
        // worker records its own (count 5).
        let mut s = state(TaskStatus::Failed, 5);
        claimed(&mut s, 5);
        s.last_error_at = t(6);
        s.recorded_retry_count = Some(4);
        assert_eq!(counted(decide_failure(&s, &ran("w", 4, 7), 9, &BTreeSet::new())), Some((5, false)));
        // Had the worker not recorded (killed), its job counts.
        s.retry_count = 4;
        assert_eq!(counted(decide_failure(&s, &ran("w", 4, 7), 9, &BTreeSet::new())), Some((5, true)));
    }

    #[test]
    fn the_last_attempt_is_read_from_the_cause() {
        let at = |v: Value| parse_batch_cause(&v.to_string()).map(|b| b.last_attempt);
        assert_eq!(at(json!({"JobId": "j", "Attempts": []})), Some(LastAttempt::NeverRan));
        assert_eq!(at(json!({"JobId": "j", "Attempts": [{"StoppedAt": 30}]})), Some(LastAttempt::NeverRan));
        // An attempt that never ran after one that did: the one that ran.
        assert_eq!(
            at(json!({"JobId": "j", "Attempts": [{"StartedAt": 10, "StoppedAt": 20}, {"StoppedAt": 30}]})),
            Some(LastAttempt::Ran { started_ms: 10, stopped_ms: Some(20) })
        );
        assert_eq!(
            at(json!({"JobId": "j", "Attempts": [{"StartedAt": 10, "StoppedAt": 20}]})),
            Some(LastAttempt::Ran { started_ms: 10, stopped_ms: Some(20) })
        );
        assert_eq!(parse_batch_cause("plain text"), None);
        let ran = LastAttempt::Ran { started_ms: 10_000, stopped_ms: Some(20_000) };
        let ms = |m: i64| DateTime::from_timestamp_millis(m);
        assert!(ran.may_have_claimed(ms(15_000)));
        assert!(ran.may_have_claimed(ms(9_500)));
        assert!(!ran.may_have_claimed(ms(5_000)));
        assert!(!ran.may_have_claimed(ms(25_000)));
        assert!(!LastAttempt::NeverRan.may_have_claimed(ms(15_000)));
        assert!(LastAttempt::Unknown.may_have_claimed(None));
    }

    #[test]
    fn permanent_by_our_own_record_stays_as_it_is() {
        let mut s = state(TaskStatus::FailedPermanent, 3);
        claimed(&mut s, 0);
        s.last_error_at = t(1);
        assert_eq!(
            decide_failure(&s, &job("late"), 3, &BTreeSet::new()),
            FailureDecision::AlreadyCounted { permanent: true, retry_count: 3 }
        );
    }

    #[test]
    fn non_retryable_errors_are_permanent_at_once() {
        let set: BTreeSet<String> = ["InvalidTask".to_owned()].into();
        let d = decide_failure(
            &state(TaskStatus::InProgress, 0),
            &Delivery::new(None, None, "InvalidTask", LastAttempt::Unknown),
            3,
            &set,
        );
        assert_eq!(d, rec(1, true, true));
    }

    #[test]
    fn completed_tasks_are_not_downgraded() {
        let d = decide_failure(&state(TaskStatus::Completed, 0), &job("j"), 3, &BTreeSet::new());
        assert_eq!(d, FailureDecision::TaskCompleted);
    }

    #[test]
    fn settling_charges_claimed_tasks_and_pending_ones_only_when_their_job_ran() {
        assert_eq!(
            settle_in_flight(&TaskStatus::InProgress, 1, 3, false),
            Some(Settled { retry_count: 2, permanent: false, counted: true, spared: false })
        );
        assert_eq!(
            settle_in_flight(&TaskStatus::Pending, 1, 3, false),
            Some(Settled { retry_count: 1, permanent: false, counted: false, spared: false })
        );
        assert_eq!(
            settle_in_flight(&TaskStatus::Pending, 2, 3, true),
            Some(Settled { retry_count: 3, permanent: true, counted: true, spared: false })
        );
        assert_eq!(settle_in_flight(&TaskStatus::Other("RUNNING".into()), 0, 3, false).map(|s| s.counted), Some(true));
        assert_eq!(settle_in_flight(&TaskStatus::Completed, 0, 3, true), None);
        assert_eq!(settle_in_flight(&TaskStatus::Failed, 0, 3, true), None);
    }

    fn status_strategy() -> impl Strategy<Value = TaskStatus> {
        prop_oneof![
            Just(TaskStatus::Pending),
            Just(TaskStatus::InProgress),
            Just(TaskStatus::Failed),
            Just(TaskStatus::FailedPermanent),
            Just(TaskStatus::RetryQueued),
        ]
    }

    proptest! {
        #[test]
        fn count_never_decreases_and_grows_by_at_most_one(
            n in 0u32..10, max in 1u32..6, status in status_strategy(),
            claim in proptest::option::of(0u32..10), ours in proptest::option::of(0u32..10),
        ) {
            let mut s = state(status.clone(), n);
            if let Some(c) = claim {
                claimed(&mut s, c);
            }
            s.last_error_at = ours.and_then(t);
            match decide_failure(&s, &job("j"), max, &BTreeSet::new()) {
                FailureDecision::Record(r) => {
                    prop_assert!(r.retry_count == n || r.retry_count == n + 1);
                    prop_assert_eq!(r.counted, r.retry_count == n + 1);
                    prop_assert!(!r.newly_permanent || r.permanent);
                    prop_assert!(r.permanent == (status == TaskStatus::FailedPermanent || r.retry_count >= max));
                    prop_assert!(!(r.newly_permanent && status == TaskStatus::FailedPermanent));
                }
                FailureDecision::AlreadyCounted { retry_count, .. } => {
                    prop_assert_eq!(retry_count, n);
                    prop_assert_eq!(status, TaskStatus::FailedPermanent);
                }
                FailureDecision::TaskCompleted => prop_assert!(false, "not completed"),
            }
        }
    }
}
