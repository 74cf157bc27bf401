//! Failure classes: whose fault a recorded failure was. One pure function, [`classify`], with
//! its rules in [`ClassRules`] (built-in defaults, each list replaceable by configuration).
//!
//! - `infrastructure`: the platform failed the attempt, not the task: a spot reclaim or a host
//!   terminated (`StatusReason` `Host EC2 ...`), a job none of whose attempts reached RUNNING
//!   (capacity, image pull), an image or resource error (`CannotPullContainerError`,
//!   `ResourceInitializationError`, ...), or an exit code the operator lists. Retried without
//!   consuming the task's `MAX_RETRIES` (up to `INFRA_MAX_RETRIES` such failures per task).
//! - `provider`: the model provider refused or failed the call (rate limit, quota, outage), as
//!   the worker's error text or the Cause tells it. Counted like any failure, and fed to the
//!   sweeper's per-config circuit breaker.
//! - `task`: everything else.

use crate::failure::{BatchCause, LastAttempt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Whose fault a failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Task,
    Infrastructure,
    Provider,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Infrastructure => "infrastructure",
            Self::Provider => "provider",
        }
    }

    /// Reads a stored class; `None` for anything else (an older item, a typo).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "task" => Some(Self::Task),
            "infrastructure" => Some(Self::Infrastructure),
            "provider" => Some(Self::Provider),
            _ => None,
        }
    }
}

/// Text (case-insensitive substrings) that marks a platform failure, in the job's or its last
/// container's status reason. `FAILURE_CLASS_INFRA_PATTERNS` replaces this list.
pub const DEFAULT_INFRA_PATTERNS: [&str; 8] = [
    "host ec2",
    "cannotpullcontainererror",
    "resourceinitializationerror",
    "cannotstartcontainererror",
    "cannotcreatevolumeerror",
    "cannotinspectcontainererror",
    "dockertimeouterror",
    "spot instance",
];

/// Text (case-insensitive substrings) that marks a provider failure, in the worker's error
/// text or the Cause. `FAILURE_CLASS_PROVIDER_PATTERNS` replaces this list.
pub const DEFAULT_PROVIDER_PATTERNS: [&str; 12] = [
    "ratelimiterror",
    "rate limit",
    "rate_limit",
    "too many requests",
    "error code: 429",
    "insufficient_quota",
    "quota exceeded",
    "overloaded",
    "service unavailable",
    "error code: 503",
    "apiconnectionerror",
    "apitimeouterror",
];

/// The classification rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRules {
    /// Exit codes of the last attempt that mean infrastructure (`FAILURE_CLASS_INFRA_EXIT_CODES`).
    pub infra_exit_codes: BTreeSet<i64>,
    /// Lower-case substrings of a status reason that mean infrastructure.
    pub infra_patterns: Vec<String>,
    /// Lower-case substrings of the error text that mean a provider failure.
    pub provider_patterns: Vec<String>,
}

