//! What the sweeper was asked to do: an EventBridge scheduled event, an EventBridge Scheduler
//! payload or `{}` (a scheduled sweep), or a manual request. Parsed at the edge; a manual
//! request with an unknown field is rejected (a typo like `dryrun` must never cause real retries).

use arc_shared::contracts::SweepManualRequest;
use arc_shared::ids::{RunId, TaskId};
use arc_shared::input::parse_event;
use arc_shared::ArcError;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;
use std::collections::BTreeSet;

/// Where a sweep request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// EventBridge (rule or Scheduler) or `{}`.
    Scheduled,
    /// A manual request with at least one field.
    Manual,
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
        }
    }
}

/// A validated sweep request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRequest {
    pub trigger: Trigger,
    /// Read and decide, write nothing, start nothing.
    pub dry_run: bool,
    /// Every FAILED task is due now.
    pub ignore_backoff: bool,
    /// Only this run.
    pub run_id: Option<RunId>,
    /// Only these tasks of `run_id`.
    pub task_ids: Option<BTreeSet<TaskId>>,
    /// At most this many tasks re-queued (further bounded by `SWEEPER_MAX_TASKS`).
    pub max_tasks: Option<usize>,
    /// Retry `run_id` even while its config's breaker is open.
    pub force: bool,
}

impl SweepRequest {
    /// The request of a scheduled sweep.
    pub fn scheduled() -> Self {
        Self {
            trigger: Trigger::Scheduled,
            dry_run: false,
            ignore_backoff: false,
            run_id: None,
            task_ids: None,
            max_tasks: None,
            force: false,
        }
    }
}

/// At most this many `task_ids` in a manual request: a run has at most as many tasks.
pub const MAX_REQUEST_TASKS: usize = 10_000;

/// Parses the Lambda payload.
pub fn parse_request(event: Value) -> Result<SweepRequest, ArcError> {
    let Some(obj) = event.as_object() else {
        // Not an object: parse_event rejects it, naming `$`.
        return parse_event::<SweepManualRequest>(event).and_then(manual_request);
    };
    if obj.is_empty() {
        return Ok(SweepRequest::scheduled());
    }
    if obj.contains_key("detail-type") && obj.contains_key("source") {
        let ev: EventBridgeEvent<Value> = serde_json::from_value(event)
            .map_err(|e| ArcError::invalid("$", format!("not a valid EventBridge event: {e}")))?;
        tracing::info!(source = %ev.source, detail_type = %ev.detail_type, "scheduled sweep from EventBridge");
        return Ok(SweepRequest::scheduled());
    }
    parse_event::<SweepManualRequest>(event).and_then(manual_request)
}

/// Validates a manual request (what `arcctl sweep` builds and the Lambda parses).
pub fn manual_request(m: SweepManualRequest) -> Result<SweepRequest, ArcError> {
    if m.task_ids.is_some() && m.run_id.is_none() {
        return Err(ArcError::invalid("task_ids", "task_ids needs run_id (tasks are named within one run)"));
    }
    let task_ids = match m.task_ids {
        Some(ids) if ids.is_empty() => return Err(ArcError::invalid("task_ids", "must not be empty when given")),
        Some(ids) if ids.len() > MAX_REQUEST_TASKS => {
            return Err(ArcError::invalid(
                "task_ids",
                format!("{} ids given; at most {MAX_REQUEST_TASKS} (a run has at most that many)", ids.len()),
            ))
        }
        Some(ids) => {
            let n = ids.len();
            let set: BTreeSet<TaskId> = ids.into_iter().collect();
            if set.len() != n {
                return Err(ArcError::invalid("task_ids", format!("{} duplicate id(s)", n - set.len())));
            }
            Some(set)
        }
        None => None,
    };
    let force = m.force.unwrap_or(false);
    if force && m.run_id.is_none() {
        return Err(ArcError::invalid(
            "force",
            "force needs run_id (it retries one run past its config's open breaker)",
        ));
    }
    let max_tasks = match m.max_tasks {
        Some(0) => return Err(ArcError::invalid("max_tasks", "must be at least 1")),
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => None,
    };
    Ok(SweepRequest {
        trigger: Trigger::Manual,
        dry_run: m.dry_run.unwrap_or(false),
        ignore_backoff: m.ignore_backoff.unwrap_or(false),
        run_id: m.run_id,
        task_ids,
        max_tasks,
        force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(v: Value) -> String {
        match parse_request(v) {
            Err(ArcError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn empty_object_and_eventbridge_events_are_scheduled() {
        assert_eq!(parse_request(json!({})).unwrap(), SweepRequest::scheduled());
        let ev: Value = serde_json::from_str(include_str!("../fixtures/eventbridge-scheduled-event.json")).unwrap();
        assert_eq!(parse_request(ev).unwrap(), SweepRequest::scheduled());
    }

    #[test]
    fn manual_request_fields() {
        let r = parse_request(json!({"dry_run": true, "ignore_backoff": true, "run_id": "run-a", "task_ids": ["t2", "t1"], "max_tasks": 5}))
            .unwrap();
        assert_eq!(r.trigger, Trigger::Manual);
        assert!(r.dry_run && r.ignore_backoff);
        assert_eq!(r.run_id.as_ref().map(|r| r.as_str()), Some("run-a"));
        let ids: Vec<&str> = r.task_ids.as_ref().unwrap().iter().map(|t| t.as_str()).collect();
        assert_eq!(ids, vec!["t1", "t2"]);
        assert_eq!(r.max_tasks, Some(5));
        let r = parse_request(json!({"dry_run": false})).unwrap();
        assert_eq!(r.trigger, Trigger::Manual);
        assert!(!r.dry_run && !r.ignore_backoff && r.run_id.is_none());
    }

    #[test]
    fn bad_manual_requests_name_the_field() {
        assert_eq!(field_of(json!({"dryrun": true})), "dryrun");
        assert_eq!(field_of(json!({"task_ids": ["t1"]})), "task_ids");
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": []})), "task_ids");
        assert_eq!(field_of(json!({"dry_run": "yes"})), "dry_run");
        assert_eq!(field_of(json!({"max_tasks": -1})), "max_tasks");
        assert_eq!(field_of(json!({"max_tasks": 0})), "max_tasks");
        assert_eq!(field_of(json!({"run_id": 7})), "run_id");
        assert_eq!(field_of(json!({"force": true})), "force");
        assert_eq!(field_of(json!({"force": "yes", "run_id": "r"})), "force");
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": ["ok", "b/ad"]})), "task_ids[1]");
        assert_eq!(field_of(json!([1, 2])), "$");
        assert_eq!(field_of(json!("sweep")), "$");
        assert_eq!(field_of(json!({"detail-type": 5, "source": "aws.events"})), "$");
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": ["t1", "t2", "t1"]})), "task_ids");
        let many: Vec<String> = (0..=MAX_REQUEST_TASKS).map(|i| format!("t{i}")).collect();
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": many})), "task_ids");
    }
}
