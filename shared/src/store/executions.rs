//! Step Functions executions: the ARN of a named execution, what state one is in, starting one
//! idempotently, stopping one, and listing a state machine's running ones. SDK errors are
//! matched by type, never by message text.

use crate::error::{ArcError, Result};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The ARN of execution `name` of `state_machine_arn` (`…:stateMachine:<sm>` →
/// `…:execution:<sm>:<name>`).
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!("{}:{name}", state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
}

/// The execution name at the end of an execution ARN.
pub fn name_of_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// How an execution ended, named as Step Functions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndedStatus {
    Succeeded,
    Failed,
    Aborted,
    TimedOut,
}

impl EndedStatus {
    /// The Step Functions status: `SUCCEEDED`, `FAILED`, `ABORTED`, `TIMED_OUT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
            Self::TimedOut => "TIMED_OUT",
        }
    }
}

impl fmt::Display for EndedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What DescribeExecution says about an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecState {
    /// RUNNING (or PENDING_REDRIVE, or a status this SDK does not know: not known to be over).
    Live,
    /// It ended.
    Ended(EndedStatus),
    /// No execution of that name exists.
    Missing,
}

/// An execution as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub state: ExecState,
    /// Its input, when it exists.
    pub input: Option<String>,
    /// When it started, when it exists.
    pub started_at: Option<DateTime<Utc>>,
}

fn to_chrono(d: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(d.secs(), d.subsec_nanos())
}

/// DescribeExecution of `arn`; a missing execution is [`ExecState::Missing`], not an error.
pub async fn describe(sfn: &Client, arn: &str) -> Result<Described> {
    match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(out) => {
            let state = match out.status() {
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive => ExecState::Live,
                ExecutionStatus::Succeeded => ExecState::Ended(EndedStatus::Succeeded),
                ExecutionStatus::Failed => ExecState::Ended(EndedStatus::Failed),
                ExecutionStatus::Aborted => ExecState::Ended(EndedStatus::Aborted),
                ExecutionStatus::TimedOut => ExecState::Ended(EndedStatus::TimedOut),
                other => {
                    tracing::warn!(
                        execution_arn = arn,
                        status = other.as_str(),
                        "unknown execution status: treated as live"
                    );
                    ExecState::Live
                }
            };
            Ok(Described { state, input: out.input().map(str::to_owned), started_at: to_chrono(out.start_date()) })
        }
        Err(e) if e.as_service_error().is_some_and(|se| se.is_execution_does_not_exist()) => {
            Ok(Described { state: ExecState::Missing, input: None, started_at: None })
        }
        Err(e) => Err(ArcError::from_sdk("DescribeExecution", e)),
    }
}

/// What StartExecution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started (or it was already running with this very input: StartExecution is idempotent).
    Started { execution_arn: String, started_at: Option<DateTime<Utc>> },
    /// An execution of that name exists with another input or has ended: here is what it is.
    AlreadyExists(Described),
}

/// StartExecution `name` on `state_machine_arn` with `input`. On `ExecutionAlreadyExists` the
/// existing execution is described: never assume it is done.
pub async fn start(sfn: &Client, state_machine_arn: &str, name: &str, input: &str) -> Result<StartOutcome> {
    match sfn.start_execution().state_machine_arn(state_machine_arn).name(name).input(input).send().await {
        Ok(out) => Ok(StartOutcome::Started {
            execution_arn: out.execution_arn().to_owned(),
            started_at: to_chrono(out.start_date()),
        }),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_execution_already_exists()) => {
            let arn = execution_arn(state_machine_arn, name);
            Ok(StartOutcome::AlreadyExists(describe(sfn, &arn).await?))
        }
        Err(e) => Err(ArcError::from_sdk("StartExecution", e)),
    }
}

/// StopExecution of `arn` with `error` (when given) and `cause`. `false` when no execution of
/// that ARN exists.
pub async fn stop(sfn: &Client, arn: &str, error: Option<&str>, cause: &str) -> Result<bool> {
    match sfn.stop_execution().execution_arn(arn).set_error(error.map(str::to_owned)).cause(cause).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_execution_does_not_exist()) => Ok(false),
        Err(e) => Err(ArcError::from_sdk("StopExecution", e)),
    }
}

/// An execution as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub execution_arn: String,
    pub name: String,
    pub started_at: Option<DateTime<Utc>>,
}

/// The RUNNING executions of `state_machine_arn`, every page (in the order Step Functions lists
/// them: newest first).
pub async fn list_running(sfn: &Client, state_machine_arn: &str) -> Result<Vec<Listed>> {
    let items = sfn
        .list_executions()
        .state_machine_arn(state_machine_arn)
        .status_filter(ExecutionStatus::Running)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| ArcError::from_sdk("ListExecutions", e))?;
    Ok(items
        .into_iter()
        .map(|e| Listed {
            execution_arn: e.execution_arn().to_owned(),
            name: e.name().to_owned(),
            started_at: to_chrono(e.start_date()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        let arn = execution_arn("arn:aws:states:us-east-1:123456789012:stateMachine:arc", "retry-x-g2");
        assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:execution:arc:retry-x-g2");
        assert_eq!(name_of_arn(&arn), "retry-x-g2");
        assert_eq!(name_of_arn("plain"), "plain");
    }

    #[test]
    fn ended_statuses_are_named_as_step_functions_names_them() {
        for (s, text) in [
            (EndedStatus::Succeeded, "SUCCEEDED"),
            (EndedStatus::Failed, "FAILED"),
            (EndedStatus::Aborted, "ABORTED"),
            (EndedStatus::TimedOut, "TIMED_OUT"),
        ] {
            assert_eq!(s.as_str(), text);
            assert_eq!(s.to_string(), text);
            assert_eq!(serde_json::to_value(s).unwrap(), text);
            assert_eq!(serde_json::from_value::<EndedStatus>(text.into()).unwrap(), s);
        }
    }
}
