//! The reliability suite's tools (tests/tests/reliability.rs, RELIABILITY.md): private
//! emulators behind `tests/support/moto_serial.py` with its seeded chaos and holds, the
//! control calls, a Lambda binary that can be SIGKILLed mid-invocation, the invariants every
//! failed invocation must leave behind, and the one-JSON-line-per-scenario report.
//!
//! Quick or full: `ARC_RELIABILITY=full` runs every seed and kill point; anything else is the
//! bounded quick mode `.ci/run` runs (`scripts/reliability.sh`).

use crate::runtime_api::{LambdaProcess, Outcome, Spawn};
use crate::{repo_root, TestEnv};
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::schema;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ mode and report

/// Quick (the default, bounded for `.ci/run`) or full (`ARC_RELIABILITY=full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Full,
}

pub fn mode() -> Mode {
    match std::env::var("ARC_RELIABILITY").as_deref() {
        Ok("full") => Mode::Full,
        _ => Mode::Quick,
    }
}

/// `quick` in quick mode, `full` in full mode.
pub fn by_mode<T>(quick: T, full: T) -> T {
    match mode() {
        Mode::Quick => quick,
        Mode::Full => full,
    }
}

/// One row of RELIABILITY.md.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// What was done to the system.
    pub done: String,
    /// How many runs / seeds / kill points.
    pub runs: u64,
    /// What was checked afterwards.
    pub checked: String,
}

static NOTES: Mutex<BTreeMap<&'static str, Vec<String>>> = Mutex::new(BTreeMap::new());

/// Adds what a run of scenario `name` measured (how many failures were injected, which
/// operations were held…) to its row's "what was done".
pub fn note(name: &'static str, text: impl Into<String>) {
    if let Ok(mut n) = NOTES.lock() {
        n.entry(name).or_default().push(text.into());
    }
}

/// Appends the scenario's JSON line to `$ARC_RELIABILITY_OUT` (when set).
pub fn record(s: &Scenario, result: &Result<(), String>) {
    let Ok(path) = std::env::var("ARC_RELIABILITY_OUT") else { return };
    if path.is_empty() {
        return;
    }
    let notes = NOTES.lock().ok().and_then(|mut n| n.remove(s.name)).unwrap_or_default();
    let done = match notes.is_empty() {
        true => s.done.clone(),
        false => format!("{}. Measured: {}", s.done.trim_end_matches('.'), notes.join("; ")),
    };
    let line = json!({
        "scenario": s.name,
        "done": done,
        "runs": s.runs,
        "checked": s.checked,
        "result": match result {
            Ok(()) => "pass".to_owned(),
            Err(e) => format!("fail: {}", one_line(e, 700)),
        },
        "mode": match mode() { Mode::Quick => "quick", Mode::Full => "full" },
    });
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("cannot append to ARC_RELIABILITY_OUT={path}: {e}");
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// Runs a scenario body, records its row (a panic inside is a failure with its message), and
/// fails the test when the body did.
pub async fn scenario<F>(s: Scenario, body: F)
where
    F: Future<Output = Result<(), String>>,
{
    let result = match std::panic::AssertUnwindSafe(body).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )),
    };
    record(&s, &result);
    if let Err(e) = result {
        panic!("scenario {} failed: {e}", s.name);
    }
}

// ------------------------------------------------------------------ a private emulator

/// A moto server of our own (tests/support/moto_serial.py), so that the chaos one test arms
/// never reaches another test's requests. It stops when dropped (or when this process dies).
pub struct Emulator {
    pub endpoint: String,
    stop: PathBuf,
    watchdog: Child,
}

impl Emulator {
    pub fn start() -> Self {
        // Installs the pinned moto once (and starts the process's shared server, unused here).
        let _ = crate::moto_endpoint();
        // A port picked free may be taken before moto binds it: then try another.
        for _ in 0..5 {
            if let Some(e) = Self::start_on(free_port()) {
                return e;
            }
        }
        panic!("could not start a private moto server");
    }

