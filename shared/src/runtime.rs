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

/// What to log: `AWS_LAMBDA_LOG_LEVEL` (a level), else `RUST_LOG` (a level and/or
/// `target=level` pairs, comma-separated), else INFO; a value that does not parse is INFO.
/// [`CAPPED_TARGETS`] replace whatever was asked for their targets.
fn log_filter(asked: Option<&str>) -> tracing_subscriber::filter::Targets {
    use std::str::FromStr;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let asked = asked.and_then(|s| Targets::from_str(&s.to_ascii_lowercase()).ok()).unwrap_or_default();
    let caps: Vec<(String, LevelFilter)> = CAPPED_TARGETS
        .iter()
        .filter_map(|d| d.split_once('='))
        .filter_map(|(t, l)| LevelFilter::from_str(l).ok().map(|l| (t.to_owned(), l)))
        .collect();
    let kept = asked.iter().filter(|(t, _)| !caps.iter().any(|(c, _)| c == t)).map(|(t, l)| (t.to_owned(), l));
    Targets::new()
        .with_default(asked.default_level().unwrap_or(LevelFilter::INFO))
        .with_targets(kept)
        .with_targets(caps)
}

/// lambda_runtime's log format (level, fields, no time: CloudWatch stamps each line;
/// `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON lines) through [`log_filter`].
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let asked = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).ok();
    let filter = log_filter(asked.as_deref());
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).without_time();
    // try_init: a subscriber already set (never, in a Lambda) is kept rather than a panic.
    let _ = if format.eq_ignore_ascii_case("json") {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt.with_ansi(false)).try_init()
    };
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
    if let Some(cap) = config.concurrency {
        crate::store::set_concurrency_cap(cap);
    }
    let clients = Clients::from_env(config.attempt_timeout).await;
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

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn the_asked_level_applies_and_the_capped_targets_stay_capped() {
        let trace = log_filter(Some("TRACE"));
        assert!(trace.would_enable("arc_handlers::aggregate", &Level::TRACE));
        assert!(!trace.would_enable("aws_sigv4", &Level::DEBUG), "the signing inputs never reach a log");
        assert!(!trace.would_enable("lambda_runtime_api_client", &Level::TRACE), "nor the raw events");
        let default = log_filter(None);
        assert!(default.would_enable("arc_shared", &Level::INFO));
        assert!(!default.would_enable("arc_shared", &Level::DEBUG));
        // RUST_LOG's pairs: asking for the SDK's debug logs does not lift a cap.
        let pairs = log_filter(Some("warn,aws_sigv4=trace,arc_sweeper=debug"));
        assert!(pairs.would_enable("arc_sweeper::sweep", &Level::DEBUG));
        assert!(!pairs.would_enable("arc_shared", &Level::INFO));
        assert!(!pairs.would_enable("aws_sigv4", &Level::DEBUG));
        assert!(log_filter(Some("not a level")).would_enable("arc_shared", &Level::INFO));
    }
}
