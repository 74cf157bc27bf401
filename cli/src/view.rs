//! How runs, tasks and money look: JSON objects for scripts, short strings for tables.

use crate::table::Table;
use arc_shared::failure::{parse_batch_cause, truncate_chars};
use arc_shared::json::decimal_to_json;
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::TaskStatus;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The task statuses in lifecycle order, for tables that list every status.
pub const STATUS_ORDER: [&str; 6] =
    ["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "RETRY_QUEUED", "FAILED_PERMANENT"];

/// A run record as JSON (money as an exact JSON number).
pub fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id,
        "config_name": r.config_name,
        "status": r.status.as_str(),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "completed_at": r.completed_at,
        "triggered_by": r.triggered_by,
        "data_source": r.data_source,
        "total_tasks": r.total_tasks,
        "completed_tasks": r.completed_tasks,
        "failed_tasks": r.failed_tasks,
        "total_cost_usd": r.total_cost_usd.map(decimal_to_json),
        "accuracy": r.accuracy,
        "duration_seconds": r.duration_seconds,
        "results_s3_key": r.results_s3_key,
        "execution_arn": r.execution_arn,
        "retry_generation": r.retry_generation,
        "retries_pending": r.retries_pending,
        "cancelled_by": r.cancelled_by,
        "cancelled_reason": r.cancelled_reason,
        "cancelled_at": r.cancelled_at,
        "resumed_by": r.resumed_by,
        "resumed_at": r.resumed_at,
        "max_cost_usd": r.max_cost_usd.map(decimal_to_json),
        "over_budget_tasks": r.over_budget_tasks,
        "over_budget_at": r.over_budget_at,
    })
}

/// A failed task as JSON, with its full last error.
pub fn failed_task_json(t: &TaskRecord) -> Value {
    json!({
        "task_id": t.task_id,
        "status": t.status.as_str(),
        "retry_count": t.retry_count,
        "last_error_type": t.last_error_type,
        "last_error": error_summary(t),
        "last_error_cause": t.last_error_cause,
        "last_error_at": t.last_error_at,
        "last_failed_job_id": t.last_failed_job_id,
        "next_retry_at": t.next_retry_at,
        "failure_class": t.failure_class,
        "infra_failures": t.infra_failures,
    })
}

/// The head of a run's table for people: its id, config and status (callers add rows).
pub fn run_head(r: &RunRecord) -> Table {
    let mut head = Table::new(["RUN", r.run_id.as_str()]);
    head.row(["config", r.config_name.as_deref().unwrap_or("-")]);
    head.row(["status", r.status.as_str()]);
    head
}

/// `$1.234567` (every stored digit), or `-` when unknown.
pub fn money(d: Option<Decimal>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("${}", d.normalize()))
}

/// `45.0%` from a 0..1 ratio, or `-`.
pub fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A one-line description of a task's last failure: the Batch status reason and exit code when
/// the cause is a Batch job description, else the start of the cause text.
pub fn error_summary(t: &TaskRecord) -> String {
    let kind = t.last_error_type.as_deref().unwrap_or("");
    let cause = t.last_error_cause.as_deref().unwrap_or("");
    let detail = match parse_batch_cause(cause) {
        Some(b) => {
            let reason = b.status_reason.unwrap_or_default();
            match b.exit_code {
                Some(code) => format!("{reason} (exit {code})"),
                None => reason,
            }
        }
        None => truncate_chars(cause.lines().next().unwrap_or(""), 80).to_owned(),
    };
    match (kind.is_empty(), detail.is_empty()) {
        (true, true) => t.error.clone().unwrap_or_default(),
        (false, true) => kind.to_owned(),
        (true, false) => detail,
        (false, false) => format!("{kind}: {detail}"),
    }
}

/// Tasks per status, every known status listed (zeros included) and unknown ones after them.
pub fn status_counts<'a>(statuses: impl IntoIterator<Item = &'a TaskStatus>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = STATUS_ORDER.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for s in statuses {
        let name = if s.as_str().is_empty() { "(none)" } else { s.as_str() };
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    counts
}

/// The per-status table, in lifecycle order.
pub fn status_table(counts: &BTreeMap<String, u64>) -> Table {
    let mut t = Table::new(["STATUS", "TASKS"]);
    for s in STATUS_ORDER {
        t.row([s.to_owned(), counts.get(s).copied().unwrap_or(0).to_string()]);
    }
    for (s, c) in counts.iter().filter(|(s, _)| !STATUS_ORDER.contains(&s.as_str())) {
        t.row([s.clone(), c.to_string()]);
    }
    let total: u64 = counts.values().sum();
    t.row(["total".to_owned(), total.to_string()]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn task(error_type: Option<&str>, cause: Option<&str>) -> TaskRecord {
        let mut item = arc_shared::records::Item::new();
        item.insert("run_id".into(), arc_shared::records::s("r"));
        item.insert("task_id".into(), arc_shared::records::s("t"));
        let mut t = TaskRecord::from_item(item).unwrap();
        t.last_error_type = error_type.map(str::to_owned);
        t.last_error_cause = cause.map(str::to_owned);
        t
    }

    #[test]
    fn batch_causes_are_summarised_by_reason_and_exit_code() {
        let cause = r#"{"JobId":"j1","StatusReason":"Essential container in task exited","Attempts":[{"Container":{"ExitCode":137}}]}"#;
        let t = task(Some("States.TaskFailed"), Some(cause));
        assert_eq!(error_summary(&t), "States.TaskFailed: Essential container in task exited (exit 137)");
        assert_eq!(error_summary(&task(Some("Timeout"), Some("took too long\nmore"))), "Timeout: took too long");
        assert_eq!(error_summary(&task(None, None)), "");
    }

    #[test]
    fn money_keeps_every_digit() {
        assert_eq!(money(Some(Decimal::from_str("0.012345678901").unwrap())), "$0.012345678901");
        assert_eq!(money(Some(Decimal::from_str("2.50").unwrap())), "$2.5");
        assert_eq!(money(None), "-");
        assert_eq!(percent(Some(0.4567)), "45.7%");
    }

    #[test]
    fn status_counts_list_every_status_and_unknown_ones() {
        let s = [TaskStatus::Completed, TaskStatus::Completed, TaskStatus::Other("RUNNING".into())];
        let c = status_counts(s.iter());
        assert_eq!(c["COMPLETED"], 2);
        assert_eq!(c["FAILED"], 0);
        assert_eq!(c["RUNNING"], 1);
        let rendered = status_table(&c).render();
        let last: Vec<Vec<&str>> = rendered.lines().rev().take(2).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(last, vec![vec!["total", "3"], vec!["RUNNING", "1"]], "{rendered}");
    }
}
