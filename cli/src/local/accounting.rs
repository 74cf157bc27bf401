//! The closing check of a lifecycle: the tasks table, the run record, the S3 report and the
//! workers' own ledger must tell the same story, to the last digit of the cost. The reads are
//! in [`check`]; the comparison is the pure [`compare`].

use arc_shared::records::{parse_decimal, RunRecord, TaskRecord};
use arc_shared::runtime::Env;
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::objects::ObjectRef;
use arc_shared::ArcError;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the run ended as, and everything that does not add up.
#[derive(Debug, Clone)]
pub struct Final {
    pub run: RunRecord,
    pub tasks: Vec<TaskRecord>,
    pub completed: u64,
    pub failed_permanent: u64,
    pub correct: u64,
    pub tasks_cost: Decimal,
    /// `s3://bucket/key` of the report, when there is one.
    pub report_url: Option<String>,
    /// Empty: the accounting is right.
    pub problems: Vec<String>,
}

/// What the workers did, as the local runner saw it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Tasks started.
    pub expected_tasks: u64,
    /// The cost each completed task's worker wrote.
    pub costs: BTreeMap<String, Decimal>,
    /// Tasks two workers completed.
    pub completed_twice: Vec<String>,
    /// Failed jobs per task: each must be counted once in `retry_count`, however often its
    /// failure was delivered.
    pub failures: BTreeMap<String, u32>,
}

/// Reads the run, its tasks and its S3 report, and compares them.
pub async fn check(env: &Env, run_id: &str, ledger: &Ledger) -> Result<Final, ArcError> {
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;
    let tasks = tables.run_tasks(run_id).await?;
    let (report, report_url) = match (&env.config.s3_bucket, &run.results_s3_key) {
        (Some(bucket), Some(key)) => {
            let at = ObjectRef { bucket: bucket.clone(), key: key.clone() };
            (read_report(env, &at).await?, Some(at.uri()))
        }
        _ => (None, None),
    };
    Ok(compare(run, tasks, report.as_ref(), report_url, ledger))
}

