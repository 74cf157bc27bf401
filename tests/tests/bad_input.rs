//! Bad input and bad data (the reliability issue's "bad input" half):
//!
//! - the malformed-event corpus (`tests/fixtures/malformed/<function>/<name>.json`, each
//!   fixture's expected outcome in that folder's `expect.json`; the huge ones — 10,001 ids, 1 MB
//!   strings, 10 MB Causes, deep nesting — built at test time from `generated.json`), fed as
//!   raw bytes through the runtime's parse (`arc_shared::input::event_from_slice`) into each
//!   function's library entry point against moto: `InvalidInput` naming the expected field,
//!   a bounded error, both tables, the bucket and the executions unchanged, no panic; a
//!   malformed Batch Cause is recorded, redacted and bounded instead;
//! - the same corpus through the five built binaries, with AWS keys and a session token in their
//!   environment: the same answers, and no credential or planted secret in any log line or output;
//! - items other tools wrote with wrong-typed or missing attributes: `CorruptItem` naming the
//!   item and the attribute with nothing written, read leniently where the README says so, and
//!   reported (not fatal) by the sweeper;
//! - property-based fuzzing (proptest) of the event parsers and the Batch Cause parser/redactor,
//!   seeded with the corpus: `ARC_FUZZ_CASES` cases per property (default 256; 4,096 with
//!   `ARC_RELIABILITY=full`).
//!
//! Each scenario appends its JSON line to `$ARC_RELIABILITY_OUT` (RELIABILITY.md).

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::chaos::{by_mode, scenario, Scenario};
use arc_integration_tests::runtime_api::{invoke_raw, Outcome};
use arc_integration_tests::{lambda_binary, repo_root, JsonAnswer, TestEnv};
use arc_shared::contracts::{AggregateInput, CompleteInput, HandleErrorInput, InitializeRetryInput, NewRunInput};
use arc_shared::failure::{parse_batch_cause, redact_cause, MAX_CAUSE_CHARS};
use arc_shared::ids::RunId;
use arc_shared::input::{check_len, event_from_slice, optional_arn, parse_event, MAX_ARN_CHARS};
use arc_shared::records::{n, s, Item};
use arc_shared::runtime::Env;
use arc_shared::store::objects::ObjectRef;
use arc_shared::time::{format_ts, parse_ts, SystemClock};
use arc_shared::ArcError;
use arc_sweeper::{parse_request, sweep, SweepDeps, SweepRequest};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The run every fixture names: what Initialize derives from [`ARN`] and its start time.
const RUN: &str = "run-bad-input-20261126-130000-694ef342";
const ARN: &str = "arn:aws:states:us-east-1:123456789012:execution:arc:bad-input";
/// Planted in every Cause fixture under a key that must be redacted; never stored, returned
/// or logged.
const SECRET: &str = "sk-fixture-secret";
const FUNCTIONS: [&str; 5] = ["initialize", "handle-error", "aggregate", "complete", "sweeper"];
/// An `InvalidInput`'s `field: message` is at most this many characters (256 + 1,000 + the
/// cut marks and separator).
const MAX_ERROR_CHARS: usize = 1_300;

// ------------------------------------------------------------------ the corpus

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// `InvalidInput` naming exactly this field.
    Field(String),
    /// `InvalidInput` whose field starts so (a 1 MB key is named cut short).
    FieldPrefix(String),
    /// A Batch Cause: recorded (redacted, bounded) on its task.
    Recorded,
}

#[derive(Debug, Clone)]
struct Fixture {
    function: String,
    name: String,
    body: Arc<Vec<u8>>,
    expect: Expect,
}

impl Fixture {
    fn id(&self) -> String {
        format!("{}/{}", self.function, self.name)
    }
}

fn malformed_dir() -> PathBuf {
    repo_root().join("tests/fixtures/malformed")
}

fn parse_expect(v: &Value) -> Expect {
    if let Some(f) = v.get("field").and_then(Value::as_str) {
        Expect::Field(f.to_owned())
    } else if let Some(f) = v.get("field_prefix").and_then(Value::as_str) {
        Expect::FieldPrefix(f.to_owned())
    } else if v.get("recorded") == Some(&Value::Bool(true)) {
        Expect::Recorded
    } else {
        panic!("unknown expectation {v}")
    }
}

/// The committed fixtures; every `.json` file has an expectation and every expectation a file.
fn committed() -> Vec<Fixture> {
    let mut out = Vec::new();
    for function in FUNCTIONS {
        let dir = malformed_dir().join(function);
        let expect: BTreeMap<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap()).unwrap();
        let mut files = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = name.strip_suffix(".json").filter(|s| *s != "expect") {
                files.insert(stem.to_owned());
            }
        }
        let named: BTreeSet<String> = expect.keys().cloned().collect();
        assert_eq!(files, named, "{function}: fixtures and expect.json must name the same cases");
        for (name, e) in expect {
            let body = std::fs::read(dir.join(format!("{name}.json"))).unwrap();
            out.push(Fixture { function: function.to_owned(), name, body: Arc::new(body), expect: parse_expect(&e) });
        }
    }
    out
}

/// A 10 MB Batch Cause (as the JSON string the event carries), secrets under sensitive keys.
fn ten_mb_cause(kind: &str) -> String {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let text = match kind {
        "text" => {
            format!("CannotStartContainerError: Command python --key {SECRET}-text failed {}", "x".repeat(TEN_MB))
        }
        "json" | "truncated" => {
            let doc = json!({"JobId": "job-10mb", "StatusReason": "r".repeat(TEN_MB),
                             "Container": {"Environment": [{"Name": "OPENAI_API_KEY", "Value": format!("{SECRET}-10mb")}]},
                             "Attempts": [{"Container": {"ExitCode": 137, "Reason": "OutOfMemoryError"}}]})
            .to_string();
            if kind == "json" {
                doc
            } else {
                doc[..doc.len() - 40].to_owned()
            }
        }
        "nested" => format!("{}{{\"Command\": \"{SECRET}-nested\"}}{}", "[".repeat(10_000), "]".repeat(10_000)),
        other => panic!("unknown cause kind {other}"),
    };
    serde_json::to_string(&text).unwrap()
}

/// What a `gen` of generated.json makes: JSON text.
fn generate(gen: &Value) -> String {
    let num = |k: &str| gen.get(k).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(count) = num("ids") {
        let len = num("len").unwrap_or(6);
        let ids: Vec<String> = (0..count).map(|i| format!("t{i:0>w$}", w = len - 1)).collect();
        serde_json::to_string(&ids).unwrap()
    } else if let Some(count) = num("same_ids") {
        serde_json::to_string(&vec!["t1"; count]).unwrap()
    } else if let Some(count) = num("string") {
        let c = gen.get("char").and_then(Value::as_str).unwrap_or("x");
        serde_json::to_string(&c.repeat(count)).unwrap()
    } else if let Some(count) = num("digits") {
        "1".repeat(count)
    } else if let Some(depth) = num("nested") {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    } else if let Some(kind) = gen.get("cause").and_then(Value::as_str) {
        ten_mb_cause(kind)
    } else {
        panic!("unknown gen {gen}")
    }
}

