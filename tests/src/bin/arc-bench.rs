//! `arc-bench`: the benchmark suite behind BENCHMARKS.md (`scripts/bench.sh` builds the release
//! binaries and the zips, then runs this). Each of the five Lambda binaries is driven from
//! outside, through the local Runtime API the tests use (`runtime_api::LambdaProcess`), against a
//! separate emulator process (`tests/support/moto_serial.py`, whose counters give the AWS calls
//! of each operation and whose added latency gives the latency mode):
//!
//! - cold init (spawn → first `/next`) and warm invocation latency, median and spread;
//! - peak RSS (`VmHWM`) and CPU time (utime + stime) from `/proc/<pid>` before the process ends;
//! - initialize with 1,000 / 10,000 tasks, aggregate over 10,000 / 100,000, a sweep over 10,000
//!   FAILED tasks spread over 100 runs, each beside the emulator's own floor for the same data
//!   (raw batch writes, raw query pages);
//! - the AWS calls of each operation beside the minimum the data model allows;
//! - a latency mode (every request delayed 5 ms) at the functions' concurrency and at 1;
//! - the size of each `bootstrap.zip` `scripts/build-lambdas.sh` made;
//! - a projection for AWS.
//!
//! `arc-bench [--quick] [--bin-dir DIR] [--zips DIR] [--out FILE]`. Quick mode (what `.ci/run`
//! runs, on the debug build) uses small sizes and few repetitions: it proves the suite runs; its
//! figures are not the ones BENCHMARKS.md reports.

use arc_integration_tests::chaos::{sdk_config_with_attempts, Ctl, Emulator};
use arc_integration_tests::keepalive::KeepAliveFront;
use arc_integration_tests::runtime_api::{LambdaProcess, Outcome, ProcStats, Spawn};
use arc_integration_tests::TestEnv;
use arc_shared::records::Item;
use arc_shared::store::{batch_put, schema};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 5] = ["initialize", "handle-error", "aggregate", "complete", "sweeper"];
const MIB: f64 = 1024.0 * 1024.0;
/// The per-request delay of the latency mode (an in-region round trip).
const LATENCY_MS: u64 = 5;
/// The projection's stated latency of one DynamoDB / Step Functions / S3 request in-region.
const AWS_CALL_MS: f64 = 10.0;
/// Lambda price, us-east-1, arm64 (x86_64: 0.0000166667), per GB-second, and per request.
const PRICE_GB_S_ARM64: f64 = 0.000_013_333_4;
const PRICE_REQUEST: f64 = 0.000_000_2;
/// The Terraform module's default `lambda_memory_mb`.
const MEMORY_MB: f64 = 256.0;
/// Request attempts against the emulator may take this long (`ARC_ATTEMPT_TIMEOUT_SECONDS`).
const SLOW_EMULATOR: Duration = Duration::from_secs(300);

struct Args {
    quick: bool,
    bin_dir: PathBuf,
    zips: PathBuf,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let root = arc_integration_tests::repo_root();
    let mut a = Args {
        quick: false,
        bin_dir: exe.parent().map(Path::to_path_buf).unwrap_or_default(),
        zips: root.join("build/lambda"),
        out: root.join("BENCHMARKS.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().map(PathBuf::from).ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--bin-dir" => a.bin_dir = value("--bin-dir")?,
            "--zips" => a.zips = value("--zips")?,
            "--out" => a.out = value("--out")?,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: arc-bench [--quick] [--bin-dir DIR] [--zips DIR] [--out FILE]"
                ))
            }
        }
    }
    for f in FUNCTIONS {
        if !a.bin_dir.join(f).exists() {
            return Err(format!(
                "{} is not built (cargo build --workspace --bins, or --release)",
                a.bin_dir.join(f).display()
            ));
        }
    }
    Ok(a)
}

/// Sizes and repetitions of one mode.
struct Sizes {
    cold_runs: usize,
    warm_runs: usize,
    initialize: Vec<usize>,
    aggregate: Vec<usize>,
    sweep: (usize, usize),
}

impl Sizes {
    fn of(quick: bool) -> Self {
        if quick {
            Self { cold_runs: 3, warm_runs: 3, initialize: vec![200], aggregate: vec![500], sweep: (200, 4) }
        } else {
            Self {
                cold_runs: 15,
                warm_runs: 20,
                initialize: vec![1_000, 10_000],
                aggregate: vec![10_000, 100_000],
                sweep: (10_000, 100),
            }
        }
    }
}

// ------------------------------------------------------------------ figures

