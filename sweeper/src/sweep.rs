//! One sweep, top to bottom: find work, read each run once, repair, plan, retry, report.

use crate::plan::{self, Candidate, FailedTask};
use crate::summary::{self, Event, RunOutcome, SkippedRun, SweepSummary, TaskRef};
use crate::{SweepDeps, SweepRequest};
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::retries::Found;
use arc_shared::store::Written;
use arc_shared::time::format_ts;
use arc_shared::ArcError;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The state of one sweep in progress. Repair and retry read it and return what they did;
/// only this file changes it.
pub(crate) struct Sweep<'a> {
    pub deps: &'a SweepDeps,
    pub req: &'a SweepRequest,
    pub now: DateTime<Utc>,
    pub now_s: String,
    /// Each run read once per sweep (`None`: it does not exist), refreshed by our own writes.
    pub runs: HashMap<String, Option<RunRecord>>,
    summary: SweepSummary,
}

/// The work found by the queries of a sweep.
struct Work {
    failed: Vec<TaskRecord>,
    queued: Vec<TaskRecord>,
    /// Runs with PENDING / IN_PROGRESS tasks not touched for a while.
    in_flight_runs: BTreeSet<String>,
}

/// Sweeps once. Writes nothing when `request.dry_run`. Errors only when the work cannot be
/// found at all; a failure within one run is reported in the summary's `errors` and the other
/// runs go on.
pub async fn sweep(deps: &SweepDeps, request: SweepRequest) -> Result<SweepSummary, ArcError> {
    let now = deps.clock.now();
    let mut s = Sweep {
        deps,
        req: &request,
        now,
        now_s: format_ts(now),
        runs: HashMap::new(),
        summary: SweepSummary {
            dry_run: request.dry_run,
            trigger: request.trigger.as_str().to_owned(),
            swept_at: format_ts(now),
            ..SweepSummary::default()
        },
    };
    tracing::info!(
        trigger = request.trigger.as_str(),
        dry_run = request.dry_run,
        ignore_backoff = request.ignore_backoff,
        run_id = request.run_id.as_ref().map(|r| r.as_str()),
        "sweep started"
    );
    match s.run().await {
        Ok(()) => {
            let summary = s.summary;
            if !request.dry_run {
                summary::publish_metrics(&deps.cloudwatch, &deps.settings.namespace, &summary).await;
            }
            tracing::info!(
                scanned = summary.scanned,
                due = summary.due,
                deferred = summary.deferred_count,
                requeued = summary.requeued_total,
                executions_started = summary.executions_started.len(),
                repaired = summary.repaired.len(),
                errors = summary.errors.len(),
                "sweep finished"
            );
            Ok(summary)
        }
        Err(e) => {
            if !request.dry_run {
                let mut failed = SweepSummary::default();
                failed.error(None, &e);
                summary::publish_metrics(&deps.cloudwatch, &deps.settings.namespace, &failed).await;
            }
            Err(e)
        }
    }
}