    fn start_on(port: u16) -> Option<Self> {
        let root = repo_root();
        let venv = std::env::var("ARC_MOTO_VENV").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv-moto"));
        let stop = std::env::temp_dir().join(format!("arc-chaos-moto-{}.stop", uuid::Uuid::new_v4().simple()));
        let watchdog = format!(
            "'{}' '{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null && [ ! -e '{stop}' ]; do sleep 0.3; done; kill $m 2>/dev/null; rm -f '{stop}'",
            venv.join("bin/python").display(),
            root.join("tests/support/moto_serial.py").display(),
            pid = std::process::id(),
            stop = stop.display(),
        );
        let watchdog = Command::new("bash").arg("-c").arg(watchdog).stdin(Stdio::null()).spawn().expect("start moto");
        let me = Self { endpoint: format!("http://127.0.0.1:{port}"), stop, watchdog };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Ours only if it answers the wrapper's own endpoint (else dropped: stopped).
                return me.ctl().try_call("GET", "/_arc/chaos", None).filter(|v| v.get("on").is_some()).map(|_| me);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn ctl(&self) -> Ctl {
        Ctl::new(&self.endpoint)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The watchdog sees the file within 0.3 s and stops moto.
        let _ = std::fs::write(&self.stop, b"stop");
        let _ = self.watchdog.wait();
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// SDK settings against `endpoint`: the emulator's (dummy credentials, standard retry mode)
/// with `attempts` attempts per request (1: every injected failure reaches the caller, no SDK
/// retry masks it) and the first retry backoff at 20 ms instead of 1 s, so that a suite with
/// thousands of injected failures stays quick.
pub async fn sdk_config_with_attempts(endpoint: &str, attempts: u32) -> aws_config::SdkConfig {
    let conf = schema::emulator_config(endpoint).await;
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(20));
    conf.into_builder().retry_config(retry).build()
}

/// A test world (own tables and bucket) on `endpoint`, whose clients make `attempts` attempts
/// per request ([`sdk_config_with_attempts`]). Its failures all count (`INFRA_MAX_RETRIES` 0
/// unless `overrides` say otherwise): these scenarios check that each failure counts exactly
/// once, whatever its class; sparing infrastructure failures is checked on its own (the
/// sweeper suite, arc-local's ledger).
pub async fn env_at(endpoint: &str, attempts: u32, overrides: &[(&str, &str)]) -> TestEnv {
    let conf = sdk_config_with_attempts(endpoint, attempts).await;
    let mut all = vec![("INFRA_MAX_RETRIES", "0")];
    all.extend_from_slice(overrides);
    TestEnv::create(endpoint, &conf, &all, false).await
}

/// The strings that select this world's requests (its tables, bucket and `extra` names).
pub fn world_names(t: &TestEnv, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        t.config.runs_table.clone(),
        t.config.tasks_table.clone(),
        t.config.breakers_table.clone(),
        t.bucket.clone(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

// ------------------------------------------------------------------ control calls

/// The emulator's `/_arc/...` endpoints (blocking: they answer at once, never held).
#[derive(Debug, Clone)]
pub struct Ctl {
    addr: String,
}

impl Ctl {
    pub fn new(endpoint: &str) -> Self {
        Self { addr: endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned() }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        match self.try_call(method, path, body) {
            Some(v) => v,
            None => panic!(
                "{method} {path} on {}: no 200 answer (is the emulator tests/support/moto_serial.py?)",
                self.addr
            ),
        }
    }

    /// The JSON of a 200 answer; `None` for anything else.
    pub fn try_call(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        if out.split(' ').nth(1) != Some("200") {
            return None;
        }
        serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()
    }

    /// Arms chaos (`{"seed", "rate", "kinds", "latency_ms", "match"}`); counters start at 0.
    pub fn chaos(&self, spec: &Value) -> Value {
        self.call("POST", "/_arc/chaos", Some(spec))
    }

    /// Turns chaos off; returns its final counters.
    pub fn chaos_off(&self) -> Value {
        self.call("POST", "/_arc/chaos", Some(&json!({"off": true})))
    }

    /// Stops injecting, keeping the random stream and counters (the test reads the tables).
    pub fn pause(&self) {
        self.call("POST", "/_arc/chaos", Some(&json!({"pause": true})));
    }

    pub fn resume(&self) {
        self.call("POST", "/_arc/chaos", Some(&json!({"resume": true})));
    }

    /// Each injection of a chaos armed with `"trace": true`.
    pub fn trace(&self) -> Vec<Value> {
        self.call("GET", "/_arc/chaos/trace", None).as_array().cloned().unwrap_or_default()
    }

    pub fn chaos_state(&self) -> Value {
        self.call("GET", "/_arc/chaos", None)
    }

    /// Holds the `nth` request `selector` selects, `before` or `after` moto applies it.
    pub fn hold(&self, id: &str, nth: u64, when: &str, selector: &Value) {
        self.call("POST", "/_arc/holds", Some(&json!({"id": id, "nth": nth, "when": when, "match": selector})));
    }

    pub fn hold_state(&self, id: &str) -> Value {
        let all = self.call("GET", "/_arc/holds", None);
        all.as_array().into_iter().flatten().rev().find(|h| h["id"] == id).cloned().unwrap_or(Value::Null)
    }

    /// `then`: `drop` (the connection closes unanswered) or `pass`.
    pub fn release(&self, id: &str, then: &str) {
        self.call("POST", "/_arc/holds/release", Some(&json!({"id": id, "then": then})));
    }
}

/// Injected failures by kind, summed over several chaos counters.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    pub seen: u64,
    pub by_kind: BTreeMap<String, u64>,
}

impl Injected {
    pub fn add(&mut self, counters: &Value) {
        self.seen += counters["seen"].as_u64().unwrap_or(0);
        for (k, v) in counters["injected"].as_object().into_iter().flatten() {
            *self.by_kind.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }

    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    pub fn describe(&self) -> String {
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{} of {} requests failed ({})", self.total(), self.seen, kinds.join(", "))
    }
}

// ------------------------------------------------------------------ a killable Lambda

/// A Lambda binary serving one event through a local Runtime API, which the test may
/// SIGKILL at any moment (the real thing a Lambda timeout or a host loss does).
pub struct Invocation(LambdaProcess);

impl Invocation {
    pub fn start(binary: &Path, env: &[(String, String)], event: Value) -> Self {
        let spawn = Spawn { env: env.to_vec(), remove: vec!["STATE_MACHINE_ARN".into()], log: None };
        let p = LambdaProcess::spawn(binary, spawn);
        p.push_json(&event);
        Self(p)
    }

    /// The answer, once there is one.
    pub fn outcome(&self) -> Option<Outcome> {
        self.0.served().into_iter().next().map(|s| s.outcome)
    }

    /// Waits up to `limit` for the answer.
    pub fn wait(&mut self, limit: Duration) -> Option<Outcome> {
        self.0.wait_for(1, limit);
        self.outcome()
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reaps it.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

// ------------------------------------------------------------------ the books and their invariants

/// Both tables of a world, read whole.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub runs: Vec<RunRecord>,
    pub tasks: Vec<TaskRecord>,
}

impl Books {
    pub async fn read(t: &TestEnv) -> Self {
        Self::read_tables(&t.clients.dynamodb, &t.config.runs_table, &t.config.tasks_table).await
    }

    pub async fn read_tables(db: &aws_sdk_dynamodb::Client, runs_table: &str, tasks_table: &str) -> Self {
        let mut runs = Vec::new();
        for item in scan(db, runs_table).await {
            runs.push(RunRecord::from_item(item).expect("a readable run"));
        }
        let mut tasks = Vec::new();
        for item in scan(db, tasks_table).await {
            tasks.push(TaskRecord::from_item(item).expect("a readable task"));
        }
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        tasks.sort_by(|a, b| (&a.run_id, &a.task_id).cmp(&(&b.run_id, &b.task_id)));
        Self { runs, tasks }
    }

    pub fn task(&self, run_id: &str, task_id: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|t| t.run_id == run_id && t.task_id == task_id)
    }

    pub fn run(&self, run_id: &str) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.run_id == run_id)
    }

    /// What must hold whenever no writer is in the middle of a write — after every failed
    /// invocation as after every successful one (docs/ARCHITECTURE.md, "The failure model"):
    /// every status known; `retry_count` at most MAX_RETRIES, equal to it exactly when the task
    /// is FAILED_PERMANENT; a RETRY_QUEUED task names its execution; no task without its run
    /// and no more tasks than the run's `total_tasks`; and a run that is over (not RUNNING, not
    /// CANCELLED) has no task in flight and its status, `completed_tasks`, `failed_tasks`
    /// (FAILED + FAILED_PERMANENT, as aggregate counts them) and cost are those of its tasks.
    /// (While a run is RUNNING its roll-ups are the workers' running sums, set right by its
    /// Aggregate and Complete.)
    pub fn invariants(&self, max_retries: u32) -> Vec<String> {
        let mut p = Vec::new();
        for t in &self.tasks {
            let id = format!("task {}/{}", t.run_id, t.task_id);
            if let TaskStatus::Other(s) = &t.status {
                p.push(format!("{id}: unknown status {s:?}"));
            }
            if t.retry_count > max_retries {
                p.push(format!("{id}: retry_count {} above MAX_RETRIES {max_retries}", t.retry_count));
            }
            match t.status {
                TaskStatus::FailedPermanent if t.retry_count != max_retries => {
                    p.push(format!("{id}: FAILED_PERMANENT with retry_count {}", t.retry_count))
                }
                TaskStatus::Failed | TaskStatus::RetryQueued if t.retry_count >= max_retries => {
                    p.push(format!("{id}: {} with retry_count {} (should be permanent)", t.status, t.retry_count))
                }
                TaskStatus::RetryQueued if t.retry_execution.is_none() => {
                    p.push(format!("{id}: RETRY_QUEUED without retry_execution"))
                }
                _ => {}
            }
            if self.run(&t.run_id).is_none() {
                p.push(format!("{id}: its run does not exist"));
            }
        }
        for r in &self.runs {
            let tasks: Vec<&TaskRecord> = self.tasks.iter().filter(|t| t.run_id == r.run_id).collect();
            let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count() as u64;
            let failed = count(TaskStatus::Failed) + count(TaskStatus::FailedPermanent);
            let id = format!("run {}", r.run_id);
            if tasks.len() as u64 > r.total_tasks {
                p.push(format!("{id}: {} tasks, total_tasks {}", tasks.len(), r.total_tasks));
            }
            let over = !matches!(r.status, RunStatus::Running | RunStatus::Cancelled);
            if over {
                let in_flight: Vec<&str> =
                    tasks.iter().filter(|t| t.status.is_in_flight()).map(|t| t.task_id.as_str()).collect();
                if !in_flight.is_empty() {
                    p.push(format!("{id}: {} with tasks in flight: {}", r.status, in_flight.join(", ")));
                }
                let completed = count(TaskStatus::Completed);
                if r.completed_tasks != completed {
                    p.push(format!("{id}: completed_tasks {} but {completed} COMPLETED tasks", r.completed_tasks));
                }
                if r.failed_tasks != failed {
                    p.push(format!(
                        "{id}: failed_tasks {} but {failed} FAILED / FAILED_PERMANENT tasks",
                        r.failed_tasks
                    ));
                }
                let cost: Decimal = tasks.iter().filter_map(|t| t.cost_usd).sum();
                if r.total_cost_usd != Some(cost) {
                    p.push(format!("{id}: total_cost_usd {:?} but its tasks sum to {cost}", r.total_cost_usd));
                }
                if tasks.len() as u64 == r.total_tasks {
                    let want = RunStatus::from_counts(r.total_tasks, failed);
                    if r.status != want {
                        p.push(format!("{id}: status {} but its counts say {want}", r.status));
                    }
                }
            }
        }
        p
    }
}

async fn scan(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = db
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    out
}
