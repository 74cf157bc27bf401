//! One execution of the state machine, run locally in its order: Initialize → a Batch job per
//! task run by the worker double (bounded concurrency) → Aggregate → Complete, each step the
//! real handler code.

use super::worker::{run_job, WorkerSim};
use crate::exit::CliError;
use crate::progress::Progress;
use arc_handlers::{aggregate, complete, initialize};
use arc_shared::contracts::InitializeOutput;
use arc_shared::runtime::Env;
use arc_shared::ArcError;
use arc_worker_double::Worker;
use futures::stream::{self, StreamExt};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Attempts of one handler call when AWS (the emulator) is throttled or unreachable, as the
/// state machine's `Retry` on `DependencyUnavailable` would make them.
const HANDLER_ATTEMPTS: u32 = 4;

/// Calls a handler, retrying `DependencyUnavailable` with a short exponential backoff. Every
/// handler is idempotent for a repeated event, so a retry is safe. The local runner's own AWS
/// calls (standing in for Step Functions, Batch and scoring, which retry too) go through it
/// as well, so that a throttled or dropped request does not end the run.
pub async fn call_handler<T, F, Fut>(mut call: F) -> Result<T, ArcError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ArcError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(ArcError::DependencyUnavailable { .. }) if attempt < HANDLER_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What one execution did.
#[derive(Debug, Clone, Default)]
pub struct ExecutionReport {
    pub run_id: String,
    pub jobs: u64,
    pub completed: u64,
    /// Jobs that failed (delivered to handle-error).
    pub failed_jobs: u64,
    pub failed_permanent: u64,
    pub not_claimed: u64,
    /// Failed jobs delivered to handle-error twice.
    pub redelivered: u64,
    /// Attempts whose failure the worker recorded itself (its failure path).
    pub worker_recorded: u64,
    /// Container attempts that failed in all.
    pub failed_attempts: u64,
    /// Failed jobs whose infrastructure failure did not count against the task's retries.
    pub spared: u64,
    /// Complete's final run status.
    pub run_status: String,
}

/// Runs executions against one environment, keeping a ledger of what the workers charged.
pub struct Runner {
    pub env: Arc<Env>,
    pub sim: WorkerSim,
    pub concurrency: usize,
    worker: Worker,
    /// The cost each completed task's worker wrote, by task id (a task completes at most once).
    ledger: Mutex<BTreeMap<String, Decimal>>,
    /// Tasks a worker completed twice: the accounting check reports them.
    completed_twice: Mutex<Vec<String>>,
    /// Failed attempts per task (each counts once in its `retry_count`).
    failures: Mutex<BTreeMap<String, u32>>,
    /// Infrastructure failures spared per task (`INFRA_MAX_RETRIES` bounds them).
    spared: Mutex<BTreeMap<String, u32>>,
}

