//! `arcctl runs start`: starts a new run's execution. The input is validated by Initialize's
//! own function (`arc_handlers::initialize::validate_new_run`), so an input Initialize would
//! reject starts nothing (exit 2, naming the field). A task list whose JSON would not fit an
//! execution input goes to the results bucket (`runs/inputs/<name>.json`, passed as
//! `task_ids_s3`). The execution is named after the input and the current minute, so the same
//! command repeated within the minute (or with the same `--name`) starts one execution:
//! StartExecution is idempotent for the same name and input.

use super::runs::json_text;
use super::watch::{self, WatchOptions};
use super::Ctx;
use crate::aws;
use crate::exit::{emit, CliError};
use crate::table::Table;
use arc_handlers::initialize::{derive_run_id, validate_new_run, NewRunFields};
use arc_shared::ids::ConfigName;
use arc_shared::store::executions::{self, Described, ExecState, StartOutcome};
use arc_shared::store::objects::ObjectRef;
use arc_shared::time::format_ts;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// An execution input larger than this names its task list in S3 instead: Step Functions takes
/// at most 256 KiB, and the first states add their defaults to it.
pub const MAX_INLINE_INPUT_BYTES: usize = 192 * 1024;
/// Step Functions' limit on an execution name.
pub const MAX_NAME_CHARS: usize = 80;
/// The config name's share of a derived name: `run-` + config + `-YYYYMMDDHHMM-` + 8 hex ≤ 80.
const MAX_NAME_CONFIG_CHARS: usize = MAX_NAME_CHARS - "run--YYYYMMDDHHMM-".len() - 8;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub config: String,
    pub task_ids_file: Option<PathBuf>,
    pub task_ids: Vec<String>,
    pub data_source: Option<String>,
    pub triggered_by: Option<String>,
    pub commit_sha: Option<String>,
    pub state_machine_arn: Option<String>,
    pub name: Option<String>,
    /// The run's budget in US dollars (`max_cost_usd`; default: the deployment's
    /// RUN_MAX_COST_USD, else none).
    pub max_cost_usd: Option<rust_decimal::Decimal>,
    /// Follow the run like `arcctl runs watch` once started.
    pub wait: bool,
    pub interval: Duration,
}

/// Whether `name` is an execution name this command accepts: 1–80 of `[A-Za-z0-9._-]` (a
/// subset of Step Functions' charset that is also safe in S3 keys and run ids).
pub fn valid_execution_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_CHARS {
        return Err(format!("an execution name is 1-{MAX_NAME_CHARS} characters; {name:?} has {len}"));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        Some(bad) => Err(format!("execution name {name:?} contains {bad:?}; allowed: [A-Za-z0-9._-]")),
        None => Ok(()),
    }
}

/// The task ids of a `--task-ids-file`: a JSON array of strings, or one id per line (blank
/// lines and lines starting with `#` skipped).
pub fn parse_ids_file(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(trimmed).map_err(|e| format!("not a JSON array of strings: {e}"));
    }
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect())
}

/// The execution input of a new run, task ids inline: only the fields the operator gave (the
/// state machine fills in the defaults Initialize documents). Keys are sorted (serde_json's
/// map), so its text is canonical.
pub fn logical_input(fields: &NewRunFields, req: &StartRequest) -> Value {
    let mut m = Map::new();
    m.insert("config_name".into(), json!(fields.config_name));
    m.insert("task_ids".into(), json!(fields.task_ids));
    if req.data_source.is_some() {
        m.insert("data_source".into(), json!(fields.data_source));
    }
    if req.triggered_by.is_some() {
        m.insert("triggered_by".into(), json!(fields.triggered_by));
    }
    if req.commit_sha.is_some() {
        m.insert("commit_sha".into(), json!(fields.commit_sha));
    }
    if let Some(max) = req.max_cost_usd {
        m.insert("max_cost_usd".into(), arc_shared::json::decimal_to_json(max));
    }
    Value::Object(m)
}

/// `run-<config>-<YYYYMMDDHHMM>-<8 hex of sha256(canonical input)>`, at most 80 characters
/// (a long config name is cut; the digest still tells inputs apart).
pub fn execution_name(config: &ConfigName, at: DateTime<Utc>, input: &Value) -> String {
    let digest = hex::encode(Sha256::digest(input.to_string().as_bytes()));
    let config: String = config.as_str().chars().take(MAX_NAME_CONFIG_CHARS).collect();
    format!("run-{config}-{}-{}", at.format("%Y%m%d%H%M"), &digest[..8])
}

/// What StartExecution did.
#[derive(Debug, Clone)]
struct Started {
    execution_arn: String,
    start_date: DateTime<Utc>,
    /// `false`: an execution of that name and input already existed and has ended.
    new: bool,
    status: String,
}

