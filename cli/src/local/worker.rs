//! One simulated AWS Batch job per task, run by the worker double (`arc_worker_double`): the
//! Python worker's exact writes, its exit codes and the job definition's retry strategy (up to
//! three container attempts per job). What the attempts do is drawn from a seeded PRNG; a job
//! that fails is delivered to handle-error as Step Functions delivers it (`States.TaskFailed`,
//! the job description as the Cause, the state's delivery key), sometimes twice.

use super::execution::call_handler;
use super::prng::{self, chance};
use arc_shared::contracts::FailureOutcome;
use arc_shared::runtime::Env;
use arc_shared::ArcError;
use arc_worker_double::{Behaviour, Completion, Job, Worker, BATCH_ATTEMPTS};
use rand::Rng;
use rust_decimal::Decimal;
use serde_json::json;
use std::sync::Arc;

/// How one simulated job went.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// The job's attempts that the worker ran and that failed: each is one failed attempt of
    /// the task, however it gets recorded (by the worker, by handle-error, by Aggregate).
    pub failed_attempts: u32,
    /// The job failed without any attempt claiming the task: handle-error counts it once.
    pub failed_unclaimed: bool,
    /// The cost the worker charged, when an attempt completed the task.
    pub completed: Option<Decimal>,
    /// The job failed and its failure was delivered to handle-error (and how often).
    pub deliveries: u32,
    /// Attempts whose failure the worker recorded itself.
    pub worker_recorded: u32,
    /// handle-error's answer said `FAILED_PERMANENT`.
    pub permanent: bool,
    /// The first attempt found the task already claimed and exited 0.
    pub not_claimed: bool,
    /// The job's one counted failure is the infrastructure's: the job failed on a spot reclaim
    /// or an attempt that never started, unrecorded by the worker (handle-error), or it ended
    /// well with its task left claimed by a killed attempt (Aggregate). Spared from
    /// `retry_count` while the task has infrastructure retries left.
    pub infra_final: bool,
}

/// The knobs of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSim {
    pub seed: u64,
    /// Probability that a container attempt fails.
    pub failure_rate: f64,
    /// Of the attempts that complete, the share that solve the task.
    pub accuracy: f64,
    /// Of the failed jobs, the share delivered to handle-error twice (Step Functions delivers
    /// at least once); each must still be counted once.
    pub redeliver_rate: f64,
    /// The model provider is down for the executions of rounds below this: every attempt
    /// fails with a rate-limit error (`arc-local --outage`).
    pub provider_down_rounds: u32,
}

/// What the worker raises while the provider is down.
pub const OUTAGE_ERROR: &str =
    "RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached', 'type': 'requests'}}";

/// The ways an attempt fails, by weight: the task raises (the worker records it, exit 1, Batch
/// retries), OOM (137, no retry), a spot reclaim (143, "Host EC2 … terminated", Batch
/// retries), the image cannot be pulled (never starts, no retry).
fn failure(rng: &mut impl Rng) -> Behaviour {
    match rng.random_range(0..=99) {
        0..=54 => Behaviour::Fail { message: "RateLimitError: 429 from the model provider".to_owned() },
        55..=74 => Behaviour::Killed {
            exit_code: 137,
            reason: "OutOfMemoryError: Container killed due to memory usage".to_owned(),
        },
        75..=89 => Behaviour::Killed { exit_code: 143, reason: "Host EC2 (instance i-0abc) terminated.".to_owned() },
        _ => Behaviour::NotStarted {
            status_reason: "CannotPullContainerError: pull image manifest has been retried 1 time(s)".to_owned(),
        },
    }
}

