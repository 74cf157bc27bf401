//! `arcctl runs cancel` and `arcctl runs resume`.
//!
//! Cancel marks the run CANCELLED (who, why, when) in one conditional write, then stops the
//! execution that write returned: once the run is CANCELLED nothing changes its
//! `execution_arn` (the sweeper's claim and initialize's retry mode refuse a CANCELLED run), and
//! a Complete that still runs leaves it CANCELLED — so marking first leaves no moment in which
//! the sweeper could take the stopped execution for one to repair. An execution that does not
//! exist or has already ended is fine. A second cancel of a cancelled run makes sure its
//! execution is stopped and exits 1 saying so.
//!
//! Resume lifts it: the run's tasks that the stopped execution left in flight become FAILED
//! without charging an attempt, and the run COMPLETED_WITH_ERRORS (a status the sweeper retries
//! FAILED tasks of), conditional on the run still being CANCELLED.

use super::runs::json_text;
use super::Ctx;
use crate::aws;
use crate::exit::{emit, CliError};
use crate::table::Table;
use arc_shared::metrics::Metrics;
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::cancel::resumed_status;
use arc_shared::store::executions::{self, ExecState};
use arc_shared::store::Cancellation;
use arc_shared::time::format_ts;
use arc_shared::ArcError;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// At most this long for STS to say who we are.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is running this command: the caller's ARN from STS GetCallerIdentity when the
/// credentials allow it, else `$USER` (else `unknown`).
pub async fn caller_identity(ctx: &Ctx) -> String {
    match aws::caller_arn(&ctx.sdk, IDENTITY_TIMEOUT).await {
        Some(arn) => arn,
        None => std::env::var("USER").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// What became of the run's execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// It was running and is stopped now.
    Stopped(String),
    /// It had already ended with this status.
    AlreadyEnded(String, String),
    /// No execution of that ARN exists.
    NotFound(String),
    /// The run records no execution.
    None,
}

impl Stopped {
    /// The execution's ARN and what became of it.
    fn outcome(&self) -> Option<(&str, String)> {
        match self {
            Self::Stopped(arn) => Some((arn, "stopped".to_owned())),
            Self::AlreadyEnded(arn, status) => Some((arn, format!("had already ended ({status})"))),
            Self::NotFound(arn) => Some((arn, "does not exist".to_owned())),
            Self::None => None,
        }
    }

    pub fn describe(&self) -> String {
        self.outcome().map_or_else(
            || "no execution recorded on the run".to_owned(),
            |(arn, what)| format!("execution {arn} {what}"),
        )
    }

    /// The same, for a table row headed "execution".
    pub fn short(&self) -> String {
        self.outcome().map_or_else(|| "none recorded on the run".to_owned(), |(arn, what)| format!("{arn}: {what}"))
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Self::Stopped(_) => json!("stopped"),
            Self::AlreadyEnded(_, status) => json!(format!("already ended ({status})")),
            Self::NotFound(_) => json!("not found"),
            Self::None => serde_json::Value::Null,
        }
    }
}

/// Stops `arn` unless it does not exist or has ended.
async fn stop(ctx: &Ctx, arn: Option<&str>, cause: &str) -> Result<Stopped, ArcError> {
    let Some(arn) = arn.filter(|a| !a.is_empty()) else { return Ok(Stopped::None) };
    let sfn = &ctx.clients.sfn;
    match executions::describe(sfn, arn).await?.state {
        ExecState::Missing => return Ok(Stopped::NotFound(arn.to_owned())),
        ExecState::Ended(status) => return Ok(Stopped::AlreadyEnded(arn.to_owned(), status.to_string())),
        ExecState::Live => {}
    }
    match executions::stop(sfn, arn, Some("Cancelled"), cause).await {
        Ok(true) => Ok(Stopped::Stopped(arn.to_owned())),
        Ok(false) => Ok(Stopped::NotFound(arn.to_owned())),
        Err(err) => {
            // It may have ended between the two calls: that is fine too.
            match executions::describe(sfn, arn).await.map(|d| d.state) {
                Ok(ExecState::Ended(status)) => Ok(Stopped::AlreadyEnded(arn.to_owned(), status.to_string())),
                Ok(ExecState::Missing) => Ok(Stopped::NotFound(arn.to_owned())),
                _ => Err(err),
            }
        }
    }
}

