//! initialize — creates the run and its PENDING task records, or, for a retry execution,
//! re-opens the listed tasks.
//!
//! In: `arc_shared::contracts::NewRunInput` (`task_ids_s3` = `s3://bucket/key` of a JSON
//! array of ids, for lists too large for the 256 KiB execution input), or `InitializeRetryInput` when
//! `retry` is `true`. Out: `InitializeOutput` (`items` = the Map's item list in S3 when
//! `S3_BUCKET` is set; `task_ids` left out when its JSON exceeds [`MAX_INLINE_IDS_BYTES`]).
//!
//! Given the execution, the run id is derived from it, so a repeated Initialize of one
//! execution yields the same run with all its tasks, not a second run. The run item carries
//! every roll-up the Python worker's arithmetic touches (`RUN_ROLLUPS`), as numbers.

pub use arc_shared::contracts::InitializeOutput as Output;
use arc_shared::contracts::{InitializeRetryInput, NewRunInput, Skipped};
use arc_shared::ids::{ConfigName, RunId, TaskId};
use arc_shared::input::{optional_arn, parse_event};
use arc_shared::records::RunRecord;
use arc_shared::runtime::Env;
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::objects::ObjectRef;
use arc_shared::store::{NewRun as NewRunItem, Tables};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// At most this many task ids per run.
pub const MAX_TASKS: usize = 10_000;
/// Conditional task updates in flight at once (retry mode).
const UPDATE_CONCURRENCY: usize = 16;
/// `task_ids` is in the answer only while its JSON is at most this large: a Lambda result the
/// state machine receives must stay far below its 256 KiB payload limit.
pub const MAX_INLINE_IDS_BYTES: usize = 64 * 1024;
/// Free-text fields of a new run: longer values are rejected naming the field.
pub const MAX_TEXT_CHARS: usize = 256;
/// `commit_sha`: a SHA-1 or SHA-256 in hex, or a short ref.
pub const MAX_COMMIT_SHA_CHARS: usize = 64;

/// The entry point: a retry when the event says `retry: true`, else a new run.
pub async fn handle(env: Arc<Env>, event: Value) -> Result<Output> {
    match event.get("retry") {
        Some(Value::Bool(true)) => {
            let input: InitializeRetryInput = parse_event(event)?;
            let config_name = parse_config_name(Some(&input.config_name))?;
            let task_ids = parse_task_ids(Some(&input.task_ids))?;
            let run_id = RunId::parse(input.run_id).map_err(|e| ArcError::invalid("run_id", e.0))?;
            let execution_arn = optional_arn("execution_arn", input.execution_arn)?;
            Box::pin(reopen(&env, run_id, config_name, task_ids, execution_arn)).await
        }
        None | Some(Value::Bool(false)) | Some(Value::Null) => {
            let input: NewRunInput = parse_event(event)?;
            Box::pin(create(&env, new_run(&env, input).await?)).await
        }
        Some(other) => Err(ArcError::invalid("retry", format!("must be true or false, got {other}"))),
    }
}

/// A new run's event, validated (the id list read from S3 when given there).
async fn new_run(env: &Env, input: NewRunInput) -> Result<NewRun> {
    let (ids, from_s3) = match (input.task_ids, input.task_ids_s3.filter(|u| !u.is_empty())) {
        (Some(_), Some(_)) => return Err(ArcError::invalid("task_ids_s3", "give task_ids or task_ids_s3, not both")),
        (None, Some(uri)) => {
            let at = ObjectRef::parse_uri(&uri)
                .ok_or_else(|| ArcError::invalid("task_ids_s3", format!("{uri:?} is not an s3://bucket/key URI")))?;
            (Some(env.clients.objects.get_string_list(&at, "task_ids_s3").await?), true)
        }
        (ids, None) => (ids, false),
    };
    let fields = validate_new_run(
        Some(input.config_name.as_str()),
        ids.as_deref(),
        input.data_source,
        input.triggered_by,
        input.commit_sha,
    )
    .map_err(|e| if from_s3 { rename_field(e, "task_ids", "task_ids_s3") } else { e })?;
    let start_time =
        match input.execution_start_time.as_deref() {
            Some(t) => Some(parse_ts(t).ok_or_else(|| {
                ArcError::invalid("execution_start_time", format!("{t:?} is not an RFC 3339 timestamp"))
            })?),
            None => None,
        };
    Ok(NewRun {
        config_name: fields.config_name,
        task_ids: fields.task_ids,
        data_source: fields.data_source,
        triggered_by: fields.triggered_by,
        commit_sha: fields.commit_sha,
        execution_arn: optional_arn("execution_arn", input.execution_arn)?,
        start_time,
        max_cost_usd: match input.max_cost_usd {
            None | Some(Value::Null) => env.config.run_max_cost_usd,
            Some(v) => Some(parse_budget(&v)?),
        },
    })
}

