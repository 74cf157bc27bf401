//! The table schema of docs/ARCHITECTURE.md ("Data model") and what else a deployment has,
//! created in a local emulator for the tests and `arc-local` (Terraform creates them in AWS):
//! the tables, the Python set's own tables (what a deployment switching to this product
//! already has, for the tests of `arcctl doctor` / `arcctl migrate`), the results bucket and
//! a stand-in state machine. And the table reads and changes of `arcctl doctor` / `migrate`:
//! DescribeTable, adding and deleting a GSI.

use crate::error::{ArcError, Result};
use crate::store::{CONFIG_INDEX, STATUS_INDEX};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, DeleteGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, ScalarAttributeType, TableDescription,
};
use aws_sdk_dynamodb::Client;

/// The role the emulator's stand-in state machine claims (the emulator does not check it).
const STAND_IN_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/x";

/// The emulator's state machine only has to exist: the tests and the local runner, not the
/// emulator, execute the steps. Its shape mirrors the deployed one's names.
const STAND_IN_DEFINITION: &str = r#"{
  "Comment": "stand-in: executions are run by the local runner or the tests, not by the emulator",
  "StartAt": "Initialize",
  "States": {
    "Initialize": {"Type": "Pass", "Next": "ProcessTasks"},
    "ProcessTasks": {"Type": "Pass", "Next": "Aggregate"},
    "Aggregate": {"Type": "Pass", "Next": "Complete"},
    "Complete": {"Type": "Pass", "End": true}
  }
}"#;

fn attr(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| ArcError::invalid(name, e.to_string()))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| ArcError::invalid(name, e.to_string()))
}

fn all() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

fn gsi(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(all())
        .build()
        .map_err(|e| ArcError::invalid(name, e.to_string()))
}

/// Creates the runs and tasks tables (on-demand, with their GSIs).
pub async fn create_tables(db: &Client, runs: &str, tasks: &str) -> Result<()> {
    create_runs_table(db, runs).await?;
    create_tasks_table(db, tasks, true).await
}

/// Creates the tables exactly as the Python set's own definitions do (on-demand): the runs
/// table with `config-created-index` (`config_name` / `created_at`, ALL); the tasks table
/// (`run_id` / `task_id`) WITHOUT any GSI (no `status-index`); and the worker's rate-limits
/// table (hash `provider`).
pub async fn create_python_tables(db: &Client, runs: &str, tasks: &str, rate_limits: &str) -> Result<()> {
    create_runs_table(db, runs).await?;
    create_tasks_table(db, tasks, false).await?;
    db.create_table()
        .table_name(rate_limits)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("provider")?)
        .key_schema(key("provider", KeyType::Hash)?)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("CreateTable rate limits", e))?;
    Ok(())
}

/// The sweeper's breakers table (hash `config_name`, on-demand), as the Terraform module
/// creates it.
pub async fn create_breakers_table(db: &Client, breakers: &str) -> Result<()> {
    db.create_table()
        .table_name(breakers)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("config_name")?)
        .key_schema(key("config_name", KeyType::Hash)?)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("CreateTable breakers", e))?;
    Ok(())
}

/// The runs table: hash `run_id`, GSI `config-created-index`.
async fn create_runs_table(db: &Client, runs: &str) -> Result<()> {
    db.create_table()
        .table_name(runs)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("run_id")?)
        .attribute_definitions(attr("config_name")?)
        .attribute_definitions(attr("created_at")?)
        .key_schema(key("run_id", KeyType::Hash)?)
        .global_secondary_indexes(gsi(CONFIG_INDEX, "config_name", "created_at")?)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("CreateTable runs", e))?;
    Ok(())
}

