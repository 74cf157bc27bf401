//! What a sweep did (the Lambda's output, a public contract: field names and string values
//! stay as they are), the events its steps report, and its CloudWatch metrics.

pub(crate) use arc_shared::contracts::SweepEvent as Event;
pub use arc_shared::contracts::{
    ExecutionStatus, Repair, RepairAction, SkippedRun, StartReason, StartedExecution, SweepError, SweepSummary,
    TaskRef, DEFERRED_LISTED,
};
use arc_shared::records::RunRecord;
use arc_shared::store::metrics::{put_metrics, Datum};
use arc_shared::ArcError;

/// What repairing or retrying one run did.
#[derive(Debug, Default)]
pub(crate) struct RunOutcome {
    pub events: Vec<Event>,
    /// The run as this step last wrote it (later steps of the sweep read it).
    pub run: Option<RunRecord>,
    /// What stopped the step early; the events before it stand.
    pub error: Option<ArcError>,
}

impl RunOutcome {
    /// This outcome, stopped by `result`'s error if it has one.
    pub fn ended(mut self, result: Result<(), ArcError>) -> Self {
        self.error = result.err();
        self
    }
}

/// Publishes the sweep's metrics into `namespace`. A failure is logged, not fatal.
pub async fn publish_metrics(cw: &aws_sdk_cloudwatch::Client, namespace: &str, summary: &SweepSummary) {
    let data: Vec<Datum<'_>> = summary.metrics().into_iter().map(|(name, value)| Datum::count(name, value)).collect();
    if let Err(e) = put_metrics(cw, namespace, &data, &[]).await {
        tracing::warn!(namespace, error = %e, "sweeper metrics not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DeferReason, Deferred};
    use arc_shared::status::RunStatus;
    use arc_shared::store::executions::EndedStatus;
    use std::collections::BTreeMap;

    #[test]
    fn deferred_are_counted_all_and_listed_up_to_the_cap() {
        let mut s = SweepSummary::default();
        let d = |i: usize| Deferred {
            run_id: "r".into(),
            task_id: format!("t{i}"),
            retry_count: 1,
            due_at: None,
            reason: DeferReason::NotYetDue,
        };
        s.defer((0..150).map(d).collect());
        s.defer((150..300).map(d).collect());
        assert_eq!(s.deferred_count, 300);
        assert_eq!(s.deferred.len(), DEFERRED_LISTED);
        let m: BTreeMap<_, _> = s.metrics().into_iter().collect();
        assert_eq!(m["TasksDeferred"], 300.0);
        assert_eq!(m["SweepErrors"], 0.0);
    }

    #[test]
    fn the_json_keeps_its_field_names_and_strings() {
        let r = Repair {
            run_id: "r".into(),
            action: RepairAction::RunFinished,
            execution_name: Some("n".into()),
            execution_status: Some(ExecutionStatus::Ended(EndedStatus::TimedOut)),
            tasks: 2,
            run_status: Some(RunStatus::CompletedWithErrors),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"run_id":"r","action":"run_finished","execution_name":"n","execution_status":"TIMED_OUT","tasks":2,"run_status":"COMPLETED_WITH_ERRORS"}"#
        );
        let s = StartedExecution {
            run_id: "r".into(),
            execution_name: "n".into(),
            execution_arn: "a".into(),
            retry_generation: 1,
            tasks: 3,
            reason: StartReason::Repair,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"run_id":"r","execution_name":"n","execution_arn":"a","retry_generation":1,"tasks":3,"reason":"repair"}"#
        );
        for a in [
            RepairAction::ExecutionStarted,
            RepairAction::TasksUnqueued,
            RepairAction::RunFinished,
            RepairAction::ClaimReleased,
        ] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for (e, text) in [
            (ExecutionStatus::Running, "RUNNING"),
            (ExecutionStatus::NotFound, "NOT_FOUND"),
            (ExecutionStatus::Unnamed, "NONE"),
            (ExecutionStatus::Ended(EndedStatus::Aborted), "ABORTED"),
            (ExecutionStatus::Ended(EndedStatus::Succeeded), "SUCCEEDED"),
        ] {
            assert_eq!(serde_json::to_value(e).unwrap(), text);
            assert_eq!(e.to_string(), text);
        }
        for r in [StartReason::Retry, StartReason::Repair] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
