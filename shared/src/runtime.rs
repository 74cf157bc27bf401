//! The common Lambda entry point: tracing, config, clients once per container, then the
//! handler for every invocation. Each binary's `main` is one call to [`run`].

use crate::config::Config;
use crate::error::ArcError;
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

/// Runs `handler` as a Lambda function. The payload is taken as raw JSON so that a malformed
/// event reaches the handler and is rejected as `InvalidInput` naming the field.
pub async fn run<F, Fut>(name: &'static str, handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Arc<Env>, Value) -> Fut,
    Fut: Future<Output = Result<Value, ArcError>>,
{
    lambda_runtime::tracing::init_default_subscriber();
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
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let env = env.clone();
        let request_id = event.context.request_id.clone();
        let fut = handler(env, event.payload);
        async move {
            let result = fut.await;
            if let Err(e) = &result {
                tracing::error!(function = name, request_id, error_type = e.error_type(), error = %e, "invocation failed");
            }
            result
        }
    }))
    .await
}