pub async fn start(ctx: &Ctx, req: StartRequest) -> Result<(), CliError> {
    let ids = match &req.task_ids_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("--task-ids-file {}: {e}", path.display())))?;
            parse_ids_file(&text).map_err(|e| CliError::Usage(format!("--task-ids-file {}: {e}", path.display())))?
        }
        None => req.task_ids.clone(),
    };
    // Initialize's own validation: an input it would reject is a usage error naming the field.
    let fields = validate_new_run(
        Some(&req.config),
        Some(&ids),
        req.data_source.clone(),
        req.triggered_by.clone(),
        req.commit_sha.clone(),
    )?;
    let state_machine_arn = match (&req.state_machine_arn, &ctx.config.state_machine_arn) {
        (Some(a), _) | (None, Some(a)) => a.clone(),
        (None, None) => {
            return Err(CliError::Usage(
                "no state machine: set STATE_MACHINE_ARN or pass --state-machine-arn ARN".to_owned(),
            ))
        }
    };
    let logical = logical_input(&fields, &req);
    let name = match &req.name {
        Some(n) => n.clone(),
        None => execution_name(&fields.config_name, Utc::now(), &logical),
    };
    let mut input = logical.clone();
    let mut ids_at = None;
    let size = logical.to_string().len();
    if size > MAX_INLINE_INPUT_BYTES {
        let bucket = ctx.config.s3_bucket.clone().ok_or_else(|| {
            CliError::Usage(format!(
                "the execution input would be {size} bytes with {} task ids inline (at most {MAX_INLINE_INPUT_BYTES}): \
                 set S3_BUCKET (the results bucket) so the list goes to S3 as task_ids_s3",
                ids.len()
            ))
        })?;
        let at = ObjectRef { bucket, key: format!("runs/inputs/{name}.json") };
        put_ids_once(ctx, &at, &ids).await?;
        if let Some(obj) = input.as_object_mut() {
            obj.remove("task_ids");
            obj.insert("task_ids_s3".into(), json!(at.uri()));
        }
        ids_at = Some(at);
    }

    let started = start_execution(ctx, &state_machine_arn, &name, &input).await?;
    let run_id = derive_run_id(&fields.config_name, Some(&started.execution_arn), started.start_date);
    if ctx.json {
        let out = json!({
            "execution_name": name,
            "execution_arn": started.execution_arn,
            "run_id": run_id,
            "start_date": format_ts(started.start_date),
            "started": started.new,
            "execution_status": started.status,
            "total_tasks": ids.len(),
            "task_ids_s3": ids_at.as_ref().map(ObjectRef::uri),
        });
        // With --wait, JSON lines follow: keep this one on one line too.
        emit(&if req.wait { out.to_string() } else { json_text(&out)? });
    } else {
        let mut t = Table::new(["EXECUTION", name.as_str()]);
        t.row(["arn", started.execution_arn.as_str()]);
        let status = if started.new {
            "started".to_owned()
        } else {
            format!("{} (it already existed: nothing started)", started.status)
        };
        t.row(["status".to_owned(), status]);
        t.row(["run".to_owned(), format!("{run_id} (Initialize creates it)")]);
        t.row([
            "tasks".to_owned(),
            match &ids_at {
                Some(at) => format!("{} (task_ids_s3 {})", ids.len(), at.uri()),
                None => format!("{} (inline)", ids.len()),
            },
        ]);
        emit(&t.render());
        if !req.wait {
            emit(&format!("follow it: arcctl runs watch {run_id}"));
        }
    }
    if req.wait {
        let opts = WatchOptions { interval: req.interval, execution_arn: Some(started.execution_arn.clone()) };
        return watch::watch(ctx, &run_id, &opts).await;
    }
    Ok(())
}

/// Writes the id list at `at` unless that object already holds exactly this list; another list
/// there (the same `--name` reused for other tasks) is refused: the execution input names only
/// the object, so overwriting it would change what an existing execution runs.
async fn put_ids_once(ctx: &Ctx, at: &ObjectRef, ids: &[String]) -> Result<(), CliError> {
    let s3 = &ctx.clients.objects;
    match s3.get_text(at).await? {
        Some(text) => match serde_json::from_str::<Vec<String>>(&text) {
            Ok(existing) if existing == ids => Ok(()),
            _ => Err(CliError::failed(format!(
                "{} already holds another task list (an execution of that name exists for other tasks); \
                 choose another --name",
                at.uri()
            ))),
        },
        None => Ok(s3.put_json(at, &ids).await?),
    }
}