/// A run's budget: a positive number of US dollars (a JSON number, or a numeric string).
pub fn parse_budget(v: &Value) -> Result<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(ArcError::invalid("max_cost_usd", format!("must be a positive number, got {other}"))),
    };
    arc_shared::budget::parse_usd(&text).ok_or_else(|| {
        ArcError::invalid("max_cost_usd", format!("must be a positive number of US dollars, got {text:?}"))
    })
}

/// A new run's fields, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRunFields {
    pub config_name: ConfigName,
    pub task_ids: Vec<TaskId>,
    pub data_source: String,
    pub triggered_by: String,
    pub commit_sha: String,
}

/// Validates a new run's input exactly as Initialize does (the same rules, the same
/// `InvalidInput` naming the field, defaults filled in): `arcctl runs start` calls it before
/// it starts an execution, so an input Initialize would reject starts nothing. Pure.
pub fn validate_new_run(
    config_name: Option<&str>,
    task_ids: Option<&[String]>,
    data_source: Option<String>,
    triggered_by: Option<String>,
    commit_sha: Option<String>,
) -> Result<NewRunFields> {
    Ok(NewRunFields {
        config_name: parse_config_name(config_name)?,
        task_ids: parse_task_ids(task_ids)?,
        data_source: bounded_text("data_source", data_source, "evaluation", MAX_TEXT_CHARS)?,
        triggered_by: bounded_text("triggered_by", triggered_by, "unknown", MAX_TEXT_CHARS)?,
        commit_sha: bounded_text("commit_sha", commit_sha, "", MAX_COMMIT_SHA_CHARS)?,
    })
}

/// A free-text field: its default when absent, `InvalidInput` naming it when longer than `max`
/// characters (an item must stay far below DynamoDB's 400 KB).
fn bounded_text(field: &str, v: Option<String>, default: &str, max: usize) -> Result<String> {
    let v = v.unwrap_or_else(|| default.to_owned());
    let chars = v.chars().count();
    if chars > max {
        return Err(ArcError::invalid(field, format!("{chars} characters; at most {max}")));
    }
    Ok(v)
}

fn rename_field(e: ArcError, from: &str, to: &str) -> ArcError {
    match e {
        ArcError::InvalidInput { field, message } => {
            ArcError::InvalidInput { field: field.replacen(from, to, 1), message }
        }
        other => other,
    }
}

/// The answer's task ids, unless their JSON would make the answer too large.
fn inline_ids(ids: &[String]) -> Option<Vec<String>> {
    let bytes: usize = ids.iter().map(|i| i.len() + 3).sum();
    (bytes <= MAX_INLINE_IDS_BYTES).then(|| ids.to_vec())
}

/// Writes the ids this execution's Map processes to the results bucket (when there is one).
async fn write_items(
    env: &Env,
    run_id: &str,
    execution_arn: Option<&str>,
    ids: &[String],
) -> Result<Option<ObjectRef>> {
    let Some(bucket) = &env.config.s3_bucket else { return Ok(None) };
    let name = execution_arn.and_then(|a| a.rsplit(':').next()).unwrap_or("manual");
    let at = ObjectRef { bucket: bucket.clone(), key: format!("runs/{run_id}/items/{name}.json") };
    env.clients.objects.put_json(&at, &ids).await?;
    Ok(Some(at))
}