/// The tasks table: hash `run_id`, range `task_id`, and `status-index` when `with_index`.
async fn create_tasks_table(db: &Client, tasks: &str, with_index: bool) -> Result<()> {
    let mut req = db
        .create_table()
        .table_name(tasks)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("run_id")?)
        .attribute_definitions(attr("task_id")?)
        .key_schema(key("run_id", KeyType::Hash)?)
        .key_schema(key("task_id", KeyType::Range)?);
    if with_index {
        req = req
            .attribute_definitions(attr("status")?)
            .attribute_definitions(attr("updated_at")?)
            .global_secondary_indexes(gsi(STATUS_INDEX, "status", "updated_at")?);
    }
    req.send().await.map_err(|e| ArcError::from_sdk("CreateTable tasks", e))?;
    Ok(())
}

/// SDK configuration for the local emulator at `endpoint`: region us-east-1 and dummy
/// credentials (nothing configured this way reaches AWS).
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    super::sdk_defaults()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "emulator"))
        .load()
        .await
}

/// Creates the results bucket `bucket`.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk(&format!("CreateBucket {bucket}"), e))?;
    Ok(())
}

/// Creates a stand-in state machine `name` in the emulator, which stores its executions and
/// never runs them (a started one stays RUNNING until StopExecution); returns its ARN.
pub async fn create_stand_in_state_machine(sfn: &aws_sdk_sfn::Client, name: &str) -> Result<String> {
    let out = sfn
        .create_state_machine()
        .name(name)
        .definition(STAND_IN_DEFINITION)
        .role_arn(STAND_IN_ROLE_ARN)
        .send()
        .await
        .map_err(|e| ArcError::from_sdk(&format!("CreateStateMachine {name}"), e))?;
    Ok(out.state_machine_arn().to_owned())
}

/// DescribeTable `table`: `None` when it does not exist.
pub async fn describe_table(db: &Client, table: &str) -> Result<Option<TableDescription>> {
    match db.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(ArcError::from_sdk(&format!("DescribeTable {table}"), e)),
    }
}

/// A GSI to add: `hash` / `range` (strings), projection ALL.
#[derive(Debug, Clone, Copy)]
pub struct NewIndex<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub range: &'a str,
    /// Read / write capacity for an index of a provisioned table (`None` on an on-demand one).
    pub capacity: Option<(i64, i64)>,
}

/// Asks DynamoDB to add `index` to `table` (described as `t`, whose attribute definitions the
/// request repeats). DynamoDB builds it from the existing items while the table stays online:
/// [`describe_table`] tells when it is ACTIVE.
pub async fn create_index(db: &Client, table: &str, t: &TableDescription, index: &NewIndex<'_>) -> Result<()> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| ArcError::invalid(index.name, e.to_string());
    let mut action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(index.name)
        .key_schema(key(index.hash, KeyType::Hash)?)
        .key_schema(key(index.range, KeyType::Range)?)
        .projection(all());
    if let Some((read, write)) = index.capacity {
        action = action.provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(read)
                .write_capacity_units(write)
                .build()
                .map_err(invalid)?,
        );
    }
    // UpdateTable takes the key attributes of the table and of every index being created.
    let mut definitions: Vec<AttributeDefinition> = t.attribute_definitions().to_vec();
    for k in [index.hash, index.range] {
        if !definitions.iter().any(|d| d.attribute_name() == k) {
            definitions.push(attr(k)?);
        }
    }
    db.update_table()
        .table_name(table)
        .set_attribute_definitions(Some(definitions))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(action.build().map_err(invalid)?).build(),
        )
        .send()
        .await
        .map_err(|e| ArcError::from_sdk(&format!("UpdateTable {table}"), e))?;
    Ok(())
}

/// Asks DynamoDB to delete the GSI `index` of `table` (it is DELETING, then gone).
pub async fn delete_index(db: &Client, table: &str, index: &str) -> Result<()> {
    let delete = DeleteGlobalSecondaryIndexAction::builder()
        .index_name(index)
        .build()
        .map_err(|e| ArcError::invalid(index, e.to_string()))?;
    db.update_table()
        .table_name(table)
        .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().delete(delete).build())
        .send()
        .await
        .map_err(|e| ArcError::from_sdk(&format!("UpdateTable {table}"), e))?;
    Ok(())
}
