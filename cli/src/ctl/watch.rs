//! `arcctl runs watch`: a live view of one run until it ends. Each refresh reads the run item
//! and one paginated Query of the run's own partition (a projection of the few attributes the
//! view needs; never a table scan), so a refresh costs what the run's size costs and nothing
//! else. It ends when the run is COMPLETED, COMPLETED_WITH_ERRORS or FAILED with no task in
//! flight, or CANCELLED (whose tasks stay as they are): exit 0 on COMPLETED, 1 otherwise.

use super::Ctx;
use crate::exit::{emit, CliError};
use crate::progress::bar;
use crate::view;
use arc_shared::json::decimal_to_json;
use arc_shared::metrics::Metrics;
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::RunStatus;
use arc_shared::store::executions::{self, ExecState};
use arc_shared::store::Tables;
use arc_shared::time::format_ts;
use arc_shared::ArcError;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// What a refresh reads of each task.
const PROJECTION: &str = "run_id, task_id, #status, cost_usd, is_correct";

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub interval: Duration,
    /// The execution that will create the run (`runs start --wait`): until Initialize has
    /// written the run, a missing run is waited for while this execution is live.
    pub execution_arn: Option<String>,
}

/// One refresh: the run and its tasks' counts.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub run: RunRecord,
    pub counts: Metrics,
}

impl Snapshot {
    /// Tasks of the run: what its record says, or what the table holds if more.
    pub fn total(&self) -> u64 {
        self.run.total_tasks.max(self.counts.total_tasks)
    }

    /// FAILED (retryable) tasks.
    pub fn failed_retryable(&self) -> u64 {
        self.counts.failed_tasks - self.counts.failed_permanent_tasks
    }

    /// RETRY_QUEUED tasks.
    pub fn queued(&self) -> u64 {
        self.counts.retries_pending - self.failed_retryable()
    }

    /// The run is over for this view: finished with no task in flight, or CANCELLED.
    pub fn ended(&self) -> bool {
        match self.run.status {
            RunStatus::Cancelled => true,
            ref s => s.is_ended() && self.counts.pending_tasks == 0,
        }
    }

    pub fn to_json(&self) -> Value {
        let c = &self.counts;
        json!({
            "run_id": self.run.run_id,
            "status": self.run.status.as_str(),
            "total_tasks": self.total(),
            "completed_tasks": c.completed_tasks,
            "correct_tasks": c.correct_tasks,
            "failed_tasks": self.failed_retryable(),
            "failed_permanent_tasks": c.failed_permanent_tasks,
            "in_flight_tasks": c.pending_tasks,
            "retry_queued_tasks": self.queued(),
            "retries_pending": c.retries_pending,
            "cost_usd": decimal_to_json(c.total_cost_usd),
            "ended": self.ended(),
        })
    }

    /// `RUNNING  [######    ] 6/12  done 5  failed 1 (0 permanently)  in flight 6  queued 0  cost $0.12  retries pending 1`
    pub fn line(&self) -> String {
        let c = &self.counts;
        let settled = c.completed_tasks + c.failed_tasks;
        format!(
            "{}  done {}  failed {} ({} permanently)  in flight {}  queued {}  cost {}  retries pending {}",
            bar(&format!("{:<21}", self.run.status.as_str()), settled, self.total()),
            c.completed_tasks,
            c.failed_tasks,
            c.failed_permanent_tasks,
            c.pending_tasks,
            self.queued(),
            view::money(Some(c.total_cost_usd)),
            c.retries_pending
        )
    }

    /// The last line: how the run ended.
    pub fn final_line(&self) -> String {
        let c = &self.counts;
        format!(
            "run {} ended {}: {} of {} completed ({} correct), {} failed ({} permanently), {} in flight, cost {}",
            self.run.run_id,
            self.run.status,
            c.completed_tasks,
            self.total(),
            c.correct_tasks,
            c.failed_tasks,
            c.failed_permanent_tasks,
            c.pending_tasks,
            view::money(Some(c.total_cost_usd))
        )
    }
}

/// The run and its counts now (`None`: the run does not exist).
pub async fn snapshot(tables: &Tables, run_id: &str) -> Result<Option<Snapshot>, ArcError> {
    let Some(run) = tables.get_run(run_id).await? else { return Ok(None) };
    let mut counts = Metrics::default();
    tables
        .for_each_task_item_projected(run_id, Some(PROJECTION), |item| {
            let t = TaskRecord::from_item(item)?;
            counts.add(&t.status, t.cost_usd, t.is_correct, (None, None));
            Ok(())
        })
        .await?;
    Ok(Some(Snapshot { run, counts }))
}