/// The fixtures too large to commit, built from the manifest.
fn generated() -> Vec<Fixture> {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(malformed_dir().join("generated.json")).unwrap()).unwrap();
    doc["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let template = g["template"].as_str().unwrap();
            assert!(template.contains("\"@GEN\""), "{g}");
            let body = template.replace("\"@GEN\"", &generate(&g["gen"]));
            Fixture {
                function: g["function"].as_str().unwrap().to_owned(),
                name: g["name"].as_str().unwrap().to_owned(),
                body: Arc::new(body.into_bytes()),
                expect: parse_expect(&g["expect"]),
            }
        })
        .collect()
}

fn corpus() -> Vec<Fixture> {
    let mut all = committed();
    all.extend(generated());
    let names: BTreeSet<String> = all.iter().map(Fixture::id).collect();
    assert_eq!(names.len(), all.len(), "fixture names are unique per function");
    all
}

// ------------------------------------------------------------------ the world

/// One test's tables, bucket and state machine, with the run every fixture names: tasks t1
/// (FAILED: a sweep would have work), t2 (the Causes' task) and t3. `MAX_RETRIES` is high so
/// that recording many Causes on t2 never makes it permanent (which would touch the run).
struct World {
    t: TestEnv,
    state_machine: String,
    deps: SweepDeps,
}

async fn world() -> World {
    let t = TestEnv::new(&[("MAX_RETRIES", "100")]).await;
    let state_machine = t.create_state_machine(&format!("bad-input-{}", t.config.runs_table)).await;
    let deps = t.sweep_deps(&state_machine, Arc::new(SystemClock));
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "bad-input", "task_ids": ["t1", "t2", "t3"], "execution_arn": ARN,
               "execution_start_time": "2026-11-26T13:00:00Z", "triggered_by": "bad-input-test"}),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(out["run_id"], RUN, "the fixtures name the run Initialize derives");
    let cause = json!({"JobId": "job-seed-t1", "StatusReason": "Essential container in task exited",
                       "Attempts": [{"Container": {"ExitCode": 1}}]})
    .to_string();
    let failed = handle_error::handle(
        t.env(),
        json!({"run_id": RUN, "task_id": "t1", "error": {"Error": "States.TaskFailed", "Cause": cause}}),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(failed["status"], "RETRY_SCHEDULED");
    World { t, state_machine, deps }
}

/// Everything a malformed event could have written: both tables, the bucket's keys, the
/// state machine's executions.
async fn state(w: &World) -> Vec<String> {
    let mut out = w.t.snapshot().await;
    let objects = w.t.clients.s3().list_objects_v2().bucket(&w.t.bucket).send().await.unwrap();
    out.extend(objects.contents().iter().map(|o| format!("s3: {}", o.key().unwrap_or_default())));
    let execs = w.t.clients.sfn.list_executions().state_machine_arn(&w.state_machine).send().await.unwrap();
    out.extend(execs.executions().iter().map(|e| format!("execution: {}", e.name())));
    out
}

/// One function called as its Lambda is: the raw body parsed as the runtime parses it, then
/// the library entry point (for the sweeper: its request parsing, then the sweep).
async fn call(env: Arc<Env>, deps: SweepDeps, function: String, body: Arc<Vec<u8>>) -> Result<Value, ArcError> {
    let event = event_from_slice(&body)?;
    match function.as_str() {
        "initialize" => initialize::handle(env, event).await.json(),
        "handle-error" => handle_error::handle(env, event).await.json(),
        "aggregate" => aggregate::handle(env, event).await.json(),
        "complete" => complete::handle(env, event).await.json(),
        "sweeper" => {
            let request = parse_request(event)?;
            let summary = Box::pin(sweep(&deps, request)).await?;
            Ok(serde_json::to_value(summary).unwrap())
        }
        other => panic!("unknown function {other}"),
    }
}

/// The call with its panic caught, so that a panic is a finding, not the end of the test.
async fn call_caught(w: &World, f: &Fixture) -> Result<Result<Value, ArcError>, String> {
    let fut = call(w.t.env(), w.deps.clone(), f.function.clone(), f.body.clone());
    std::panic::AssertUnwindSafe(fut).catch_unwind().await.map_err(|p| {
        let text = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
        format!("panicked: {}", text.unwrap_or_default())
    })
}

/// Whether an error is the `InvalidInput` `expect` asks for; the reason when it is not.
fn check_invalid(expect: &Expect, r: &Result<Value, ArcError>) -> Result<(), String> {
    let (field, message) = match r {
        Err(ArcError::InvalidInput { field, message }) => (field, message),
        Err(e) => return Err(format!("{}: {}", e.error_type(), cut(&e.to_string()))),
        Ok(v) => return Err(format!("accepted: {}", cut(&v.to_string()))),
    };
    let named = match expect {
        Expect::Field(want) => field == want,
        Expect::FieldPrefix(want) => field.starts_with(want.as_str()),
        Expect::Recorded => false,
    };
    if !named {
        return Err(format!("InvalidInput names {field:?}, expected {expect:?} ({})", cut(message)));
    }
    let chars = field.chars().count() + 2 + message.chars().count();
    if chars > MAX_ERROR_CHARS {
        return Err(format!("error of {chars} characters"));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 160 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(160).collect::<String>())
    }
}

fn verdict(failures: &[String]) -> Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of the cases failed: {}", failures.len(), failures.join(" | ")))
    }
}

// ------------------------------------------------------------------ malformed events

#[tokio::test]
async fn malformed_events_are_rejected_naming_the_field_and_write_nothing() {
    let fixtures: Vec<Fixture> = corpus().into_iter().filter(|f| f.expect != Expect::Recorded).collect();
    let per_function: BTreeMap<&str, usize> =
        FUNCTIONS.iter().map(|f| (*f, fixtures.iter().filter(|x| x.function == *f).count())).collect();
    let sc = Scenario {
        name: "malformed_events",
        done: format!(
            "{} malformed events (missing/wrong-typed fields, empty and 10,001-id arrays, duplicate ids, invalid characters, 1 MB strings, 10,000-deep nesting, truncated JSON, events of another function, unknown fields in manual sweeper requests) through each function's entry point: {}",
            fixtures.len(),
            per_function.iter().map(|(f, n)| format!("{f} {n}")).collect::<Vec<_>>().join(", ")
        ),
        runs: fixtures.len() as u64,
        checked: "InvalidInput naming the expected field, error bounded (≤ 1,300 chars), tables + bucket + executions unchanged, no panic".to_owned(),
    };
    scenario(sc, async {
        let w = world().await;
        let mut before = state(&w).await;
        let mut failures = Vec::new();
        for f in &fixtures {
            let outcome = call_caught(&w, f).await.and_then(|r| check_invalid(&f.expect, &r));
            let after = state(&w).await;
            if let Err(e) = outcome {
                failures.push(format!("{}: {e}", f.id()));
            }
            if after != before {
                failures.push(format!("{}: wrote {:?}", f.id(), shown(&diff(&before, &after))));
                before = after;
            }
        }
        verdict(&failures)
    })
    .await;
}