impl Sweep<'_> {
    async fn run(&mut self) -> Result<(), ArcError> {
        let work = self.find_work().await?;
        self.summary.scanned = work.failed.len() as u64;

        let failed: Vec<FailedTask> = work.failed.iter().map(FailedTask::from_record).collect();
        let settings = &self.deps.settings;
        let policy = plan::DuePolicy {
            backoff: &settings.backoff,
            max_retries: settings.max_retries,
            // A manual request for one run retries it whatever the age of its failures.
            max_age: self.req.run_id.is_none().then_some(settings.max_age),
            ignore_backoff: self.req.ignore_backoff,
        };
        let plan::Split { due, deferred, exhausted } = plan::split_due(failed, self.now, &policy);
        self.summary.due = due.values().map(|v| v.len() as u64).sum();
        // The runs of tasks too old to retry are still repaired: a sweeper that died between
        // its claim and its re-queue left such a run RUNNING with an execution never started,
        // and no due task will ever bring it back.
        let too_old_runs: BTreeSet<String> =
            deferred.iter().filter(|d| d.reason == plan::DeferReason::TooOld).map(|d| d.run_id.clone()).collect();
        for d in &deferred {
            tracing::info!(run_id = %d.run_id, task_id = %d.task_id, due_at = d.due_at.as_deref(), reason = ?d.reason, "deferred");
        }
        self.summary.defer(deferred);

        // Read every run involved once, after all task queries (so a RETRY_QUEUED task seen
        // above is never older than the run state read here).
        let mut queued_by_run: BTreeMap<String, Vec<TaskRecord>> = BTreeMap::new();
        for t in work.queued {
            queued_by_run.entry(t.run_id.clone()).or_default().push(t);
        }
        let mut run_ids: BTreeSet<String> = due.keys().cloned().collect();
        run_ids.extend(queued_by_run.keys().cloned());
        run_ids.extend(work.in_flight_runs.iter().cloned());
        run_ids.extend(too_old_runs);
        if let Some(r) = &self.req.run_id {
            run_ids.insert(r.as_str().to_owned());
        }
        // The runs of exhausted tasks are read too (a CANCELLED run's tasks are left alone),
        // but only the runs above are repaired.
        let mut read_ids = run_ids.clone();
        read_ids.extend(exhausted.iter().map(|t| t.run_id.clone()));
        self.read_runs(&read_ids).await;
        if let Some(r) = &self.req.run_id {
            // A manual request for a run that does not exist, or that an operator cancelled:
            // say so, having written nothing.
            match self.runs.get(r.as_str()) {
                Some(None) => return Err(ArcError::RunNotFound(r.as_str().to_owned())),
                Some(Some(run)) if run.status == RunStatus::Cancelled => {
                    return Err(ArcError::run_cancelled(r.as_str()))
                }
                _ => {}
            }
        }
        let exhausted = exhausted.into_iter().filter(|t| !self.is_cancelled(&t.run_id)).collect();
        self.make_permanent(exhausted).await;

        // Repair first: RETRY_QUEUED tasks whose execution never started or ended, RUNNING
        // runs whose execution ended.
        for run_id in &run_ids {
            let queued = queued_by_run.remove(run_id).unwrap_or_default();
            let outcome = self.repair_run(run_id, queued).await;
            if let Some(e) = self.fold(run_id, outcome) {
                self.summary.error(Some(run_id), &e);
            }
        }

        // Then retry: runs not RUNNING with due tasks, within the bounds.
        let mut candidates = Vec::new();
        for (run_id, tasks) in due {
            let n = tasks.len() as u64;
            match self.runs.get(&run_id).cloned() {
                None => self.skip(&run_id, n, "run could not be read"),
                Some(None) => self.skip(&run_id, n, "run not found"),
                Some(Some(run)) if run.status == RunStatus::Running => {
                    self.skip(&run_id, n, "run is RUNNING (its execution is live or being started)")
                }
                // An operator stopped it for good: its tasks stay as they are.
                Some(Some(run)) if run.status == RunStatus::Cancelled => self.skip(&run_id, n, "run is CANCELLED"),
                Some(Some(run)) => match run.config_name.filter(|c| !c.is_empty()) {
                    None => self.skip(&run_id, n, "run has no config_name"),
                    Some(config_name) => match plan::invalid_run(&run_id, &config_name) {
                        // Initialize would reject the retry input: starting it would only fail
                        // again on every sweep.
                        Some(why) => self.skip(&run_id, n, &why),
                        None => {
                            let (tasks, invalid): (Vec<_>, Vec<_>) =
                                tasks.into_iter().partition(|d| plan::valid_task_id(&d.task.task_id));
                            let invalid: Vec<_> =
                                invalid.iter().map(|d| plan::defer(d, plan::DeferReason::InvalidId)).collect();
                            for d in &invalid {
                                tracing::warn!(run_id = %d.run_id, task_id = %d.task_id, "deferred: a task id Initialize would reject");
                            }
                            self.summary.defer(invalid);
                            if !tasks.is_empty() {
                                candidates.push(Candidate { run_id, config_name, tasks });
                            }
                        }
                    },
                },
            }
        }
        // The config's circuit breaker and the run's budget may hold some back.
        let gated = self.gate(candidates).await;
        for (id, run) in gated.runs {
            self.runs.entry(id).or_insert(run);
        }
        for event in gated.events {
            self.summary.record(event);
        }
        self.summary.breakers_open = gated.breakers_open;
        let max = self.req.max_tasks.map_or(self.deps.settings.max_tasks, |m| m.min(self.deps.settings.max_tasks));
        let (batches, over) = plan::fit(gated.candidates, max);
        for d in &over {
            tracing::info!(run_id = %d.run_id, task_id = %d.task_id, reason = ?d.reason, "deferred: over this sweep's bounds");
        }
        self.summary.defer(over);
        for batch in batches {
            let run_id = batch.run_id.clone();
            let outcome = self.retry_batch(batch).await;
            if let Some(e) = self.fold(&run_id, outcome) {
                self.summary.error(Some(&run_id), &e);
            }
        }
        Ok(())
    }

    /// Folds what repairing or retrying `run_id` did into the sweep: the run as it last wrote
    /// it, its events into the summary. Returns the error that stopped it, if any.
    fn fold(&mut self, run_id: &str, outcome: RunOutcome) -> Option<ArcError> {
        if let Some(run) = outcome.run {
            self.runs.insert(run_id.to_owned(), Some(run));
        }
        for event in outcome.events {
            self.summary.record(event);
        }
        outcome.error
    }

    /// FAILED tasks whose count already reached MAX_RETRIES become FAILED_PERMANENT (a dry run
    /// only reports them). The run's `failed_tasks` gains one only while the run is RUNNING:
    /// there it counts the permanent failures so far, while Aggregate's figures of a finished
    /// run already count its FAILED tasks.
    async fn make_permanent(&mut self, exhausted: Vec<FailedTask>) {
        for t in exhausted {
            let count_on_run = match self.runs.get(&t.run_id) {
                Some(Some(run)) => run.status == RunStatus::Running,
                Some(None) => false,
                None => continue, // the run could not be read: already reported, next sweep
            };
            if !self.req.dry_run {
                let tables = &self.deps.tables;
                match tables.make_permanent(&t.run_id, &t.task_id, t.retry_count, count_on_run, &self.now_s).await {
                    Ok(Written::Yes) => {}
                    Ok(_) => {
                        tracing::info!(run_id = %t.run_id, task_id = %t.task_id, "task changed meanwhile: not made permanent");
                        continue;
                    }
                    Err(e) => {
                        self.summary.error(Some(&t.run_id), &e);
                        continue;
                    }
                }
            }
            tracing::info!(run_id = %t.run_id, task_id = %t.task_id, retry_count = t.retry_count, "retries exhausted: FAILED_PERMANENT");
            self.summary.record(Event::MadePermanent(TaskRef {
                run_id: t.run_id,
                task_id: t.task_id,
                retry_count: t.retry_count,
            }));
        }
    }

    /// Whether `run_id` was read as CANCELLED by this sweep.
    pub(crate) fn is_cancelled(&self, run_id: &str) -> bool {
        matches!(self.runs.get(run_id), Some(Some(run)) if run.status == RunStatus::Cancelled)
    }

    fn skip(&mut self, run_id: &str, due_tasks: u64, reason: &str) {
        tracing::info!(run_id, due_tasks, reason, "run skipped");
        self.summary.record(Event::Skipped(SkippedRun {
            run_id: run_id.to_owned(),
            due_tasks,
            reason: reason.to_owned(),
        }));
    }

    fn keep(&mut self, found: Found) -> Vec<TaskRecord> {
        for e in &found.corrupt {
            self.summary.error(None, e);
        }
        found.tasks
    }

    async fn find_work(&mut self) -> Result<Work, ArcError> {
        let tables = &self.deps.tables;
        if let Some(run_id) = &self.req.run_id {
            let all = tables.run_partition(run_id.as_str()).await?;
            let all = self.keep(all);
            let wanted: Option<BTreeSet<&str>> =
                self.req.task_ids.as_ref().map(|ids| ids.iter().map(|t| t.as_str()).collect());
            let failed: Vec<TaskRecord> = all
                .iter()
                .filter(|t| t.status == TaskStatus::Failed)
                .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(t.task_id.as_str())))
                .cloned()
                .collect();
            if let Some(w) = &wanted {
                let have: BTreeSet<&str> = failed.iter().map(|t| t.task_id.as_str()).collect();
                self.summary.unmatched_task_ids = w.difference(&have).map(|t| (*t).to_owned()).collect();
            }
            let queued = all.iter().filter(|t| t.status == TaskStatus::RetryQueued).cloned().collect();
            let mut in_flight_runs = BTreeSet::new();
            if all.iter().any(|t| t.status.is_in_flight()) {
                in_flight_runs.insert(run_id.as_str().to_owned());
            }
            return Ok(Work { failed, queued, in_flight_runs });
        }
        // The coarse prefilter: nothing whose last write is younger than a quarter of the base
        // delay can be due (the jitter is at least one half).
        let cutoff = (!self.req.ignore_backoff)
            .then(|| format_ts(self.now - chrono_of(self.deps.settings.backoff.base_delay) / 4));
        let failed = tables.failed_tasks(cutoff.as_deref()).await?;
        let failed = self.keep(failed);
        let queued = tables.queued_tasks().await?;
        let queued = self.keep(queued);
        let stale = format_ts(self.now - self.deps.settings.in_flight_stale_after);
        let in_flight = tables.stale_in_flight_tasks(&stale).await?;
        let in_flight_runs = self.keep(in_flight).into_iter().map(|t| t.run_id).collect();
        Ok(Work { failed, queued, in_flight_runs })
    }

    async fn read_runs(&mut self, run_ids: &BTreeSet<String>) {
        let results = self.deps.tables.get_runs(run_ids.iter().cloned()).await;
        for (id, r) in results {
            match r {
                Ok(run) => {
                    self.runs.insert(id, run);
                }
                Err(e) => self.summary.error(Some(&id), &e),
            }
        }
    }
}

/// A std duration as a chrono one (zero if out of range: no prefilter rather than a panic).
fn chrono_of(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}
