//! One execution of the state machine, run locally in its order: Initialize → a simulated
//! Batch job per task (bounded concurrency) → Aggregate → Complete, each step the real
//! handler code.

use super::progress::Progress;
use super::worker::{run_job, JobOutcome, WorkerSim};
use crate::exit::CliError;
use arc_handlers::{aggregate, complete, initialize};
use arc_shared::runtime::Env;
use arc_shared::ArcError;
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
/// handler is idempotent for a repeated event, so a retry is safe.
pub async fn call_handler<F, Fut>(mut call: F) -> Result<Value, ArcError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Value, ArcError>>,
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
    pub failed_retryable: u64,
    pub failed_permanent: u64,
    pub not_claimed: u64,
    /// Failures delivered to handle_error twice.
    pub redelivered: u64,
    /// Failures the worker recorded itself before handle_error (the Python worker's way).
    pub self_reported: u64,
    /// Complete's final run status.
    pub run_status: String,
}

/// Runs executions against one environment, keeping a ledger of what the workers charged.
pub struct Runner {
    pub env: Arc<Env>,
    pub sim: WorkerSim,
    pub concurrency: usize,
    /// The cost each completed task's worker wrote, by task id (a task completes at most once).
    ledger: Mutex<BTreeMap<String, Decimal>>,
    /// Tasks a worker completed twice: the accounting check reports them.
    completed_twice: Mutex<Vec<String>>,
    /// Failed jobs per task.
    failures: Mutex<BTreeMap<String, u32>>,
}

impl Runner {
    pub fn new(env: Arc<Env>, sim: WorkerSim, concurrency: usize) -> Self {
        Self {
            env,
            sim,
            concurrency: concurrency.max(1),
            ledger: Mutex::new(BTreeMap::new()),
            completed_twice: Mutex::new(Vec::new()),
            failures: Mutex::new(BTreeMap::new()),
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

    fn record_failure(&self, task_id: String) {
        if let Ok(mut f) = self.failures.lock() {
            *f.entry(task_id).or_default() += 1;
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
        let run_id = init.get("run_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let task_ids: Vec<String> = init
            .get("task_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if run_id.is_empty() {
            return Err(CliError::failed(format!("initialize answered without a run_id: {init}")));
        }

        let mut report = ExecutionReport { run_id: run_id.clone(), ..ExecutionReport::default() };
        let mut progress = Progress::new(label, task_ids.len() as u64);
        let mut jobs = stream::iter(task_ids)
            .map(|task_id| {
                let run_id = run_id.clone();
                async move {
                    let outcome = run_job(&self.env, self.sim, &run_id, &task_id, attempt).await;
                    (task_id, outcome)
                }
            })
            .buffer_unordered(self.concurrency);
        while let Some((task_id, outcome)) = jobs.next().await {
            report.jobs += 1;
            match outcome? {
                JobOutcome::Completed { cost_usd, .. } => {
                    report.completed += 1;
                    self.record(task_id, cost_usd);
                }
                JobOutcome::Failed { permanent, redelivered, self_reported } => {
                    if permanent {
                        report.failed_permanent += 1;
                    } else {
                        report.failed_retryable += 1;
                    }
                    report.redelivered += u64::from(redelivered);
                    report.self_reported += u64::from(self_reported);
                    self.record_failure(task_id);
                }
                JobOutcome::NotClaimed => report.not_claimed += 1,
            }
            progress.tick();
        }
        progress.finish();

        let event = json!({"run_id": run_id, "execution_arn": execution_arn});
        let aggregation = call_handler(|| aggregate::handle(self.env.clone(), event.clone())).await?;
        let event = json!({"run_id": run_id, "aggregation": aggregation, "execution_arn": execution_arn});
        let done = call_handler(|| complete::handle(self.env.clone(), event.clone())).await?;
        report.run_status = done.get("status").and_then(Value::as_str).unwrap_or("?").to_owned();
        Ok(report)
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
            Err(ArcError::RunNotFound("r".into()))
        })
        .await
        .unwrap_err();
        assert_eq!((err.error_type(), calls.load(Ordering::SeqCst)), ("RunNotFound", 1));
    }
}
