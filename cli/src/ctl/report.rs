//! `arcctl runs report`: a run's per-task results from the tasks table (sorted by task id,
//! filterable by status) and its summary — the S3 report aggregate wrote (`results_s3_key`)
//! when there is one, else the same metrics computed from the tasks. As a table, JSON or CSV
//! (a header row, money with every stored digit).

use super::runs::json_text;
use super::Ctx;
use crate::exit::{emit, CliError};
use crate::table::Table;
use crate::view;
use arc_shared::json::decimal_to_json;
use arc_shared::metrics::Metrics;
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::store::objects::ObjectRef;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 9] = [
    "task_id",
    "status",
    "is_correct",
    "cost_usd",
    "tokens_input",
    "tokens_output",
    "retry_count",
    "last_error_type",
    "last_error_exit_code",
];

/// What to report.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// Write the task rows as CSV here (`-`: stdout, and nothing else there).
    pub csv: Option<String>,
    /// Only tasks of these statuses (all when empty).
    pub statuses: Vec<String>,
}

/// One task's row: the CSV cells, in [`CSV_COLUMNS`] order.
pub fn csv_cells(t: &TaskRecord) -> [String; 9] {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        t.task_id.clone(),
        t.status.as_str().to_owned(),
        opt(t.is_correct.map(|b| b.to_string())),
        opt(t.cost_usd.map(|d| d.normalize().to_string())),
        opt(t.tokens_input.map(|n| n.to_string())),
        opt(t.tokens_output.map(|n| n.to_string())),
        t.retry_count.to_string(),
        opt(t.last_error_type.clone()),
        opt(t.last_error_exit_code.map(|n| n.to_string())),
    ]
}

/// One CSV field (RFC 4180: quoted when it holds a comma, quote or line break).
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The CSV text: a header row, then one row per task.
pub fn csv(tasks: &[TaskRecord]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for t in tasks {
        let cells: Vec<String> = csv_cells(t).iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn task_json(t: &TaskRecord) -> Value {
    json!({
        "task_id": t.task_id,
        "status": t.status.as_str(),
        "is_correct": t.is_correct,
        "cost_usd": t.cost_usd.map(decimal_to_json),
        "tokens_input": t.tokens_input,
        "tokens_output": t.tokens_output,
        "retry_count": t.retry_count,
        "last_error_type": t.last_error_type,
        "last_error_exit_code": t.last_error_exit_code,
    })
}

/// The run's summary: `(source, metrics)` — the S3 report's `metrics` when it can be read,
/// else the metrics of the tasks (with `accuracy`).
async fn summary(ctx: &Ctx, run: &RunRecord, tasks: &[TaskRecord]) -> Result<(String, Value), CliError> {
    match (&run.results_s3_key, &ctx.config.s3_bucket) {
        (Some(key), Some(bucket)) => {
            let at = ObjectRef { bucket: bucket.clone(), key: key.clone() };
            match read_report(ctx, &at).await? {
                Some(report) => match report.get("metrics").filter(|m| m.is_object()) {
                    Some(m) => {
                        let mut m = m.clone();
                        if let (Some(obj), Some(at)) = (m.as_object_mut(), report.get("generated_at")) {
                            obj.insert("generated_at".into(), at.clone());
                        }
                        return Ok((at.uri(), m));
                    }
                    None => eprintln!("arcctl: warning: {} has no metrics object; summary from the tasks", at.uri()),
                },
                None => eprintln!("arcctl: warning: {} does not exist; summary from the tasks", at.uri()),
            }
        }
        (Some(key), None) => {
            eprintln!(
                "arcctl: note: the run's report is at key {key}; set S3_BUCKET to read it. Summary from the tasks"
            )
        }
        (None, _) => {}
    }
    let mut m = Metrics::default();
    for t in tasks {
        m.add(&t.status, t.cost_usd, t.is_correct, (t.tokens_input, t.tokens_output));
    }
    let mut v = serde_json::to_value(&m).map_err(|e| CliError::failed(format!("summary: {e}")))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("accuracy".into(), json!(m.accuracy()));
    }
    Ok(("tasks table".to_owned(), v))
}

/// The summary's metrics, in reading order (known ones first, any others after them).
const SUMMARY_ORDER: [&str; 12] = [
    "total_tasks",
    "completed_tasks",
    "correct_tasks",
    "accuracy",
    "failed_tasks",
    "failed_permanent_tasks",
    "retries_pending",
    "pending_tasks",
    "total_cost_usd",
    "total_input_tokens",
    "total_output_tokens",
    "generated_at",
];

/// The summary for people: accuracy as a percentage, money with a `$` and every digit.
pub fn summary_table(metrics: &Value) -> Table {
    let empty = Map::new();
    let m = metrics.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = SUMMARY_ORDER.iter().filter_map(|k| m.get_key_value(*k).map(|(k, _)| k)).collect();
    keys.extend(m.keys().filter(|k| !SUMMARY_ORDER.contains(&k.as_str())));
    let mut t = Table::new(["METRIC", "VALUE"]);
    for k in keys {
        let value = match (k.as_str(), &m[k]) {
            ("accuracy", Value::Number(n)) => view::percent(n.as_f64()),
            ("total_cost_usd", Value::Number(n)) => format!("${n}"),
            (_, Value::String(s)) => s.clone(),
            (_, Value::Null) => "-".to_owned(),
            (_, other) => other.to_string(),
        };
        t.row([k.clone(), value]);
    }
    t
}

/// The JSON report at `at`, or `None` when there is no such object.
async fn read_report(ctx: &Ctx, at: &ObjectRef) -> Result<Option<Value>, CliError> {
    let Some(text) = ctx.clients.objects.get_text(at).await? else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| CliError::failed(format!("{} is not JSON: {e}", at.uri())))
}

