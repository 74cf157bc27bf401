//! The AWS adapter: clients built once per container, and the table operations every
//! function shares. Item ↔ record conversion lives in `records`; nothing else touches items.

pub mod admin;
mod batch;
pub mod breakers;
pub mod cancel;
pub mod executions;
mod failures;
pub mod metrics;
pub mod objects;
pub mod retries;
pub mod runs;
pub mod schema;
mod update;

pub use batch::batch_put;
pub use cancel::Cancellation;
pub use failures::{FailureWrite, SeenTask, SettlePolicy, SettledTask, Written};
pub use runs::{NewRun, Published, RunCompletion};
pub use update::UpdateExpr;

use crate::error::{describe_sdk_error, ArcError, Result};
use crate::records::{s, Item, RunRecord, TaskRecord};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::Client as DynamoDb;

/// Every AWS client the functions use, built once from `aws-config` (which honours
/// `AWS_ENDPOINT_URL` and the usual credential chain).
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: DynamoDb,
    /// The results bucket's objects (GetObject and PutObject, signed here: `objects`).
    pub objects: objects::ObjectStore,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sfn: aws_sdk_sfn::Client,
    conf: aws_config::SdkConfig,
}

/// `aws_config::defaults` (environment, credential chain, `AWS_ENDPOINT_URL`) with the HTTPS
/// client of every AWS client this product makes: hyper 1 with rustls on ring, one client
/// shared by all of them. What every SDK configuration here starts from.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let https =
        ValidatedOnce { inner: https, validated: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)) };
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// The shared HTTPS client, validated by the first AWS client built on it only. Validating
/// builds a TLS configuration from the platform's trust roots (on purpose at cold start, where
/// Lambda gives the process its full CPU, rather than in the first request); the SDK does it
/// for every client it builds, four times per cold start here, each time for the same roots.
#[derive(Debug, Clone)]
struct ValidatedOnce {
    inner: aws_smithy_runtime_api::client::http::SharedHttpClient,
    validated: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl aws_smithy_runtime_api::client::http::HttpClient for ValidatedOnce {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder,
        cfg: &aws_smithy_types::config_bag::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if self.validated.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.validate_base_client_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

impl Clients {
    /// Clients from the environment; each request attempt gives up after `attempt_timeout`
    /// (default [`ATTEMPT_TIMEOUT`]).
    pub async fn from_env(attempt_timeout: Option<std::time::Duration>) -> Self {
        let loader = sdk_defaults();
        let loader = match attempt_timeout {
            Some(t) => loader
                .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(t).build()),
            None => loader,
        };
        Self::from_conf(&loader.load().await)
    }

    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        let conf = &with_attempt_timeout(conf);
        Self {
            dynamodb: DynamoDb::new(conf),
            objects: objects::ObjectStore::new(conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
            sfn: aws_sdk_sfn::Client::new(conf),
            conf: conf.clone(),
        }
    }

    /// An S3 SDK client of the same configuration (path-style addressing, which works against
    /// AWS and local emulators alike), for what the functions never do: creating buckets,
    /// listing and inspecting objects (tools and tests). The functions' own object reads and
    /// writes go through [`Self::objects`].
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&self.conf).force_path_style(true).build())
    }
}

/// Each attempt of an AWS call gives up after this long, so that a dependency that accepts
/// connections but never answers fails the call as `DependencyUnavailable` (retryable: the
/// state machine retries it) after the SDK's three attempts, about half a minute, instead of
/// holding the function until its Lambda timeout (`States.Timeout`, which it does not retry).
/// Every call these functions make answers in well under a second when AWS is healthy.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `conf` with [`ATTEMPT_TIMEOUT`] unless it sets an attempt timeout of its own.
fn with_attempt_timeout(conf: &aws_config::SdkConfig) -> aws_config::SdkConfig {
    let current =
        conf.timeout_config().cloned().unwrap_or_else(|| aws_config::timeout::TimeoutConfig::builder().build());
    if current.operation_attempt_timeout().is_some() {
        return conf.clone();
    }
    let timeouts = current.to_builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).build();
    conf.to_builder().timeout_config(timeouts).build()
}

/// The result of a conditional UpdateItem: `Some(output)` when written, `None` when its
/// condition failed (someone else changed the item first); any other failure is an error.
pub fn conditional(
    operation: &str,
    r: std::result::Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<Option<UpdateItemOutput>> {
    match r {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(None),
        // The item is part of a transaction in progress: nothing was written, try again.
        Err(e) if e.as_service_error().is_some_and(|se| se.is_transaction_conflict_exception()) => {
            Err(ArcError::DependencyUnavailable { operation: operation.to_owned(), message: describe_sdk_error(&e) })
        }
        Err(e) => Err(ArcError::from_sdk(operation, e)),
    }
}

/// Conditional writes of one item each in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// Run reads in flight at once ([`Tables::get_runs`]).
const RUN_READ_CONCURRENCY: usize = 8;

static CONCURRENCY_CAP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Caps every operation's requests in flight for the life of the process (`ARC_CONCURRENCY`,
/// set once at cold start; a second call changes nothing).
pub fn set_concurrency_cap(cap: usize) {
    let _ = CONCURRENCY_CAP.set(cap.max(1));
}

/// An operation's own bound on requests in flight, under the process's cap.
pub fn concurrency(own: usize) -> usize {
    CONCURRENCY_CAP.get().map_or(own, |cap| own.min(*cap)).max(1)
}

/// Runs `write` for each of `items`, [`WRITE_CONCURRENCY`] at once, and collects what the
/// writes that took effect return (`Some`); the first error stops it.
pub(crate) async fn each_written<I, T, F, Fut>(items: I, write: F) -> Result<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    let done: Vec<Option<T>> =
        stream::iter(items).map(write).buffer_unordered(concurrency(WRITE_CONCURRENCY)).try_collect().await?;
    Ok(done.into_iter().flatten().collect())
}

