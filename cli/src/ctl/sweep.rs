//! `arcctl sweep` and `arcctl retry`: one request JSON, run by the sweeper library here or sent
//! to the deployed sweeper Lambda, and the summary it returns shown as tables or JSON.

use super::runs::json_text;
use super::Ctx;
use crate::exit::{emit, CliError};
use crate::table::Table;
use arc_shared::contracts::{SweepManualRequest, SweepSummary};
use arc_shared::ids::{RunId, TaskId};
use arc_shared::time::SystemClock;
use arc_sweeper::{manual_request, SweepDeps, SweepSettings};
use std::sync::Arc;

/// What the operator asked for (already validated by clap).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub dry_run: bool,
    pub ignore_backoff: bool,
    pub run_id: Option<RunId>,
    pub task_ids: Vec<TaskId>,
    pub max_tasks: Option<u64>,
    /// Past an open breaker of the run's config (needs `run_id`).
    pub force: bool,
}

impl Request {
    /// The sweeper's manual request, exactly as the Lambda receives it (both flags always
    /// given, so no flags is still a manual sweep, never a scheduled one).
    pub fn manual(&self) -> SweepManualRequest {
        SweepManualRequest {
            dry_run: Some(self.dry_run),
            ignore_backoff: Some(self.ignore_backoff),
            run_id: self.run_id.clone(),
            // Unique ids (the sweeper rejects duplicates); the order does not matter.
            task_ids: (!self.task_ids.is_empty()).then(|| {
                let mut ids = self.task_ids.clone();
                ids.sort();
                ids.dedup();
                ids
            }),
            max_tasks: self.max_tasks,
            force: self.force.then_some(true),
        }
    }
}

pub async fn sweep(ctx: &Ctx, req: Request, invoke: Option<&str>) -> Result<(), CliError> {
    if let (Some(run_id), None) = (&req.run_id, invoke) {
        // A run that does not exist is exit 3, not an empty sweep. (The deployed sweeper answers
        // RunNotFound itself, so --invoke needs no DynamoDB access here.)
        ctx.tables().require_run(run_id.as_str()).await?;
    }
    let request = req.manual();
    let summary = match invoke {
        Some(function) => invoke_sweeper(ctx, function, &request).await?,
        None => sweep_here(ctx, request).await?,
    };
    if ctx.json {
        emit(&json_text(&summary)?);
    } else {
        emit(&render(&summary));
    }
    if !summary.unmatched_task_ids.is_empty() {
        let ids = summary.unmatched_task_ids.join(", ");
        eprintln!("arcctl: warning: not FAILED tasks of the run, left alone: {ids}");
    }
    if summary.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(format!("the sweep reported {} error(s); see the summary", summary.errors.len())))
    }
}

/// Runs the sweeper library in this process, with this process's configuration.
async fn sweep_here(ctx: &Ctx, request: SweepManualRequest) -> Result<SweepSummary, CliError> {
    let settings = SweepSettings::from_config(&ctx.config).map_err(|_| {
        CliError::Usage(
            "STATE_MACHINE_ARN is not set: a local sweep starts retry executions on that state machine \
             (or use --invoke FUNCTION_NAME to run the deployed sweeper)"
                .to_owned(),
        )
    })?;
    let deps = SweepDeps {
        tables: ctx.tables(),
        breakers: ctx.breakers(),
        sfn: ctx.clients.sfn.clone(),
        cloudwatch: ctx.clients.cloudwatch.clone(),
        clock: Arc::new(SystemClock),
        settings,
    };
    let request = manual_request(request)?;
    Ok(Box::pin(arc_sweeper::sweep(&deps, request)).await?)
}

/// Invokes the deployed sweeper Lambda synchronously with `request`.
async fn invoke_sweeper(ctx: &Ctx, function: &str, request: &SweepManualRequest) -> Result<SweepSummary, CliError> {
    let payload = serde_json::to_vec(request).map_err(|e| CliError::failed(format!("request: {e}")))?;
    let out = crate::aws::invoke(&ctx.sdk, function, payload)
        .await
        .map_err(|e| CliError::failed(format!("Invoke {function}: {e}")))?
        .ok_or_else(|| {
            CliError::failed(format!("Lambda function {function} not found (check --invoke and AWS_REGION)"))
        })?;
    let body = out.payload;
    if out.function_error.is_some() {
        return Err(function_error(function, &body));
    }
    serde_json::from_str(&body)
        .map_err(|e| CliError::failed(format!("the sweeper {function} answered no sweep summary ({e}): {body}")))
}

/// The Lambda's error payload `{errorType, errorMessage}` as a CLI error: the sweeper's stable
/// error types keep their exit codes (RunNotFound → 3, InvalidInput → 2).
fn function_error(function: &str, body: &str) -> CliError {
    /// A Lambda function's error payload.
    #[derive(serde::Deserialize, Default)]
    struct LambdaError {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "errorMessage")]
        error_message: Option<String>,
    }
    let e: LambdaError = serde_json::from_str(body).unwrap_or_default();
    let kind = e.error_type.as_deref().unwrap_or("Unhandled");
    let message = e.error_message.as_deref().unwrap_or(body);
    let text = format!("the sweeper {function} failed: {kind}: {message}");
    match kind {
        "RunNotFound" | "TaskNotFound" => CliError::NotFound(text),
        "InvalidInput" => CliError::Usage(text),
        _ => CliError::Failed(text),
    }
}