/// StartExecution `name`. An execution of that name that already exists is this run only when
/// its input is the same (a repeated command: nothing is started), else exit 1. It is looked
/// up first so that the answer says whether this command started it; StartExecution's own
/// idempotency covers two commands racing.
async fn start_execution(ctx: &Ctx, state_machine_arn: &str, name: &str, input: &Value) -> Result<Started, CliError> {
    let sfn = &ctx.clients.sfn;
    let arn = executions::execution_arn(state_machine_arn, name);
    if let Some(existing) = existing(name, &arn, input, executions::describe(sfn, &arn).await?)? {
        return Ok(existing);
    }
    match executions::start(sfn, state_machine_arn, name, &input.to_string()).await {
        Ok(StartOutcome::Started { execution_arn, started_at }) => Ok(Started {
            execution_arn,
            start_date: started_at
                .ok_or_else(|| CliError::failed(format!("StartExecution {name} answered no start date")))?,
            new: true,
            status: "RUNNING".to_owned(),
        }),
        Ok(StartOutcome::AlreadyExists(d)) => existing(name, &arn, input, d)?
            .ok_or_else(|| CliError::failed(format!("execution {name} reported as existing but not found; try again"))),
        Err(e) => match aws::state_machine(sfn, state_machine_arn).await {
            Ok(None) => Err(CliError::failed(format!(
                "state machine {state_machine_arn} does not exist (check STATE_MACHINE_ARN)"
            ))),
            _ => Err(e.into()),
        },
    }
}

/// The execution `arn` (named `name`) as described: `Some` when it exists with this very
/// input; exit 1 when it exists with another; `None` when there is none.
fn existing(name: &str, arn: &str, input: &Value, d: Described) -> Result<Option<Started>, CliError> {
    let status = match d.state {
        ExecState::Missing => return Ok(None),
        ExecState::Live => "RUNNING".to_owned(),
        ExecState::Ended(status) => status.to_string(),
    };
    let existing: Option<Value> = d.input.as_deref().and_then(|i| serde_json::from_str(i).ok());
    if existing.as_ref() != Some(input) {
        return Err(CliError::failed(format!(
            "execution {name} already exists with a different input (status {status}, started {}); \
             nothing started: choose another --name",
            d.started_at.map_or_else(|| "?".to_owned(), format_ts)
        )));
    }
    let start_date = d.started_at.ok_or_else(|| CliError::failed(format!("execution {name} has no start date")))?;
    Ok(Some(Started { execution_arn: arn.to_owned(), start_date, new: false, status }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fields(config: &str, ids: &[&str]) -> NewRunFields {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        validate_new_run(Some(config), Some(&ids), None, None, None).unwrap()
    }

    #[test]
    fn names_depend_on_the_input_and_the_minute_and_fit_step_functions() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 13, 4, 59).unwrap();
        let f = fields("gpt-4.1", &["a", "b"]);
        let input = logical_input(&f, &StartRequest::default());
        let name = execution_name(&f.config_name, at, &input);
        assert!(name.starts_with("run-gpt-4.1-202611261304-"), "{name}");
        assert_eq!(name, execution_name(&f.config_name, at + chrono::Duration::seconds(-59), &input));
        assert_ne!(name, execution_name(&f.config_name, at + chrono::Duration::seconds(1), &input));
        let other = logical_input(&fields("gpt-4.1", &["a", "c"]), &StartRequest::default());
        assert_ne!(name, execution_name(&f.config_name, at, &other));
        assert!(valid_execution_name(&name).is_ok());

        let long = fields(&"c".repeat(128), &["a"]);
        let name = execution_name(&long.config_name, at, &logical_input(&long, &StartRequest::default()));
        assert_eq!(name.chars().count(), MAX_NAME_CHARS, "{name}");
        assert!(valid_execution_name(&name).is_ok());
    }

    #[test]
    fn the_input_carries_only_what_was_given() {
        let f = fields("cfg", &["b", "a"]);
        let req = StartRequest { triggered_by: Some("ci".into()), ..StartRequest::default() };
        let f = NewRunFields { triggered_by: "ci".into(), ..f };
        let v = logical_input(&f, &req);
        assert_eq!(v.to_string(), r#"{"config_name":"cfg","task_ids":["b","a"],"triggered_by":"ci"}"#);
    }

    #[test]
    fn id_files_are_json_arrays_or_lines() {
        assert_eq!(parse_ids_file(r#" ["a", "b"] "#).unwrap(), ["a", "b"]);
        assert_eq!(parse_ids_file("a\n\n  b \n# comment\n").unwrap(), ["a", "b"]);
        assert!(parse_ids_file("[1, 2]").is_err());
    }

    #[test]
    fn execution_names_are_checked() {
        assert!(valid_execution_name("nightly-2026.11.26_a").is_ok());
        assert!(valid_execution_name("").is_err());
        assert!(valid_execution_name(&"n".repeat(81)).is_err());
        assert!(valid_execution_name("a b").is_err());
        assert!(valid_execution_name("a:b").is_err());
    }
}