/// Runs the Batch job for `task_id` of `run_id`; `round` keys its random draws.
pub async fn run_job(
    env: &Arc<Env>,
    worker: &Worker,
    sim: WorkerSim,
    run_id: &str,
    task_id: &str,
    round: u32,
    execution_arn: &str,
) -> Result<JobOutcome, ArcError> {
    let mut rng = prng::stream(sim.seed, &format!("{task_id}/{round}"));
    let plan: Vec<Behaviour> = (0..BATCH_ATTEMPTS)
        .map(|_| {
            if round < sim.provider_down_rounds {
                Behaviour::Fail { message: OUTAGE_ERROR.to_owned() }
            } else if chance(&mut rng, sim.failure_rate) {
                failure(&mut rng)
            } else {
                Behaviour::Complete(Completion {
                    cost_usd: Decimal::new(rng.random_range(1_000..=500_000), 6),
                    tokens_input: rng.random_range(1_000..=20_000),
                    tokens_output: rng.random_range(100..=4_000),
                    result_s3_key: Some(format!("runs/{run_id}/tasks/{task_id}/r{round}.json")),
                })
            }
        })
        .collect();
    let correct = chance(&mut rng, sim.accuracy);
    let redeliver = chance(&mut rng, sim.redeliver_rate);
    let job = worker.run_job(run_id, task_id, &plan).await;

    let mut out = outcome_of(&job, &plan);
    if out.completed.is_some() {
        // Scoring writes `is_correct` on a completed task (the worker itself does not).
        call_handler(|| async { env.tables().set_task_correct(run_id, task_id, correct).await }).await?;
    }
    if !job.succeeded {
        let event = json!({
            "run_id": run_id,
            "task_id": task_id,
            "error": job.step_functions_error(task_id, &[("RUN_ID".to_owned(), run_id.to_owned())]),
            "delivery": {"execution_arn": format!("{execution_arn}/{task_id}"), "entered_at": job.job_id},
        });
        for _ in 0..(1 + u32::from(redeliver)) {
            let answer = call_handler(|| arc_handlers::handle_error::handle(env.clone(), event.clone())).await?;
            out.permanent = answer.status == FailureOutcome::FailedPermanent;
            out.deliveries += 1;
        }
    }
    Ok(out)
}

/// What the job's attempts did, from what the double reports of each.
fn outcome_of(job: &Job, plan: &[Behaviour]) -> JobOutcome {
    let claimed_failures =
        job.attempts.iter().filter(|a| a.claimed && (a.exit_code != Some(0) || !a.wrote_completed)).count();
    let completed_attempt = job.attempts.iter().position(|a| a.claimed && a.exit_code == Some(0) && a.wrote_completed);
    let completed = completed_attempt.and_then(|i| match plan.get(i).or(plan.last()) {
        Some(Behaviour::Complete(c)) => Some(c.cost_usd),
        _ => None,
    });
    let any_claim = job.attempts.iter().any(|a| a.claimed);
    let last = job.attempts.len().checked_sub(1).and_then(|i| plan.get(i).or(plan.last()));
    let infra_last = matches!(last, Some(Behaviour::Killed { exit_code: 143, .. } | Behaviour::NotStarted { .. }));
    let last_claim = job.attempts.iter().rev().find(|a| a.claimed);
    let last_claim_recorded = last_claim.is_some_and(|a| a.recorded_failure);
    // A job that ended well with its task still claimed: the claiming attempt was killed and
    // Batch ran the job again (a spot reclaim); Aggregate settles it as infrastructure.
    let left_claimed =
        job.succeeded && completed.is_none() && last_claim.is_some_and(|a| !a.recorded_failure && !a.wrote_completed);
    JobOutcome {
        infra_final: (!job.succeeded && infra_last && !last_claim_recorded) || left_claimed,
        failed_attempts: claimed_failures as u32,
        failed_unclaimed: !job.succeeded && !any_claim,
        completed,
        deliveries: 0,
        worker_recorded: job.attempts.iter().filter(|a| a.recorded_failure).count() as u32,
        permanent: false,
        not_claimed: job.attempts.first().is_some_and(|a| !a.claimed && a.exit_code == Some(0)),
    }
}
