//! Retrying one run: claim it (one sweeper wins), move its due tasks FAILED → RETRY_QUEUED,
//! start the execution named after the run and the generation. Returns what it did
//! ([`RunOutcome`]); `sweep.rs` folds it into the summary.

use crate::plan::{execution_name, Batch, RetryInput};
use crate::summary::{
    Event, ExecutionStatus, Repair, RepairAction, RunOutcome, SkippedRun, StartReason, StartedExecution,
};
use crate::sweep::Sweep;
use arc_shared::store::executions::{self, execution_arn, ExecState, StartOutcome};
use arc_shared::ArcError;
use std::collections::BTreeSet;

impl Sweep<'_> {
    /// Retries `batch`'s tasks of their run.
    pub(crate) async fn retry_batch(&self, batch: Batch) -> RunOutcome {
        let mut out = RunOutcome::default();
        let result = self.retry_batch_into(batch, &mut out).await;
        out.ended(result)
    }

    async fn retry_batch_into(&self, batch: Batch, out: &mut RunOutcome) -> Result<(), ArcError> {
        let Some(Some(run)) = self.runs.get(&batch.run_id).cloned() else {
            return Ok(());
        };
        let generation = run.retry_generation.saturating_add(1);
        let run_id = run.run_id.clone();
        let name = execution_name(&run_id, generation);
        let arn = execution_arn(&self.deps.settings.state_machine_arn, &name);
        if self.req.dry_run {
            let n = batch.tasks.len() as u64;
            tracing::info!(run_id, execution_name = %name, tasks = n, "dry run: would claim, re-queue and start");
            out.events.push(Event::Requeued { run_id: run_id.clone(), tasks: n });
            out.events.push(started(&run_id, &name, &arn, generation, batch.tasks.len(), StartReason::Retry));
            return Ok(());
        }

        let tables = &self.deps.tables;
        let Some(claimed) = tables.claim_run(&run, generation, &arn, &self.now_s).await? else {
            tracing::info!(run_id, generation, "claim lost: another sweeper (or an execution) changed the run first");
            out.events.push(Event::Skipped(SkippedRun {
                run_id,
                due_tasks: batch.tasks.len() as u64,
                reason: "claimed by another sweep".into(),
            }));
            return Ok(());
        };
        tracing::info!(run_id, generation, execution_name = %name, "run claimed");
        out.run = Some(claimed);

        let tasks: Vec<(&str, u32)> = batch.tasks.iter().map(|t| (t.task_id.as_str(), t.retry_count)).collect();
        let requeued = tables.requeue_tasks(&run_id, &tasks, &name, &self.now_s).await?;
        if requeued.is_empty() {
            tables.release_claim(&run_id, &run.status, &arn, &self.now_s).await?;
            tracing::info!(run_id, "nothing re-queued: claim released");
            out.events.push(Event::Repaired(Repair {
                run_id,
                action: RepairAction::ClaimReleased,
                execution_name: Some(name),
                execution_status: None,
                tasks: 0,
                run_status: Some(run.status.clone()),
            }));
            return Ok(());
        }
        let n = requeued.len() as u64;
        tracing::info!(run_id, tasks = n, execution_name = %name, "tasks re-queued");
        out.events.push(Event::Requeued { run_id: run_id.clone(), tasks: n });

        let start = ToStart {
            run_id: &run_id,
            config_name: &batch.config_name,
            name: &name,
            generation,
            task_ids: requeued,
            reason: StartReason::Retry,
        };
        self.start_execution(start, out).await
    }

    /// Starts execution `s.name` for `s.task_ids` of its run. If an execution of that name
    /// already exists it is described, never assumed done: live → the tasks it does not carry
    /// go back to FAILED; ended → all of them do and the run is finished.
    pub(crate) async fn start_execution(&self, s: ToStart<'_>, out: &mut RunOutcome) -> Result<(), ArcError> {
        let ToStart { run_id, config_name, name, generation, task_ids, reason } = s;
        let input = RetryInput::new(run_id, config_name, task_ids);
        let tasks = input.task_ids.len();
        let state_machine_arn = &self.deps.settings.state_machine_arn;
        let arn = execution_arn(state_machine_arn, name);
        let reason_s = reason.as_str();
        if self.req.dry_run {
            tracing::info!(run_id, execution_name = name, reason = reason_s, "dry run: would start");
            out.events.push(started(run_id, name, &arn, generation, tasks, reason));
            return Ok(());
        }
        match executions::start(&self.deps.sfn, state_machine_arn, name, &input.to_json()).await? {
            StartOutcome::Started { execution_arn, .. } => {
                tracing::info!(run_id, %execution_arn, tasks, reason = reason_s, "execution started");
                out.events.push(started(run_id, name, &execution_arn, generation, tasks, reason));
                if reason == StartReason::Repair {
                    out.events.push(Event::Repaired(Repair {
                        run_id: run_id.to_owned(),
                        action: RepairAction::ExecutionStarted,
                        execution_name: Some(name.to_owned()),
                        execution_status: Some(ExecutionStatus::NotFound),
                        tasks: tasks as u64,
                        run_status: None,
                    }));
                }
                Ok(())
            }
            StartOutcome::AlreadyExists(existing) => match existing.state {
                ExecState::Live => {
                    let carried: BTreeSet<String> = existing
                        .input
                        .as_deref()
                        .and_then(|i| serde_json::from_str::<RetryInput>(i).ok())
                        .map(|i| i.task_ids.into_iter().collect())
                        .ok_or_else(|| {
                            ArcError::Conflict(format!(
                                "execution {name} exists with an input that is not a retry input"
                            ))
                        })?;
                    let left_out: Vec<String> =
                        input.task_ids.iter().filter(|t| !carried.contains(*t)).cloned().collect();
                    let n = self.unqueue(run_id, Some(name), &left_out).await?;
                    tracing::info!(
                        run_id,
                        execution_name = name,
                        left_out = n,
                        "execution already running: tasks it does not carry back to FAILED"
                    );
                    if n > 0 {
                        out.events.push(Event::Repaired(Repair {
                            run_id: run_id.to_owned(),
                            action: RepairAction::TasksUnqueued,
                            execution_name: Some(name.to_owned()),
                            execution_status: Some(ExecutionStatus::Running),
                            tasks: n,
                            run_status: None,
                        }));
                    }
                    Ok(())
                }
                ExecState::Ended(status) => {
                    tracing::warn!(run_id, execution_name = name, %status, "execution of this name already ended: not done, tasks back to FAILED");
                    self.end_run(run_id, &arn, ExecutionStatus::Ended(status), out).await
                }
                ExecState::Missing => {
                    Err(ArcError::Conflict(format!("execution {name} reported as existing but not found")))
                }
            },
        }
    }
}

/// An execution to start for tasks of a run.
pub(crate) struct ToStart<'a> {
    pub run_id: &'a str,
    pub config_name: &'a str,
    pub name: &'a str,
    pub generation: u64,
    pub task_ids: Vec<String>,
    pub reason: StartReason,
}

/// The event of an execution started (or, in a dry run, that would be).
fn started(run_id: &str, name: &str, arn: &str, generation: u64, tasks: usize, reason: StartReason) -> Event {
    Event::Started(StartedExecution {
        run_id: run_id.to_owned(),
        execution_name: name.to_owned(),
        execution_arn: arn.to_owned(),
        retry_generation: generation,
        tasks: tasks as u64,
        reason,
    })
}