fn parse_config_name(v: Option<&str>) -> Result<ConfigName> {
    match v {
        None => Err(ArcError::invalid("config_name", "is required")),
        Some(v) => ConfigName::parse(v).map_err(|e| ArcError::invalid("config_name", e.0)),
    }
}

/// Validates the task id list: present, non-empty, at most [`MAX_TASKS`], each id valid,
/// no duplicates (all listed).
pub fn parse_task_ids(v: Option<&[String]>) -> Result<Vec<TaskId>> {
    let ids = v.ok_or_else(|| ArcError::invalid("task_ids", "is required"))?;
    if ids.is_empty() {
        return Err(ArcError::invalid("task_ids", "must not be empty"));
    }
    if ids.len() > MAX_TASKS {
        return Err(ArcError::invalid("task_ids", format!("{} ids given; at most {MAX_TASKS} per run", ids.len())));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    let mut dups = BTreeSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let t = TaskId::parse(id.as_str()).map_err(|e| ArcError::invalid(format!("task_ids[{i}]"), e.0))?;
        if !seen.insert(id.as_str()) {
            dups.insert(id.as_str());
        }
        out.push(t);
    }
    if !dups.is_empty() {
        let list: Vec<&str> = dups.into_iter().collect();
        return Err(ArcError::invalid("task_ids", format!("duplicate ids: {}", list.join(", "))));
    }
    Ok(out)
}

struct NewRun {
    config_name: ConfigName,
    task_ids: Vec<TaskId>,
    data_source: String,
    triggered_by: String,
    commit_sha: String,
    execution_arn: Option<String>,
    start_time: Option<DateTime<Utc>>,
    max_cost_usd: Option<Decimal>,
}

/// `run-{config_name}-{YYYYMMDD-HHMMSS}-{8 hex}`; the hex and time come from the execution
/// when there is one (so the id is the same on every Initialize of that execution).
pub fn derive_run_id(config: &ConfigName, execution_arn: Option<&str>, start: DateTime<Utc>) -> String {
    let hex = match execution_arn {
        Some(arn) => hex::encode(Sha256::digest(arn.as_bytes()))[..8].to_owned(),
        None => uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };
    format!("run-{}-{}-{hex}", config, start.format("%Y%m%d-%H%M%S"))
}

async fn create(env: &Env, new: NewRun) -> Result<Output> {
    let now = env.clock.now();
    if new.execution_arn.is_some() && new.start_time.is_none() {
        tracing::warn!("execution_arn given without execution_start_time: a repeated Initialize cannot find this run");
    }
    let run_id = derive_run_id(&new.config_name, new.execution_arn.as_deref(), new.start_time.unwrap_or(now));
    let tables = env.tables();
    let ts = format_ts(now);
    let item = NewRunItem {
        run_id: &run_id,
        config_name: new.config_name.as_str(),
        data_source: &new.data_source,
        triggered_by: &new.triggered_by,
        commit_sha: &new.commit_sha,
        total_tasks: new.task_ids.len(),
        execution_arn: new.execution_arn.as_deref(),
        now: &ts,
        max_cost_usd: new.max_cost_usd,
    };
    let existing_ids: HashSet<String> = if tables.create_run(&item).await? {
        HashSet::new()
    } else {
        let existing = tables.require_run(&run_id).await?;
        if new.execution_arn.is_none() || existing.execution_arn != new.execution_arn {
            return Err(ArcError::Conflict(format!("run {run_id} already exists for another execution")));
        }
        if existing.status == RunStatus::Cancelled {
            return Err(ArcError::run_cancelled(&run_id));
        }
        tracing::info!(run_id, "repeated Initialize of the same execution: completing the existing run");
        existing_task_ids(&tables, &run_id).await?
    };
    let missing = new.task_ids.iter().map(|t| t.as_str()).filter(|t| !existing_ids.contains(*t));
    let written = tables.put_pending_tasks(&run_id, missing, &ts).await?;
    let ids: Vec<String> = new.task_ids.iter().map(|t| t.as_str().to_owned()).collect();
    let items = write_items(env, &run_id, new.execution_arn.as_deref(), &ids).await?;
    tracing::info!(run_id, config_name = %new.config_name, total_tasks = ids.len(), written, "run initialized");
    Ok(Output {
        run_id,
        task_ids: inline_ids(&ids),
        config_name: new.config_name.as_str().to_owned(),
        total_tasks: ids.len() as u64,
        items,
        retry: None,
        skipped: None,
    })
}