/// Lines of `after` not in `before`, and the other way round.
fn diff(before: &[String], after: &[String]) -> Vec<String> {
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    a.symmetric_difference(&b).map(|l| (*l).clone()).collect()
}

/// A few lines, cut short, for a message.
fn shown(lines: &[String]) -> Vec<String> {
    lines.iter().take(4).map(|l| cut(l)).collect()
}

// ------------------------------------------------------------------ malformed Causes

#[tokio::test]
async fn malformed_causes_are_recorded_redacted_and_bounded() {
    let fixtures: Vec<Fixture> = corpus().into_iter().filter(|f| f.expect == Expect::Recorded).collect();
    let sc = Scenario {
        name: "malformed_causes",
        done: format!(
            "{} malformed Batch Causes delivered to handle-error (truncated JSON, JSON of the wrong shape or type, invalid escapes, secrets under Environment/Command/Secrets/Parameters in any case, a 1 MB Error, 10 MB Causes, a 10,000-deep Cause)",
            fixtures.len()
        ),
        runs: fixtures.len() as u64,
        checked: "recorded (answer OK), stored cause ≤ 4,000 chars and error type ≤ 256, answer ≤ 2 KB, no planted secret in the answer or either table, only the task's own item changed, no panic".to_owned(),
    };
    scenario(sc, async {
        let w = world().await;
        let mut before = state(&w).await;
        let mut failures = Vec::new();
        for f in &fixtures {
            let mut problems = Vec::new();
            match call_caught(&w, f).await {
                Err(p) => problems.push(p),
                Ok(Err(e)) => problems.push(format!("{}: {}", e.error_type(), cut(&e.to_string()))),
                Ok(Ok(answer)) => {
                    let text = answer.to_string();
                    if text.len() > 2048 {
                        problems.push(format!("answer of {} bytes", text.len()));
                    }
                    if text.contains(SECRET) {
                        problems.push("the secret is in the answer".to_owned());
                    }
                }
            }
            let after = state(&w).await;
            let changed = diff(&before, &after);
            if changed
                .iter()
                .any(|l| !l.starts_with(&format!("{}: ", w.t.config.tasks_table)) || !l.contains("S(\"t2\")"))
            {
                problems.push(format!("wrote beyond task t2: {:?}", shown(&changed)));
            }
            if after.iter().any(|l| l.contains(SECRET)) {
                problems.push("the secret reached a table".to_owned());
            }
            let t2 = w.t.tables().get_task(RUN, "t2").await;
            match t2 {
                Ok(Some(t)) => {
                    let cause = t.last_error_cause.unwrap_or_default().chars().count();
                    let error_type = t.last_error_type.unwrap_or_default().chars().count();
                    if cause > MAX_CAUSE_CHARS || error_type > 256 {
                        problems.push(format!("stored cause {cause} chars, error type {error_type} chars"));
                    }
                }
                other => problems.push(format!("t2 unreadable: {other:?}")),
            }
            if !problems.is_empty() {
                failures.push(format!("{}: {}", f.id(), problems.join("; ")));
            }
            before = after;
        }
        verdict(&failures)
    })
    .await;
}

// ------------------------------------------------------------------ through the binaries

/// Credentials as a deployed function has them (the role's temporary keys): none may reach a
/// log line or an answer.
pub const KEY_ID: &str = "ASIAFIXTUREKEYID7EXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFIXTURESECRETKEY";
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEFIXTURESESSIONTOKEN/0123456789abcdefghijklmnop==";

/// The environment of a deployed function, with real-looking credentials and debug logs.
fn lambda_env_with_credentials(w: &World, log_level: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        w.t.lambda_env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET") && k != "MAX_RETRIES")
            .collect();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("MAX_RETRIES", "100"),
        ("RUST_LOG", log_level),
        ("STATE_MACHINE_ARN", w.state_machine.as_str()),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

#[tokio::test]
async fn malformed_events_through_the_built_binaries_with_credentials_in_the_environment() {
    let fixtures = corpus();
    let sc = Scenario {
        name: "malformed_events_binaries",
        done: format!(
            "the {} fixtures (raw bytes: truncated JSON and 10,000-deep nesting included) through the five built Lambda binaries, one process each, with AWS keys and a session token in the environment and RUST_LOG=debug",
            fixtures.len()
        ),
        runs: fixtures.len() as u64,
        checked: "errorType InvalidInput naming the expected field (Causes: answered OK), tables + bucket + executions unchanged (handle-error: only the Causes' task), no credential or planted secret in any log line or answer".to_owned(),
    };
    scenario(sc, async {
        let w = world().await;
        let env = lambda_env_with_credentials(&w, "debug");
        let mut failures = Vec::new();
        for function in FUNCTIONS {
            let mine: Vec<&Fixture> = fixtures.iter().filter(|f| f.function == function).collect();
            let bodies: Vec<Arc<Vec<u8>>> = mine.iter().map(|f| f.body.clone()).collect();
            let before = state(&w).await;
            let binary = lambda_binary(function);
            let env = env.clone();
            let (outcomes, logs) = tokio::task::spawn_blocking(move || {
                invoke_raw(&binary, &env, bodies.iter().map(|b| b.as_slice().to_vec()).collect())
            })
            .await
            .unwrap();
            for (f, o) in mine.iter().zip(&outcomes) {
                let problem = match (&f.expect, o) {
                    (Expect::Recorded, Outcome::Ok(_)) => None,
                    (Expect::Recorded, Outcome::Err { error_type, error_message }) => {
                        Some(format!("{error_type}: {}", cut(error_message)))
                    }
                    (want, Outcome::Err { error_type, error_message }) if error_type == "InvalidInput" => {
                        let ok = match want {
                            Expect::Field(field) => error_message.starts_with(&format!("{field}: ")),
                            Expect::FieldPrefix(p) => error_message.starts_with(p.as_str()),
                            Expect::Recorded => false,
                        };
                        (!ok).then(|| format!("InvalidInput {}, expected {want:?}", cut(error_message)))
                    }
                    (_, other) => Some(cut(&format!("{other:?}"))),
                };
                if let Some(p) = problem {
                    failures.push(format!("{} (binary): {p}", f.id()));
                }
                let answer = format!("{o:?}");
                for needle in [KEY_ID, SECRET_KEY, SESSION_TOKEN, SECRET] {
                    if answer.contains(needle) {
                        failures.push(format!("{} (binary): {needle} in the answer", f.id()));
                    }
                }
            }
            if !logs.contains("cold start") {
                failures.push(format!("{function}: no log captured"));
            }
            for needle in [KEY_ID, SECRET_KEY, SESSION_TOKEN, SECRET] {
                if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                    failures.push(format!("{function}: {needle} logged: {}", cut(line)));
                }
            }
            let after = state(&w).await;
            let changed = diff(&before, &after);
            let allowed = |l: &String| {
                function == "handle-error"
                    && l.starts_with(&format!("{}: ", w.t.config.tasks_table))
                    && l.contains("S(\"t2\")")
            };
            if !changed.iter().all(allowed) {
                failures.push(format!("{function} (binary) wrote: {:?}", shown(&changed)));
            }
        }
        verdict(&failures)
    })
    .await;
}