/// Watches `run_id` until it ends; the exit follows its status.
pub async fn watch(ctx: &Ctx, run_id: &str, opts: &WatchOptions) -> Result<(), CliError> {
    let tables = ctx.tables();
    let tty = !ctx.json && std::io::stdout().is_terminal();
    let mut last_line = String::new();
    let mut waiting_said = false;
    loop {
        let snap = match snapshot(&tables, run_id).await? {
            Some(snap) => snap,
            None => {
                let Some(arn) = &opts.execution_arn else {
                    return Err(CliError::NotFound(format!("run {run_id} not found")));
                };
                // `runs start --wait`: Initialize has not created the run yet.
                match executions::describe(&ctx.clients.sfn, arn).await?.state {
                    ExecState::Live => {
                        if !waiting_said {
                            eprintln!("waiting for Initialize to create run {run_id} (execution {arn} is RUNNING)");
                            waiting_said = true;
                        }
                    }
                    ExecState::Ended(status) => {
                        return Err(CliError::failed(format!(
                            "execution {arn} ended {status} before Initialize created run {run_id}"
                        )))
                    }
                    ExecState::Missing => {
                        return Err(CliError::failed(format!("execution {arn} does not exist (any more)")))
                    }
                }
                tokio::time::sleep(opts.interval).await;
                continue;
            }
        };
        if ctx.json {
            let mut line = snap.to_json();
            line["at"] = json!(format_ts(chrono::Utc::now()));
            emit(&line.to_string());
        } else {
            let line = snap.line();
            if tty {
                // Redrawn in place on a terminal.
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r{line}\x1b[K");
                let _ = out.flush();
            } else if line != last_line {
                // In a log: a line per change.
                emit(&line);
            }
            last_line = line;
        }
        if snap.ended() {
            if !ctx.json {
                if tty {
                    emit("");
                }
                emit(&snap.final_line());
            }
            return match snap.run.status {
                RunStatus::Completed => Ok(()),
                ref status => Err(CliError::failed(format!("run {run_id} ended {status}"))),
            };
        }
        tokio::time::sleep(opts.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_shared::records::{s, Item};
    use arc_shared::status::TaskStatus;

    fn snap(status: &str, tasks: &[TaskStatus]) -> Snapshot {
        let mut item = Item::new();
        item.insert("run_id".into(), s("run-a"));
        item.insert("status".into(), s(status));
        item.insert("total_tasks".into(), arc_shared::records::n(tasks.len()));
        let run = RunRecord::from_item(item).unwrap();
        let mut counts = Metrics::default();
        for t in tasks {
            counts.add(t, None, None, (None, None));
        }
        Snapshot { run, counts }
    }

    #[test]
    fn a_run_ends_when_finished_with_nothing_in_flight_or_cancelled() {
        use TaskStatus::*;
        assert!(!snap("RUNNING", &[Completed, Pending]).ended());
        assert!(!snap("RUNNING", &[Completed, Completed]).ended());
        assert!(snap("COMPLETED", &[Completed, Completed]).ended());
        assert!(!snap("COMPLETED_WITH_ERRORS", &[Completed, InProgress]).ended());
        assert!(snap("COMPLETED_WITH_ERRORS", &[Completed, Failed, RetryQueued]).ended());
        assert!(snap("FAILED", &[FailedPermanent]).ended());
        assert!(snap("CANCELLED", &[Pending, InProgress]).ended(), "a cancelled run's tasks stay in flight");
    }

    #[test]
    fn the_view_counts_each_kind() {
        use TaskStatus::*;
        let s = snap("RUNNING", &[Completed, Failed, FailedPermanent, RetryQueued, Pending, InProgress]);
        assert_eq!((s.failed_retryable(), s.queued(), s.counts.pending_tasks), (1, 1, 2));
        let line = s.line();
        assert!(line.contains("3/6") && line.contains("failed 2 (1 permanently)"), "{line}");
        assert!(
            line.contains("in flight 2") && line.contains("queued 1") && line.contains("retries pending 2"),
            "{line}"
        );
        let v = s.to_json();
        assert_eq!((v["failed_tasks"].as_u64(), v["retry_queued_tasks"].as_u64()), (Some(1), Some(1)));
        assert_eq!(v["ended"], false);
    }
}