async fn existing_task_ids(tables: &Tables, run_id: &str) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    tables
        .for_each_task(run_id, |t| {
            ids.insert(t.task_id);
            Ok(())
        })
        .await?;
    Ok(ids)
}

/// What retry mode did with one listed task.
enum Reopen {
    Reopened(String),
    Skipped { task_id: String, status: String },
}

async fn reopen(
    env: &Env,
    run_id: RunId,
    config_name: ConfigName,
    task_ids: Vec<TaskId>,
    execution_arn: Option<String>,
) -> Result<Output> {
    let tables = env.tables();
    let run = tables.require_run(run_id.as_str()).await?;
    if run.status == RunStatus::Cancelled {
        // Nothing is re-opened: a cancelled run's tasks stay as they are until it is resumed.
        return Err(ArcError::run_cancelled(run_id.as_str()));
    }
    let mut stored = HashMap::new();
    tables
        .for_each_task(run_id.as_str(), |t| {
            if let Some(listed) = task_ids.iter().find(|id| id.as_str() == t.task_id) {
                stored.insert(listed.clone(), t);
            }
            Ok(())
        })
        .await?;
    let missing: Vec<&str> = task_ids.iter().filter(|t| !stored.contains_key(*t)).map(|t| t.as_str()).collect();
    if !missing.is_empty() {
        return Err(ArcError::task_not_found(run_id.as_str(), missing.join(", ")));
    }
    let execution_name = execution_arn.as_deref().and_then(|a| a.rsplit(':').next()).map(str::to_owned);
    let now = format_ts(env.clock.now());
    let rid = run_id.as_str();
    let outcomes: Vec<Result<Reopen>> = stream::iter(task_ids.iter().map(|id| {
        let task = stored.remove(id);
        let tables = &tables;
        let execution_name = execution_name.clone();
        let now = now.clone();
        async move {
            let Some(task) = task else {
                return Err(ArcError::task_not_found(rid, id.as_str()));
            };
            let ours = execution_name.is_some() && task.retry_execution == execution_name;
            match task.status {
                TaskStatus::Pending if ours => return Ok(Reopen::Reopened(task.task_id)),
                TaskStatus::Failed | TaskStatus::RetryQueued => {}
                other => return Ok(Reopen::Skipped { task_id: task.task_id, status: other.to_string() }),
            }
            if tables.reopen_task(&task, execution_name.as_deref(), &now).await? {
                return Ok(Reopen::Reopened(task.task_id));
            }
            // The condition failed: someone changed the task, or the write was ours and only its
            // answer was lost (the SDK's retry then finds the task already re-opened by us).
            match tables.get_task(rid, &task.task_id).await? {
                Some(now)
                    if execution_name.is_some()
                        && now.status == TaskStatus::Pending
                        && now.retry_execution == execution_name
                        && now.retry_count == task.retry_count =>
                {
                    Ok(Reopen::Reopened(task.task_id))
                }
                _ => Ok(Reopen::Skipped { task_id: task.task_id, status: "changed concurrently".to_owned() }),
            }
        }
    }))
    .buffered(arc_shared::store::concurrency(UPDATE_CONCURRENCY))
    .collect()
    .await;
    let mut reopened = Vec::new();
    let mut skipped = Vec::new();
    for o in outcomes {
        match o? {
            Reopen::Reopened(t) => reopened.push(t),
            Reopen::Skipped { task_id, status } => {
                tracing::info!(run_id = %run_id, task_id, status, "retry: task not re-opened");
                skipped.push(Skipped { task_id, status });
            }
        }
    }
    mark_running(&tables, &run, execution_arn.as_deref(), &now).await?;
    let items = write_items(env, run_id.as_str(), execution_arn.as_deref(), &reopened).await?;
    tracing::info!(run_id = %run_id, reopened = reopened.len(), skipped = skipped.len(), "retry initialized");
    Ok(Output {
        run_id: run_id.as_str().to_owned(),
        task_ids: inline_ids(&reopened),
        config_name: config_name.as_str().to_owned(),
        total_tasks: run.total_tasks,
        items,
        retry: Some(true),
        skipped: Some(skipped),
    })
}