/// Compares the run record, the task records, the report and the ledger.
pub fn compare(
    run: RunRecord,
    tasks: Vec<TaskRecord>,
    report: Option<&Value>,
    report_url: Option<String>,
    ledger: &Ledger,
) -> Final {
    let mut p = Vec::new();
    let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count() as u64;
    let completed = count(TaskStatus::Completed);
    let failed_permanent = count(TaskStatus::FailedPermanent);
    let correct =
        tasks.iter().filter(|t| t.status == TaskStatus::Completed && t.is_correct == Some(true)).count() as u64;
    let tasks_cost: Decimal = tasks.iter().filter_map(|t| t.cost_usd).sum();
    let total = tasks.len() as u64;

    // The tasks table on its own.
    if total != ledger.expected_tasks {
        p.push(format!("tasks table holds {total} tasks of the run; {} were started", ledger.expected_tasks));
    }
    if completed + failed_permanent != total {
        let open: Vec<String> = tasks
            .iter()
            .filter(|t| !matches!(t.status, TaskStatus::Completed | TaskStatus::FailedPermanent))
            .map(|t| format!("{}={}", t.task_id, t.status))
            .collect();
        p.push(format!(
            "completed {completed} + failed permanently {failed_permanent} != {total} tasks; still open: {}",
            open.join(", ")
        ));
    }

    // The run record.
    for (what, got, want) in [
        ("total_tasks", run.total_tasks, total),
        ("completed_tasks", run.completed_tasks, completed),
        ("failed_tasks", run.failed_tasks, failed_permanent),
    ] {
        if got != want {
            p.push(format!("run record {what} = {got}, tasks table says {want}"));
        }
    }
    if run.total_cost_usd != Some(tasks_cost) {
        p.push(format!("run record total_cost_usd = {:?}, tasks table sums to {tasks_cost}", run.total_cost_usd));
    }
    let want_status = RunStatus::from_counts(total, failed_permanent);
    if run.status != want_status {
        p.push(format!("run status {} but the counts say {want_status}", run.status));
    }

    // The workers' ledger.
    if !ledger.completed_twice.is_empty() {
        p.push(format!("tasks completed by two workers: {}", ledger.completed_twice.join(", ")));
    }
    let ledger_cost: Decimal = ledger.costs.values().copied().sum();
    if ledger_cost != tasks_cost {
        p.push(format!("workers charged {ledger_cost} in all, tasks table sums to {tasks_cost}"));
    }
    for t in tasks.iter().filter(|t| t.status == TaskStatus::Completed) {
        if ledger.costs.get(&t.task_id) != t.cost_usd.as_ref() {
            p.push(format!(
                "task {} cost {:?} in the table, worker charged {:?}",
                t.task_id,
                t.cost_usd,
                ledger.costs.get(&t.task_id)
            ));
        }
    }

    for t in &tasks {
        let failed_jobs = ledger.failures.get(&t.task_id).copied().unwrap_or(0);
        if t.retry_count != failed_jobs {
            p.push(format!(
                "task {} has retry_count {}, but {failed_jobs} of its jobs failed",
                t.task_id, t.retry_count
            ));
        }
    }

    // The S3 report.
    match report {
        Some(report) => {
            let m = report.get("metrics").cloned().unwrap_or(Value::Null);
            for (k, want) in [
                ("total_tasks", total),
                ("completed_tasks", completed),
                ("failed_tasks", failed_permanent),
                ("failed_permanent_tasks", failed_permanent),
                ("correct_tasks", correct),
            ] {
                if m.get(k).and_then(Value::as_u64) != Some(want) {
                    p.push(format!("report metrics.{k} = {:?}, tasks table says {want}", m.get(k)));
                }
            }
            let report_cost = m.get("total_cost_usd").and_then(|v| parse_decimal(&v.to_string()));
            if report_cost != Some(tasks_cost) {
                p.push(format!(
                    "report metrics.total_cost_usd = {:?}, tasks table sums to {tasks_cost}",
                    m.get("total_cost_usd")
                ));
            }
            let rows = report.get("tasks").and_then(Value::as_array).map_or(0, Vec::len) as u64;
            if rows != total {
                p.push(format!("report lists {rows} tasks, tasks table holds {total}"));
            }
        }
        None => p.push(match &report_url {
            Some(url) => format!("no S3 report: {url} does not exist"),
            None => "no S3 report (no S3_BUCKET, or the run names no results_s3_key)".to_owned(),
        }),
    }

    Final { run, tasks, completed, failed_permanent, correct, tasks_cost, report_url, problems: p }
}