// ------------------------------------------------------------------ corrupt stored items

fn base_task(run_id: &str, task_id: &str, status: &str, at: &str) -> Item {
    [
        ("run_id", s(run_id)),
        ("task_id", s(task_id)),
        ("status", s(status)),
        ("retry_count", n(1)),
        ("created_at", s(at)),
        ("updated_at", s(at)),
        ("last_error_at", s(at)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn base_run(run_id: &str, status: &str, total: usize, at: &str) -> Item {
    [
        ("run_id", s(run_id)),
        ("config_name", s("corrupt")),
        ("status", s(status)),
        ("total_tasks", n(total)),
        ("completed_tasks", n(0)),
        ("failed_tasks", n(0)),
        ("total_cost_usd", n(0)),
        ("total_input_tokens", n(0)),
        ("total_output_tokens", n(0)),
        ("created_at", s(at)),
        ("updated_at", s(at)),
        ("execution_arn", s(format!("arn:aws:states:us-east-1:123456789012:execution:arc:{run_id}"))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn with(mut item: Item, attrs: Vec<(&str, Option<AttributeValue>)>) -> Item {
    for (k, v) in attrs {
        match v {
            Some(v) => item.insert(k.to_owned(), v),
            None => item.remove(k),
        };
    }
    item
}

async fn put(t: &TestEnv, table: &str, item: Item) {
    t.clients.dynamodb.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
}

/// One corrupt-item case against a handler: what is stored, the event, and the item and
/// attribute the `CorruptItem` must name.
struct CorruptCase {
    name: &'static str,
    run: Item,
    tasks: Vec<Item>,
    function: &'static str,
    event: Value,
    key: String,
    attribute: &'static str,
}

fn corrupt_cases(at: &str) -> Vec<CorruptCase> {
    let exec = |r: &str| format!("arn:aws:states:us-east-1:123456789012:execution:arc:{r}");
    let mut cases = Vec::new();
    let mut case = |name: &'static str,
                    function: &'static str,
                    run_attrs: Vec<(&str, Option<AttributeValue>)>,
                    task_attrs: Vec<(&str, Option<AttributeValue>)>,
                    key_is_task: bool,
                    attribute: &'static str| {
        let run_id = format!("run-corrupt-{name}");
        let task = with(base_task(&run_id, "t1", "FAILED", at), task_attrs);
        let event = match function {
            "handle-error" => {
                json!({"run_id": run_id, "task_id": "t1", "error": {"Error": "States.TaskFailed", "Cause": "boom"}})
            }
            "aggregate" => json!({"run_id": run_id, "execution_arn": exec(&run_id)}),
            "complete" => json!({"run_id": run_id, "execution_arn": exec(&run_id),
                                 "aggregation": {"total_tasks": 1, "completed_tasks": 0, "failed_tasks": 1, "accuracy": 0, "total_cost_usd": 0}}),
            "initialize" => json!({"run_id": run_id, "config_name": "corrupt", "task_ids": ["t1"], "retry": true,
                                   "execution_arn": format!("{}-retry", exec(&run_id))}),
            other => panic!("{other}"),
        };
        let key = if key_is_task { format!("{run_id}/t1") } else { run_id.clone() };
        cases.push(CorruptCase {
            name,
            run: with(base_run(&run_id, "COMPLETED_WITH_ERRORS", 1, at), run_attrs),
            tasks: vec![task],
            function,
            event,
            key,
            attribute,
        });
    };
    case("he-retry-count-text", "handle-error", vec![], vec![("retry_count", Some(s("lots")))], true, "retry_count");
    case("he-retry-count-negative", "handle-error", vec![], vec![("retry_count", Some(n(-1)))], true, "retry_count");
    case(
        "he-completed-at-map",
        "handle-error",
        vec![],
        vec![("completed_at", Some(AttributeValue::M(Default::default())))],
        true,
        "completed_at",
    );
    case(
        "he-last-error-at-bool",
        "handle-error",
        vec![],
        vec![("last_error_at", Some(AttributeValue::Bool(true)))],
        true,
        "last_error_at",
    );
    case(
        "he-started-at-list",
        "handle-error",
        vec![],
        vec![("started_at", Some(AttributeValue::L(vec![])))],
        true,
        "started_at",
    );
    case(
        "he-job-id-number",
        "handle-error",
        vec![],
        vec![("last_failed_job_id", Some(n(7)))],
        true,
        "last_failed_job_id",
    );
    case("agg-task-cost-text", "aggregate", vec![], vec![("cost_usd", Some(s("lots")))], true, "cost_usd");
    case(
        "agg-task-cost-bool",
        "aggregate",
        vec![],
        vec![("cost_usd", Some(AttributeValue::Bool(true)))],
        true,
        "cost_usd",
    );
    case(
        "agg-task-retry-count-fraction",
        "aggregate",
        vec![],
        vec![("retry_count", Some(n(1.5)))],
        true,
        "retry_count",
    );
    case("agg-run-total-tasks-text", "aggregate", vec![("total_tasks", Some(s("many")))], vec![], false, "total_tasks");
    case(
        "agg-run-execution-arn-number",
        "aggregate",
        vec![("execution_arn", Some(n(1)))],
        vec![],
        false,
        "execution_arn",
    );
    case(
        "co-run-cost-bool",
        "complete",
        vec![("total_cost_usd", Some(AttributeValue::Bool(true)))],
        vec![],
        false,
        "total_cost_usd",
    );
    case(
        "co-run-status-map",
        "complete",
        vec![("status", Some(AttributeValue::M(Default::default())))],
        vec![],
        false,
        "status",
    );
    case(
        "co-run-published-cost-text",
        "complete",
        vec![("published_cost_usd", Some(s("a lot")))],
        vec![],
        false,
        "published_cost_usd",
    );
    case("co-task-worker-id-number", "complete", vec![], vec![("worker_id", Some(n(3)))], true, "worker_id");
    case(
        "init-run-execution-arn-number",
        "initialize",
        vec![("execution_arn", Some(n(1)))],
        vec![],
        false,
        "execution_arn",
    );
    case(
        "init-run-generation-text",
        "initialize",
        vec![("retry_generation", Some(s("second")))],
        vec![],
        false,
        "retry_generation",
    );
    case(
        "init-task-retry-count-list",
        "initialize",
        vec![],
        vec![("retry_count", Some(AttributeValue::L(vec![])))],
        true,
        "retry_count",
    );
    case(
        "init-task-created-at-number",
        "initialize",
        vec![],
        vec![("created_at", Some(n(20261126)))],
        true,
        "created_at",
    );
    cases
}

async fn call_handler(t: &TestEnv, function: &str, event: Value) -> Result<Value, ArcError> {
    match function {
        "initialize" => initialize::handle(t.env(), event).await.json(),
        "handle-error" => handle_error::handle(t.env(), event).await.json(),
        "aggregate" => aggregate::handle(t.env(), event).await.json(),
        "complete" => complete::handle(t.env(), event).await.json(),
        other => panic!("{other}"),
    }
}

/// Whether `e` is the `CorruptItem` naming `key` and `attribute`.
fn names_item_and_attribute(e: &ArcError, key: &str, attribute: &str) -> bool {
    matches!(e, ArcError::CorruptItem { key: k, message } if k == key && message.starts_with(attribute))
}

#[tokio::test]
async fn corrupt_items_are_named_and_the_sweeper_reports_them() {
    let at = format_ts(chrono::Utc::now() - chrono::Duration::hours(2));
    let cases = corrupt_cases(&at);
    let sc = Scenario {
        name: "corrupt_items",
        done: format!(
            "{} tasks/runs with wrong-typed or missing attributes written by other tools, read by initialize (retry), handle-error, aggregate and complete; a scheduled and a manual sweep over corrupt FAILED tasks and a corrupt run beside good ones; lenient reads the README promises (unknown status, 0/1 flags, numeric strings, timestamps without fraction or unreadable)",
            cases.len()
        ),
        runs: cases.len() as u64 + 3,
        checked: "CorruptItem naming the item and the attribute with nothing written; the sweep succeeds, reports each corrupt item (CorruptItem, item, attribute) and retries the good tasks; lenient reads give the documented figures".to_owned(),
    };
    scenario(sc, async {
        let mut failures = Vec::new();
        // ---- the handlers
        let t = TestEnv::new(&[]).await;
        for c in &cases {
            put(&t, &t.config.runs_table, c.run.clone()).await;
            for task in &c.tasks {
                put(&t, &t.config.tasks_table, task.clone()).await;
            }
        }
        for c in &cases {
            let before = t.snapshot().await;
            let r = call_handler(&t, c.function, c.event.clone()).await;
            match &r {
                Err(e) if names_item_and_attribute(e, &c.key, c.attribute) => {}
                other => failures.push(format!(
                    "{} ({}): expected CorruptItem {}: {}…, got {}",
                    c.name,
                    c.function,
                    c.key,
                    c.attribute,
                    cut(&format!("{other:?}"))
                )),
            }
            if t.snapshot().await != before {
                failures.push(format!("{}: wrote despite the corrupt item", c.name));
            }
        }
        // A missing key attribute or roll-up is read as absent (tolerated), not as corrupt:
        // a task without retry_count has failed 0 times.
        let lenient = "run-lenient";
        put(&t, &t.config.runs_table, with(base_run(lenient, "RUNNING", 4, &at), vec![("total_cost_usd", None)])).await;
        for (task, attrs) in [
            ("unknown-status", vec![("status", Some(s("RUNNING"))), ("retry_count", None)]),
            (
                "flag-number",
                vec![("status", Some(s("COMPLETED"))), ("is_correct", Some(n(1))), ("cost_usd", Some(s("0.25")))],
            ),
            (
                "text-numbers",
                vec![
                    ("status", Some(s("COMPLETED"))),
                    ("tokens_input", Some(s("300.0"))),
                    ("cost_usd", Some(n("1E-1"))),
                ],
            ),
            (
                "python-timestamps",
                vec![
                    ("status", Some(s("FAILED"))),
                    ("last_error_at", Some(s("2026-11-26T13:00:00"))),
                    ("updated_at", Some(s("2026-11-26T13:00:00Z"))),
                ],
            ),
        ] {
            put(&t, &t.config.tasks_table, with(base_task(lenient, task, "FAILED", &at), attrs)).await;
        }
        match aggregate::handle(t.env(), json!({"run_id": lenient})).await.json() {
            Ok(out) => {
                let want = json!({"total_tasks": 4, "completed_tasks": 2, "failed_tasks": 1, "pending_tasks": 1,
                                  "correct_tasks": 1, "total_cost_usd": 0.35});
                for (k, v) in want.as_object().unwrap() {
                    if out[k] != *v {
                        failures.push(format!("lenient aggregate: {k} = {}, expected {v}", out[k]));
                    }
                }
            }
            Err(e) => failures.push(format!("lenient aggregate failed: {e}")),
        }

        // ---- the sweeper: corrupt FAILED tasks and a corrupt run beside good ones.
        let t = TestEnv::new(&[]).await;
        let sm = t.create_state_machine(&format!("corrupt-{}", t.config.runs_table)).await;
        let deps = t.sweep_deps(&sm, Arc::new(SystemClock));
        for r in ["run-sweep-ok", "run-sweep-badtask"] {
            put(&t, &t.config.runs_table, base_run(r, "COMPLETED_WITH_ERRORS", 3, &at)).await;
        }
        put(
            &t,
            &t.config.runs_table,
            with(base_run("run-sweep-badrun", "COMPLETED_WITH_ERRORS", 1, &at), vec![("status", Some(n(3)))]),
        )
        .await;
        let tasks = vec![
            base_task("run-sweep-ok", "t1", "FAILED", &at),
            // No readable failure time: due now (README).
            with(base_task("run-sweep-ok", "t2", "FAILED", &at), vec![("last_error_at", Some(s("yesterday")))]),
            base_task("run-sweep-badtask", "good", "FAILED", &at),
            with(base_task("run-sweep-badtask", "retry-count", "FAILED", &at), vec![("retry_count", Some(s("lots")))]),
            with(base_task("run-sweep-badtask", "last-error-at", "FAILED", &at), vec![("last_error_at", Some(n(5)))]),
            base_task("run-sweep-badrun", "t1", "FAILED", &at),
        ];
        for task in tasks {
            put(&t, &t.config.tasks_table, task).await;
        }
        let expected_errors = [
            ("run-sweep-badtask/retry-count", "retry_count"),
            ("run-sweep-badtask/last-error-at", "last_error_at"),
            ("run-sweep-badrun", "status"),
        ];
        match sweep(&deps, SweepRequest::scheduled()).await {
            Ok(out) => {
                for (key, attr) in expected_errors {
                    let found = out.errors.iter().any(|e| {
                        e.error_type == "CorruptItem" && e.message.contains(&format!("stored item {key}: {attr}"))
                    });
                    if !found {
                        failures.push(format!("scheduled sweep: no CorruptItem for {key} {attr}: {:?}", out.errors));
                    }
                }
                if out.errors.len() != expected_errors.len() {
                    failures.push(format!("scheduled sweep: errors {:?}", out.errors));
                }
                let requeued: BTreeMap<&str, u64> = out.requeued.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let want = BTreeMap::from([("run-sweep-badtask", 1), ("run-sweep-ok", 2)]);
                if requeued != want {
                    failures.push(format!("scheduled sweep requeued {requeued:?}, expected {want:?}"));
                }
                if !out.skipped_runs.iter().any(|s| s.run_id == "run-sweep-badrun") {
                    failures.push(format!("the corrupt run is not among the skipped: {:?}", out.skipped_runs));
                }
            }
            Err(e) => failures.push(format!("scheduled sweep failed on corrupt items: {e}")),
        }
        for (task, attr, value) in [("retry-count", "retry_count", s("lots")), ("last-error-at", "last_error_at", n(5))]
        {
            let item = t
                .clients
                .dynamodb
                .get_item()
                .table_name(&t.config.tasks_table)
                .set_key(Some(arc_shared::store::Tables::task_key("run-sweep-badtask", task)))
                .send()
                .await
                .unwrap()
                .item
                .unwrap_or_default();
            if item.get(attr) != Some(&value) || item.get("status") != Some(&s("FAILED")) {
                failures.push(format!("the corrupt task {task} was changed: {item:?}"));
            }
        }
        // A manual request for the run: its partition's corrupt items are reported too.
        let manual =
            parse_request(json!({"run_id": "run-sweep-badtask", "dry_run": true, "ignore_backoff": true})).unwrap();
        match sweep(&deps, manual).await {
            Ok(out) => {
                // Reported by the find (and again by a repair reading the partition): every
                // error is one of the two corrupt items, and both are there.
                let named = |key: &str| out.errors.iter().any(|e| e.message.contains(&format!("stored item {key}: ")));
                let all_corrupt = out.errors.iter().all(|e| e.error_type == "CorruptItem");
                if !all_corrupt || !named("run-sweep-badtask/retry-count") || !named("run-sweep-badtask/last-error-at")
                {
                    failures.push(format!("manual sweep errors: {:?}", out.errors));
                }
            }
            Err(e) => failures.push(format!("manual sweep failed on corrupt items: {e}")),
        }
        verdict(&failures)
    })
    .await;
}

// ------------------------------------------------------------------ fuzzing the parsers

/// Cases per property: `ARC_FUZZ_CASES`, else 256 (quick) / 4,096 (`ARC_RELIABILITY=full`).
fn fuzz_cases() -> u32 {
    std::env::var("ARC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| by_mode(256, 4096))
}

/// The field names the functions read, and a few that none does.
const KEYS: [&str; 30] = [
    "config_name",
    "task_ids",
    "task_ids_s3",
    "data_source",
    "triggered_by",
    "commit_sha",
    "execution_arn",
    "execution_start_time",
    "retry",
    "run_id",
    "task_id",
    "error",
    "Error",
    "Cause",
    "delivery",
    "entered_at",
    "aggregation",
    "total_tasks",
    "completed_tasks",
    "failed_tasks",
    "accuracy",
    "total_cost_usd",
    "dry_run",
    "ignore_backoff",
    "max_tasks",
    "detail-type",
    "source",
    "dryrun",
    "",
    "Run_Id",
];

/// Strings that are valid somewhere (ids, a run id, an ARN, timestamps) or nearly so.
const ATOMS: [&str; 14] = [
    "t1",
    "00576224",
    RUN,
    ARN,
    "bad-input",
    "2026-11-26T13:00:00Z",
    "s3://bucket/runs/ids.json",
    "States.TaskFailed",
    "t/1",
    "run x",
    "é",
    "\u{0}",
    "1e400",
    "-1",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 _./:-]{0,24}".prop_map(Value::String),
        prop::sample::select(ATOMS.to_vec()).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), 1 => "[a-zA-Z_-]{1,10}"]
}

fn event() -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => prop::collection::btree_map(key(), json_value(), 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
    ]
}

/// The pure parsing and validation of each function (no AWS call): what decides
/// `InvalidInput` before anything is read or written.
fn pure_parse(function: &str, event: Value) -> Result<(), ArcError> {
    match function {
        // initialize::handle up to its first AWS call (the id list in S3 taken as valid).
        "initialize" => match event.get("retry") {
            Some(Value::Bool(true)) => {
                let i: InitializeRetryInput = parse_event(event)?;
                initialize::validate_new_run(
                    Some(i.config_name.as_str()),
                    Some(i.task_ids.as_slice()),
                    None,
                    None,
                    None,
                )?;
                RunId::parse(i.run_id).map_err(|e| ArcError::invalid("run_id", e.0))?;
                optional_arn("execution_arn", i.execution_arn).map(drop)
            }
            None | Some(Value::Bool(false)) | Some(Value::Null) => {
                let i: NewRunInput = parse_event(event)?;
                let ids = match (i.task_ids, i.task_ids_s3.filter(|u| !u.is_empty())) {
                    (Some(_), Some(_)) => return Err(ArcError::invalid("task_ids_s3", "both given")),
                    (None, Some(uri)) => match ObjectRef::parse_uri(&uri) {
                        Some(_) => Some(vec!["from-s3".to_owned()]),
                        None => return Err(ArcError::invalid("task_ids_s3", "not an s3:// URI")),
                    },
                    (ids, None) => ids,
                };
                initialize::validate_new_run(
                    Some(i.config_name.as_str()),
                    ids.as_deref(),
                    i.data_source,
                    i.triggered_by,
                    i.commit_sha,
                )?;
                if let Some(t) = i.execution_start_time.as_deref() {
                    parse_ts(t).ok_or_else(|| ArcError::invalid("execution_start_time", "not a timestamp"))?;
                }
                optional_arn("execution_arn", i.execution_arn).map(drop)
            }
            Some(_) => Err(ArcError::invalid("retry", "must be true or false")),
        },
        "handle-error" => {
            let i: HandleErrorInput = parse_event(event)?;
            if let Some(d) = &i.delivery {
                check_len("delivery.execution_arn", &d.execution_arn, MAX_ARN_CHARS)?;
                check_len("delivery.entered_at", &d.entered_at, 256)?;
            }
            Ok(())
        }
        "aggregate" => optional_arn("execution_arn", parse_event::<AggregateInput>(event)?.execution_arn).map(drop),
        "complete" => optional_arn("execution_arn", parse_event::<CompleteInput>(event)?.execution_arn).map(drop),
        "sweeper" => parse_request(event).map(drop),
        other => panic!("{other}"),
    }
}

/// The fields each function requires (an error may name one that the event lacks).
fn required(function: &str, event: &Value) -> &'static [&'static str] {
    match function {
        "initialize" if event.get("retry") == Some(&Value::Bool(true)) => &["run_id", "task_ids", "config_name"],
        "initialize" => &["config_name", "task_ids"],
        "handle-error" => &["run_id", "task_id"],
        "aggregate" => &["run_id"],
        "complete" => &["run_id", "aggregation"],
        _ => &[],
    }
}

/// The top-level name of a field path (`task_ids[3]` → `task_ids`, `error.Error` → `error`).
fn top(field: &str) -> &str {
    field.split(['.', '[']).next().unwrap_or(field)
}

/// `Ok`, or `InvalidInput` naming `$`, a field of the event or a field the function requires,
/// with a bounded message.
fn names_a_real_field(function: &str, event: &Value, r: Result<(), ArcError>) -> Result<(), TestCaseError> {
    match r {
        Ok(()) => Ok(()),
        Err(ArcError::InvalidInput { field, message }) => {
            let t = top(&field);
            let known = field == "$"
                // A key may itself hold `.` or `[` (an unknown field `.dry_run`).
                || event.as_object().is_some_and(|o| o.contains_key(t) || o.contains_key(&field))
                || required(function, event).contains(&t);
            prop_assert!(known, "{function}: InvalidInput names {field:?} ({message}) for {event}");
            prop_assert!(field.chars().count() + message.chars().count() < MAX_ERROR_CHARS);
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("{function}: {} for {event}", e.error_type()))),
    }
}