/// The run is RUNNING with this execution (a legacy run gets the worker's roll-ups). Never a
/// CANCELLED run (cancelled since it was read): that is the `Conflict` naming resume.
async fn mark_running(tables: &Tables, run: &RunRecord, execution_arn: Option<&str>, now: &str) -> Result<()> {
    if !tables.mark_running(&run.run_id, execution_arn, now).await? {
        return Err(match tables.get_run(&run.run_id).await? {
            Some(current) if current.status == RunStatus::Cancelled => ArcError::run_cancelled(&run.run_id),
            _ => ArcError::RunNotFound(run.run_id.clone()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_id_is_derived_from_the_execution() {
        let c = ConfigName::parse("gpt-4o").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 13, 4, 5).unwrap();
        let a = derive_run_id(&c, Some("arn:aws:states:us-east-1:1:execution:sm:e1"), t);
        assert_eq!(a, derive_run_id(&c, Some("arn:aws:states:us-east-1:1:execution:sm:e1"), t));
        assert!(a.starts_with("run-gpt-4o-20261126-130405-"), "{a}");
        assert_eq!(a.len(), "run-gpt-4o-20261126-130405-".len() + 8);
        assert_ne!(a, derive_run_id(&c, Some("arn:aws:states:us-east-1:1:execution:sm:e2"), t));
        assert_ne!(derive_run_id(&c, None, t), derive_run_id(&c, None, t));
    }

    #[test]
    fn a_new_run_is_validated_field_by_field_with_initializes_defaults() {
        let ids = vec!["t1".to_owned(), "t2".to_owned()];
        let ok = validate_new_run(Some("gpt-4.1"), Some(&ids), None, None, None).unwrap();
        assert_eq!(ok.config_name.as_str(), "gpt-4.1");
        assert_eq!(ok.task_ids.len(), 2);
        assert_eq!(
            (ok.data_source.as_str(), ok.triggered_by.as_str(), ok.commit_sha.as_str()),
            ("evaluation", "unknown", "")
        );
        let field = |r: Result<NewRunFields>| match r {
            Err(ArcError::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(validate_new_run(None, Some(&ids), None, None, None)), "config_name");
        assert_eq!(field(validate_new_run(Some("a b"), Some(&ids), None, None, None)), "config_name");
        let bad = vec!["t1".to_owned(), "t/2".to_owned()];
        assert_eq!(field(validate_new_run(Some("c"), Some(&bad), None, None, None)), "task_ids[1]");
        assert_eq!(field(validate_new_run(Some("c"), Some(&ids), Some("d".repeat(257)), None, None)), "data_source");
        assert_eq!(field(validate_new_run(Some("c"), Some(&ids), None, Some("w".repeat(257)), None)), "triggered_by");
        assert_eq!(field(validate_new_run(Some("c"), Some(&ids), None, None, Some("f".repeat(65)))), "commit_sha");
    }

    #[test]
    fn task_id_rules() {
        let v = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_task_ids(Some(&v(&["a", "b"]))).is_ok());
        let field = |r: Result<Vec<TaskId>>| match r {
            Err(ArcError::InvalidInput { field, message }) => format!("{field}: {message}"),
            other => panic!("{other:?}"),
        };
        assert!(field(parse_task_ids(None)).starts_with("task_ids: is required"));
        assert!(field(parse_task_ids(Some(&[]))).starts_with("task_ids: must not be empty"));
        assert!(field(parse_task_ids(Some(&v(&["a", "b c"])))).starts_with("task_ids[1]"));
        assert_eq!(field(parse_task_ids(Some(&v(&["a", "b", "a", "b", "c"])))), "task_ids: duplicate ids: a, b");
        let many: Vec<String> = (0..10_001).map(|i| format!("t{i}")).collect();
        assert!(field(parse_task_ids(Some(&many))).contains("at most 10000"));
    }
}