impl Runner {
    pub fn new(env: Arc<Env>, sim: WorkerSim, concurrency: usize) -> Self {
        let worker = Worker::new(
            env.clients.dynamodb.clone(),
            &env.config.runs_table,
            &env.config.tasks_table,
            env.clock.clone(),
        )
        .with_max_retries(env.config.max_retries);
        Self {
            worker,
            env,
            sim,
            concurrency: concurrency.max(1),
            ledger: Mutex::new(BTreeMap::new()),
            completed_twice: Mutex::new(Vec::new()),
            failures: Mutex::new(BTreeMap::new()),
            spared: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn ledger(&self) -> BTreeMap<String, Decimal> {
        self.ledger.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn completed_twice(&self) -> Vec<String> {
        self.completed_twice.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn failures(&self) -> BTreeMap<String, u32> {
        self.failures.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the job's infrastructure failure is spared from the task's `retry_count`: the
    /// task had infrastructure retries left (the ledger's own count, not the table's).
    fn spare(&self, task_id: &str) -> bool {
        let cap = self.env.config.infra_max_retries;
        match self.spared.lock() {
            Ok(mut s) => {
                let n = s.entry(task_id.to_owned()).or_default();
                let spare = *n < cap;
                *n += u32::from(spare);
                spare
            }
            Err(_) => false,
        }
    }

    fn record_failures(&self, task_id: String, n: u32) {
        if let Ok(mut f) = self.failures.lock() {
            *f.entry(task_id).or_default() += n;
        }
    }

    /// Runs the execution `execution_arn` whose Initialize input is `input` (the execution's
    /// own input; `execution_arn` is added the way the state machine passes `$$.Execution.Id`).
    /// `attempt` keys the workers' random draws.
    pub async fn run_execution(
        &self,
        mut input: Value,
        execution_arn: &str,
        attempt: u32,
        label: &str,
    ) -> Result<ExecutionReport, CliError> {
        match input.as_object_mut() {
            Some(obj) => {
                obj.insert("execution_arn".into(), json!(execution_arn));
            }
            None => return Err(CliError::failed(format!("execution {execution_arn}: input is not a JSON object"))),
        }
        let init = call_handler(|| initialize::handle(self.env.clone(), input.clone())).await?;
        let run_id = init.run_id.clone();
        let task_ids = self.items(&init).await?;

        let mut report = ExecutionReport { run_id: run_id.clone(), ..ExecutionReport::default() };
        let mut progress = Progress::new(label, task_ids.len() as u64);
        let mut jobs = stream::iter(task_ids)
            .map(|task_id| {
                let run_id = run_id.clone();
                async move {
                    let outcome =
                        run_job(&self.env, &self.worker, self.sim, &run_id, &task_id, attempt, execution_arn).await;
                    (task_id, outcome)
                }
            })
            .buffer_unordered(self.concurrency);
        while let Some((task_id, outcome)) = jobs.next().await {
            let o = outcome?;
            report.jobs += 1;
            report.not_claimed += u64::from(o.not_claimed);
            report.worker_recorded += u64::from(o.worker_recorded);
            report.failed_attempts += u64::from(o.failed_attempts);
            if o.deliveries > 0 {
                report.failed_jobs += 1;
                report.failed_permanent += u64::from(o.permanent);
                report.redelivered += u64::from(o.deliveries > 1);
            }
            let spared = o.infra_final && self.spare(&task_id);
            report.spared += u64::from(spared);
            let counted = (o.failed_attempts + u32::from(o.failed_unclaimed)).saturating_sub(u32::from(spared));
            self.record_failures(task_id.clone(), counted);
            if let Some(cost) = o.completed {
                report.completed += 1;
                self.record(task_id, cost);
            }
            progress.tick();
        }
        progress.finish();

        let event = json!({"run_id": run_id, "execution_arn": execution_arn});
        let aggregation = call_handler(|| aggregate::handle(self.env.clone(), event.clone())).await?;
        let figures = serde_json::to_value(aggregation.figures())
            .map_err(|e| CliError::failed(format!("aggregate's figures: {e}")))?;
        let event = json!({"run_id": run_id, "aggregation": figures, "execution_arn": execution_arn});
        let done = call_handler(|| complete::handle(self.env.clone(), event.clone())).await?;
        report.run_status = done.status.as_str().to_owned();
        Ok(report)
    }

    /// The task ids the Map reads: the item list Initialize wrote to S3 (as the deployed state
    /// machine's ItemReader does), else its inline `task_ids`.
    async fn items(&self, init: &InitializeOutput) -> Result<Vec<String>, CliError> {
        match &init.items {
            Some(at) => Ok(call_handler(|| self.env.clients.objects.get_string_list(at, "items")).await?),
            None => Ok(init.task_ids.clone().unwrap_or_default()),
        }
    }

    fn record(&self, task_id: String, cost: Decimal) {
        if let Ok(mut ledger) = self.ledger.lock() {
            if ledger.insert(task_id.clone(), cost).is_some() {
                if let Ok(mut twice) = self.completed_twice.lock() {
                    twice.push(task_id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn handler_calls_retry_only_when_aws_is_unavailable() {
        let calls = AtomicU32::new(0);
        let out = call_handler(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(ArcError::DependencyUnavailable { operation: "UpdateItem".into(), message: "throttled".into() })
            } else {
                Ok(json!({"ok": true}))
            }
        })
        .await
        .unwrap();
        assert_eq!((out, calls.load(Ordering::SeqCst)), (json!({"ok": true}), 2));

        let calls = AtomicU32::new(0);
        let err = call_handler(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<Value, _>(ArcError::RunNotFound("r".into()))
        })
        .await
        .unwrap_err();
        assert_eq!((err.error_type(), calls.load(Ordering::SeqCst)), ("RunNotFound", 1));
    }
}
