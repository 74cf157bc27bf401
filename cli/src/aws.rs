//! The CLI's own AWS calls: the services only `arcctl` uses (Lambda, EventBridge Scheduler,
//! STS) and Step Functions' DescribeStateMachine (`arcctl doctor`). Their SDK crates are
//! dependencies of this crate only: in `arc-shared` they would be linked into every Lambda
//! binary. Every table, bucket and execution call goes through `arc_shared::store`.

use arc_shared::ArcError;
use aws_config::SdkConfig;
use aws_smithy_types::Blob;
use std::collections::HashMap;
use std::time::Duration;

/// A state machine as DescribeStateMachine tells it.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub name: String,
    /// `ACTIVE`, `DELETING`, when given.
    pub status: Option<String>,
}

/// DescribeStateMachine `arn`: `None` when there is no such state machine (or `arn` is not one).
pub async fn state_machine(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Option<StateMachine>, ArcError> {
    match sfn.describe_state_machine().state_machine_arn(arn).send().await {
        Ok(out) => {
            Ok(Some(StateMachine { name: out.name().to_owned(), status: out.status().map(|s| s.as_str().to_owned()) }))
        }
        Err(e)
            if e.as_service_error().is_some_and(|se| se.is_state_machine_does_not_exist() || se.is_invalid_arn()) =>
        {
            Ok(None)
        }
        Err(e) => Err(ArcError::from_sdk("DescribeStateMachine", e)),
    }
}

/// A Lambda function as GetFunction tells it.
#[derive(Debug, Clone, Default)]
pub struct Function {
    pub arn: Option<String>,
    pub runtime: Option<String>,
    /// Its environment variables.
    pub env: HashMap<String, String>,
}

/// GetFunction `name`: `None` when there is no such function.
pub async fn function(sdk: &SdkConfig, name: &str) -> Result<Option<Function>, ArcError> {
    let client = aws_sdk_lambda::Client::new(sdk);
    match client.get_function().function_name(name).send().await {
        Ok(out) => {
            let conf = out.configuration();
            Ok(Some(Function {
                arn: conf.and_then(|c| c.function_arn()).map(str::to_owned),
                runtime: conf.and_then(|c| c.runtime()).map(|r| r.as_str().to_owned()),
                env: conf.and_then(|c| c.environment()).and_then(|e| e.variables()).cloned().unwrap_or_default(),
            }))
        }
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(ArcError::from_sdk("GetFunction", e)),
    }
}

/// What a synchronous Invoke answered.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// Set when the function failed (`Unhandled`…); the payload is then its error object.
    pub function_error: Option<String>,
    pub payload: String,
}

/// Invokes the Lambda `name` synchronously with `payload`: `None` when there is no such function.
pub async fn invoke(sdk: &SdkConfig, name: &str, payload: Vec<u8>) -> Result<Option<Invoked>, ArcError> {
    let client = aws_sdk_lambda::Client::new(sdk);
    match client.invoke().function_name(name).payload(Blob::new(payload)).send().await {
        Ok(out) => Ok(Some(Invoked {
            function_error: out.function_error().map(str::to_owned),
            payload: out.payload().map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()).unwrap_or_default(),
        })),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(ArcError::from_sdk(&format!("Invoke {name}"), e)),
    }
}

/// An EventBridge Scheduler schedule as GetSchedule tells it.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// `ENABLED` / `DISABLED`, when given.
    pub state: Option<String>,
    pub expression: Option<String>,
    /// The target's ARN.
    pub target: Option<String>,
}

/// GetSchedule `name` in `group`: `None` when there is no such schedule there.
pub async fn schedule(sdk: &SdkConfig, name: &str, group: &str) -> Result<Option<Schedule>, ArcError> {
    let client = aws_sdk_scheduler::Client::new(sdk);
    match client.get_schedule().name(name).group_name(group).send().await {
        Ok(out) => Ok(Some(Schedule {
            state: out.state().map(|s| s.as_str().to_owned()),
            expression: out.schedule_expression().map(str::to_owned),
            target: out.target().map(|t| t.arn().to_owned()),
        })),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(ArcError::from_sdk("GetSchedule", e)),
    }
}

/// The caller's ARN from STS GetCallerIdentity; `None` when STS does not answer within
/// `timeout` or the credentials do not allow it.
pub async fn caller_arn(sdk: &SdkConfig, timeout: Duration) -> Option<String> {
    let sts = aws_sdk_sts::Client::new(sdk);
    match tokio::time::timeout(timeout, sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => out.arn().filter(|a| !a.is_empty()).map(str::to_owned),
        _ => None,
    }
}