impl Default for ClassRules {
    fn default() -> Self {
        Self {
            infra_exit_codes: BTreeSet::new(),
            infra_patterns: DEFAULT_INFRA_PATTERNS.iter().map(|s| (*s).to_owned()).collect(),
            provider_patterns: DEFAULT_PROVIDER_PATTERNS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// What a failure is classified from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The parsed Batch job description of the failed job, when the Cause was one.
    pub batch: Option<&'a BatchCause>,
    /// The Step Functions error Cause as text (plain text for a timeout or Lambda error).
    pub cause: Option<&'a str>,
    /// The worker's own error text (the task's `error` attribute), when it recorded this
    /// failure itself.
    pub worker_error: Option<&'a str>,
}

fn contains_any(text: &str, patterns: &[String]) -> bool {
    let lower = text.to_lowercase();
    patterns.iter().any(|p| !p.is_empty() && lower.contains(p.as_str()))
}

/// Whose fault the failure was. Infrastructure is checked first (a job that never ran cannot
/// have met the provider), then the provider, else the task.
pub fn classify(rules: &ClassRules, e: &Evidence<'_>) -> FailureClass {
    if let Some(b) = e.batch {
        // No attempt reached RUNNING (no `StartedAt`, and no exit code either).
        let never_ran = b.attempts > 0 && b.last_attempt == LastAttempt::NeverRan && b.exit_code.is_none();
        let reason_says = [b.status_reason.as_deref(), b.container_reason.as_deref()]
            .into_iter()
            .flatten()
            .any(|r| contains_any(r, &rules.infra_patterns));
        let exit_says = b.exit_code.is_some_and(|c| rules.infra_exit_codes.contains(&c));
        if never_ran || reason_says || exit_says {
            return FailureClass::Infrastructure;
        }
    }
    let provider = e.worker_error.is_some_and(|w| contains_any(w, &rules.provider_patterns))
        || (e.batch.is_none() && e.cause.is_some_and(|c| contains_any(c, &rules.provider_patterns)));
    if provider {
        FailureClass::Provider
    } else {
        FailureClass::Task
    }
}

/// A configured list: comma-separated, trimmed, lower-cased, empties dropped.
pub fn parse_patterns(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::parse_batch_cause;
    use proptest::prelude::*;
    use serde_json::json;

    fn job(status_reason: &str, attempts: serde_json::Value) -> BatchCause {
        parse_batch_cause(&json!({"JobId": "j-1", "StatusReason": status_reason, "Attempts": attempts}).to_string())
            .unwrap()
    }

    fn ran(exit: i64, reason: Option<&str>) -> serde_json::Value {
        let mut c = json!({"ExitCode": exit});
        if let Some(r) = reason {
            c["Reason"] = json!(r);
        }
        json!({"Container": c, "StartedAt": 1_000, "StoppedAt": 2_000, "StatusReason": "x"})
    }

    fn class(b: &BatchCause, worker: Option<&str>) -> FailureClass {
        classify(&ClassRules::default(), &Evidence { batch: Some(b), cause: None, worker_error: worker })
    }

    #[test]
    fn spot_reclaim_image_pull_and_never_ran_are_infrastructure() {
        let spot = job("Host EC2 (instance i-0abc) terminated.", json!([ran(143, None)]));
        assert_eq!(class(&spot, None), FailureClass::Infrastructure);
        let pull = job(
            "Task failed to start",
            json!([{"Container": {"Reason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)"}, "StoppedAt": 2_000}]),
        );
        assert_eq!(class(&pull, None), FailureClass::Infrastructure);
        let init = job(
            "Essential container in task exited",
            json!([ran(1, Some("ResourceInitializationError: unable to pull secrets"))]),
        );
        assert_eq!(class(&init, None), FailureClass::Infrastructure);
        // No attempt reached RUNNING: whatever the text, the task never ran.
        let never = job("Timeout waiting for capacity", json!([{"Container": {}, "StoppedAt": 2_000}]));
        assert_eq!(class(&never, None), FailureClass::Infrastructure);
    }

    #[test]
    fn provider_errors_come_from_the_workers_text() {
        let exited = job("Essential container in task exited", json!([ran(1, None)]));
        assert_eq!(class(&exited, None), FailureClass::Task);
        let w = "RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached'}}";
        assert_eq!(class(&exited, Some(w)), FailureClass::Provider);
        assert_eq!(class(&exited, Some("APIConnectionError: Connection error.")), FailureClass::Provider);
        assert_eq!(class(&exited, Some("ValueError: could not parse the grid")), FailureClass::Task);
        // A plain-text cause (no job description) is read too.
        let e = Evidence { batch: None, cause: Some("Provider overloaded, try later"), worker_error: None };
        assert_eq!(classify(&ClassRules::default(), &e), FailureClass::Provider);
        assert_eq!(classify(&ClassRules::default(), &Evidence::default()), FailureClass::Task);
    }

    #[test]
    fn infrastructure_wins_over_provider_text() {
        let spot = job("Host EC2 (instance i-0abc) terminated.", json!([ran(143, None)]));
        assert_eq!(class(&spot, Some("RateLimitError")), FailureClass::Infrastructure);
    }

    #[test]
    fn configuration_replaces_the_rules() {
        let oom =
            job("Essential container in task exited", json!([ran(137, Some("OutOfMemoryError: Container killed"))]));
        assert_eq!(class(&oom, None), FailureClass::Task);
        let rules = ClassRules {
            infra_exit_codes: [137].into(),
            infra_patterns: parse_patterns(" Custom Reason ,,"),
            provider_patterns: parse_patterns("my-gateway said no"),
        };
        let e = |b| Evidence { batch: Some(b), cause: None, worker_error: Some("RateLimitError") };
        assert_eq!(classify(&rules, &e(&oom)), FailureClass::Infrastructure);
        let exited = job("custom reason here", json!([ran(1, None)]));
        assert_eq!(classify(&rules, &e(&exited)), FailureClass::Infrastructure);
        // The default provider patterns were replaced.
        let plain = job("Essential container in task exited", json!([ran(1, None)]));
        assert_eq!(classify(&rules, &e(&plain)), FailureClass::Task);
        assert_eq!(rules.infra_patterns, vec!["custom reason"]);
    }

    #[test]
    fn names_round_trip() {
        for c in [FailureClass::Task, FailureClass::Infrastructure, FailureClass::Provider] {
            assert_eq!(FailureClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(FailureClass::parse("Provider"), None);
    }

    proptest! {
        #[test]
        fn any_text_classifies_without_panicking(reason in ".{0,80}", worker in proptest::option::of(".{0,80}"), exit in proptest::option::of(-5i64..300)) {
            let mut b = BatchCause { status_reason: Some(reason), exit_code: exit, attempts: 1, ..BatchCause::default() };
            b.last_attempt = LastAttempt::Ran { started_ms: 1, stopped_ms: Some(2) };
            let c = class(&b, worker.as_deref());
            if worker.is_none() && !contains_any(b.status_reason.as_deref().unwrap_or(""), &ClassRules::default().infra_patterns) {
                prop_assert_eq!(c, FailureClass::Task);
            }
        }
    }
}
