//! Step Functions: what state a named execution is in, and starting one idempotently.
//! SDK errors are matched by type, never by message text.

use arc_shared::ArcError;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;

/// What DescribeExecution says about an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecState {
    /// RUNNING (or PENDING_REDRIVE / a status this SDK does not know: not known to be over).
    Live,
    /// Ended: SUCCEEDED, FAILED, ABORTED or TIMED_OUT.
    Ended(String),
    /// No execution of that name exists.
    Missing,
}

/// An execution as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub state: ExecState,
    /// Its input, when it exists.
    pub input: Option<String>,
}

/// DescribeExecution of `arn`.
pub async fn describe(sfn: &Client, arn: &str) -> Result<Described, ArcError> {
    match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(out) => {
            let state = match out.status() {
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive => ExecState::Live,
                ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Aborted
                | ExecutionStatus::TimedOut => ExecState::Ended(out.status().as_str().to_owned()),
                other => {
                    tracing::warn!(
                        execution_arn = arn,
                        status = other.as_str(),
                        "unknown execution status: treated as live"
                    );
                    ExecState::Live
                }
            };
            Ok(Described { state, input: out.input().map(str::to_owned) })
        }
        Err(e) if e.as_service_error().is_some_and(|se| se.is_execution_does_not_exist()) => {
            Ok(Described { state: ExecState::Missing, input: None })
        }
        Err(e) => Err(ArcError::from_sdk("DescribeExecution", e)),
    }
}

/// What StartExecution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started (or it was already running with this very input: StartExecution is idempotent).
    Started { execution_arn: String },
    /// An execution of that name exists with another input or has ended: here is what it is.
    AlreadyExists(Described),
}

/// StartExecution `name` on `state_machine_arn` with `input`. On `ExecutionAlreadyExists`
/// the existing execution is described: never assume it is done.
pub async fn start(sfn: &Client, state_machine_arn: &str, name: &str, input: &str) -> Result<StartOutcome, ArcError> {
    match sfn.start_execution().state_machine_arn(state_machine_arn).name(name).input(input).send().await {
        Ok(out) => Ok(StartOutcome::Started { execution_arn: out.execution_arn().to_owned() }),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_execution_already_exists()) => {
            let arn = crate::plan::execution_arn(state_machine_arn, name);
            Ok(StartOutcome::AlreadyExists(describe(sfn, &arn).await?))
        }
        Err(e) => Err(ArcError::from_sdk("StartExecution", e)),
    }
}