#[derive(Debug, Clone, Default)]
struct Spread {
    samples: Vec<f64>,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(|a, b| a.total_cmp(b));
        Self { samples }
    }
    fn quantile(&self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        let i = ((self.samples.len() - 1) as f64 * q).round() as usize;
        self.samples[i.min(self.samples.len() - 1)]
    }
    fn median(&self) -> f64 {
        self.quantile(0.5)
    }
    /// `median (min–p90)`, in the unit given.
    fn show(&self, unit: &str) -> String {
        format!("{:.2} {unit} ({:.2}–{:.2})", self.median(), self.quantile(0.0), self.quantile(0.9))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One operation measured from outside.
#[derive(Debug, Clone, Default)]
struct Measured {
    wall: Duration,
    stats: ProcStats,
    calls: BTreeMap<String, u64>,
    answer: Option<Value>,
}

impl Measured {
    fn calls_total(&self) -> u64 {
        self.calls.values().sum()
    }
    fn calls_text(&self) -> String {
        let parts: Vec<String> = self.calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{} ({})", self.calls_total(), parts.join(", "))
    }
}

struct Row {
    measure: String,
    value: String,
    target: String,
    status: String,
}

fn row(
    measure: impl Into<String>,
    value: impl Into<String>,
    target: impl Into<String>,
    status: impl Into<String>,
) -> Row {
    Row { measure: measure.into(), value: value.into(), target: target.into(), status: status.into() }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

// ------------------------------------------------------------------ the world

struct Bench {
    args: Args,
    sizes: Sizes,
    emu: Emulator,
    /// What the functions talk to: keep-alive connections, as in AWS (`keepalive.rs`).
    front: KeepAliveFront,
    ctl: Ctl,
    state_machine_arn: String,
}

impl Bench {
    fn binary(&self, name: &str) -> PathBuf {
        self.args.bin_dir.join(name)
    }

    async fn world(&self) -> TestEnv {
        // The emulator pages a 100,000-task partition in more than the functions' 10 s.
        let conf = sdk_config_with_attempts(&self.emu.endpoint, 3).await;
        let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(SLOW_EMULATOR).build();
        let conf = conf.to_builder().timeout_config(timeouts).build();
        TestEnv::create(&self.emu.endpoint, &conf, &[("MAX_RETRIES", "3")], false).await
    }

    fn lambda_env(&self, w: &TestEnv, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = w.lambda_env();
        for (k, v) in env.iter_mut() {
            if k == "AWS_ENDPOINT_URL" {
                *v = self.front.endpoint.clone();
            }
        }
        env.push(("STATE_MACHINE_ARN".into(), self.state_machine_arn.clone()));
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        env.push(("SWEEPER_MAX_TASKS".into(), "100000".into()));
        env.push(("ARC_ATTEMPT_TIMEOUT_SECONDS".into(), SLOW_EMULATOR.as_secs().to_string()));
        for (k, v) in extra {
            env.push(((*k).into(), (*v).into()));
        }
        env
    }

    /// Counts (and, with `latency_ms`, delays) every request naming `w`'s tables, bucket or the
    /// state machine, from now on.
    fn count(&self, w: &TestEnv, latency_ms: u64) {
        let names = arc_integration_tests::chaos::world_names(w, &[self.state_machine_arn.as_str()]);
        self.ctl.chaos(&json!({"rate": 0.0, "latency_ms": latency_ms, "match": {"contains": names}}));
    }

    fn counted(&self) -> BTreeMap<String, u64> {
        let state = self.ctl.chaos_state();
        self.ctl.chaos_off();
        state["operations"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default()
    }

    /// One invocation of `name` in a fresh process: wall time of the invocation, the process's
    /// peak RSS and CPU after it, the AWS calls it made.
    fn invoke_once(&self, w: &TestEnv, name: &str, event: &Value, extra: &[(&str, &str)], latency_ms: u64) -> Measured {
        let mut p =
            LambdaProcess::spawn(&self.binary(name), Spawn { env: self.lambda_env(w, extra), ..Spawn::default() });
        // Counting starts once the process waits for its event: cold init makes no AWS call.
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.cold_init().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.count(w, latency_ms);
        p.push_json(event);
        let served = p.expect_answers(1, Duration::from_secs(1800));
        let stats = p.proc_stats();
        let calls = self.counted();
        let s = &served[0];
        // A benchmark of a failing function measures nothing: stop, loudly.
        let answer = match &s.outcome {
            Outcome::Ok(v) => Some(v.clone()),
            Outcome::Err { error_type, error_message } => panic!("{name} failed: {error_type}: {error_message}"),
        };
        Measured { wall: s.latency, stats, calls, answer }
    }
}

// ------------------------------------------------------------------ data

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn run_item(run_id: &str, status: &str, total: usize, execution_arn: &str) -> Item {
    let at = "2026-11-20T10:00:00.000000+00:00";
    Item::from([
        ("run_id".into(), s(run_id)),
        ("config_name".into(), s("bench-cfg")),
        ("status".into(), s(status)),
        ("total_tasks".into(), n(total)),
        ("completed_tasks".into(), n(0)),
        ("failed_tasks".into(), n(0)),
        ("total_cost_usd".into(), n(0)),
        ("total_input_tokens".into(), n(0)),
        ("total_output_tokens".into(), n(0)),
        ("execution_arn".into(), s(execution_arn)),
        ("retry_generation".into(), n(0)),
        ("created_at".into(), s(at)),
        ("updated_at".into(), s(at)),
    ])
}

fn task_id(i: usize) -> String {
    format!("{i:08x}")
}

fn completed_task(run_id: &str, i: usize) -> Item {
    let at = "2026-11-20T10:05:00.000000+00:00";
    Item::from([
        ("run_id".into(), s(run_id)),
        ("task_id".into(), s(task_id(i))),
        ("status".into(), s("COMPLETED")),
        ("retry_count".into(), n(0)),
        ("cost_usd".into(), n("0.0125")),
        ("tokens_input".into(), n(1200)),
        ("tokens_output".into(), n(300)),
        ("is_correct".into(), AttributeValue::Bool(i.is_multiple_of(3))),
        ("result_s3_key".into(), s(format!("runs/{run_id}/results/{}.json", task_id(i)))),
        ("created_at".into(), s(at)),
        ("updated_at".into(), s(at)),
        ("completed_at".into(), s(at)),
    ])
}

fn failed_task(run_id: &str, i: usize) -> Item {
    // An hour ago by the wall clock the sweeper reads: due (backoff 5 min), younger than
    // SWEEPER_MAX_AGE_HOURS, older than the breakers' window.
    let failed = chrono::Utc::now() - chrono::Duration::hours(1);
    let at = arc_shared::time::format_ts(failed);
    let next = arc_shared::time::format_ts(failed + chrono::Duration::minutes(5));
    Item::from([
        ("run_id".into(), s(run_id)),
        ("task_id".into(), s(task_id(i))),
        ("status".into(), s("FAILED")),
        ("retry_count".into(), n(1)),
        ("last_error_type".into(), s("States.TaskFailed")),
        ("last_error_at".into(), s(at.clone())),
        ("next_retry_at".into(), s(next)),
        ("created_at".into(), s(at.clone())),
        ("updated_at".into(), s(at)),
    ])
}

/// Writes `items` as the emulator allows at best (25 per BatchWriteItem, the store's own batch
/// concurrency): the write floor.
async fn raw_write(w: &TestEnv, table: &str, items: Vec<Item>) -> Duration {
    let t0 = Instant::now();
    batch_put(&w.clients.dynamodb, table, items).await.expect("raw batch write");
    t0.elapsed()
}

/// Reads a run's partition page by page (or the FAILED tasks through `status-index`): the
/// read floor.
async fn raw_query(w: &TestEnv, run_id: Option<&str>) -> (Duration, usize, u64) {
    let db = &w.clients.dynamodb;
    let t0 = Instant::now();
    let q = db.query().table_name(&w.config.tasks_table);
    let q = match run_id {
        Some(r) => q.key_condition_expression("run_id = :r").expression_attribute_values(":r", s(r)),
        None => q
            .index_name("status-index")
            .key_condition_expression("#s = :f")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":f", s("FAILED")),
    };
    let mut pages = q.into_paginator().send();
    let (mut items, mut n_pages) = (0usize, 0u64);
    while let Some(page) = pages.next().await {
        let page = page.expect("raw query");
        items += page.items().len();
        n_pages += 1;
    }
    (t0.elapsed(), items, n_pages)
}

// ------------------------------------------------------------------ the measurements

struct ColdWarm {
    cold: Spread,
    bundle_cold: Spread,
    first: Spread,
    warm: Spread,
    rss_mib: f64,
    cpu_s: f64,
}

fn warm_events(name: &str, run_id: &str, k: usize, exec: &str) -> Value {
    match name {
        "initialize" => json!({"config_name": "bench-cfg", "task_ids": (0..10).map(task_id).collect::<Vec<_>>(),
                               "execution_arn": format!("{exec}-init-{k}"), "execution_start_time": "2026-11-26T13:00:00Z",
                               "triggered_by": "bench"}),
        "handle-error" => {
            let cause = json!({"JobId": format!("job-{k}"), "StatusReason": "Essential container in task exited",
                               "Attempts": [{"Container": {"ExitCode": 1, "LogStreamName": "arc-worker/default/x"},
                                             "StartedAt": 1_764_162_000_000_i64, "StoppedAt": 1_764_162_060_000_i64}]});
            json!({"run_id": run_id, "task_id": task_id(k), "error": {"Error": "States.TaskFailed", "Cause": cause.to_string()},
                   "delivery": {"execution_arn": exec, "entered_at": format!("2026-11-26T13:00:{:02}Z", k % 60)}})
        }
        "aggregate" => json!({"run_id": run_id, "execution_arn": exec}),
        "complete" => json!({"run_id": run_id, "execution_arn": exec,
                             "aggregation": {"total_tasks": 10, "completed_tasks": 10, "failed_tasks": 0,
                                             "total_cost_usd": 0.125, "accuracy": 0.4}}),
        _ => json!({}),
    }
}

impl Bench {
    /// Cold init over `cold_runs` fresh processes, then `warm_runs` invocations in the last.
    async fn cold_and_warm(&self, name: &str) -> ColdWarm {
        let w = self.world().await;
        let exec = "arn:aws:states:us-east-1:123456789012:execution:bench:cold";
        let run_id = "run-bench-cfg-20261126-130000-00000001";
        let tasks = 10 + 2 * self.sizes.cold_runs + self.sizes.warm_runs;
        raw_write(&w, &w.config.runs_table.clone(), vec![run_item(run_id, "RUNNING", tasks, exec)]).await;
        raw_write(&w, &w.config.tasks_table.clone(), (0..tasks).map(|i| completed_task(run_id, i)).collect()).await;
        if name == "handle-error" {
            // Failures land on tasks no worker completed.
            let pending: Vec<Item> = (0..tasks)
                .map(|i| {
                    let mut t = completed_task(run_id, i);
                    t.insert("status".into(), s("PENDING"));
                    t
                })
                .collect();
            raw_write(&w, &w.config.tasks_table.clone(), pending).await;
        }
        let mut k = 0usize;
        // This host keeps one file per root CA in /etc/ssl/certs, all read at cold start;
        // Lambda's provided.al2023 keeps them in bundle files: also measured with the bundle
        // file only (SSL_CERT_DIR empty).
        let empty = std::env::temp_dir().join(format!("arc-bench-no-certs-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&empty);
        let (bundle_cold, _, _) =
            self.cold_series(&w, name, &[("SSL_CERT_DIR", &empty.display().to_string())], run_id, exec, &mut k);
        let (cold, first, last) = self.cold_series(&w, name, &[], run_id, exec, &mut k);
        let mut p = last.expect("at least one cold run");
        for _ in 0..self.sizes.warm_runs {
            p.push_json(&warm_events(name, run_id, k, exec));
            k += 1;
        }
        let served = p.expect_answers(1 + self.sizes.warm_runs, Duration::from_secs(300));
        for s in &served {
            if let Outcome::Err { error_type, error_message } = &s.outcome {
                panic!("{name} (warm) failed: {error_type}: {error_message}");
            }
        }
        let stats = p.proc_stats();
        ColdWarm {
            cold: Spread::of(cold),
            bundle_cold: Spread::of(bundle_cold),
            first: Spread::of(first),
            warm: Spread::of(served.iter().skip(1).map(|s| ms(s.latency)).collect()),
            rss_mib: stats.peak_rss_kib as f64 / 1024.0,
            cpu_s: stats.cpu.as_secs_f64(),
        }
    }

    /// `cold_runs` fresh processes of `name`, one invocation each: their cold init and first
    /// invocation times, and the last process (alive).
    fn cold_series(
        &self,
        w: &TestEnv,
        name: &str,
        extra: &[(&str, &str)],
        run_id: &str,
        exec: &str,
        k: &mut usize,
    ) -> (Vec<f64>, Vec<f64>, Option<LambdaProcess>) {
        let (mut cold, mut first, mut last) = (Vec::new(), Vec::new(), None);
        for i in 0..self.sizes.cold_runs {
            let spawn = Spawn { env: self.lambda_env(w, extra), ..Spawn::default() };
            let mut p = LambdaProcess::spawn(&self.binary(name), spawn);
            p.push_json(&warm_events(name, run_id, *k, exec));
            *k += 1;
            let served = p.expect_answers(1, Duration::from_secs(120));
            if let Outcome::Err { error_type, error_message } = &served[0].outcome {
                panic!("{name} (cold run {i}) failed: {error_type}: {error_message}");
            }
            cold.push(p.cold_init().map_or(f64::NAN, ms));
            first.push(ms(served[0].latency));
            last = Some(p);
        }
        (cold, first, last)
    }

    async fn initialize_n(&self, n_tasks: usize, extra: &[(&str, &str)], latency_ms: u64) -> (Measured, Duration) {
        let w = self.world().await;
        let ids: Vec<String> = (0..n_tasks).map(task_id).collect();
        let exec = format!("arn:aws:states:us-east-1:123456789012:execution:bench:init-{n_tasks}");
        let event = json!({"config_name": "bench-cfg", "task_ids": ids, "execution_arn": exec,
                           "execution_start_time": "2026-11-26T13:00:00Z", "triggered_by": "bench"});
        let m = self.invoke_once(&w, "initialize", &event, extra, latency_ms);
        // The floor: the same items written raw into a fresh world, with the same delay.
        let floor_world = self.world().await;
        let items: Vec<Item> = (0..n_tasks).map(|i| completed_task("run-floor", i)).collect();
        self.count(&floor_world, latency_ms);
        let floor = raw_write(&floor_world, &floor_world.config.tasks_table.clone(), items).await;
        self.ctl.chaos_off();
        (m, floor)
    }

    async fn aggregate_n(&self, n_tasks: usize) -> (Measured, Duration, Duration, u64) {
        let w = self.world().await;
        let exec = format!("arn:aws:states:us-east-1:123456789012:execution:bench:agg-{n_tasks}");
        let run_id = "run-bench-cfg-20261126-130000-000000a9";
        raw_write(&w, &w.config.runs_table.clone(), vec![run_item(run_id, "RUNNING", n_tasks, &exec)]).await;
        let write_floor =
            raw_write(&w, &w.config.tasks_table.clone(), (0..n_tasks).map(|i| completed_task(run_id, i)).collect())
                .await;
        let (read_floor, _, pages) = raw_query(&w, Some(run_id)).await;
        let m = self.invoke_once(&w, "aggregate", &json!({"run_id": run_id, "execution_arn": exec}), &[], 0);
        (m, read_floor, write_floor, pages)
    }

    /// `tasks` FAILED tasks, due, over `runs` finished runs; then one scheduled sweep.
    async fn sweep_n(
        &self,
        tasks: usize,
        runs: usize,
        extra: &[(&str, &str)],
        latency_ms: u64,
    ) -> (Measured, Duration, u64) {
        let w = self.world().await;
        let per_run = tasks.div_ceil(runs);
        let mut run_items = Vec::new();
        let mut task_items = Vec::new();
        for r in 0..runs {
            let run_id = format!("run-bench-cfg-20261120-100000-{r:08x}");
            let exec = format!("arn:aws:states:us-east-1:123456789012:execution:bench:old-{r}");
            run_items.push(run_item(&run_id, "COMPLETED_WITH_ERRORS", per_run, &exec));
            task_items.extend((0..per_run).filter(|i| r * per_run + i < tasks).map(|i| failed_task(&run_id, i)));
        }
        raw_write(&w, &w.config.runs_table.clone(), run_items).await;
        raw_write(&w, &w.config.tasks_table.clone(), task_items).await;
        let (read_floor, found, pages) = raw_query(&w, None).await;
        assert_eq!(found, tasks, "the status-index holds every FAILED task");
        let m = self.invoke_once(&w, "sweeper", &json!({}), extra, latency_ms);
        (m, read_floor, pages)
    }
}

// ------------------------------------------------------------------ the report

fn zip_rows(zips: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for arch in ["arm64", "x86_64"] {
        for f in FUNCTIONS {
            let p = zips.join(arch).join(f).join("bootstrap.zip");
            match std::fs::metadata(&p) {
                Ok(m) => {
                    let mib = m.len() as f64 / MIB;
                    rows.push(row(
                        format!("{f} `bootstrap.zip`, {arch}"),
                        format!("{mib:.2} MiB ({} bytes)", m.len()),
                        "≤ 3 MiB",
                        verdict(mib <= 3.0),
                    ));
                }
                Err(_) => rows.push(row(
                    format!("{f} `bootstrap.zip`, {arch}"),
                    "not built",
                    "≤ 3 MiB",
                    format!("run `scripts/build-lambdas.sh --arch {arch}` (`{}`)", p.display()),
                )),
            }
        }
    }
    rows
}

fn table(md: &mut String, title: &str, rows: &[Row]) {
    let _ = writeln!(md, "\n## {title}\n\n| measure | value | target | status |\n|---|---|---|---|");
    for r in rows {
        let _ = writeln!(md, "| {} | {} | {} | {} |", r.measure, r.value, r.target, r.status);
    }
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}, `{}`", command_line("uname", &["-srm"]))
}

/// The peak RSS and CPU rows of one measured operation, against `(MiB, seconds)` targets.
fn resource_rows(what: &str, m: &Measured, targets: Option<(f64, f64)>) -> [Row; 2] {
    let rss = m.stats.peak_rss_kib as f64 / 1024.0;
    let cpu = m.stats.cpu.as_secs_f64();
    let target = |t: Option<String>| t.unwrap_or_default();
    [
        row(
            format!("{what}: peak RSS"),
            format!("{rss:.1} MiB"),
            target(targets.map(|(r, _)| format!("≤ {r} MiB"))),
            target(targets.map(|(r, _)| verdict(rss <= r).to_owned())),
        ),
        row(
            format!("{what}: CPU"),
            format!("{cpu:.3} s"),
            target(targets.map(|(_, c)| format!("≤ {c:.2} s"))),
            target(targets.map(|(_, c)| verdict(cpu <= c).to_owned())),
        ),
    ]
}

fn min_initialize(n_tasks: usize) -> u64 {
    1 + n_tasks.div_ceil(25) as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arc-bench: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let sizes = Sizes::of(args.quick);
    let emu = Emulator::start();
    let ctl = emu.ctl();
    let conf = sdk_config_with_attempts(&emu.endpoint, 3).await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let state_machine_arn = schema::create_stand_in_state_machine(&sfn, "arc-bench").await.expect("state machine");
    let front = KeepAliveFront::start(&emu.endpoint);
    let b = Bench { args, sizes, emu, front, ctl, state_machine_arn };
    let mode = if b.args.quick { "quick" } else { "full" };
    eprintln!("arc-bench: {mode} mode, binaries in {}", b.args.bin_dir.display());

    // Cold init and warm latency of every function.
    let mut cold_rows = Vec::new();
    let mut cold = BTreeMap::new();
    for f in FUNCTIONS {
        eprintln!("arc-bench: cold/warm {f}");
        let cw = b.cold_and_warm(f).await;
        cold_rows.push(row(
            format!("{f}: cold init, spawn → first `/next` ({} runs)", b.sizes.cold_runs),
            cw.cold.show("ms"),
            "≤ 6 ms",
            verdict(cw.cold.median() <= 6.0),
        ));
        cold_rows.push(row(
            format!("{f}: cold init with the CA bundle file only (`SSL_CERT_DIR` empty, as on provided.al2023)"),
            cw.bundle_cold.show("ms"),
            "≤ 6 ms",
            verdict(cw.bundle_cold.median() <= 6.0),
        ));
        cold_rows.push(row(format!("{f}: first invocation"), cw.first.show("ms"), "", ""));
        cold_rows.push(row(format!("{f}: warm invocation ({} runs)", b.sizes.warm_runs), cw.warm.show("ms"), "", ""));
        let rss_target = if f == "handle-error" { "≤ 16 MiB" } else { "" };
        let rss_status = if f == "handle-error" { verdict(cw.rss_mib <= 16.0) } else { "" };
        cold_rows.push(row(
            format!("{f}: peak RSS after the warm runs"),
            format!("{:.1} MiB", cw.rss_mib),
            rss_target,
            rss_status,
        ));
        cold_rows.push(row(
            format!("{f}: CPU of the process (cold + all its runs)"),
            format!("{:.3} s", cw.cpu_s),
            "",
            "",
        ));
        cold.insert(f, cw);
    }

    // Scale: initialize, aggregate, sweep, each beside the emulator's floor.
    let mut scale_rows = Vec::new();
    let mut calls_rows = Vec::new();
    let mut projection = Vec::new();
    // The wall time of each operation without the added delay, at the functions' concurrency.
    let mut undelayed = BTreeMap::new();
    for &size in &b.sizes.initialize {
        eprintln!("arc-bench: initialize {size}");
        let (m, floor) = b.initialize_n(size, &[], 0).await;
        undelayed.insert(format!("initialize {size} tasks"), m.wall);
        let big = size >= 10_000;
        scale_rows.push(row(
            format!("initialize {size} tasks: wall"),
            format!(
                "{:.0} ms; emulator floor (raw batch writes) {:.0} ms: {:.2}×",
                ms(m.wall),
                ms(floor),
                ms(m.wall) / ms(floor)
            ),
            "at the floor",
            "",
        ));
        scale_rows.extend(resource_rows(&format!("initialize {size} tasks"), &m, big.then_some((20.0, 0.10))));
        let min = min_initialize(size);
        calls_rows.push(row(
            format!("initialize {size} tasks"),
            m.calls_text(),
            format!("minimum 1 + ⌈{size}/25⌉ = {min}"),
            verdict(m.calls_total() <= min + 1),
        ));
        projection.push((format!("initialize {size} tasks"), m.calls_total(), 4.0, m.stats.cpu.as_secs_f64()));
    }
    for &size in &b.sizes.aggregate {
        eprintln!("arc-bench: aggregate {size}");
        let (m, read_floor, write_floor, pages) = b.aggregate_n(size).await;
        let target_rss = size == 10_000;
        scale_rows.push(row(
            format!("aggregate {size} tasks: wall"),
            format!(
                "{:.0} ms; emulator floor (raw query, {pages} pages) {:.0} ms: {:.2}× (writing them raw took {:.0} ms)",
                ms(m.wall),
                ms(read_floor),
                ms(m.wall) / ms(read_floor),
                ms(write_floor)
            ),
            "at the floor",
            "",
        ));
        scale_rows.extend(resource_rows(&format!("aggregate {size} tasks"), &m, target_rss.then_some((24.0, 0.09))));
        // One query page per 1 MB, the run read and write, the report object, the metrics.
        calls_rows.push(row(
            format!("aggregate {size} tasks"),
            m.calls_text(),
            format!("{pages} query pages (raw) + run read + run write + report PUT = {}", pages + 3),
            verdict(m.calls_total() <= pages + 3),
        ));
        projection.push((format!("aggregate {size} tasks"), m.calls_total(), 1.0, m.stats.cpu.as_secs_f64()));
    }
    let (sweep_tasks, sweep_runs) = b.sizes.sweep;
    eprintln!("arc-bench: sweep {sweep_tasks} tasks over {sweep_runs} runs");
    let (m, read_floor, pages) = b.sweep_n(sweep_tasks, sweep_runs, &[], 0).await;
    undelayed.insert(format!("sweep of {sweep_tasks} tasks over {sweep_runs} runs"), m.wall);
    scale_rows.push(row(
        format!("sweep of {sweep_tasks} FAILED tasks over {sweep_runs} runs: wall"),
        format!(
            "{:.0} ms; emulator floor (raw status-index query, {pages} pages) {:.0} ms",
            ms(m.wall),
            ms(read_floor)
        ),
        "",
        "",
    ));
    scale_rows.extend(resource_rows(&format!("sweep of {sweep_tasks} tasks"), &m, None));
    let sweep_min = pages + 3 * sweep_runs as u64 + sweep_tasks as u64;
    calls_rows.push(row(
        format!("sweep of {sweep_tasks} tasks over {sweep_runs} runs"),
        m.calls_text(),
        format!(
            "{pages} query pages + per run (claim + StartExecution + run read) + one write per task = {} (+ the RETRY_QUEUED and in-flight queries, the breakers' Scan and their three ended-task queries)",
            sweep_min
        ),
        verdict(m.calls_total() <= sweep_min + 2 * pages + 6),
    ));
    projection.push((
        format!("sweep {sweep_tasks} tasks / {sweep_runs} runs"),
        m.calls_total(),
        16.0,
        m.stats.cpu.as_secs_f64(),
    ));
    let requeued = m.answer.as_ref().and_then(|a| a["requeued_total"].as_u64()).unwrap_or(0);
    assert_eq!(requeued, sweep_tasks as u64, "the sweep re-queued {requeued} of {sweep_tasks} tasks: {:?}", m.answer);

    // handle-error's normal path.
    let he = b.world().await;
    let exec = "arn:aws:states:us-east-1:123456789012:execution:bench:he";
    let run_id = "run-bench-cfg-20261126-130000-000000e1";
    raw_write(&he, &he.config.runs_table.clone(), vec![run_item(run_id, "RUNNING", 1, exec)]).await;
    let mut pending = completed_task(run_id, 0);
    pending.insert("status".into(), s("IN_PROGRESS"));
    raw_write(&he, &he.config.tasks_table.clone(), vec![pending]).await;
    let m = b.invoke_once(&he, "handle-error", &warm_events("handle-error", run_id, 0, exec), &[], 0);
    calls_rows.push(row(
        "handle-error, a failure counted",
        m.calls_text(),
        "≤ 2 round trips (read + write)",
        verdict(m.calls_total() <= 2),
    ));

    // Latency mode.
    let mut latency_rows = Vec::new();
    let init_size = *b.sizes.initialize.iter().max().unwrap_or(&200);
    for (what, concurrent, serial) in [
        (
            format!("initialize {init_size} tasks"),
            b.initialize_n(init_size, &[], LATENCY_MS).await.0,
            b.initialize_n(init_size, &[("ARC_CONCURRENCY", "1")], LATENCY_MS).await.0,
        ),
        (
            format!("sweep of {sweep_tasks} tasks over {sweep_runs} runs"),
            b.sweep_n(sweep_tasks, sweep_runs, &[], LATENCY_MS).await.0,
            b.sweep_n(sweep_tasks, sweep_runs, &[("ARC_CONCURRENCY", "1")], LATENCY_MS).await.0,
        ),
    ] {
        let ratio = ms(concurrent.wall) / ms(serial.wall);
        // What concurrency can remove is the delay, never the emulator's own (serial) time: the
        // same operation without the delay is the floor of the ratio here.
        let alone = undelayed.get(&what).copied().unwrap_or_default();
        let added = (LATENCY_MS * concurrent.calls_total()) as f64;
        let hidden = (1.0 - (ms(concurrent.wall) - ms(alone)).max(0.0) / added).clamp(0.0, 1.0);
        latency_rows.push(row(
            format!("{what}, {LATENCY_MS} ms per request"),
            format!(
                "{:.0} ms at the functions' concurrency, {:.0} ms at `ARC_CONCURRENCY=1`: {ratio:.2}× ({} calls); \
                 the same operation without the delay took {:.0} ms ({:.2}× of the concurrency-1 run: the emulator's \
                 own time, which no concurrency hides); of the {added:.0} ms the delay added, {:.0} % was hidden by \
                 concurrency",
                ms(concurrent.wall),
                ms(serial.wall),
                concurrent.calls_total(),
                ms(alone),
                ms(alone) / ms(serial.wall),
                hidden * 100.0
            ),
            "≤ 0.3×",
            if ratio <= 0.3 {
                "met"
            } else if ms(alone) / ms(serial.wall) > 0.3 {
                "NOT met: bound by the emulator (below)"
            } else {
                "NOT met"
            },
        ));
    }

    // Sizes.
    let zips = zip_rows(&b.args.zips);

    // Projection for AWS.
    let mut proj_rows = Vec::new();
    for (what, calls, concurrency, cpu) in &projection {
        let wall = (*calls as f64 / concurrency).ceil() * AWS_CALL_MS + cpu * 1000.0;
        proj_rows.push(row(
            what.clone(),
            format!(
                "{calls} calls at {AWS_CALL_MS} ms, {concurrency} in flight, + {:.0} ms CPU ≈ {wall:.0} ms",
                cpu * 1000.0
            ),
            "",
            "",
        ));
    }
    // A 1,000-task run: initialize, handle-error for 10% of the tasks, aggregate, complete.
    let gb = MEMORY_MB / 1024.0;
    let billed_ms = |d: f64| d.ceil().max(1.0);
    let init_ms = 1.0 + (min_initialize(1000) as f64 / 4.0).ceil() * AWS_CALL_MS;
    let he_ms = 2.0 * AWS_CALL_MS + 1.0;
    let agg_ms = 1.0 + (1000.0 / 3000.0_f64).ceil().max(1.0) * AWS_CALL_MS + 3.0 * AWS_CALL_MS;
    let complete_ms = 4.0 * AWS_CALL_MS;
    let gb_s =
        gb * (billed_ms(init_ms) + 100.0 * billed_ms(he_ms) + billed_ms(agg_ms) + billed_ms(complete_ms)) / 1000.0;
    let requests = 1.0 + 100.0 + 2.0;
    let cost = gb_s * PRICE_GB_S_ARM64 + requests * PRICE_REQUEST;
    proj_rows.push(row(
        "Lambda cost of a 1,000-task run (initialize, 100 failures through handle-error, aggregate, complete)",
        format!("{gb_s:.3} GB-s at {MEMORY_MB} MB + {requests} requests ≈ ${cost:.6} (arm64)"),
        "",
        "",
    ));

    // Write.
    let mut md = String::new();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let cmd = if b.args.quick { "scripts/bench.sh --quick" } else { "scripts/bench.sh" };
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `{cmd}` on {now} in {:.0} s ({mode} mode). Machine: {}. `{}`; moto {} (serial wrapper \
         `tests/support/moto_serial.py`); binaries from `{}`; commit `{}`.\n",
        started.elapsed().as_secs_f64(),
        machine(),
        command_line("rustc", &["-V"]),
        command_line(
            &arc_integration_tests::repo_root().join(".venv-moto/bin/python").display().to_string(),
            &["-c", "import moto; print(moto.__version__)"]
        ),
        b.args.bin_dir.display(),
        command_line("git", &["rev-parse", "--short", "HEAD"]),
    );
    let _ = writeln!(
        md,
        "Reproduce: `scripts/bench.sh` (release build, both zips, full sizes; this file) or `scripts/bench.sh --quick` \
         (what `.ci/run` runs on the debug build: small sizes, figures not comparable). Each function is a separate \
         process driven through a local Lambda Runtime API (`tests/src/runtime_api.rs`); peak RSS is `VmHWM` and CPU is \
         utime + stime from `/proc/<pid>` just before the process is stopped; AWS calls are counted by the emulator \
         (every request naming the bench's tables, bucket or state machine). Spreads are `median (min–p90)`. \
         The functions run with `ARC_ATTEMPT_TIMEOUT_SECONDS=300`: the emulator takes longer than the default 10 s \
         to answer a query page of a 100,000-task partition. The functions reach the emulator through a keep-alive \
         front (`tests/src/keepalive.rs`): the emulator closes the connection after every answer, which would have \
         each function open and tear down one TCP connection per AWS request, as no function does against AWS."
    );
    table(&mut md, "Cold start and warm invocations", &cold_rows);
    table(&mut md, "Scale against the emulator's floor", &scale_rows);
    table(&mut md, "AWS API calls per operation", &calls_rows);
    table(&mut md, "Latency mode", &latency_rows);
    table(&mut md, "Size of each bootstrap.zip (scripts/build-lambdas.sh)", &zips);
    table(&mut md, &format!("Projection for AWS ({AWS_CALL_MS} ms per call, {MEMORY_MB} MB)"), &proj_rows);
    let notes = std::env::var("ARC_BENCH_NOTES").ok().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n{notes}");
    }
    if let Some(dir) = b.args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&b.args.out, &md) {
        eprintln!("arc-bench: cannot write {}: {e}", b.args.out.display());
        std::process::exit(1);
    }
    print!("{md}");
    eprintln!("arc-bench: wrote {}", b.args.out.display());
}