pub async fn cancel(ctx: &Ctx, run_id: &str, reason: Option<&str>) -> Result<(), CliError> {
    let tables = ctx.tables();
    let by = caller_identity(ctx).await;
    let at = format_ts(chrono::Utc::now());
    let cause = match reason {
        Some(r) => format!("cancelled by {by}: {r}"),
        None => format!("cancelled by {by}"),
    };
    let Some(run) = tables.cancel_run(run_id, &Cancellation { by: &by, reason, at: &at }).await? else {
        return match tables.get_run(run_id).await? {
            None => Err(CliError::NotFound(format!("run {run_id} not found"))),
            Some(run) if run.status == RunStatus::Cancelled => {
                // Already cancelled: make sure its execution is stopped (a first cancel whose
                // StopExecution failed), then say so.
                let stopped = stop(ctx, run.execution_arn.as_deref(), &cause).await?;
                Err(CliError::failed(format!(
                    "run {run_id} is already CANCELLED (by {} at {}); {}",
                    run.cancelled_by.as_deref().unwrap_or("unknown"),
                    run.cancelled_at.as_deref().unwrap_or("?"),
                    stopped.describe()
                )))
            }
            Some(run) => Err(CliError::failed(format!(
                "run {run_id} changed while cancelling it (now {}); try again",
                run.status
            ))),
        };
    };
    let stopped = stop(ctx, run.execution_arn.as_deref(), &cause).await.map_err(|e| {
        CliError::failed(format!(
            "run {run_id} is CANCELLED, but its execution could not be stopped: {e} ({}); \
             rerun `arcctl runs cancel {run_id}` to stop it",
            e.error_type()
        ))
    })?;
    if ctx.json {
        let out = json!({
            "run_id": run.run_id,
            "status": run.status.as_str(),
            "cancelled_by": run.cancelled_by,
            "cancelled_reason": run.cancelled_reason,
            "cancelled_at": run.cancelled_at,
            "execution_arn": run.execution_arn,
            "execution": stopped.json(),
        });
        emit(&json_text(&out)?);
        return Ok(());
    }
    let mut t = Table::new(["RUN", run.run_id.as_str()]);
    t.row(["status", run.status.as_str()]);
    t.row(["cancelled by", by.as_str()]);
    t.row(["reason", reason.unwrap_or("-")]);
    t.row(["cancelled at", at.as_str()]);
    t.row(["execution".to_owned(), stopped.short()]);
    emit(&t.render());
    emit(&format!(
        "its tasks stay as they are: the sweeper neither repairs nor retries them (undo: arcctl runs resume {run_id})"
    ));
    Ok(())
}

pub async fn resume(ctx: &Ctx, run_id: &str) -> Result<(), CliError> {
    let tables = ctx.tables();
    let run = tables.require_run(run_id).await?;
    if run.status != RunStatus::Cancelled {
        return Err(CliError::failed(format!("run {run_id} is {}, not CANCELLED: nothing to resume", run.status)));
    }
    // The cancelled execution must be over, or it would go on writing the run once resumed.
    if let Some(arn) = run.execution_arn.as_deref().filter(|a| !a.is_empty()) {
        if executions::describe(&ctx.clients.sfn, arn).await?.state == ExecState::Live {
            return Err(CliError::failed(format!(
                "execution {arn} of run {run_id} is still RUNNING: stop it with `arcctl runs cancel {run_id}`, then resume"
            )));
        }
    }
    let by = caller_identity(ctx).await;
    let now = chrono::Utc::now();
    let tasks = tables.run_tasks(run_id).await?;
    let cause = format!(
        "Cancelled: in flight when run {run_id} was cancelled by {} at {}; resumed by {by} (not a failed attempt)",
        run.cancelled_by.as_deref().unwrap_or("unknown"),
        run.cancelled_at.as_deref().unwrap_or("?"),
    );
    let moved: BTreeSet<String> =
        tables.release_in_flight(&tasks, &ctx.config.backoff, &cause, now).await?.into_iter().collect();
    let mut counts = Metrics::default();
    for t in &tasks {
        let status = if moved.contains(&t.task_id) { TaskStatus::Failed } else { t.status.clone() };
        counts.add(&status, None, None, (None, None));
    }
    let status = resumed_status(&counts);
    let Some(resumed) = tables.resume_run(run_id, &status, &counts, &by, &format_ts(now)).await? else {
        return Err(CliError::failed(format!("run {run_id} changed while resuming it (resumed by someone else?)")));
    };
    if ctx.json {
        let out = json!({
            "run_id": resumed.run_id,
            "status": resumed.status.as_str(),
            "resumed_by": resumed.resumed_by,
            "resumed_at": resumed.resumed_at,
            "in_flight_moved_to_failed": moved,
            "retries_pending": counts.retries_pending,
        });
        emit(&json_text(&out)?);
        return Ok(());
    }
    let mut t = Table::new(["RUN", run_id]);
    t.row(["status", resumed.status.as_str()]);
    t.row([
        "was cancelled".to_owned(),
        format!(
            "by {} at {}",
            run.cancelled_by.as_deref().unwrap_or("unknown"),
            run.cancelled_at.as_deref().unwrap_or("?")
        ),
    ]);
    t.row(["resumed by", by.as_str()]);
    t.row(["in flight → FAILED".to_owned(), format!("{} (not charged an attempt)", moved.len())]);
    t.row(["retries pending".to_owned(), counts.retries_pending.to_string()]);
    emit(&t.render());
    if counts.retries_pending > 0 {
        emit(&format!("the sweeper retries its FAILED tasks when due (scheduled); now: arcctl retry {run_id}"));
    }
    Ok(())
}