pub async fn report(ctx: &Ctx, run_id: &str, req: &ReportRequest) -> Result<(), CliError> {
    let tables = ctx.tables();
    let run = tables.require_run(run_id).await?;
    let mut tasks = tables.run_tasks(run_id).await?;
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    let (source, metrics) = summary(ctx, &run, &tasks).await?;
    if !req.statuses.is_empty() {
        tasks.retain(|t| req.statuses.iter().any(|s| s == t.status.as_str()));
    }

    if let Some(path) = &req.csv {
        let text = csv(&tasks);
        if path == "-" {
            emit(text.trim_end_matches('\n'));
            return Ok(());
        }
        std::fs::write(Path::new(path), text).map_err(|e| CliError::failed(format!("writing {path}: {e}")))?;
        eprintln!("wrote {} task row(s) and a header to {path}", tasks.len());
    }
    if ctx.json {
        let out = json!({
            "run_id": run.run_id,
            "status": run.status.as_str(),
            "config_name": run.config_name,
            "summary_source": source,
            "summary": metrics,
            "tasks": tasks.iter().map(task_json).collect::<Vec<_>>(),
        });
        emit(&json_text(&out)?);
        return Ok(());
    }

    let mut head = view::run_head(&run);
    head.row(["summary from", source.as_str()]);
    emit(&format!("{}\n", head.render()));
    emit(&summary_table(&metrics).render());
    if req.csv.is_some() {
        return Ok(());
    }
    if tasks.is_empty() {
        emit("\nno tasks");
        return Ok(());
    }
    let mut t =
        Table::new(["TASK", "STATUS", "CORRECT", "COST", "TOKENS IN", "TOKENS OUT", "RETRIES", "LAST ERROR", "EXIT"]);
    for task in &tasks {
        let c = csv_cells(task);
        let dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
        t.row([
            c[0].clone(),
            c[1].clone(),
            dash(&c[2]),
            task.cost_usd.map_or_else(|| "-".to_owned(), |d| view::money(Some(d))),
            dash(&c[4]),
            dash(&c[5]),
            c[6].clone(),
            dash(&c[7]),
            dash(&c[8]),
        ]);
    }
    emit(&format!("\n{}", t.render()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_shared::records::{n, s, Item};
    use aws_sdk_dynamodb::types::AttributeValue;

    fn task(pairs: Vec<(&str, AttributeValue)>) -> TaskRecord {
        let mut item: Item = [("run_id", s("r"))].into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        item.extend(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)));
        TaskRecord::from_item(item).unwrap()
    }

    #[test]
    fn csv_has_a_header_exact_money_and_quotes_what_needs_it() {
        let tasks = vec![
            task(vec![
                ("task_id", s("a")),
                ("status", s("COMPLETED")),
                ("is_correct", AttributeValue::Bool(true)),
                ("cost_usd", AttributeValue::N("0.123456789012345678".into())),
                ("tokens_input", n(10)),
                ("tokens_output", n(3)),
            ]),
            task(vec![
                ("task_id", s("b")),
                ("status", s("FAILED")),
                ("retry_count", n(2)),
                ("last_error_type", s("States.TaskFailed, \"odd\"")),
                ("last_error_exit_code", n(137)),
            ]),
        ];
        let text = csv(&tasks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(lines[1], "a,COMPLETED,true,0.123456789012345678,10,3,0,,");
        assert_eq!(lines[2], "b,FAILED,,,,,2,\"States.TaskFailed, \"\"odd\"\"\",137");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn the_summary_reads_in_order_with_money_and_percent() {
        let m: Value = serde_json::from_str(
            r#"{"zeta": 1, "total_cost_usd": 0.10000000000000000055, "accuracy": 0.5, "total_tasks": 2}"#,
        )
        .unwrap();
        let text = summary_table(&m).render();
        let keys: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(keys, ["total_tasks", "accuracy", "total_cost_usd", "zeta"]);
        assert!(text.contains("$0.10000000000000000055") && text.contains("50.0%"), "{text}");
    }
}