/// The run's S3 report: `None` when there is no such object (a problem [`compare`] reports).
async fn read_report(env: &Env, at: &ObjectRef) -> Result<Option<Value>, ArcError> {
    let Some(text) = env.clients.objects.get_text(at).await? else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| ArcError::CorruptItem { key: at.uri(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_shared::records::{s, Item};
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::json;
    use std::str::FromStr;

    fn dec(v: &str) -> Decimal {
        Decimal::from_str(v).unwrap()
    }

    fn task(id: &str, status: &str, cost: Option<&str>) -> TaskRecord {
        let mut item: Item = [("run_id", s("r")), ("task_id", s(id)), ("status", s(status))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        if let Some(c) = cost {
            item.insert("cost_usd".into(), AttributeValue::N(c.into()));
            item.insert("is_correct".into(), AttributeValue::Bool(true));
        }
        TaskRecord::from_item(item).unwrap()
    }

    fn run(status: &str, total: u64, completed: u64, failed: u64, cost: &str) -> RunRecord {
        let item: Item = [
            ("run_id", s("r")),
            ("status", s(status)),
            ("total_tasks", AttributeValue::N(total.to_string())),
            ("completed_tasks", AttributeValue::N(completed.to_string())),
            ("failed_tasks", AttributeValue::N(failed.to_string())),
            ("total_cost_usd", AttributeValue::N(cost.into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        RunRecord::from_item(item).unwrap()
    }

    fn report(completed: u64, failed: u64, cost: &str, rows: usize) -> Value {
        let cost: Value = serde_json::from_str(cost).unwrap();
        json!({
            "metrics": {"total_tasks": completed + failed, "completed_tasks": completed, "failed_tasks": failed,
                        "failed_permanent_tasks": failed, "correct_tasks": completed, "total_cost_usd": cost},
            "tasks": vec![json!({}); rows],
        })
    }

    fn ledger(costs: &[(&str, &str)]) -> Ledger {
        Ledger {
            expected_tasks: 3,
            costs: costs.iter().map(|(t, c)| ((*t).to_owned(), dec(c))).collect(),
            completed_twice: vec![],
            failures: BTreeMap::new(),
        }
    }

    fn world() -> (RunRecord, Vec<TaskRecord>, Value, Ledger) {
        (
            run("COMPLETED_WITH_ERRORS", 3, 2, 1, "0.30000000000000000001"),
            vec![
                task("a", "COMPLETED", Some("0.1")),
                task("b", "COMPLETED", Some("0.20000000000000000001")),
                task("c", "FAILED_PERMANENT", None),
            ],
            report(2, 1, "0.30000000000000000001", 3),
            ledger(&[("a", "0.1"), ("b", "0.20000000000000000001")]),
        )
    }

    #[test]
    fn matching_books_have_no_problems() {
        let (r, t, rep, l) = world();
        let f = compare(r, t, Some(&rep), None, &l);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!((f.completed, f.failed_permanent, f.correct), (2, 1, 2));
        assert_eq!(f.tasks_cost, dec("0.30000000000000000001"));
    }

    #[test]
    fn a_cost_off_by_the_last_digit_is_a_problem_everywhere_it_shows() {
        let (_, t, _, l) = world();
        let r = run("COMPLETED_WITH_ERRORS", 3, 2, 1, "0.3");
        let rep = report(2, 1, "0.3", 3);
        let f = compare(r, t, Some(&rep), None, &l);
        assert!(f.problems.iter().any(|p| p.starts_with("run record total_cost_usd")), "{:?}", f.problems);
        assert!(f.problems.iter().any(|p| p.starts_with("report metrics.total_cost_usd")), "{:?}", f.problems);
    }

    #[test]
    fn open_tasks_wrong_counts_and_a_short_report_are_problems() {
        let (_, mut t, _, l) = world();
        t[2] = task("c", "FAILED", None);
        let r = run("COMPLETED", 3, 3, 0, "0.30000000000000000001");
        let rep = report(2, 0, "0.30000000000000000001", 2);
        let f = compare(r, t, Some(&rep), None, &l);
        let text = f.problems.join("\n");
        assert!(text.contains("still open: c=FAILED"), "{text}");
        assert!(text.contains("report lists 2 tasks"), "{text}");
        assert!(text.contains("run record completed_tasks = 3, tasks table says 2"), "{text}");
    }

    #[test]
    fn the_ledger_must_match_each_task_and_no_report_is_a_problem() {
        let (r, t, _, _) = world();
        let mut l = ledger(&[("a", "0.1"), ("b", "0.2")]);
        l.completed_twice.push("a".into());
        let f = compare(r, t, None, None, &l);
        let text = f.problems.join("\n");
        assert!(text.contains("workers charged 0.3 in all"), "{text}");
        assert!(text.contains("task b cost"), "{text}");
        assert!(text.contains("completed by two workers: a"), "{text}");
        assert!(text.contains("no S3 report"), "{text}");
    }

    #[test]
    fn retry_count_must_equal_the_failed_jobs_however_often_they_were_delivered() {
        let (r, mut t, rep, mut l) = world();
        t[2].retry_count = 3;
        l.failures.insert("c".into(), 3);
        assert!(compare(r.clone(), t.clone(), Some(&rep), None, &l).problems.is_empty());
        // A failure counted twice (a redelivery not recognised) shows as a mismatch.
        t[2].retry_count = 4;
        let f = compare(r, t, Some(&rep), None, &l);
        assert_eq!(f.problems, vec!["task c has retry_count 4, but 3 of its jobs failed".to_owned()]);
    }
}
