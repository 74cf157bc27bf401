//! Repair, every sweep: RETRY_QUEUED tasks whose execution never started (start it, same
//! name, same input) or ended (back to FAILED), and RUNNING runs whose execution ended
//! (their in-flight tasks are settled with `ExecutionEnded`, the run status is recomputed).
//! Never a CANCELLED run: an operator stopped it for good, its tasks stay as they are.
//! Each repair returns what it did ([`RunOutcome`]); `sweep.rs` folds it into the summary.

use crate::retry::ToStart;
use crate::summary::{Event, ExecutionStatus, Repair, RepairAction, RunOutcome, StartReason};
use crate::sweep::Sweep;
use arc_shared::failure::settle_in_flight;
use arc_shared::metrics::Metrics;
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::executions::{self, execution_arn, name_of_arn, ExecState};
use arc_shared::store::SettlePolicy;
use arc_shared::time::parse_ts;
use arc_shared::ArcError;
use std::collections::BTreeMap;

impl Sweep<'_> {
    /// Repairs one run, given its RETRY_QUEUED tasks found by this sweep.
    pub(crate) async fn repair_run(&self, run_id: &str, queued: Vec<TaskRecord>) -> RunOutcome {
        let mut out = RunOutcome::default();
        let result = self.repair_run_into(run_id, queued, &mut out).await;
        out.ended(result)
    }

    async fn repair_run_into(
        &self,
        run_id: &str,
        queued: Vec<TaskRecord>,
        out: &mut RunOutcome,
    ) -> Result<(), ArcError> {
        let run = match self.runs.get(run_id) {
            Some(Some(run)) => run.clone(),
            Some(None) => {
                if !queued.is_empty() {
                    tracing::warn!(
                        run_id,
                        tasks = queued.len(),
                        "RETRY_QUEUED tasks of a run that does not exist: left alone"
                    );
                }
                return Ok(());
            }
            None => return Ok(()), // could not be read: already reported
        };
        if run.status == RunStatus::Cancelled {
            tracing::info!(
                run_id,
                queued = queued.len(),
                "run is CANCELLED: nothing repaired, its tasks stay as they are"
            );
            return Ok(());
        }
        let current = match (&run.status, &run.execution_arn) {
            (RunStatus::Running, Some(arn)) => Some(arn.clone()),
            _ => None,
        };
        let current_name = current.as_deref().map(name_of_arn);

        // RETRY_QUEUED tasks of an execution that is not the run's current one.
        let mut by_name: BTreeMap<Option<String>, Vec<TaskRecord>> = BTreeMap::new();
        for t in queued {
            if t.retry_execution.is_some() && t.retry_execution.as_deref() == current_name {
                continue; // handled with the run's own execution below
            }
            by_name.entry(t.retry_execution.clone()).or_default().push(t);
        }
        for (name, tasks) in by_name {
            self.repair_stray_queue(&run, name, tasks, out).await?;
        }

        if run.status != RunStatus::Running {
            return Ok(());
        }
        let Some(arn) = current else {
            tracing::warn!(run_id, "RUNNING run without execution_arn: cannot tell whether it is live; left alone");
            return Ok(());
        };
        let described = executions::describe(&self.deps.sfn, &arn).await?;
        match described.state {
            ExecState::Live => {
                tracing::debug!(run_id, execution_arn = %arn, "run's execution is live");
                Ok(())
            }
            ExecState::Ended(status) => self.end_run(run_id, &arn, ExecutionStatus::Ended(status), out).await,
            ExecState::Missing => {
                let claimed_at = run.updated_at.as_deref().and_then(parse_ts);
                if claimed_at.is_some_and(|t| t > self.now - self.deps.settings.repair_grace) {
                    tracing::info!(run_id, execution_arn = %arn, "execution not started yet, claim is recent: left to its sweeper");
                    return Ok(());
                }
                let partition = self.partition(run_id, out).await?;
                let name = name_of_arn(&arn).to_owned();
                let mine: Vec<String> = partition
                    .iter()
                    .filter(|t| {
                        t.status == TaskStatus::RetryQueued && t.retry_execution.as_deref() == Some(name.as_str())
                    })
                    .map(|t| t.task_id.clone())
                    .collect();
                if mine.is_empty() {
                    self.end_run_with(run_id, &arn, ExecutionStatus::NotFound, partition, out).await
                } else {
                    let config_name = run.config_name.clone().unwrap_or_default();
                    tracing::info!(run_id, execution_name = %name, tasks = mine.len(), "repair: starting the claimed execution that never started");
                    let start = ToStart {
                        run_id,
                        config_name: &config_name,
                        name: &name,
                        generation: run.retry_generation,
                        task_ids: mine,
                        reason: StartReason::Repair,
                    };
                    self.start_execution(start, out).await
                }
            }
        }
    }

    /// RETRY_QUEUED tasks of execution `name` (not the run's live one): fine while it runs,
    /// back to FAILED otherwise (it never ran them and never will).
    async fn repair_stray_queue(
        &self,
        run: &RunRecord,
        name: Option<String>,
        tasks: Vec<TaskRecord>,
        out: &mut RunOutcome,
    ) -> Result<(), ArcError> {
        let status = match &name {
            None => ExecutionStatus::Unnamed,
            Some(name) => {
                let arn = execution_arn(&self.deps.settings.state_machine_arn, name);
                ExecutionStatus::from(executions::describe(&self.deps.sfn, &arn).await?.state)
            }
        };
        if status == ExecutionStatus::Running {
            tracing::info!(run_id = %run.run_id, execution_name = name.as_deref(), "RETRY_QUEUED tasks of a live execution: fine");
            return Ok(());
        }
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.clone()).collect();
        let n = self.unqueue(&run.run_id, name.as_deref(), &ids).await?;
        tracing::info!(run_id = %run.run_id, execution_name = name.as_deref(), execution_status = %status, tasks = n, "repair: RETRY_QUEUED tasks back to FAILED");
        out.events.push(Event::Repaired(Repair {
            run_id: run.run_id.clone(),
            action: RepairAction::TasksUnqueued,
            execution_name: name,
            execution_status: Some(status),
            tasks: n,
            run_status: None,
        }));
        Ok(())
    }

    /// RETRY_QUEUED → FAILED for `task_ids` (conditional on `retry_execution = name`).
    /// Returns how many moved (in a dry run: how many would).
    pub(crate) async fn unqueue(&self, run_id: &str, name: Option<&str>, task_ids: &[String]) -> Result<u64, ArcError> {
        if self.req.dry_run {
            return Ok(task_ids.len() as u64);
        }
        self.deps.tables.unqueue_tasks(run_id, task_ids, name, &self.now_s).await
    }

    /// Every task of `run_id`; items that are not tasks are reported as errors.
    async fn partition(&self, run_id: &str, out: &mut RunOutcome) -> Result<Vec<TaskRecord>, ArcError> {
        let found = self.deps.tables.run_partition(run_id).await?;
        out.events
            .extend(found.corrupt.into_iter().map(|error| Event::Error { run_id: Some(run_id.to_owned()), error }));
        Ok(found.tasks)
    }

    /// The run's execution `arn` ended with `status`.
    pub(crate) async fn end_run(
        &self,
        run_id: &str,
        arn: &str,
        status: ExecutionStatus,
        out: &mut RunOutcome,
    ) -> Result<(), ArcError> {
        let partition = self.partition(run_id, out).await?;
        self.end_run_with(run_id, arn, status, partition, out).await
    }

    /// Tasks the ended execution left in flight are settled by the failure model (a claimed
    /// task is a failed attempt; a PENDING one no worker claimed is not charged), tasks queued
    /// for this execution go back to FAILED, then the run's status from the counts.
    async fn end_run_with(
        &self,
        run_id: &str,
        arn: &str,
        status: ExecutionStatus,
        tasks: Vec<TaskRecord>,
        out: &mut RunOutcome,
    ) -> Result<(), ArcError> {
        let name = name_of_arn(arn).to_owned();
        let settings = &self.deps.settings;
        let cause = format!("{EXECUTION_ENDED}: {status}");
        let policy = SettlePolicy {
            max_retries: settings.max_retries,
            backoff: &settings.backoff,
            job_ran: false,
            error_type: EXECUTION_ENDED,
            cause: &cause,
            now: self.now,
            infra_cap: None,
        };
        let mut counts = Metrics::default();
        let mut to_unqueue: Vec<String> = Vec::new();
        let mut in_flight = 0u64;
        for t in &tasks {
            let after = if let Some(s) = settle_in_flight(&t.status, t.retry_count, settings.max_retries, false) {
                in_flight += 1;
                if s.permanent {
                    TaskStatus::FailedPermanent
                } else {
                    TaskStatus::Failed
                }
            } else if t.status == TaskStatus::RetryQueued && t.retry_execution.as_deref() == Some(name.as_str()) {
                to_unqueue.push(t.task_id.clone());
                TaskStatus::Failed
            } else {
                t.status.clone()
            };
            counts.add(&after, None, None, (None, None));
        }
        let mut failed_in_flight = in_flight;
        if !self.req.dry_run {
            let settled = self.deps.tables.settle_in_flight(&tasks, &policy).await?;
            failed_in_flight = settled.iter().filter(|s| s.written).count() as u64;
        }
        let unqueued = self.unqueue(run_id, Some(&name), &to_unqueue).await?;
        let new_status = RunStatus::from_counts(counts.total_tasks, counts.failed_tasks);
        tracing::info!(
            run_id, execution_arn = arn, execution_status = %status, failed_in_flight, unqueued,
            run_status = new_status.as_str(), "repair: run's execution ended"
        );
        if !self.req.dry_run {
            // A RUNNING run is read again after a change here: counts come from the tasks.
            match self.deps.tables.finish_run(run_id, arn, &counts, &self.now_s).await? {
                Some(updated) => out.run = Some(updated),
                None => tracing::info!(run_id, "run changed meanwhile: status not recomputed"),
            }
        }
        out.events.push(Event::Repaired(Repair {
            run_id: run_id.to_owned(),
            action: RepairAction::RunFinished,
            execution_name: Some(name),
            execution_status: Some(status),
            tasks: failed_in_flight + unqueued,
            run_status: Some(new_status),
        }));
        Ok(())
    }
}

/// `last_error_type` of a task whose execution ended before its job did.
pub const EXECUTION_ENDED: &str = "ExecutionEnded";
