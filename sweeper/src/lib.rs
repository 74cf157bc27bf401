//! arc-sweeper: the retry sweeper (docs/ARCHITECTURE.md, "The sweeper"). Finds FAILED tasks whose backoff has
//! elapsed, claims each run (one sweeper wins), moves its due tasks FAILED → RETRY_QUEUED and
//! starts one retry execution per run; repairs what a crashed sweep or an ended execution
//! left behind. The Lambda (`main.rs`), the tests and an operator CLI all call [`sweep`].
//! Every AWS call goes through `arc_shared::store` (`retries`, `executions`, `metrics`).

mod gate;
pub mod plan;
mod repair;
pub mod request;
mod retry;
pub mod summary;
mod sweep;

pub use request::{manual_request, parse_request, SweepRequest, Trigger};
pub use summary::SweepSummary;
pub use sweep::sweep;

use arc_shared::class::ClassRules;
use arc_shared::config::{BackoffConfig, BreakerConfig};
use arc_shared::runtime::Env;
use arc_shared::store::breakers::Breakers;
use arc_shared::store::Tables;
use arc_shared::time::Clock;
use arc_shared::{ArcError, Config};
use std::sync::Arc;

/// The sweep's settings, from the function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    /// `STATE_MACHINE_ARN`: where retry executions start.
    pub state_machine_arn: String,
    /// `SWEEPER_BASE_DELAY_SECONDS` / `SWEEPER_MAX_DELAY_SECONDS`.
    pub backoff: BackoffConfig,
    /// `SWEEPER_MAX_TASKS`: tasks re-queued per sweep at most.
    pub max_tasks: usize,
    /// `MAX_RETRIES`: a task that reached it is FAILED_PERMANENT, never retried.
    pub max_retries: u32,
    /// `SWEEPER_MAX_AGE_HOURS`: older failures are not retried by a scheduled sweep.
    pub max_age: chrono::Duration,
    /// `CLOUDWATCH_NAMESPACE`.
    pub namespace: String,
    /// A run claimed less than this long ago whose execution does not exist yet is left
    /// alone (its sweeper may still be re-queuing); older, the start is repaired. At least
    /// the Lambda's longest timeout (15 min).
    pub repair_grace: chrono::Duration,
    /// PENDING / IN_PROGRESS tasks untouched this long make their run a repair suspect.
    pub in_flight_stale_after: chrono::Duration,
    /// `SWEEPER_BREAKER_*`: the per-config circuit breakers.
    pub breaker: BreakerConfig,
    /// `FAILURE_CLASS_*`: how a failure without a stored class is classified.
    pub class_rules: ClassRules,
}

impl SweepSettings {
    pub fn from_config(config: &Config) -> Result<Self, ArcError> {
        let arn =
            config.require_state_machine_arn().map_err(|e| ArcError::invalid("STATE_MACHINE_ARN", e.to_string()))?;
        Ok(Self {
            state_machine_arn: arn.to_owned(),
            backoff: config.backoff,
            max_tasks: config.sweeper_max_tasks,
            max_retries: config.max_retries,
            max_age: chrono::Duration::from_std(config.sweeper_max_age).unwrap_or(chrono::Duration::hours(72)),
            namespace: config.cloudwatch_namespace.clone(),
            repair_grace: chrono::Duration::minutes(15),
            in_flight_stale_after: chrono::Duration::minutes(15),
            breaker: config.breaker,
            class_rules: config.class_rules.clone(),
        })
    }
}

/// Everything a sweep needs besides its request.
#[derive(Clone)]
pub struct SweepDeps {
    pub tables: Tables,
    /// `BREAKERS_TABLE`.
    pub breakers: Breakers,
    pub sfn: aws_sdk_sfn::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub clock: Arc<dyn Clock>,
    pub settings: SweepSettings,
}

impl SweepDeps {
    /// The dependencies of the Lambda's environment.
    pub fn from_env(env: &Env) -> Result<Self, ArcError> {
        Ok(Self {
            tables: env.tables(),
            breakers: Breakers::new(env.clients.dynamodb.clone(), &env.config.breakers_table),
            sfn: env.clients.sfn.clone(),
            cloudwatch: env.clients.cloudwatch.clone(),
            clock: env.clock.clone(),
            settings: SweepSettings::from_config(&env.config)?,
        })
    }
}
