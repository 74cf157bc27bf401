//! The closing check of a lifecycle: the tasks table, the run record, the S3 report and the
//! workers' own ledger must tell the same story, to the last digit of the cost.

use arc_shared::json::decimal_to_json;
use arc_shared::records::{parse_decimal, RunRecord, TaskRecord};
use arc_shared::runtime::Env;
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::ArcError;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the run ended as, from the tasks table.
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
    /// Everything that does not add up (empty: the accounting is right).
    pub problems: Vec<String>,
}

/// Reads the run, its tasks and its report, and compares them with each other and with the
/// workers' `ledger` (the cost each completed task was charged).
pub async fn check(
    env: &Env,
    run_id: &str,
    expected_tasks: u64,
    ledger: &BTreeMap<String, Decimal>,
    completed_twice: &[String],
) -> Result<Final, ArcError> {
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;
    let tasks = tables.run_tasks(run_id).await?;
    let mut p = Vec::new();

    let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count() as u64;
    let completed = count(TaskStatus::Completed);
    let failed_permanent = count(TaskStatus::FailedPermanent);
    let correct =
        tasks.iter().filter(|t| t.status == TaskStatus::Completed && t.is_correct == Some(true)).count() as u64;
    let tasks_cost: Decimal = tasks.iter().filter_map(|t| t.cost_usd).sum();
    let total = tasks.len() as u64;

    if total != expected_tasks {
        p.push(format!("tasks table holds {total} tasks of the run; {expected_tasks} were started"));
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
    if !completed_twice.is_empty() {
        p.push(format!("tasks completed by two workers: {}", completed_twice.join(", ")));
    }

    // The run record.
    let expect = |p: &mut Vec<String>, what: &str, got: u64, want: u64| {
        if got != want {
            p.push(format!("run record {what} = {got}, tasks table says {want}"));
        }
    };
    expect(&mut p, "total_tasks", run.total_tasks, total);
    expect(&mut p, "completed_tasks", run.completed_tasks, completed);
    expect(&mut p, "failed_tasks", run.failed_tasks, failed_permanent);
    if run.total_cost_usd != Some(tasks_cost) {
        p.push(format!("run record total_cost_usd = {:?}, tasks table sums to {tasks_cost}", run.total_cost_usd));
    }
    let want_status = RunStatus::from_counts(total, failed_permanent);
    if run.status != want_status {
        p.push(format!("run status {} but the counts say {want_status}", run.status));
    }

    // The workers' ledger.
    let ledger_cost: Decimal = ledger.values().copied().sum();
    if ledger_cost != tasks_cost {
        p.push(format!("workers charged {ledger_cost} in all, tasks table sums to {tasks_cost}"));
    }
    for t in tasks.iter().filter(|t| t.status == TaskStatus::Completed) {
        if ledger.get(&t.task_id) != t.cost_usd.as_ref() {
            p.push(format!(
                "task {} cost {:?} in the table, worker charged {:?}",
                t.task_id,
                t.cost_usd,
                ledger.get(&t.task_id)
            ));
        }
    }

    // The S3 report.
    let mut report_url = None;
    match (&env.config.s3_bucket, &run.results_s3_key) {
        (Some(bucket), Some(key)) => {
            report_url = Some(format!("s3://{bucket}/{key}"));
            let report = read_report(env, bucket, key).await?;
            let m = report.get("metrics").cloned().unwrap_or(Value::Null);
            let num = |k: &str| m.get(k).and_then(Value::as_u64);
            for (k, want) in [
                ("total_tasks", total),
                ("completed_tasks", completed),
                ("failed_tasks", failed_permanent),
                ("failed_permanent_tasks", failed_permanent),
                ("correct_tasks", correct),
            ] {
                if num(k) != Some(want) {
                    p.push(format!("report metrics.{k} = {:?}, tasks table says {want}", m.get(k)));
                }
            }
            let report_cost = m.get("total_cost_usd").and_then(|v| parse_decimal(&v.to_string()));
            if report_cost != Some(tasks_cost) {
                p.push(format!(
                    "report metrics.total_cost_usd = {:?}, tasks table sums to {}",
                    m.get("total_cost_usd"),
                    decimal_to_json(tasks_cost)
                ));
            }
            let rows = report.get("tasks").and_then(Value::as_array).map_or(0, Vec::len) as u64;
            if rows != total {
                p.push(format!("report lists {rows} tasks, tasks table holds {total}"));
            }
        }
        (Some(_), None) => p.push("the run record names no results_s3_key".to_owned()),
        (None, _) => p.push("no S3 bucket configured: no report to check".to_owned()),
    }

    Ok(Final { run, tasks, completed, failed_permanent, correct, tasks_cost, report_url, problems: p })
}

async fn read_report(env: &Env, bucket: &str, key: &str) -> Result<Value, ArcError> {
    let obj = env
        .clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("GetObject report", e))?;
    let bytes = obj
        .body
        .collect()
        .await
        .map_err(|e| ArcError::DependencyUnavailable { operation: "GetObject report".into(), message: e.to_string() })?
        .into_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| ArcError::CorruptItem { key: format!("s3://{bucket}/{key}"), message: e.to_string() })
}