/// The two tables, by name.
#[derive(Debug, Clone)]
pub struct Tables {
    db: DynamoDb,
    pub runs: String,
    pub tasks: String,
}

/// The GSI on the tasks table: `status` / `updated_at`.
pub const STATUS_INDEX: &str = "status-index";
/// The GSI on the runs table: `config_name` / `created_at`.
pub const CONFIG_INDEX: &str = "config-created-index";

impl Tables {
    pub fn new(db: DynamoDb, runs: impl Into<String>, tasks: impl Into<String>) -> Self {
        Self { db, runs: runs.into(), tasks: tasks.into() }
    }

    pub fn run_key(run_id: &str) -> Item {
        [("run_id".to_owned(), s(run_id))].into()
    }

    pub fn task_key(run_id: &str, task_id: &str) -> Item {
        [("run_id".to_owned(), s(run_id)), ("task_id".to_owned(), s(task_id))].into()
    }

    /// A strongly consistent read of one run.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(Self::run_key(run_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("GetItem runs", e))?;
        out.item.map(RunRecord::from_item).transpose()
    }

    /// Each of `run_ids` read ([`Self::get_run`]), [`RUN_READ_CONCURRENCY`] at once; each
    /// with its own outcome, in the order they finished.
    pub async fn get_runs(
        &self,
        run_ids: impl IntoIterator<Item = String>,
    ) -> Vec<(String, Result<Option<RunRecord>>)> {
        use futures::stream::{self, StreamExt};
        stream::iter(run_ids)
            .map(|id| async move {
                let r = self.get_run(&id).await;
                (id, r)
            })
            .buffer_unordered(concurrency(RUN_READ_CONCURRENCY))
            .collect()
            .await
    }

    /// A run that must exist.
    pub async fn require_run(&self, run_id: &str) -> Result<RunRecord> {
        self.get_run(run_id).await?.ok_or_else(|| ArcError::RunNotFound(run_id.to_owned()))
    }

    /// A strongly consistent read of one task.
    pub async fn get_task(&self, run_id: &str, task_id: &str) -> Result<Option<TaskRecord>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.tasks)
            .set_key(Some(Self::task_key(run_id, task_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("GetItem tasks", e))?;
        out.item.map(TaskRecord::from_item).transpose()
    }

    /// Every task item of a run, page by page (strongly consistent), handed to `f` raw.
    pub async fn for_each_task_item(&self, run_id: &str, f: impl FnMut(Item) -> Result<()>) -> Result<()> {
        self.for_each_task_item_projected(run_id, None, f).await
    }

    /// [`Self::for_each_task_item`] reading only `projection` (which may name `#status`).
    pub async fn for_each_task_item_projected(
        &self,
        run_id: &str,
        projection: Option<&str>,
        mut f: impl FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let names = projection
            .filter(|p| p.contains("#status"))
            .map(|_| std::collections::HashMap::from([("#status".to_owned(), "status".to_owned())]));
        let mut pages = self
            .db
            .query()
            .table_name(&self.tasks)
            .key_condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(run_id))
            .set_expression_attribute_names(names)
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ArcError::from_sdk("Query tasks", e))?;
            for item in page.items.unwrap_or_default() {
                f(item)?;
            }
        }
        Ok(())
    }

    /// Every task of a run, page by page (strongly consistent), handed to `f` one record at
    /// a time so that callers keep only what they need.
    pub async fn for_each_task(&self, run_id: &str, mut f: impl FnMut(TaskRecord) -> Result<()>) -> Result<()> {
        self.for_each_task_item(run_id, |item| f(TaskRecord::from_item(item)?)).await
    }

    /// A conditional UpdateItem of the item `key` of `table` (the runs or the tasks table):
    /// `true` when written, `false` when its condition failed.
    pub(crate) async fn update_if(&self, table: &str, key: Item, update: UpdateExpr, operation: &str) -> Result<bool> {
        let res = update.apply(self.db.update_item().table_name(table).set_key(Some(key))).send().await;
        Ok(conditional(operation, res)?.is_some())
    }

    /// Every task of a run, collected.
    pub async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>> {
        let mut out = Vec::new();
        self.for_each_task(run_id, |t| {
            out.push(t);
            Ok(())
        })
        .await?;
        Ok(out)
    }
}