/// A valid event of each function, for single-field mutations.
fn valid_event(function: &str) -> Value {
    match function {
        "initialize" => json!({"config_name": "bad-input", "task_ids": ["t1", "t2"], "data_source": "evaluation",
                               "triggered_by": "ci", "commit_sha": "abc", "execution_arn": ARN}),
        "handle-error" => json!({"run_id": RUN, "task_id": "t2", "error": {"Error": "States.TaskFailed", "Cause": "x"},
                                 "delivery": {"execution_arn": ARN, "entered_at": "2026-11-26T13:05:00Z"}}),
        "aggregate" => json!({"run_id": RUN, "execution_arn": ARN}),
        "complete" => json!({"run_id": RUN, "execution_arn": ARN,
                             "aggregation": {"total_tasks": 3, "completed_tasks": 1, "failed_tasks": 1, "accuracy": 0.5, "total_cost_usd": 0.25}}),
        "sweeper" => {
            json!({"run_id": RUN, "task_ids": ["t1"], "dry_run": true, "ignore_backoff": false, "max_tasks": 5})
        }
        other => panic!("{other}"),
    }
}

/// The paths of `event`'s fields, nested objects included (`error.Error`).
fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(o) = v.as_object() {
        for (k, child) in o {
            let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            out.push(p.clone());
            paths(child, &p, out);
        }
    }
}

