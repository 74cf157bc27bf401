//! The table schema of docs/ARCHITECTURE.md ("Data model"), for tests and the local runner (Terraform creates the
//! same tables in AWS), and the Python set's own tables (what a deployment switching to this
//! product already has), for the tests of `arcctl doctor` / `arcctl migrate`.

use crate::error::{ArcError, Result};
use crate::store::{CONFIG_INDEX, STATUS_INDEX};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

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

fn gsi(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
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