/// A JSON value as table text: strings bare, null as `-`.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A section of the summary: a title and a table, left out when it has no rows.
fn section(out: &mut String, title: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let mut t = Table::new(headers.iter().copied());
    for r in rows {
        t.row(r);
    }
    out.push_str(&format!("\n\n{title}\n{}", t.render()));
}

/// The sweep summary for people.
pub fn render(s: &SweepSummary) -> String {
    let mut out = format!(
        "{} sweep at {}{}\nscanned {} FAILED, due {}, deferred {}, re-queued {}, executions started {}",
        s.trigger,
        s.swept_at,
        if s.dry_run { " (dry run: nothing written)" } else { "" },
        s.scanned,
        s.due,
        s.deferred_count,
        s.requeued_total,
        s.executions_started.len(),
    );
    let started = s.executions_started.iter().map(|e| {
        vec![
            e.run_id.clone(),
            e.execution_name.clone(),
            e.retry_generation.to_string(),
            e.tasks.to_string(),
            e.reason.as_str().to_owned(),
        ]
    });
    section(&mut out, "executions started", &["RUN", "EXECUTION", "GENERATION", "TASKS", "REASON"], started.collect());
    let deferred = s.deferred.iter().map(|d| {
        vec![
            d.run_id.clone(),
            d.task_id.clone(),
            d.retry_count.to_string(),
            opt(d.due_at.as_deref()),
            d.reason.as_str().to_owned(),
        ]
    });
    section(&mut out, "deferred", &["RUN", "TASK", "RETRIES", "DUE AT", "REASON"], deferred.collect());
    let skipped = s.skipped_runs.iter().map(|r| vec![r.run_id.clone(), r.due_tasks.to_string(), r.reason.clone()]);
    section(&mut out, "skipped runs", &["RUN", "DUE TASKS", "REASON"], skipped.collect());
    let repairs = s.repaired.iter().map(|r| {
        vec![
            r.run_id.clone(),
            r.action.as_str().to_owned(),
            opt(r.execution_name.as_deref()),
            opt(r.execution_status.as_ref().map(|x| x.as_str())),
            r.tasks.to_string(),
            opt(r.run_status.as_ref().map(|x| x.as_str())),
        ]
    });
    let headers = ["RUN", "ACTION", "EXECUTION", "EXECUTION STATUS", "TASKS", "RUN STATUS"];
    section(&mut out, "repairs", &headers, repairs.collect());
    let errors =
        s.errors.iter().map(|e| vec![opt(e.run_id.as_deref()), e.error_type.clone(), e.message.clone()]).collect();
    section(&mut out, "errors", &["RUN", "ERROR", "MESSAGE"], errors);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_sweeper::parse_request;
    use serde_json::json;

    #[test]
    fn the_request_is_what_the_sweeper_parses() {
        let req = Request {
            dry_run: true,
            ignore_backoff: true,
            run_id: Some(RunId::parse("run-a").unwrap()),
            task_ids: vec![TaskId::parse("t1").unwrap()],
            max_tasks: Some(5),
            force: false,
        };
        let v = serde_json::to_value(req.manual()).unwrap();
        assert_eq!(
            v,
            json!({"dry_run": true, "ignore_backoff": true, "run_id": "run-a", "task_ids": ["t1"], "max_tasks": 5})
        );
        let parsed = parse_request(v).unwrap();
        assert!(parsed.dry_run && parsed.ignore_backoff);
        assert_eq!(parsed.max_tasks, Some(5));
        // No flags is still a manual sweep, never mistaken for a scheduled one.
        let none = serde_json::to_value(Request::default().manual()).unwrap();
        assert_eq!(parse_request(none).unwrap().trigger, arc_sweeper::Trigger::Manual);
    }

    #[test]
    fn lambda_errors_keep_their_exit_codes() {
        let e = function_error("sw", r#"{"errorType":"RunNotFound","errorMessage":"run run-x not found"}"#);
        assert_eq!(e.code(), crate::exit::NOT_FOUND);
        assert!(e.to_string().contains("run run-x not found"), "{e}");
        let e = function_error("sw", r#"{"errorType":"InvalidInput","errorMessage":"dryrun: unknown field"}"#);
        assert_eq!(e.code(), crate::exit::USAGE);
        let e = function_error("sw", "Task timed out after 900.00 seconds");
        assert_eq!(e.code(), crate::exit::FAILED);
        assert!(e.to_string().contains("Task timed out"), "{e}");
    }

    #[test]
    fn renders_sections_only_when_present() {
        let s = json!({"trigger": "manual", "swept_at": "t", "dry_run": true, "scanned": 2, "due": 1,
            "deferred_count": 1, "requeued_total": 1,
            "executions_started": [{"run_id": "r", "execution_name": "retry-x-g1", "execution_arn": "arn:x", "retry_generation": 1,
                "tasks": 1, "reason": "retry"}],
            "deferred": [], "errors": []});
        let text = render(&serde_json::from_value(s).unwrap());
        assert!(text.contains("(dry run: nothing written)"), "{text}");
        assert!(text.contains("retry-x-g1"), "{text}");
        assert!(!text.contains("deferred\n"), "{text}");
    }
}