fn mutate(event: &mut Value, path: &str, to: Option<Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut at = event;
    for p in parts {
        at = at.get_mut(p).unwrap();
    }
    let obj = at.as_object_mut().unwrap();
    match to {
        Some(v) => obj.insert(last.to_owned(), v),
        None => obj.remove(last),
    };
}

/// A Batch-like job description with `secret` planted under a sensitive key (in a random
/// letter case) at a random place.
fn planted_cause() -> impl Strategy<Value = (String, usize)> {
    let sensitive = prop::sample::select(vec![
        "Environment",
        "environment",
        "SECRETS",
        "Command",
        "parameters",
        "EnvironmentFiles",
    ]);
    let value_shape = 0..3usize;
    let place = 0..4usize;
    let filler = prop::collection::btree_map("[A-Za-z]{1,8}", "[a-zA-Z0-9 _.]{0,12}", 0..4);
    let exit = proptest::option::of(-1i64..256);
    (sensitive, value_shape, place, filler, exit, "[a-z0-9]{4,12}", 0.0f64..1.0).prop_map(
        |(key, shape, place, filler, exit, tag, cut_at)| {
            let secret = format!("{SECRET}-{tag}");
            let value = match shape {
                0 => json!(secret),
                1 => json!([{"Name": "OPENAI_API_KEY", "Value": secret}]),
                _ => json!({"nested": {"deeper": [secret]}}),
            };
            let mut doc = json!({"JobId": format!("job-{tag}"), "StatusReason": "Essential container in task exited",
                                 "Container": {"Image": "worker:latest", "LogStreamName": "arc/default/x"},
                                 "Attempts": [{"Container": {"ExitCode": exit, "Reason": "OutOfMemoryError"}}],
                                 "Extra": filler});
            let target = match place {
                0 => &mut doc,
                1 => &mut doc["Container"],
                2 => &mut doc["Attempts"][0]["Container"],
                _ => &mut doc["Extra"],
            };
            target.as_object_mut().unwrap().insert(key.to_owned(), value);
            let text = doc.to_string();
            let cut = ((text.len() as f64) * cut_at) as usize;
            (text, cut)
        },
    )
}

