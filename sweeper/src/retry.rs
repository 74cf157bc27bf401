//! Retrying one run: claim it (one sweeper wins), move its due tasks FAILED → RETRY_QUEUED,
//! start the execution named after the run and the generation.

use crate::executions::{self, ExecState, StartOutcome};
use crate::plan::{execution_arn, execution_name, Batch, RetryInput};
use crate::repair::WRITE_CONCURRENCY;
use crate::summary::{Repair, StartedExecution};
use crate::sweep::Sweep;
use crate::writes;
use crate::Fault;
use arc_shared::records::RunRecord;
use arc_shared::ArcError;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeSet;

impl Sweep<'_> {
    pub(crate) async fn retry_batch(&mut self, batch: Batch) -> Result<(), ArcError> {
        let Some(Some(run)) = self.runs.get(&batch.run_id).cloned() else {
            return Ok(());
        };
        let generation = run.retry_generation.saturating_add(1);
        let name = execution_name(&run.run_id, generation);
        let arn = execution_arn(&self.deps.settings.state_machine_arn, &name);
        let run_id = run.run_id.clone();
        if self.req.dry_run {
            let n = batch.tasks.len() as u64;
            tracing::info!(run_id, execution_name = %name, tasks = n, "dry run: would claim, re-queue and start");
            self.summary.requeued.insert(run_id.clone(), n);
            self.summary.requeued_total += n;
            self.summary.executions_started.push(StartedExecution {
                run_id,
                execution_name: name,
                execution_arn: arn,
                retry_generation: generation,
                tasks: n,
                reason: "retry".into(),
            });
            return Ok(());
        }

        let Some(claimed) = writes::claim_run(&self.deps.tables, &run, generation, &arn, &self.now_s).await? else {
            tracing::info!(run_id, generation, "claim lost: another sweeper (or an execution) changed the run first");
            self.skip_claim_lost(&run_id, batch.tasks.len() as u64);
            return Ok(());
        };
        tracing::info!(run_id, generation, execution_name = %name, "run claimed");
        self.runs.insert(run_id.clone(), Some(claimed));

        let tables = &self.deps.tables;
        let now = self.now_s.as_str();
        let name_ref = name.as_str();
        let results: Vec<Option<String>> = stream::iter(batch.tasks.iter())
            .map(|t| async move {
                let ok = writes::requeue_task(tables, &t.run_id, &t.task_id, t.retry_count, name_ref, now).await?;
                if !ok {
                    tracing::info!(run_id = %t.run_id, task_id = %t.task_id, "task changed meanwhile: not re-queued");
                }
                Ok::<_, ArcError>(ok.then(|| t.task_id.clone()))
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let requeued: Vec<String> = results.into_iter().flatten().collect();
        if requeued.is_empty() {
            writes::release_claim(&self.deps.tables, &run_id, &run.status, &arn, &self.now_s).await?;
            tracing::info!(run_id, "nothing re-queued: claim released");
            self.summary.repaired.push(Repair {
                run_id,
                action: "claim_released".into(),
                execution_name: Some(name),
                execution_status: None,
                tasks: 0,
                run_status: Some(run.status.as_str().to_owned()),
            });
            return Ok(());
        }
        let n = requeued.len() as u64;
        tracing::info!(run_id, tasks = n, execution_name = %name, "tasks re-queued");
        self.summary.requeued.insert(run_id.clone(), n);
        self.summary.requeued_total += n;

        if self.deps.fault == Fault::CrashBeforeStart {
            return Err(ArcError::Conflict(format!("injected fault: sweep stopped before StartExecution of {name}")));
        }
        self.start_execution(&run, &batch.config_name, &name, generation, requeued, "retry").await
    }

    fn skip_claim_lost(&mut self, run_id: &str, due: u64) {
        self.summary.skipped_runs.push(crate::summary::SkippedRun {
            run_id: run_id.to_owned(),
            due_tasks: due,
            reason: "claimed by another sweep".into(),
        });
    }

    /// Starts execution `name` for `task_ids` of `run`. If an execution of that name already
    /// exists it is described, never assumed done: live → the tasks it does not carry go back
    /// to FAILED; ended → all of them do and the run is finished.
    pub(crate) async fn start_execution(
        &mut self,
        run: &RunRecord,
        config_name: &str,
        name: &str,
        generation: u64,
        task_ids: Vec<String>,
        reason: &str,
    ) -> Result<(), ArcError> {
        let input = RetryInput::new(&run.run_id, config_name, task_ids);
        let arn = execution_arn(&self.deps.settings.state_machine_arn, name);
        if self.req.dry_run {
            tracing::info!(run_id = %run.run_id, execution_name = name, reason, "dry run: would start");
            self.push_started(run, name, &arn, generation, input.task_ids.len(), reason);
            return Ok(());
        }
        let outcome =
            executions::start(&self.deps.sfn, &self.deps.settings.state_machine_arn, name, &input.to_json()).await?;
        match outcome {
            StartOutcome::Started { execution_arn } => {
                tracing::info!(run_id = %run.run_id, %execution_arn, tasks = input.task_ids.len(), reason, "execution started");
                self.push_started(run, name, &execution_arn, generation, input.task_ids.len(), reason);
                if reason == "repair" {
                    self.summary.repaired.push(Repair {
                        run_id: run.run_id.clone(),
                        action: "execution_started".into(),
                        execution_name: Some(name.to_owned()),
                        execution_status: Some("NOT_FOUND".into()),
                        tasks: input.task_ids.len() as u64,
                        run_status: None,
                    });
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
                    let n = self.unqueue(&run.run_id, Some(name), &left_out).await?;
                    tracing::info!(run_id = %run.run_id, execution_name = name, left_out = n, "execution already running: tasks it does not carry back to FAILED");
                    if n > 0 {
                        self.summary.repaired.push(Repair {
                            run_id: run.run_id.clone(),
                            action: "tasks_unqueued".into(),
                            execution_name: Some(name.to_owned()),
                            execution_status: Some("RUNNING".into()),
                            tasks: n,
                            run_status: None,
                        });
                    }
                    Ok(())
                }
                ExecState::Ended(status) => {
                    tracing::warn!(run_id = %run.run_id, execution_name = name, %status, "execution of this name already ended: not done, tasks back to FAILED");
                    let current = self.runs.get(&run.run_id).cloned().flatten().unwrap_or_else(|| run.clone());
                    self.end_run(&current, &arn, &status).await
                }
                ExecState::Missing => {
                    Err(ArcError::Conflict(format!("execution {name} reported as existing but not found")))
                }
            },
        }
    }

    fn push_started(&mut self, run: &RunRecord, name: &str, arn: &str, generation: u64, tasks: usize, reason: &str) {
        self.summary.executions_started.push(StartedExecution {
            run_id: run.run_id.clone(),
            execution_name: name.to_owned(),
            execution_arn: arn.to_owned(),
            retry_generation: generation,
            tasks: tasks as u64,
            reason: reason.to_owned(),
        });
    }
}
