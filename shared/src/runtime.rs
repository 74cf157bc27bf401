//! The common Lambda entry point: tracing, config, clients once per container, then the
//! handler for every invocation. Each binary's `main` is one call to [`run`].

use crate::config::Config;
use crate::error::ArcError;
use crate::input::RawEvent;
use crate::store::Clients;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// What a handler needs besides its event.
pub struct Env {
    pub config: Config,
    pub clients: Clients,
    pub clock: Arc<dyn crate::time::Clock>,
}

impl Env {
    pub fn tables(&self) -> crate::store::Tables {
        crate::store::Tables::new(self.clients.dynamodb.clone(), &self.config.runs_table, &self.config.tasks_table)
    }
}

/// Log directives added whatever `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG` ask, so that no
/// credential and no event reaches a log line: at DEBUG the AWS SDK logs the resolved identity
/// (the access key id) with every endpoint resolution, at TRACE the signing inputs, and
/// lambda_runtime logs each raw event at TRACE (a Batch Cause carries the job's environment).
/// `tests/tests/binaries.rs` runs every function at TRACE and greps the logs.
const CAPPED_TARGETS: [&str; 19] = [
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "aws_smithy_http=info",
    "aws_smithy_types=info",
    "aws_sigv4=info",
    "aws_runtime=info",
    "aws_config=info",
    "aws_credential_types=info",
    "aws_sdk_dynamodb=info",
    "aws_sdk_s3=info",
    "aws_sdk_sfn=info",
    "aws_sdk_cloudwatch=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "lambda_runtime::layers::api_response=debug",
    "lambda_runtime_api_client=debug",
];

/// lambda_runtime's default subscriber (level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
/// INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON lines) with [`CAPPED_TARGETS`] added.
fn init_logging() {
    use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
    use std::str::FromStr;
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = LevelFilter::from_str(level.as_deref().unwrap_or("INFO")).unwrap_or(LevelFilter::INFO);
    let mut filter = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    for directive in CAPPED_TARGETS {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let collector =
        lambda_runtime::tracing::subscriber::fmt().with_target(false).without_time().with_env_filter(filter);
    // try_init: a subscriber already set (never, in a Lambda) is kept rather than a panic.
    let _ = if format.eq_ignore_ascii_case("json") { collector.json().try_init() } else { collector.try_init() };
}

/// Runs `handler` as a Lambda function. The payload is taken as raw JSON so that a malformed
/// event reaches the handler and is rejected as `InvalidInput` naming the field; the typed
/// answer (`arc_shared::contracts`) is serialized by the runtime.
pub async fn run<F, Fut, O>(name: &'static str, handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Arc<Env>, Value) -> Fut,
    Fut: Future<Output = Result<O, ArcError>>,
    O: serde::Serialize,
{
    init_logging();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(function = name, error = %e, "cold start failed");
            return Err(e.into());
        }
    };
    let clients = Clients::from_env().await;
    let env = Arc::new(Env { config, clients, clock: Arc::new(crate::time::SystemClock) });
    tracing::info!(function = name, runs_table = %env.config.runs_table, tasks_table = %env.config.tasks_table, "cold start");
    // `RawEvent`: a body that is not JSON (or nests too deep) is answered as `InvalidInput`.
    lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
        let env = env.clone();
        let request_id = event.context.request_id.clone();
        let fut = event.payload.0.map(|payload| handler(env, payload));
        async move {
            let result = match fut {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!(function = name, request_id, error_type = e.error_type(), error = %e, "invocation failed");
            }
            result
        }
    }))
    .await
}