/// A committed fixture with a few byte-level mutations (flips, structural bytes inserted,
/// slices cut or repeated).
fn mutated_fixture(bodies: Arc<Vec<(String, Vec<u8>)>>) -> impl Strategy<Value = (String, Vec<u8>)> {
    let n = bodies.len();
    (
        0..n,
        prop::collection::vec((0..4u8, any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0..12usize), 1..6),
    )
        .prop_map(move |(i, edits)| {
            let (function, body) = &bodies[i];
            let mut b = body.clone();
            const BYTES: &[u8] = b"[]{}\":,\\0e-. ";
            for (op, at, at2, pick) in edits {
                if b.is_empty() {
                    b.push(BYTES[pick % BYTES.len()]);
                    continue;
                }
                let p = at.index(b.len());
                match op {
                    0 => b[p] ^= 1 << (pick % 8),
                    1 => b.insert(p, BYTES[pick % BYTES.len()]),
                    2 => b.truncate(p),
                    _ => {
                        let q = at2.index(b.len());
                        let (lo, hi) = (p.min(q), p.max(q).min(p.min(q) + 64));
                        let slice = b[lo..hi].to_vec();
                        b.splice(p..p, slice);
                    }
                }
            }
            (function.clone(), b)
        })
}

fn run_property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), String> {
    let config = PropConfig { cases, failure_persistence: None, ..PropConfig::default() };
    TestRunner::new(config).run(&strategy, test).map_err(|e| format!("{name}: {e}"))
}

#[test]
fn fuzz_the_event_parsers_and_the_cause_parser() {
    let cases = fuzz_cases();
    let fixtures: Arc<Vec<(String, Vec<u8>)>> =
        Arc::new(committed().into_iter().map(|f| (f.function.clone(), f.body.to_vec())).collect());
    const PROPERTIES: u64 = 6;
    let sc = Scenario {
        name: "parser_fuzz",
        done: format!(
            "proptest, {cases} cases per property ({} in all): random events for the five parsers; one field of a valid event replaced by any JSON or removed; the committed corpus with byte-level mutations through the runtime's parse; Batch job descriptions with a secret planted under a sensitive key at any depth, whole, truncated anywhere or double-encoded; arbitrary text as a Cause",
            u64::from(cases) * PROPERTIES
        ),
        runs: u64::from(cases) * PROPERTIES,
        checked: "no panic; every rejection is InvalidInput naming $, a field of the event or a required field (the mutated one for mutations), bounded; the redacted Cause never holds any part of the secret and is ≤ 4,000 chars; the Cause parser never panics".to_owned(),
    };
    // A plain #[test]: the scenario helper is async.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(scenario(sc, async move {
        let mut failures = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                failures.push(e);
            }
        };
        check(run_property("random events", cases, event(), |ev| {
            for f in FUNCTIONS {
                names_a_real_field(f, &ev, pure_parse(f, ev.clone()))?;
            }
            Ok(())
        }));
        let mutation = (
            prop::sample::select(FUNCTIONS.to_vec()),
            any::<prop::sample::Index>(),
            proptest::option::of(json_value()),
        );
        check(run_property("one field mutated", cases, mutation, |(f, which, to)| {
            let mut ev = valid_event(f);
            prop_assert!(pure_parse(f, ev.clone()).is_ok(), "{f}: the valid event is rejected");
            let mut all = Vec::new();
            paths(&ev, "", &mut all);
            let path = which.get(&all).clone();
            mutate(&mut ev, &path, to);
            match pure_parse(f, ev.clone()) {
                Ok(()) => Ok(()),
                Err(ArcError::InvalidInput { field, message }) => {
                    // The mutated field, or (its parent object removed or replaced) a path
                    // under it; `retry` of initialize switches the event's kind.
                    let path_top = top(&path);
                    prop_assert!(
                        field == path
                            || field.starts_with(&format!("{path}."))
                            || field.starts_with(&format!("{path}["))
                            || (top(&field) == path_top && path.contains('.'))
                            || (f == "initialize" && path == "retry")
                            || (f == "sweeper" && path == "run_id" && field == "task_ids"),
                        "{f}: mutating {path} gave InvalidInput on {field:?} ({message}) for {ev}"
                    );
                    Ok(())
                }
                Err(e) => Err(TestCaseError::fail(format!("{f}: {} for {ev}", e.error_type()))),
            }
        }));
        check(run_property("corpus mutations", cases, mutated_fixture(fixtures.clone()), |(f, body)| {
            match event_from_slice(&body) {
                Ok(ev) => names_a_real_field(&f, &ev.clone(), pure_parse(&f, ev)),
                Err(ArcError::InvalidInput { field, .. }) => {
                    prop_assert_eq!(field, "$");
                    Ok(())
                }
                Err(e) => Err(TestCaseError::fail(e.error_type())),
            }
        }));
        check(run_property("planted secrets", cases, planted_cause(), |(text, cut_at)| {
            let mut cut_at = cut_at.min(text.len());
            while !text.is_char_boundary(cut_at) {
                cut_at -= 1;
            }
            let truncated = &text[..cut_at];
            for variant in [
                text.clone(),
                truncated.to_owned(),
                serde_json::to_string(&text).unwrap(),
                serde_json::to_string(truncated).unwrap(),
            ] {
                let redacted = redact_cause(&variant);
                prop_assert!(!redacted.contains("sk-fix"), "leaked: {redacted} from {variant}");
                prop_assert!(redacted.chars().count() <= MAX_CAUSE_CHARS);
                if let Some(parsed) = parse_batch_cause(&variant) {
                    let fields = format!("{:?}", parsed);
                    prop_assert!(!fields.contains("sk-fix"), "parsed fields hold the secret: {fields}");
                }
            }
            Ok(())
        }));
        check(run_property("arbitrary text causes", cases, prop_oneof!["\\PC{0,3000}", ".{0,200}"], |text| {
            let _ = parse_batch_cause(&text);
            prop_assert!(redact_cause(&text).chars().count() <= MAX_CAUSE_CHARS);
            Ok(())
        }));
        check(run_property("arbitrary JSON causes", cases, json_value(), |v| {
            let text = v.to_string();
            let _ = parse_batch_cause(&text);
            prop_assert!(redact_cause(&text).chars().count() <= MAX_CAUSE_CHARS);
            Ok(())
        }));
        verdict(&failures)
    }));
}

/// Regression cases found while building the corpus and the fuzzers, pinned.
#[test]
fn regressions_found_by_the_corpus_and_the_fuzzers() {
    // A 1 MB value quoted by serde came back (and was logged) whole: now cut.
    let huge = format!("{{\"run_id\": \"{RUN}\", \"aggregation\": {{\"total_tasks\": 3, \"completed_tasks\": 0, \"failed_tasks\": 1, \"accuracy\": 0, \"total_cost_usd\": {}}}}}", "1".repeat(1_000_000));
    let e = pure_parse("complete", event_from_slice(huge.as_bytes()).unwrap()).unwrap_err();
    assert!(e.to_string().chars().count() < MAX_ERROR_CHARS, "{} chars", e.to_string().len());
    // A struct given as an array was read by position: now a wrong type naming the field.
    let positional = json!({"run_id": RUN, "task_id": "t2", "error": ["States.TaskFailed", "boom"]});
    assert!(
        matches!(pure_parse("handle-error", positional), Err(ArcError::InvalidInput { field, .. }) if field == "error")
    );
    let positional = json!({"run_id": RUN, "aggregation": [3, 0, 1, 0, 0]});
    assert!(
        matches!(pure_parse("complete", positional), Err(ArcError::InvalidInput { field, .. }) if field == "aggregation")
    );
    // A 1 MB execution ARN was stored (the run item, the failure key): now bounded.
    let arn = json!({"run_id": RUN, "execution_arn": "a".repeat(1_000_000)});
    assert!(
        matches!(pure_parse("aggregate", arn), Err(ArcError::InvalidInput { field, .. }) if field == "execution_arn")
    );
    // An unknown key that looks like a path is named as it is.
    let dotted = json!({".dry_run": 1});
    assert!(matches!(pure_parse("sweeper", dotted), Err(ArcError::InvalidInput { field, .. }) if field == ".dry_run"));
    // Nesting deeper than serde_json's limit is the event's InvalidInput, not a runtime error.
    let deep = format!("{{\"run_id\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(event_from_slice(deep.as_bytes()), Err(ArcError::InvalidInput { field, .. }) if field == "$"));
}
