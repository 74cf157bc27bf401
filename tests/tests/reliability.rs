//! Faults, crashes and races (RELIABILITY.md): the product against the fault-injecting proxy
//! of `tests/support/moto_serial.py` (seeded chaos, kill points), with the worker double.
//!
//! Every test here is one row of RELIABILITY.md: it appends one JSON line to
//! `$ARC_RELIABILITY_OUT` (`arc_integration_tests::chaos::scenario`). They are long, so they
//! are `#[ignore]`d in `cargo test --workspace` and run by `scripts/reliability.sh` (the quick
//! mode, bounded for `.ci/run`) or `scripts/reliability.sh --full` (`ARC_RELIABILITY=full`:
//! 20 seeds, 20 kill points). Each scenario uses its own emulator, so the chaos it arms never
//! reaches another test.
//!
//! What chaos selects: every request of the scenario's own resources (tables, bucket, state
//! machine), the product's and the local runner's alike, except the Python worker double's
//! five writes ([`WORKER_WRITES`]): the worker is not this product, and its failure path
//! counts a failure twice when the answer to its conditional increment is lost (boto3 retries
//! it, sees its own write as a conflict, re-reads and adds one again). Its reads are included.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::chaos::{self, by_mode, env_at, Books, Ctl, Emulator, Injected, Scenario};
use arc_integration_tests::lambda_binary;
use arc_shared::contracts::InitializeOutput;
use arc_shared::runtime::Env;
use arc_shared::status::TaskStatus;
use arc_shared::store::executions::{self, StartOutcome};
use arc_shared::store::objects;
use arc_shared::time::{format_ts, Clock, FixedClock};
use arc_shared::ArcError;
use arc_sweeper::{SweepDeps, SweepRequest};
use arc_worker_double::{Behaviour, Completion, Job, Worker, BATCH_ATTEMPTS};
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Python worker double's writes (claim, completion of the task and of the run, failure
/// record, permanent failure on the run), told apart by their expressions.
const WORKER_WRITES: [&str; 5] = [
    "worker_id = :worker_id",
    "tokens_output = :tout",
    "completed_tasks = completed_tasks + :one",
    "retry_count = :old",
    "failed_tasks = failed_tasks + :one",
];

const ALL_KINDS: [&str; 7] = ["drop", "lost", "500", "503", "throttle", "throughput", "conflict"];

/// Chaos at `rate` over the requests naming any of `names`, all kinds, worker writes excluded.
fn chaos_spec(seed: u64, rate: f64, names: &[String]) -> Value {
    json!({
        "seed": seed,
        "rate": rate,
        "kinds": ALL_KINDS,
        "match": {"contains": names, "exclude_contains": WORKER_WRITES},
    })
}

fn dependency_unavailable(e: &ArcError) -> bool {
    e.error_type() == "DependencyUnavailable"
}

// ------------------------------------------------------------------ the proxy itself

fn n_of(item: &std::collections::HashMap<String, AttributeValue>) -> i64 {
    item.get("n").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

async fn counter(t: &arc_integration_tests::TestEnv) -> i64 {
    let out = t
        .clients
        .dynamodb
        .get_item()
        .table_name(&t.config.runs_table)
        .key("run_id", AttributeValue::S("counter".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    n_of(&out.item.unwrap_or_default())
}

/// `ADD n :1` on the counter item: the non-idempotent write a naive retry counts twice.
async fn add_one(db: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), ArcError> {
    db.update_item()
        .table_name(table)
        .key("run_id", AttributeValue::S("counter".into()))
        .update_expression("ADD n :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ArcError::from_sdk("UpdateItem", e))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn the_chaos_proxy_injects_each_kind_as_aws_would() {
    let s = Scenario {
        name: "chaos proxy: every kind, holds, latency, seeds",
        done: "each of drop, lost, 500, 503, throttle, throughput, conflict forced on a DynamoDB `ADD n :1` \
               (SDK without retries), throttle on S3 PutObject and StartExecution; a 2-attempt SDK retry \
               under `lost`; holds before/after with drop/pass; 40 ms latency; one seed twice"
            .into(),
        runs: 1,
        checked: "every kind is DependencyUnavailable to the product; only `lost` (and a hold released after) \
                  applies the write; a naive retry under `lost` adds 2; latency delays each request; the same \
                  seed injects the same sequence"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let ctl = emu.ctl();
        let t = env_at(&emu.endpoint, 1, &[]).await;
        let runs = t.config.runs_table.clone();
        let db = &t.clients.dynamodb;
        add_one(db, &runs).await.map_err(|e| e.to_string())?;
        let only_add = json!({"contains": [runs.clone()], "operations": ["UpdateItem"]});

        for kind in ALL_KINDS {
            let before = counter(&t).await;
            ctl.chaos(&json!({"seed": 1, "rate": 1.0, "kinds": [kind], "match": only_add}));
            let r = add_one(db, &runs).await;
            let off = ctl.chaos_off();
            let after = counter(&t).await;
            match r {
                Err(e) if dependency_unavailable(&e) => {}
                other => return Err(format!("{kind}: expected DependencyUnavailable, got {other:?}")),
            }
            if off["injected"][kind] != 1 {
                return Err(format!("{kind}: counters {off}"));
            }
            let applied = after - before;
            if applied != i64::from(kind == "lost") {
                return Err(format!("{kind}: the write was applied {applied} time(s)"));
            }
        }

        // A naive retry of a non-idempotent write whose answers are lost counts twice.
        let twice = arc_shared::store::Clients::from_conf(&chaos::sdk_config_with_attempts(&emu.endpoint, 2).await);
        let before = counter(&t).await;
        ctl.chaos(&json!({"seed": 1, "rate": 1.0, "kinds": ["lost"], "match": only_add}));
        let r = add_one(&twice.dynamodb, &runs).await;
        ctl.chaos_off();
        if r.is_ok() || counter(&t).await - before != 2 {
            return Err(format!("naive retry under lost: {r:?}, added {}", counter(&t).await - before));
        }

        // S3 and Step Functions speak their own protocols; both throttles are retryable.
        ctl.chaos(&json!({"seed": 1, "rate": 1.0, "kinds": ["throttle"], "match": {"contains": [t.bucket.clone(), "chaos-selftest"]}}));
        let at = objects::ObjectRef { bucket: t.bucket.clone(), key: "x.json".into() };
        let put = t.clients.objects.put_json(&at, &json!([1])).await;
        let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:chaos-selftest";
        let start = executions::start(&t.clients.sfn, sm, "e1", "{}").await;
        ctl.chaos_off();
        for (what, r) in [("PutObject", put.map(|_| ())), ("StartExecution", start.map(|_| ()))] {
            match r {
                Err(e) if dependency_unavailable(&e) => {}
                other => return Err(format!("{what} throttled: {other:?}")),
            }
        }

        // Holds: before + drop never applies; after + drop applies unanswered; pass goes on.
        for (when, then, applied, answered) in
            [("before", "drop", 0, false), ("after", "drop", 1, false), ("before", "pass", 1, true)]
        {
            let id = format!("{when}-{then}");
            ctl.hold(&id, 1, when, &only_add);
            let before = counter(&t).await;
            let (db2, runs2) = (db.clone(), runs.clone());
            let call = tokio::spawn(async move { add_one(&db2, &runs2).await });
            wait_held(&ctl, &id, Duration::from_secs(20))?;
            ctl.release(&id, then);
            let r = call.await.map_err(|e| e.to_string())?;
            if r.is_ok() != answered || counter(&t).await - before != applied {
                return Err(format!("hold {id}: {r:?}, applied {}", counter(&t).await - before));
            }
        }

        // Latency: every selected request waits (never shorter), none is failed at rate 0.
        ctl.chaos(&json!({"seed": 1, "rate": 0.0, "kinds": ALL_KINDS, "latency_ms": 40, "match": only_add}));
        let started = Instant::now();
        for _ in 0..5 {
            add_one(db, &runs).await.map_err(|e| format!("latency only: {e}"))?;
        }
        let waited = started.elapsed();
        let off = ctl.chaos_off();
        if waited < Duration::from_millis(200) || off["seen"] != 5 || off["forwarded"] != 5 {
            return Err(format!("latency: 5 requests in {waited:?}, counters {off}"));
        }

        // One seed, one sequence: the same requests in the same order get the same kinds.
        let mut sequences = Vec::new();
        for _ in 0..2 {
            ctl.chaos(&json!({"seed": 42, "rate": 0.5, "kinds": ALL_KINDS, "match": only_add, "trace": true}));
            for _ in 0..30 {
                let _ = add_one(db, &runs).await;
            }
            let kinds: Vec<(Value, Value)> = ctl.trace().iter().map(|t| (t["n"].clone(), t["kind"].clone())).collect();
            ctl.chaos_off();
            sequences.push(kinds);
        }
        if sequences[0] != sequences[1] || sequences[0].len() < 5 {
            return Err(format!("seed 42 twice: {:?} vs {:?}", sequences[0], sequences[1]));
        }
        Ok(())
    })
    .await;
}

fn wait_held(ctl: &Ctl, id: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ctl.hold_state(id)["held"] == true {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("hold {id} never engaged: {}", ctl.hold_state(id)))
}

// ------------------------------------------------------------------ arc-local under chaos

/// One `arc-local` run on its own emulator under 20 % chaos: its exit, its output, and what
/// the chaos injected.
struct LocalRun {
    seed: u64,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    counters: Value,
    books: Books,
}

async fn arc_local_under_chaos(seed: u64, tasks: u64) -> LocalRun {
    let emu = Emulator::start();
    let ctl = emu.ctl();
    let mut spec = chaos_spec(seed, 0.2, &["arc_local_".to_owned(), "arc-local-".to_owned()]);
    // The local runner creates its resources first: they are set-up, not the run.
    spec["match"]["exclude_operations"] = json!(["CreateTable", "CreateStateMachine", "DescribeTable"]);
    spec["match"]["exclude_contains"] = json!(WORKER_WRITES);
    ctl.chaos(&spec);
    let endpoint = emu.endpoint.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(lambda_binary("arc-local"))
            .args(["--tasks", &tasks.to_string(), "--seed", &seed.to_string()])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("MAX_RETRIES")
            .env_remove("STATE_MACHINE_ARN")
            .output()
            .expect("run arc-local")
    })
    .await
    .expect("arc-local");
    let counters = ctl.chaos_off();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // arc-local leaves its resources in an emulator it did not start and names them.
    let name =
        |k: &str| stderr.split_whitespace().find_map(|w| w.strip_prefix(k)).map(str::to_owned).unwrap_or_default();
    let (runs, tasks_table) = (name("RUNS_TABLE="), name("TASKS_TABLE="));
    let books = if runs.is_empty() {
        Books::default()
    } else {
        let conf = arc_integration_tests::sdk_config(&emu.endpoint).await;
        Books::read_tables(&aws_sdk_dynamodb::Client::new(&conf), &runs, &tasks_table).await
    };
    LocalRun {
        seed,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        counters,
        books,
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn arc_local_under_chaos_ends_with_exact_accounting() {
    let seeds: Vec<u64> = (1..=by_mode(3, 20)).collect();
    let tasks = by_mode(30, 120);
    let s = Scenario {
        name: "arc-local under 20% chaos",
        done: format!(
            "`arc-local --tasks {tasks} --seed S` (worker double, 20% simulated job failures, redeliveries) with \
             20% of its requests failed (all 7 kinds, SDK retries as shipped, worker writes excluded), one \
             emulator per seed"
        ),
        runs: seeds.len() as u64,
        checked: "exit 0 and arc-local's own closing check (tasks table = run record = S3 report = worker ledger, \
                  to the last digit; retry_count = failed attempts per task); the tables' invariants; every kind \
                  injected"
            .into(),
    };
    chaos::scenario(s, async {
        let mut problems = Vec::new();
        let mut injected = Injected::default();
        for batch in seeds.chunks(4) {
            let runs = futures::future::join_all(batch.iter().map(|&seed| arc_local_under_chaos(seed, tasks))).await;
            for r in runs {
                injected.add(&r.counters);
                println!("seed {}: exit {:?}, chaos {}\n{}", r.seed, r.code, r.counters, r.stdout);
                if r.code != Some(0) || !r.stdout.contains("accounting OK") {
                    let tail: String = r.stderr.lines().filter(|l| !l.starts_with(' ')).collect::<Vec<_>>().join(" / ");
                    problems.push(format!("seed {}: exit {:?}: {tail}", r.seed, r.code));
                }
                let inv = r.books.invariants(3);
                if r.books.runs.is_empty() || !inv.is_empty() {
                    problems.push(format!("seed {}: tables: {:?}", r.seed, inv));
                }
            }
        }
        println!("chaos over all seeds: {}", injected.describe());
        chaos::note("arc-local under 20% chaos", injected.describe());
        for k in ALL_KINDS {
            if injected.by_kind.get(k).copied().unwrap_or(0) == 0 {
                problems.push(format!("kind {k} was never injected"));
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

// ------------------------------------------------------------------ the handlers under chaos

/// splitmix64: the seeded draws of the in-process driver.
struct Draws(u64);

impl Draws {
    fn new(seed: u64, key: &str) -> Self {
        Self(key.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The state machine and Batch, run in process against one world, every handler and sweep
/// invocation retried as the state machine's `Retry` (or the next schedule) would; after every
/// failed invocation the tables are read (chaos paused) and checked.
struct Driver {
    t: arc_integration_tests::TestEnv,
    env: Arc<Env>,
    clock: Arc<FixedClock>,
    deps: SweepDeps,
    sm_arn: String,
    ctl: Ctl,
    worker: Worker,
    seed: u64,
    max_retries: u32,
    /// Failed attempts per task (each must count once in `retry_count`).
    failures: BTreeMap<String, u32>,
    /// The cost each completed task's worker wrote.
    costs: BTreeMap<String, Decimal>,
    invocations: u64,
    failed_invocations: u64,
    problems: Vec<String>,
}

impl Driver {
    /// Invokes `what` until it succeeds (at most 60 times): every failure must be
    /// `DependencyUnavailable` and leave the invariants holding.
    async fn invoke<T, F, Fut>(&mut self, what: &str, mut call: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ArcError>>,
    {
        for _ in 0..60 {
            self.invocations += 1;
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.failed_invocations += 1;
                    if !dependency_unavailable(&e) {
                        return Err(format!("{what} failed with {} (not retryable): {e}", e.error_type()));
                    }
                    self.check(&format!("after a failed {what} ({e})"), false).await;
                }
            }
        }
        Err(format!("{what} still failing after 60 invocations"))
    }

    /// The invariants (chaos paused); `exact`: every failure recorded, none in flight.
    async fn check(&mut self, when: &str, exact: bool) -> Books {
        self.ctl.pause();
        let books = Books::read(&self.t).await;
        self.ctl.resume();
        let mut p = books.invariants(self.max_retries);
        for task in &books.tasks {
            let want = self.failures.get(&task.task_id).copied().unwrap_or(0);
            if task.retry_count > want || (exact && task.retry_count != want) {
                p.push(format!("task {} retry_count {} after {want} failed attempts", task.task_id, task.retry_count));
            }
        }
        for e in p {
            self.problems.push(format!("{when}: {e}"));
        }
        books
    }

    fn sim(&self, key: &str) -> (Vec<Behaviour>, bool) {
        let mut d = Draws::new(self.seed, key);
        let plan = (0..BATCH_ATTEMPTS)
            .map(|_| {
                if d.chance(0.3) {
                    match d.below(100) {
                        0..=54 => Behaviour::Fail { message: "RateLimitError: 429 from the model provider".into() },
                        55..=74 => {
                            Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed".into() }
                        }
                        75..=89 => Behaviour::Killed {
                            exit_code: 143,
                            reason: "Host EC2 (instance i-0abc) terminated.".into(),
                        },
                        _ => Behaviour::NotStarted { status_reason: "CannotPullContainerError: pull failed".into() },
                    }
                } else {
                    Behaviour::Complete(Completion {
                        cost_usd: Decimal::new(1_000 + d.below(500_000) as i64, 6),
                        tokens_input: 1_000 + d.below(20_000),
                        tokens_output: 100 + d.below(4_000),
                        result_s3_key: None,
                    })
                }
            })
            .collect();
        (plan, d.chance(0.2))
    }

    /// One Batch job of the task (the worker double), its failure delivered (maybe twice).
    async fn job(&mut self, run_id: &str, task_id: &str, round: u32, execution_arn: &str) -> Result<(), String> {
        let (plan, redeliver) = self.sim(&format!("{task_id}/{round}"));
        let job: Job = self.worker.run_job(run_id, task_id, &plan).await;
        let failed =
            job.attempts.iter().filter(|a| a.claimed && (a.exit_code != Some(0) || !a.wrote_completed)).count();
        let unclaimed = !job.succeeded && !job.attempts.iter().any(|a| a.claimed);
        *self.failures.entry(task_id.to_owned()).or_default() += failed as u32 + u32::from(unclaimed);
        if let Some(i) = job.attempts.iter().position(|a| a.claimed && a.exit_code == Some(0) && a.wrote_completed) {
            if let Some(Behaviour::Complete(c)) = plan.get(i).or(plan.last()) {
                self.costs.insert(task_id.to_owned(), c.cost_usd);
            }
        }
        if !job.succeeded {
            let event = json!({
                "run_id": run_id,
                "task_id": task_id,
                "error": job.step_functions_error(task_id, &[]),
                "delivery": {"execution_arn": format!("{execution_arn}/{task_id}"), "entered_at": job.job_id},
            });
            for _ in 0..(1 + u32::from(redeliver)) {
                let env = self.env.clone();
                self.invoke("handle-error", || handle_error::handle(env.clone(), event.clone())).await?;
            }
        }
        Ok(())
    }

    /// One execution: Initialize, a job per task, Aggregate, Complete, then StopExecution.
    async fn execution(&mut self, mut input: Value, arn: &str, round: u32) -> Result<String, String> {
        input["execution_arn"] = json!(arn);
        let env = self.env.clone();
        let init: InitializeOutput =
            self.invoke("initialize", || initialize::handle(env.clone(), input.clone())).await?;
        let ids = match &init.items {
            Some(at) => {
                let s3 = self.env.clients.objects.clone();
                self.invoke("ItemReader", || s3.get_string_list(at, "items")).await?
            }
            None => init.task_ids.clone().unwrap_or_default(),
        };
        for id in &ids {
            self.job(&init.run_id, id, round, arn).await?;
        }
        let event = json!({"run_id": init.run_id, "execution_arn": arn});
        let agg = self.invoke("aggregate", || aggregate::handle(env.clone(), event.clone())).await?;
        let event = json!({"run_id": init.run_id, "aggregation": serde_json::to_value(agg.figures()).unwrap(), "execution_arn": arn});
        self.invoke("complete", || complete::handle(env.clone(), event.clone())).await?;
        let sfn = self.env.clients.sfn.clone();
        self.invoke("StopExecution", || executions::stop(&sfn, arn, None, "run by the test")).await?;
        Ok(init.run_id)
    }

    async fn run(&mut self, tasks: usize) -> Result<(), String> {
        let ids: Vec<String> = (0..tasks).map(|i| format!("t{i:03}")).collect();
        let name = format!("run-{}", self.seed);
        let input =
            json!({"config_name": "chaos", "task_ids": ids, "execution_start_time": format_ts(self.clock.now())});
        let (sfn, sm) = (self.env.clients.sfn.clone(), self.sm_arn.clone());
        let started = self.invoke("StartExecution", || executions::start(&sfn, &sm, &name, "{}")).await?;
        let arn = match started {
            StartOutcome::Started { execution_arn, .. } => execution_arn,
            StartOutcome::AlreadyExists(_) => executions::execution_arn(&self.sm_arn, &name),
        };
        let run_id = self.execution(input, &arn, 0).await?;
        let mut processed = BTreeSet::from([arn]);
        for round in 1..=12u32 {
            let books = self.check(&format!("before round {round}"), true).await;
            if !books.tasks.iter().any(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::RetryQueued)) {
                let cost: Decimal = self.costs.values().copied().sum();
                let run_cost = books.run(&run_id).and_then(|r| r.total_cost_usd);
                if run_cost != Some(cost) {
                    self.problems.push(format!("run cost {run_cost:?}, workers charged {cost}"));
                }
                return Ok(());
            }
            // Past the longest backoff; then the schedule's sweeps, 16 minutes apart (past the
            // repair grace of a claim left behind), until one goes through without an error.
            self.clock.advance(chrono::Duration::hours(6) + chrono::Duration::minutes(1));
            for _ in 0..8 {
                let deps = self.deps.clone();
                let summary = self
                    .invoke("sweeper", || {
                        let deps = deps.clone();
                        async move { Box::pin(arc_sweeper::sweep(&deps, SweepRequest::scheduled())).await }
                    })
                    .await?;
                if summary.errors.is_empty() {
                    break;
                }
                self.check("after a sweep with errors", false).await;
                self.clock.advance(chrono::Duration::minutes(16));
            }
            let listed = self.invoke("ListExecutions", || executions::list_running(&sfn, &sm)).await?;
            let new: Vec<_> = listed.into_iter().filter(|e| !processed.contains(&e.execution_arn)).collect();
            for e in new {
                let arn = e.execution_arn.clone();
                let d = self.invoke("DescribeExecution", || executions::describe(&sfn, &arn)).await?;
                let input: Value =
                    serde_json::from_str(d.input.as_deref().unwrap_or("{}")).map_err(|e| e.to_string())?;
                self.execution(input, &arn, round).await?;
                processed.insert(arn);
            }
        }
        Err("tasks still retryable after 12 rounds".into())
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn every_handler_under_chaos_fails_only_retryably_and_leaves_the_invariants() {
    let seeds: Vec<u64> = (1..=by_mode(3, 20)).collect();
    let tasks = by_mode(12, 30);
    let s = Scenario {
        name: "handlers and sweeper under 20% chaos, no SDK retries",
        done: format!(
            "a run of {tasks} tasks (30% of container attempts fail, 20% of failed jobs delivered twice) driven in \
             process through initialize, the worker double, handle-error, aggregate, complete and the sweeper \
             (every 16 simulated minutes until a sweep has no error) until no task is retryable, 20% of requests \
             failed (all 7 kinds) with the SDK's retries off, each failed invocation invoked again"
        ),
        runs: seeds.len() as u64,
        checked: "every failed invocation is DependencyUnavailable; after each, the invariants (known statuses, \
                  retry_count ≤ MAX_RETRIES and = it exactly when FAILED_PERMANENT, a RETRY_QUEUED task names its \
                  execution, a finished run has no task in flight and its status, completed_tasks, failed_tasks \
                  and cost are its tasks', retry_count never above the failed attempts so far); at the end \
                  retry_count = failed attempts per task and the run's cost = the worker ledger"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let mut problems = Vec::new();
        let mut injected = Injected::default();
        let (mut invocations, mut failed) = (0, 0);
        for &seed in &seeds {
            // Failures stay retryable however many simulated hours the rounds take.
            let t = env_at(&emu.endpoint, 1, &[("MAX_RETRIES", "3"), ("SWEEPER_MAX_AGE_HOURS", "8760")]).await;
            let sm_name = format!("chaos-sm-{}", &t.bucket[12..]);
            let sm_arn = t.create_state_machine(&sm_name).await;
            let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
            let env = t.env_with_clock(clock.clone());
            let deps = t.sweep_deps(&sm_arn, clock.clone());
            let worker =
                Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, clock.clone())
                    .with_max_retries(3);
            let ctl = emu.ctl();
            ctl.chaos(&chaos_spec(seed, 0.2, &chaos::world_names(&t, &[&sm_name])));
            let mut d = Driver {
                t,
                env,
                clock,
                deps,
                sm_arn,
                ctl: ctl.clone(),
                worker,
                seed,
                max_retries: 3,
                failures: BTreeMap::new(),
                costs: BTreeMap::new(),
                invocations: 0,
                failed_invocations: 0,
                problems: Vec::new(),
            };
            let started = Instant::now();
            let result = d.run(tasks).await;
            println!("seed {seed}: {:?}, {} invocations", started.elapsed(), d.invocations);
            injected.add(&ctl.chaos_off());
            d.check("at the end", true).await;
            invocations += d.invocations;
            failed += d.failed_invocations;
            if let Err(e) = result {
                problems.push(format!("seed {seed}: {e}"));
            }
            problems.extend(d.problems.iter().map(|p| format!("seed {seed}: {p}")));
        }
        println!("{invocations} invocations, {failed} failed and invoked again; chaos: {}", injected.describe());
        chaos::note(
            "handlers and sweeper under 20% chaos, no SDK retries",
            format!("{} invocations, {failed} of them failed and invoked again; {}", invocations, injected.describe()),
        );
        if failed == 0 {
            problems.push("no invocation failed: the chaos did not reach the handlers".into());
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

// ------------------------------------------------------------------ the emulator down or hung

/// A Lambda's timeout as the Terraform module ships it (`variables.tf` default).
fn terraform_default(variable: &str) -> u64 {
    let text = std::fs::read_to_string(arc_integration_tests::repo_root().join("terraform/variables.tf")).unwrap();
    let block = text.split(&format!("variable \"{variable}\"")).nth(1).unwrap();
    let line = block.lines().find(|l| l.trim_start().starts_with("default")).unwrap();
    line.split('=').nth(1).unwrap().trim().parse().unwrap()
}

/// Accepts connections and never answers, until dropped.
struct BlackHole {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHole {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { port, stop }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn with_the_emulator_down_or_hung_every_function_answers_dependency_unavailable() {
    let run_id = "run-cfg-20261126-120000-0000000a";
    let functions: Vec<(&str, Value, &str)> = vec![
        ("initialize", json!({"config_name": "cfg", "task_ids": ["t1", "t2"]}), "lambda_timeout_seconds"),
        (
            "handle-error",
            json!({"run_id": run_id, "task_id": "t1", "error": {"Error": "States.TaskFailed", "Cause": "{}"}}),
            "lambda_timeout_seconds",
        ),
        ("aggregate", json!({"run_id": run_id}), "lambda_timeout_seconds"),
        (
            "complete",
            json!({"run_id": run_id, "aggregation": {"total_tasks": 2, "completed_tasks": 2, "failed_tasks": 0, "accuracy": 1.0, "total_cost_usd": 0.5}}),
            "lambda_timeout_seconds",
        ),
        ("sweeper", json!({}), "sweeper_timeout_seconds"),
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["runs", "list"],
        vec!["sweep", "--dry-run"],
        vec!["runs", "show", run_id],
        vec!["runs", "start", "--config", "cfg", "--task-id", "t1"],
        vec!["runs", "cancel", run_id, "--reason", "test"],
        vec!["runs", "resume", run_id],
        vec!["runs", "report", run_id],
        vec!["retry", run_id],
        vec!["doctor"],
    ];
    // Hung, each call waits out the SDK's attempts (about 30 s); quick mode checks two commands.
    let hung_commands = by_mode(2, commands.len());
    let s = Scenario {
        name: "emulator down, emulator hung",
        done: format!(
            "the 5 functions (built binaries through a local Runtime API) and {} arcctl commands against a \
             port nothing listens on (down); the 5 functions and {hung_commands} of the commands against one \
             that accepts connections and never answers (hung)",
            commands.len()
        ),
        runs: 2,
        checked: "every function answers errorType DependencyUnavailable within its Lambda timeout (Terraform \
                  defaults: 60 s, sweeper 300 s); every arcctl command exits 1 with one `arcctl: error: … AWS \
                  unavailable …` line (doctor: each check ✗ with its fix), no panic"
            .into(),
    };
    chaos::scenario(s, async {
        let mut problems = Vec::new();
        let hole = BlackHole::start();
        let mut handles = Vec::new();
        for (how, port) in [("down", chaos::free_port()), ("hung", hole.port)] {
            let endpoint = format!("http://127.0.0.1:{port}");
            let env: Vec<(String, String)> = [
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
                ("RUNS_TABLE", "runs_unreachable"),
                ("TASKS_TABLE", "tasks_unreachable"),
                ("S3_BUCKET", "arc-results-unreachable"),
                ("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:unreachable"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            for (name, event, timeout_var) in functions.clone() {
                let env = env.clone();
                let limit = Duration::from_secs(terraform_default(timeout_var));
                handles.push(std::thread::spawn(move || {
                    let started = Instant::now();
                    // The functions' logs (an ERROR line each) are kept out of the test's output.
                    let (out, _logs) = arc_integration_tests::runtime_api::invoke_binary_with_logs(
                        &lambda_binary(name),
                        &env,
                        &[event],
                    );
                    let took = started.elapsed();
                    match out.first().and_then(|o| o.err_type().map(str::to_owned)) {
                        Some(t) if t == "DependencyUnavailable" && took < limit => None,
                        _ => Some(format!("{how}: {name}: {out:?} after {took:?} (timeout {limit:?})")),
                    }
                }));
            }
            let n = if how == "hung" { hung_commands } else { commands.len() };
            for args in commands.iter().take(n).cloned() {
                let env = env.clone();
                handles.push(std::thread::spawn(move || {
                    let out = arc_integration_tests::run_binary("arcctl", &env, &args);
                    let errors = out.stderr.lines().filter(|l| l.starts_with("arcctl: error:")).count();
                    let all = format!("{}{}", out.stdout, out.stderr);
                    let clear = all.contains("AWS unavailable") && !all.contains("panicked");
                    // doctor reports every check (✗ with its fix) before its one error line.
                    let doctor_ok = args[0] != "doctor" || out.stderr.contains("checks failed");
                    match out.code == 1 && errors == 1 && clear && doctor_ok {
                        true => None,
                        false => {
                            Some(format!("{how}: arcctl {}: exit {}: {}", args.join(" "), out.code, out.stderr.trim()))
                        }
                    }
                }));
            }
        }
        for h in handles {
            if let Some(p) = h.join().unwrap() {
                problems.push(p);
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

// ------------------------------------------------------------------ the sweeper SIGKILLed

/// A world for one kill point: run A (COMPLETED_WITH_ERRORS, 6 due FAILED tasks, 2 completed),
/// run B (FAILED, 3 due FAILED tasks), run C (RUNNING, its execution stopped: 2 IN_PROGRESS,
/// 1 PENDING, 1 COMPLETED task left) — a sweep claims, re-queues and starts for A and B and
/// repairs C.
struct KillWorld {
    t: arc_integration_tests::TestEnv,
    sm_arn: String,
    sm_name: String,
    namespace: String,
    clock: Arc<FixedClock>,
    deps: SweepDeps,
}

const RUN_A: &str = "run-kill-a";
const RUN_B: &str = "run-kill-b";
const RUN_C: &str = "run-kill-c";

fn item(pairs: &[(&str, AttributeValue)]) -> std::collections::HashMap<String, AttributeValue> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn sv(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn nv(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn kill_world(endpoint: &str, max_retries: u32) -> KillWorld {
    let t = env_at(endpoint, 3, &[("MAX_RETRIES", &max_retries.to_string())]).await;
    let suffix = t.bucket.trim_start_matches("arc-results-").to_owned();
    let sm_name = format!("kill-sm-{suffix}");
    let namespace = format!("ArcKill{suffix}");
    let sm_arn = t.create_state_machine(&sm_name).await;
    let now = chrono::Utc::now();
    let ago = |h: i64| sv(&format_ts(now - chrono::Duration::hours(h)));
    let db = &t.clients.dynamodb;
    let c_exec = executions::start(&t.clients.sfn, &sm_arn, "run-kill-c-exec", "{}").await.unwrap();
    let c_arn = match c_exec {
        StartOutcome::Started { execution_arn, .. } => execution_arn,
        other => panic!("{other:?}"),
    };
    executions::stop(&t.clients.sfn, &c_arn, None, "stopped by hand").await.unwrap();
    for (run, status, total, completed, failed, cost) in [
        (RUN_A, "COMPLETED_WITH_ERRORS", 8, 2, 6, "0.2"),
        (RUN_B, "FAILED", 3, 0, 3, "0"),
        (RUN_C, "RUNNING", 4, 1, 0, "0.1"),
    ] {
        let mut it = item(&[
            ("run_id", sv(run)),
            ("config_name", sv("cfg-k")),
            ("status", sv(status)),
            ("total_tasks", nv(total)),
            ("completed_tasks", nv(completed)),
            ("failed_tasks", nv(failed)),
            ("total_cost_usd", nv(cost)),
            ("total_input_tokens", nv(0)),
            ("total_output_tokens", nv(0)),
            ("created_at", ago(4)),
            ("updated_at", ago(3)),
        ]);
        if run == RUN_C {
            it.insert("execution_arn".into(), sv(&c_arn));
        }
        db.put_item().table_name(&t.config.runs_table).set_item(Some(it)).send().await.unwrap();
    }
    let mut tasks = Vec::new();
    let failed = |run: &str, id: String, rc: u32, h: i64| {
        item(&[
            ("run_id", sv(run)),
            ("task_id", sv(&id)),
            ("status", sv("FAILED")),
            ("retry_count", nv(rc)),
            ("last_error_type", sv("States.TaskFailed")),
            ("last_error_at", ago(h)),
            ("created_at", ago(4)),
            ("updated_at", ago(h)),
        ])
    };
    for i in 0..6 {
        tasks.push(failed(RUN_A, format!("a{i}"), 1, 2));
    }
    for i in 0..3 {
        tasks.push(failed(RUN_B, format!("b{i}"), 2, 3));
    }
    for (run, id) in [(RUN_A, "a6"), (RUN_A, "a7"), (RUN_C, "c3")] {
        tasks.push(item(&[
            ("run_id", sv(run)),
            ("task_id", sv(id)),
            ("status", sv("COMPLETED")),
            ("retry_count", nv(0)),
            ("cost_usd", nv("0.1")),
            ("created_at", ago(4)),
            ("updated_at", ago(3)),
        ]));
    }
    for (id, status) in [("c0", "IN_PROGRESS"), ("c1", "IN_PROGRESS"), ("c2", "PENDING")] {
        let mut it = item(&[
            ("run_id", sv(RUN_C)),
            ("task_id", sv(id)),
            ("status", sv(status)),
            ("retry_count", nv(0)),
            ("created_at", ago(4)),
            ("updated_at", ago(2)),
        ]);
        if status == "IN_PROGRESS" {
            it.insert("started_at".into(), ago(2));
        }
        tasks.push(it);
    }
    arc_shared::store::batch_put(db, &t.config.tasks_table, tasks).await.unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let mut config = t.config.clone();
    config.cloudwatch_namespace = namespace.clone();
    config.state_machine_arn = Some(sm_arn.clone());
    let env = Env { config, clients: t.clients.clone(), clock: clock.clone() };
    let deps = SweepDeps::from_env(&env).unwrap();
    KillWorld { t, sm_arn, sm_name, namespace, clock, deps }
}

impl KillWorld {
    /// The functions' configuration in this world (the sweeper's settings included).
    fn deps_config(&self) -> arc_shared::Config {
        let mut config = self.t.config.clone();
        config.cloudwatch_namespace = self.namespace.clone();
        config.state_machine_arn = Some(self.sm_arn.clone());
        config
    }

    fn selector(&self) -> Value {
        json!({"contains": chaos::world_names(&self.t, &[&self.sm_name, &self.namespace])})
    }

    fn lambda_env(&self) -> Vec<(String, String)> {
        let mut env = self.t.lambda_env();
        env.push(("STATE_MACHINE_ARN".into(), self.sm_arn.clone()));
        env.push(("CLOUDWATCH_NAMESPACE".into(), self.namespace.clone()));
        env
    }

    /// Every execution of the state machine: name → (status, retry input if it is one).
    async fn executions(&self) -> BTreeMap<String, (String, Option<arc_shared::contracts::RetryInput>)> {
        let sfn = &self.t.clients.sfn;
        let list = sfn.list_executions().state_machine_arn(&self.sm_arn).max_results(1000).send().await.unwrap();
        let mut out = BTreeMap::new();
        for e in list.executions() {
            let d = sfn.describe_execution().execution_arn(e.execution_arn()).send().await.unwrap();
            let input = d.input().and_then(|i| serde_json::from_str(i).ok());
            out.insert(e.name().to_owned(), (d.status().as_str().to_owned(), input));
        }
        out
    }

    /// Zero duplicate executions, zero stranded tasks, every failure counted as before.
    async fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let books = Books::read(&self.t).await;
        p.extend(books.invariants(3));
        let ex = self.executions().await;
        let running: BTreeMap<&String, &arc_shared::contracts::RetryInput> = ex
            .iter()
            .filter(|(_, (status, _))| status == "RUNNING")
            .filter_map(|(name, (_, input))| input.as_ref().map(|i| (name, i)))
            .collect();
        let mut carried: BTreeMap<(String, String), Vec<&String>> = BTreeMap::new();
        let mut per_run: BTreeMap<&str, u32> = BTreeMap::new();
        for (name, input) in &running {
            *per_run.entry(input.run_id.as_str()).or_default() += 1;
            for t in &input.task_ids {
                carried.entry((input.run_id.clone(), t.clone())).or_default().push(name);
            }
        }
        for (run, n) in per_run.iter().filter(|(_, n)| **n > 1) {
            p.push(format!("run {run}: {n} running executions"));
        }
        for ((run, task), names) in carried.iter().filter(|(_, v)| v.len() > 1) {
            p.push(format!("task {run}/{task} carried by {names:?}"));
        }
        for t in &books.tasks {
            let by = carried.get(&(t.run_id.clone(), t.task_id.clone()));
            match (&t.status, by) {
                (TaskStatus::RetryQueued, Some(names))
                    if names.iter().any(|n| Some(n.as_str()) == t.retry_execution.as_deref()) => {}
                (TaskStatus::RetryQueued, _) => p.push(format!(
                    "task {}/{} RETRY_QUEUED for {:?}, which does not carry it",
                    t.run_id, t.task_id, t.retry_execution
                )),
                (_, Some(names)) => {
                    p.push(format!("task {}/{} {} but carried by {names:?}", t.run_id, t.task_id, t.status))
                }
                _ => {}
            }
            let run_running = books.run(&t.run_id).is_some_and(|r| r.status == arc_shared::status::RunStatus::Running);
            if t.status == TaskStatus::Failed && !run_running {
                p.push(format!("task {}/{} FAILED and due, its run not retried", t.run_id, t.task_id));
            }
            let want = match t.task_id.as_str() {
                "c0" | "c1" => 1,
                "c2" | "c3" | "a6" | "a7" => 0,
                id if id.starts_with('a') => 1,
                _ => 2,
            };
            if t.retry_count != want {
                p.push(format!("task {}/{} retry_count {} (want {want})", t.run_id, t.task_id, t.retry_count));
            }
        }
        for r in &books.runs {
            if r.status == arc_shared::status::RunStatus::Running {
                let live = r.execution_arn.as_deref().map(|a| a.rsplit(':').next().unwrap_or(""));
                if !live.is_some_and(|n| running.keys().any(|k| k.as_str() == n)) {
                    p.push(format!("run {} RUNNING with execution {:?}, not a running one", r.run_id, r.execution_arn));
                }
            }
        }
        p
    }
}

/// Where a sweep is killed: the `nth` request `selector` picks, held `before` or `after` it
/// is applied.
#[derive(Debug, Clone)]
struct KillPoint {
    label: String,
    nth: u64,
    when: &'static str,
    selector: Option<Value>,
}

/// Kills the sweeper at `point` in a fresh world, sweeps again (past the repair grace) until
/// a sweep has nothing left to do, then checks the world. The held operation, or an error.
async fn kill_and_sweep_again(emu: &Emulator, point: &KillPoint, i: usize) -> Result<String, String> {
    let w = kill_world(&emu.endpoint, 3).await;
    let ctl = emu.ctl();
    let id = format!("kill-{i}-{}", w.sm_name);
    let selector = point.selector.clone().map_or_else(
        || w.selector(),
        |s| {
            let mut s = s;
            s["contains"] = json!(chaos::world_names(&w.t, &[&w.sm_name, &w.namespace]));
            s
        },
    );
    ctl.hold(&id, point.nth, point.when, &selector);
    let mut sweeper = chaos::Invocation::start(&lambda_binary("sweeper"), &w.lambda_env(), json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = ctl.hold_state(&id);
        if h["held"] == true {
            break;
        }
        if let Some(o) = sweeper.outcome() {
            return Err(format!("{}: the sweep ended before the kill point ({o:?}); hold {h}", point.label));
        }
        if Instant::now() > deadline {
            return Err(format!("{}: never reached; hold {h}", point.label));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweeper.kill();
    let held = ctl.hold_state(&id)["operation"].as_str().unwrap_or("?").to_owned();
    ctl.release(&id, "drop");
    drop(sweeper);
    // Swept again by the schedule, past the 15-minute grace of a fresh claim, until a sweep
    // finds nothing to do.
    let mut quiet = false;
    for k in 1..=4 {
        w.clock.set(chrono::Utc::now() + chrono::Duration::minutes(20 * k));
        let s = Box::pin(arc_sweeper::sweep(&w.deps, SweepRequest::scheduled()))
            .await
            .map_err(|e| format!("{}: sweep {k}: {e}", point.label))?;
        if !s.errors.is_empty() {
            return Err(format!("{}: sweep {k} errors {:?}", point.label, s.errors));
        }
        if s.executions_started.is_empty() && s.repaired.is_empty() && s.requeued_total == 0 && k > 1 {
            quiet = true;
            break;
        }
    }
    let mut p = w.problems().await;
    if !quiet {
        p.push("sweeps kept finding work".into());
    }
    match p.is_empty() {
        true => Ok(held),
        false => Err(format!("{} (held {held}): {}", point.label, p.join("; "))),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn the_sweeper_sigkilled_at_seeded_points_leaves_no_duplicate_and_no_stranded_task() {
    let emu = Emulator::start();
    // The requests of one whole sweep of this world, counted by a hold that never engages.
    let reference = kill_world(&emu.endpoint, 3).await;
    let ctl = emu.ctl();
    ctl.hold("count", u64::MAX / 2, "before", &reference.selector());
    let mut inv = chaos::Invocation::start(&lambda_binary("sweeper"), &reference.lambda_env(), json!({}));
    let answer = inv.wait(Duration::from_secs(120));
    let total = ctl.hold_state("count")["seen"].as_u64().unwrap_or(0);
    drop(inv);
    let named = vec![
        KillPoint {
            label: "between claim and requeue".into(),
            nth: 1,
            when: "after",
            selector: Some(json!({"operations": ["UpdateItem"], "all_contains": ["retry_generation"]})),
        },
        KillPoint {
            label: "mid-requeue (3rd task write held)".into(),
            nth: 3,
            when: "before",
            selector: Some(json!({"operations": ["UpdateItem"], "all_contains": ["RETRY_QUEUED", "retry_execution"]})),
        },
        KillPoint {
            label: "between requeue and StartExecution".into(),
            nth: 1,
            when: "before",
            selector: Some(json!({"operations": ["StartExecution"]})),
        },
        KillPoint {
            label: "StartExecution applied, answer lost".into(),
            nth: 1,
            when: "after",
            selector: Some(json!({"operations": ["StartExecution"]})),
        },
        KillPoint {
            label: "mid-repair (first settle applied)".into(),
            nth: 1,
            when: "after",
            selector: Some(
                json!({"operations": ["UpdateItem", "TransactWriteItems"], "all_contains": ["ExecutionEnded"]}),
            ),
        },
        KillPoint {
            label: "mid-page (between the status-index queries)".into(),
            nth: 2,
            when: "before",
            selector: Some(json!({"operations": ["Query"], "all_contains": ["status-index"]})),
        },
    ];
    let wanted = by_mode(5, 20);
    let mut points: Vec<KillPoint> = named.into_iter().take(wanted).collect();
    let mut seed = 1u64;
    while points.len() < wanted {
        let mut d = Draws::new(seed, "kill-point");
        let nth = 1 + d.below(total.max(1));
        let when = if d.chance(0.5) { "before" } else { "after" };
        points.push(KillPoint {
            label: format!("seed {seed}: request {nth} of {total}, {when}"),
            nth,
            when,
            selector: None,
        });
        seed += 1;
    }
    let s = Scenario {
        name: "sweeper SIGKILLed mid-sweep, then swept again",
        done: format!(
            "the built sweeper (local Runtime API) SIGKILLed while the emulator holds one of its requests, in a \
             world with 2 runs to retry (9 due tasks) and 1 RUNNING run whose execution was stopped; named \
             points (after the claim, mid-requeue, before StartExecution, StartExecution applied but unanswered, \
             mid-repair, between the status-index queries) then seeded ones among the {total} requests of a \
             sweep, before or after the request is applied; then the schedule sweeps again past the 15-minute \
             repair grace"
        ),
        runs: points.len() as u64,
        checked: "zero duplicate executions (one running execution per run, no task in two), zero stranded \
                  tasks (every RETRY_QUEUED task carried by its running execution, every RUNNING run's execution \
                  running, no due FAILED task left outside a running run), retry_count unchanged except the \
                  two claimed tasks of the ended execution (+1 once), the invariants; the last sweep finds nothing"
            .into(),
    };
    chaos::scenario(s, async {
        if total < 10 || !matches!(answer, Some(arc_integration_tests::runtime_api::Outcome::Ok(_))) {
            return Err(format!("reference sweep: {answer:?}, {total} requests"));
        }
        let mut problems = Vec::new();
        let mut held_ops: Vec<String> = Vec::new();
        for (i, point) in points.iter().enumerate() {
            match kill_and_sweep_again(&emu, point, i).await {
                Ok(held) => {
                    println!("{}: killed while {held} was held; swept again: ok", point.label);
                    held_ops.push(held);
                }
                Err(e) => problems.push(e),
            }
        }
        let mut by_op: BTreeMap<&str, u32> = BTreeMap::new();
        for op in &held_ops {
            *by_op.entry(op.as_str()).or_default() += 1;
        }
        let ops: Vec<String> = by_op.iter().map(|(op, n)| format!("{n}× {op}")).collect();
        chaos::note(
            "sweeper SIGKILLed mid-sweep, then swept again",
            format!("killed while holding {}", ops.join(", ")),
        );
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

// ------------------------------------------------------------------ concurrent deliveries

fn failure_event(run_id: &str, task_id: &str, job: &Job) -> Value {
    json!({
        "run_id": run_id,
        "task_id": task_id,
        "error": job.step_functions_error(task_id, &[]),
        "delivery": {"execution_arn": format!("arn:aws:states:us-east-1:123456789012:execution:sm:e/{task_id}"), "entered_at": job.job_id},
    })
}

/// A new run of `tasks` tasks (Initialize, as the state machine calls it).
async fn new_run(env: &Arc<Env>, tasks: &[String]) -> String {
    let arn = format!("arn:aws:states:us-east-1:123456789012:execution:sm:{}", uuid::Uuid::new_v4().simple());
    let out = initialize::handle(
        env.clone(),
        json!({"config_name": "race", "task_ids": tasks, "execution_arn": arn, "execution_start_time": format_ts(chrono::Utc::now())}),
    )
    .await
    .unwrap();
    out.run_id
}

/// Delivers every event at once (one tokio task each) to handle-error.
async fn deliver_all(
    env: &Arc<Env>,
    events: Vec<Value>,
) -> Vec<Result<arc_shared::contracts::HandleErrorOutput, ArcError>> {
    let handles: Vec<_> = events.into_iter().map(|e| tokio::spawn(handle_error::handle(env.clone(), e))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn eight_concurrent_deliveries_of_one_failed_job_count_once() {
    let rounds = by_mode(3, 20);
    let s = Scenario {
        name: "8 concurrent deliveries of one failed job",
        done: "a worker-double job killed after its claim (OOM, nothing recorded), its failure delivered to \
               handle-error 8 times at once"
            .into(),
        runs: rounds as u64,
        checked: "all 8 answer; exactly one says counted; retry_count = 1, FAILED; the invariants".into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let t = env_at(&emu.endpoint, 3, &[("MAX_RETRIES", "3")]).await;
        let env = t.env();
        let ids: Vec<String> = (0..rounds).map(|i| format!("t{i:02}")).collect();
        let run_id = new_run(&env, &ids).await;
        let worker =
            Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, env.clock.clone());
        let mut problems = Vec::new();
        for id in &ids {
            let job = worker
                .run_job(
                    &run_id,
                    id,
                    &[Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed".into() }],
                )
                .await;
            let answers = deliver_all(&env, vec![failure_event(&run_id, id, &job); 8]).await;
            let counted = answers.iter().filter(|a| matches!(a, Ok(o) if o.counted)).count();
            let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
            let task = env.tables().get_task(&run_id, id).await.unwrap().unwrap();
            if counted != 1 || !failed.is_empty() || task.retry_count != 1 || task.status != TaskStatus::Failed {
                problems.push(format!(
                    "{id}: {counted} counted, errors {failed:?}, task {} retry_count {}",
                    task.status, task.retry_count
                ));
            }
        }
        problems.extend(Books::read(&t).await.invariants(3));
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn eight_different_failed_jobs_of_one_task_count_each_up_to_max_retries() {
    let rounds = by_mode(3, 20);
    let s = Scenario {
        name: "8 different failed jobs of one task, concurrently",
        done: "8 worker-double jobs of one task that never started (image pull), their 8 failures delivered to \
               handle-error at once, with MAX_RETRIES 10 and with MAX_RETRIES 3"
            .into(),
        runs: 2 * rounds as u64,
        checked: "retry_count = min(8, MAX_RETRIES) and as many answers say counted; FAILED_PERMANENT exactly when \
                  MAX_RETRIES ≤ 8, then the run's failed_tasks moved by exactly 1; the invariants"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let mut problems = Vec::new();
        for max in [10u32, 3] {
            let t = env_at(&emu.endpoint, 3, &[("MAX_RETRIES", &max.to_string())]).await;
            let env = t.env();
            let ids: Vec<String> = (0..rounds).map(|i| format!("t{i:02}")).collect();
            let run_id = new_run(&env, &ids).await;
            let worker = Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, env.clock.clone())
                .with_max_retries(max);
            for (i, id) in ids.iter().enumerate() {
                let mut events = Vec::new();
                for _ in 0..8 {
                    let job = worker.run_job(&run_id, id, &[Behaviour::NotStarted { status_reason: "CannotPullContainerError: pull failed".into() }]).await;
                    events.push(failure_event(&run_id, id, &job));
                }
                let answers = deliver_all(&env, events).await;
                let counted = answers.iter().filter(|a| matches!(a, Ok(o) if o.counted)).count() as u32;
                let errors: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
                let task = env.tables().get_task(&run_id, id).await.unwrap().unwrap();
                let run = env.tables().require_run(&run_id).await.unwrap();
                let want = 8.min(max);
                let permanent = max <= 8;
                let want_status = if permanent { TaskStatus::FailedPermanent } else { TaskStatus::Failed };
                let want_failed_tasks = if permanent { i as u64 + 1 } else { 0 };
                if counted != want || !errors.is_empty() || task.retry_count != want || task.status != want_status || run.failed_tasks != want_failed_tasks {
                    problems.push(format!(
                        "MAX_RETRIES {max}, {id}: {counted} counted, errors {errors:?}, task {} retry_count {}, run failed_tasks {}",
                        task.status, task.retry_count, run.failed_tasks
                    ));
                }
            }
            problems.extend(Books::read(&t).await.invariants(max));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

/// One race per round (a fresh world each): the sweep, a worker-double job on task a0 doing
/// `plan_for(round)`, and handle-error for another job of a0 that never started, at seeded
/// offsets; then the worker job's failure delivered. Problems, and what the rounds ended as.
async fn race(rounds: usize, plan_for: fn(usize) -> Vec<Behaviour>) -> (Vec<String>, BTreeMap<String, u32>) {
    let emu = Emulator::start();
    let mut problems = Vec::new();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for round in 0..rounds {
        let mut w = kill_world(&emu.endpoint, 10).await;
        // Every writer on the wall clock, as in production.
        let clock: Arc<dyn Clock> = Arc::new(arc_shared::time::SystemClock);
        w.deps.clock = clock.clone();
        let env = Arc::new(Env { config: w.deps_config(), clients: w.t.clients.clone(), clock: clock.clone() });
        let worker =
            Worker::new(w.t.clients.dynamodb.clone(), &w.t.config.runs_table, &w.t.config.tasks_table, clock.clone())
                .with_max_retries(10);
        let other = worker
            .run_job(
                RUN_A,
                "a0",
                &[Behaviour::NotStarted { status_reason: "CannotPullContainerError: pull failed".into() }],
            )
            .await;
        let mut d = Draws::new(round as u64, "race");
        let (o1, o2, o3) = (d.below(60), d.below(1000), d.below(1000));
        let plan = plan_for(round);
        let deps = w.deps.clone();
        // The sweep's future is not `Send` for every lifetime: it runs in this task, the
        // other two on the runtime's threads.
        let sweep = async move {
            tokio::time::sleep(Duration::from_millis(o1)).await;
            Box::pin(arc_sweeper::sweep(&deps, SweepRequest::scheduled())).await
        };
        let job = {
            let worker = Worker::new(
                w.t.clients.dynamodb.clone(),
                &w.t.config.runs_table,
                &w.t.config.tasks_table,
                clock.clone(),
            )
            .with_max_retries(10);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(o2)).await;
                worker.run_job(RUN_A, "a0", &plan).await
            })
        };
        let late = {
            let (env, event) = (env.clone(), failure_event(RUN_A, "a0", &other));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(o3)).await;
                handle_error::handle(env, event).await
            })
        };
        let (swept, job, late) = futures::join!(sweep, job, late);
        let (job, late) = (job.unwrap(), late.unwrap());
        if !job.succeeded {
            if let Err(e) = handle_error::handle(env.clone(), failure_event(RUN_A, "a0", &job)).await {
                problems.push(format!("round {round}: the worker job's delivery: {e}"));
            }
        }
        let claimed_failures =
            job.attempts.iter().filter(|a| a.claimed && (a.exit_code != Some(0) || !a.wrote_completed)).count() as u32;
        let other_counts = match &late {
            Ok(o) => u32::from(o.status != arc_shared::contracts::FailureOutcome::Completed),
            Err(e) => {
                problems.push(format!("round {round}: handle-error: {e}"));
                0
            }
        };
        if let Err(e) = &swept {
            problems.push(format!("round {round}: sweep: {e}"));
        }
        let task = env.tables().get_task(RUN_A, "a0").await.unwrap().unwrap();
        let want = 1 + claimed_failures + other_counts;
        let requeued = swept.as_ref().map(|s| s.requeued.get(RUN_A).copied().unwrap_or(0)).unwrap_or(0);
        let by = if job.attempts.iter().any(|a| a.claimed) { "worker claimed" } else { "sweeper re-queued first" };
        *outcomes
            .entry(format!(
                "{by}: {} after {claimed_failures} worker failure(s), {requeued} of run A re-queued",
                task.status
            ))
            .or_default() += 1;
        if task.retry_count != want {
            problems.push(format!(
                "round {round} (offsets {o1}/{o2}/{o3} ms): retry_count {} but {want} failures (worker attempts {:?}, other job {:?})",
                task.retry_count,
                job.attempts.iter().map(|a| (a.claimed, a.exit_code, a.recorded_failure)).collect::<Vec<_>>(),
                late.as_ref().map(|o| (o.status, o.counted))
            ));
        }
        problems.extend(Books::read(&w.t).await.invariants(10).into_iter().map(|p| format!("round {round}: {p}")));
        let ex = w.executions().await;
        for t in Books::read(&w.t).await.tasks.iter().filter(|t| t.status == TaskStatus::RetryQueued) {
            let carried = t
                .retry_execution
                .as_ref()
                .and_then(|n| ex.get(n))
                .and_then(|(_, i)| i.as_ref())
                .is_some_and(|i| i.task_ids.contains(&t.task_id));
            if !carried {
                problems.push(format!("round {round}: {}/{} RETRY_QUEUED, not carried", t.run_id, t.task_id));
            }
        }
    }
    (problems, outcomes)
}

fn fail() -> Behaviour {
    Behaviour::Fail { message: "RateLimitError: 429".into() }
}

fn oom() -> Behaviour {
    Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed".into() }
}

fn done() -> Behaviour {
    Behaviour::Complete(Completion {
        cost_usd: Decimal::new(12_345, 6),
        tokens_input: 10,
        tokens_output: 5,
        result_s3_key: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn worker_writes_racing_handle_error_and_the_sweeper_lose_or_double_no_count() {
    let rounds = by_mode(6, 40);
    let s = Scenario {
        name: "worker writes racing handle-error and the sweeper",
        done: "a due FAILED task (retry_count 1) of a finished run; at once, with seeded start offsets (sweep 0-60 ms, the others 0-1000 ms; a sweep takes about 0.5 s): \
               a sweep (claim, requeue, StartExecution), a worker-double job on the task (its claim, then its \
               completion, the container OOM-killed, or a failure the worker records itself), and handle-error \
               for another job of the task that never started; then the worker job's own failure, if any, \
               delivered"
            .into(),
        runs: rounds as u64,
        checked: "retry_count = 1 + the worker job's claimed failed attempts + 1 for the other job unless the task \
                  was already COMPLETED when it arrived; every RETRY_QUEUED task carried by a started execution; \
                  the invariants"
            .into(),
    };
    chaos::scenario(s, async {
        let (problems, outcomes) = race(rounds, |round| match round % 3 {
            0 => vec![oom()],
            1 => vec![done()],
            _ => vec![fail()],
        })
        .await;
        println!("outcomes: {outcomes:?}");
        let ends: Vec<String> = outcomes.iter().map(|(k, n)| format!("{n}× {k}")).collect();
        chaos::note("worker writes racing handle-error and the sweeper", ends.join(", "));
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

/// A worker-double job on a0 doing `plan`, the `nth` request `selector` picks held while
/// handle-error records the failure of another job of a0 that never started; then the job's
/// failure delivered. `(retry_count, what it should be, the two deliveries' counted)`.
async fn another_failure_during(
    emu: &Emulator,
    plan: Vec<Behaviour>,
    nth: u64,
    marker: &str,
) -> Result<(u32, u32, bool, bool), String> {
    let ctl = emu.ctl();
    let w = kill_world(&emu.endpoint, 10).await;
    let clock: Arc<dyn Clock> = Arc::new(arc_shared::time::SystemClock);
    let env = Arc::new(Env { config: w.deps_config(), clients: w.t.clients.clone(), clock: clock.clone() });
    let worker =
        Worker::new(w.t.clients.dynamodb.clone(), &w.t.config.runs_table, &w.t.config.tasks_table, clock.clone())
            .with_max_retries(10);
    let other = worker
        .run_job(RUN_A, "a0", &[Behaviour::NotStarted { status_reason: "CannotPullContainerError: x".into() }])
        .await;
    let id = format!("during-{}", w.sm_name);
    ctl.hold(&id, nth, "before", &json!({"all_contains": [w.t.config.tasks_table.clone(), marker]}));
    let job = tokio::spawn(async move { worker.run_job(RUN_A, "a0", &plan).await });
    wait_held(&ctl, &id, Duration::from_secs(20))?;
    let late =
        handle_error::handle(env.clone(), failure_event(RUN_A, "a0", &other)).await.map_err(|e| e.to_string())?;
    ctl.release(&id, "pass");
    let job = job.await.map_err(|e| e.to_string())?;
    if job.succeeded {
        return Err(format!("the worker job did not fail: {:?}", job.attempts));
    }
    let answer =
        handle_error::handle(env.clone(), failure_event(RUN_A, "a0", &job)).await.map_err(|e| e.to_string())?;
    let task = env.tables().get_task(RUN_A, "a0").await.map_err(|e| e.to_string())?.ok_or("no task")?;
    let claimed_failures = job.attempts.iter().filter(|a| a.claimed && a.exit_code != Some(0)).count() as u32;
    Ok((task.retry_count, 1 + claimed_failures + 1, late.counted, answer.counted))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn another_jobs_failure_during_worker_records_is_counted_once() {
    let s = Scenario {
        name: "another job's failure delivered while the worker records failures",
        done: "a due FAILED task (retry_count 1), a worker-double job on it, and the failure of another job of the \
               task that never started delivered to handle-error at a moment the emulator holds: (doubled) during \
               the last of three attempts the worker records itself, just before its record; (lost) after the \
               worker recorded attempt 1, just before attempt 2 (OOM-killed, not recorded) claims; then the \
               worker job's failure delivered"
            .into(),
        runs: 2,
        checked: "retry_count = 1 + the worker job's failed attempts + 1 for the other job (5, and 4)".into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let mut problems = Vec::new();
        let doubled = another_failure_during(&emu, vec![fail(), fail(), fail()], 3, "retry_count = :old").await?;
        let lost = another_failure_during(&emu, vec![fail(), oom()], 2, "worker_id = :worker_id").await?;
        for (case, (got, want, other_counted, job_counted)) in [("doubled", doubled), ("lost", lost)] {
            if got != want {
                problems.push(format!(
                    "{case}: retry_count {got}, want {want} (the other job counted: {other_counted}, the worker's job \
                     counted: {job_counted})"
                ));
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

// ------------------------------------------------------------------ every handler twice

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Initialize,
    /// The workers' writes (not a handler: never repeated).
    Workers,
    HandleErrorC,
    HandleErrorD,
    Aggregate,
    Complete,
    Sweep,
    InitializeRetry,
}

const STEPS: [Step; 8] = [
    Step::Initialize,
    Step::Workers,
    Step::HandleErrorC,
    Step::HandleErrorD,
    Step::Aggregate,
    Step::Complete,
    Step::Sweep,
    Step::InitializeRetry,
];

const IDEM_EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:idem-sm:run-1";

/// The time of base step `k` (the sweep and the retry execution 8 hours later, when the
/// failures are due).
fn idem_time(k: usize) -> chrono::DateTime<chrono::Utc> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let later = if k >= 6 { chrono::Duration::hours(8) } else { chrono::Duration::zero() };
    t0 + later + chrono::Duration::seconds(k as i64)
}

fn idem_job(id: &str, claimed: bool, at: chrono::DateTime<chrono::Utc>) -> Job {
    let attempt = arc_worker_double::Attempt {
        worker_id: "4100@ip-10-0-1-23.ec2.internal".into(),
        exit_code: claimed.then_some(1),
        status_reason: if claimed {
            "Essential container in task exited".into()
        } else {
            "CannotPullContainerError: x".into()
        },
        container_reason: (!claimed).then(|| "CannotPullContainerError: x".into()),
        claimed,
        recorded_failure: claimed,
        wrote_completed: false,
        started_at: at,
        stopped_at: at,
        log: vec![],
    };
    Job { job_id: id.into(), attempts: vec![attempt], succeeded: false }
}

/// One world running `sequence` (base step indices, a repeated one appearing twice); the
/// tables at the end, names normalized, and what each step answered.
async fn run_sequence(endpoint: &str, sequence: &[usize]) -> (Vec<String>, Vec<String>) {
    let t = env_at(endpoint, 3, &[("MAX_RETRIES", "3")]).await;
    let sm_name = format!("idem-sm-{}", t.bucket.trim_start_matches("arc-results-"));
    let sm_arn = t.create_state_machine(&sm_name).await;
    let clock = Arc::new(FixedClock::new(idem_time(0)));
    let env = t.env_with_clock(clock.clone());
    let deps = t.sweep_deps(&sm_arn, clock.clone());
    let tasks = ["a", "b", "c", "d", "e"];
    let mut run_id = String::new();
    let mut figures = Value::Null;
    let mut answers = Vec::new();
    let mut seen = BTreeSet::new();
    for (pos, &k) in sequence.iter().enumerate() {
        // An original step runs at its own time; a repeat half a second after the step before it.
        let repeat = !seen.insert(k);
        let at = if repeat { idem_time(sequence[pos - 1]) + chrono::Duration::milliseconds(500) } else { idem_time(k) };
        clock.set(at);
        let answer: Result<Value, ArcError> = match STEPS[k] {
            Step::Initialize => initialize::handle(
                env.clone(),
                json!({"config_name": "idem", "task_ids": tasks, "execution_arn": IDEM_EXECUTION, "execution_start_time": format_ts(idem_time(0))}),
            )
            .await
            .map(|o| {
                run_id = o.run_id.clone();
                serde_json::to_value(o).unwrap()
            }),
            Step::Workers => {
                let w = |s: &str| AttributeValue::S(s.into());
                let at = format_ts(idem_time(1));
                let worker_id = w("4100@ip-10-0-1-23.ec2.internal");
                for (task, cost) in [("a", "0.1"), ("e", "0.2")] {
                    t.set_task(&run_id, task, &[
                        ("status", w("COMPLETED")), ("worker_id", worker_id.clone()), ("started_at", w(&at)),
                        ("completed_at", w(&at)), ("updated_at", w(&at)), ("cost_usd", nv(cost)),
                        ("tokens_input", nv(100)), ("tokens_output", nv(10)), ("is_correct", AttributeValue::Bool(true)),
                    ]).await;
                }
                t.set_task(&run_id, "b", &[("status", w("IN_PROGRESS")), ("worker_id", worker_id.clone()), ("started_at", w(&at)), ("updated_at", w(&at))]).await;
                t.set_task(&run_id, "c", &[
                    ("status", w("FAILED")), ("worker_id", worker_id.clone()), ("started_at", w(&at)), ("updated_at", w(&at)),
                    ("retry_count", nv(1)), ("error", w("RateLimitError: 429")),
                ]).await;
                t.set_run(&run_id, &[("completed_tasks", nv(2)), ("total_cost_usd", nv("0.3"))]).await;
                Ok(Value::Null)
            }
            Step::HandleErrorC | Step::HandleErrorD => {
                let (task, job) = match STEPS[k] {
                    Step::HandleErrorC => ("c", idem_job("job-c", true, idem_time(1))),
                    _ => ("d", idem_job("job-d", false, idem_time(1))),
                };
                let event = json!({
                    "run_id": run_id, "task_id": task, "error": job.step_functions_error(task, &[]),
                    "delivery": {"execution_arn": format!("{IDEM_EXECUTION}/{task}"), "entered_at": job.job_id},
                });
                handle_error::handle(env.clone(), event).await.map(|o| serde_json::to_value(o).unwrap())
            }
            Step::Aggregate => aggregate::handle(env.clone(), json!({"run_id": run_id, "execution_arn": IDEM_EXECUTION}))
                .await
                .map(|o| {
                    if figures.is_null() {
                        figures = serde_json::to_value(o.figures()).unwrap();
                    }
                    serde_json::to_value(o).unwrap()
                }),
            Step::Complete => complete::handle(env.clone(), json!({"run_id": run_id, "aggregation": figures, "execution_arn": IDEM_EXECUTION}))
                .await
                .map(|o| serde_json::to_value(o).unwrap()),
            Step::Sweep => Box::pin(arc_sweeper::sweep(&deps, SweepRequest::scheduled()))
                .await
                .map(|o| json!({"requeued_total": o.requeued_total, "started": o.executions_started.len()})),
            Step::InitializeRetry => {
                let running = executions::list_running(&t.clients.sfn, &sm_arn).await.unwrap();
                match running.first() {
                    None => Err(ArcError::Conflict("no retry execution".into())),
                    Some(e) => {
                        let d = executions::describe(&t.clients.sfn, &e.execution_arn).await.unwrap();
                        let mut input: Value = serde_json::from_str(d.input.as_deref().unwrap_or("{}")).unwrap();
                        input["execution_arn"] = json!(e.execution_arn);
                        initialize::handle(env.clone(), input).await.map(|o| serde_json::to_value(o).unwrap())
                    }
                }
            }
        };
        answers.push(format!(
            "{:?}{}: {}",
            STEPS[k],
            if repeat { " (again)" } else { "" },
            match &answer {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{} {e}", e.error_type()),
            }
        ));
    }
    let names = [
        (t.config.runs_table.clone(), "RUNS"),
        (t.config.tasks_table.clone(), "TASKS"),
        (sm_name.clone(), "SM"),
        (t.bucket.clone(), "BUCKET"),
    ];
    let tables = t
        .snapshot()
        .await
        .into_iter()
        .map(|line| names.iter().fold(line, |l, (from, to)| l.replace(from.as_str(), to)))
        .collect();
    (tables, answers)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn every_handler_invoked_twice_in_every_order_leaves_the_tables_of_once() {
    // Every handler step, repeated right after itself and after every later step (quick mode:
    // right after itself and at the end).
    let handlers: Vec<usize> = (0..STEPS.len()).filter(|&k| STEPS[k] != Step::Workers).collect();
    let mut variants: Vec<Vec<usize>> = Vec::new();
    for &k in &handlers {
        let after: Vec<usize> = match chaos::mode() {
            chaos::Mode::Full => (k..STEPS.len()).collect(),
            chaos::Mode::Quick => BTreeSet::from([k, STEPS.len() - 1]).into_iter().collect(),
        };
        for j in after {
            let mut seq: Vec<usize> = (0..STEPS.len()).collect();
            seq.insert(j + 1, k);
            variants.push(seq);
        }
    }
    let s = Scenario {
        name: "every handler invoked twice, in every order",
        done: format!(
            "one run through initialize, the workers' writes, handle-error (a failure the worker recorded, one it \
             could not), aggregate, complete, a sweep and the retry execution's initialize; each of the 7 handler \
             steps repeated with the same input {} ({} sequences), a repeat 0.5 s after the step before it",
            match chaos::mode() {
                chaos::Mode::Full => "right after itself and after each later step",
                chaos::Mode::Quick => "right after itself and at the end",
            },
            variants.len()
        ),
        runs: variants.len() as u64,
        checked: "both tables, item by item and attribute by attribute, equal those of the sequence without a \
                  repeat — `updated_at` aside: a repeated retry Initialize writes the run's again (its \
                  `mark_running`); every other attribute, timestamps included, is the same"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let base: Vec<usize> = (0..STEPS.len()).collect();
        let (once, answers) = run_sequence(&emu.endpoint, &base).await;
        if let Some(bad) = answers.iter().find(|a| !a.ends_with(": ok")) {
            return Err(format!("the sequence without a repeat: {bad}"));
        }
        let mut problems = Vec::new();
        let mut touched = Vec::new();
        for seq in &variants {
            let (tables, answers) = run_sequence(&emu.endpoint, seq).await;
            if without_updated_at(&tables) != without_updated_at(&once) {
                let extra: Vec<&String> = tables.iter().filter(|l| !once.contains(l)).collect();
                let missing: Vec<&String> = once.iter().filter(|l| !tables.contains(l)).collect();
                problems.push(format!("{answers:?}: differs: now {extra:?}; once {missing:?}"));
            } else if tables != once {
                touched.push(answers.iter().find(|a| a.contains("(again)")).cloned().unwrap_or_default());
            }
        }
        println!("repeats that only moved an updated_at: {touched:?}");
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    })
    .await;
}

/// Snapshot lines with their `updated_at` left out.
fn without_updated_at(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split(", ").filter(|kv| !kv.starts_with("updated_at=")).collect::<Vec<_>>().join(", "))
        .collect()
}

// ------------------------------------------------------------------ one lost answer, exactly

async fn release_when_held(ctl: &Ctl, id: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl.hold_state(id)["held"] != true {
        if Instant::now() > deadline {
            return Err(format!("hold {id} never engaged: {}", ctl.hold_state(id)));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ctl.release(id, "drop");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn a_lost_answer_to_a_conditional_write_is_recognised_as_our_own() {
    let s = Scenario {
        name: "one lost answer to a re-queue and to a re-open",
        done: "the answer to the first FAILED → RETRY_QUEUED write of a sweep (6 due tasks) dropped after the \
               write was applied (the SDK retries it, its condition now fails); then the same for the first \
               RETRY_QUEUED → PENDING write of the retry execution's initialize"
            .into(),
        runs: 1,
        checked: "the sweep re-queues all 6 and starts the execution with all 6; initialize re-opens all 6 and \
                  hands all 6 to the Map (none left RETRY_QUEUED or PENDING outside it)"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let ctl = emu.ctl();
        let w = kill_world(&emu.endpoint, 3).await;
        let tasks = w.t.config.tasks_table.clone();
        let id = format!("requeue-{}", w.sm_name);
        ctl.hold(
            &id,
            1,
            "after",
            &json!({"operations": ["UpdateItem"], "all_contains": [tasks.clone(), "RETRY_QUEUED", "retry_execution"]}),
        );
        let request =
            arc_sweeper::parse_request(json!({"run_id": RUN_A, "ignore_backoff": true})).map_err(|e| e.to_string())?;
        let (summary, released) =
            futures::join!(Box::pin(arc_sweeper::sweep(&w.deps, request)), release_when_held(&ctl, &id));
        released?;
        let summary = summary.map_err(|e| e.to_string())?;
        let started = summary.executions_started.first().ok_or("no execution started")?;
        if summary.requeued_total != 6 || started.tasks != 6 {
            return Err(format!("requeued {}, execution carries {}", summary.requeued_total, started.tasks));
        }
        let d = executions::describe(&w.t.clients.sfn, &started.execution_arn).await.map_err(|e| e.to_string())?;
        let mut input: Value = serde_json::from_str(d.input.as_deref().unwrap_or("{}")).map_err(|e| e.to_string())?;
        input["execution_arn"] = json!(started.execution_arn);
        let id = format!("reopen-{}", w.sm_name);
        ctl.hold(
            &id,
            1,
            "after",
            &json!({"operations": ["UpdateItem"], "all_contains": [tasks, "PENDING", "retry_execution"]}),
        );
        let env = Arc::new(Env { config: w.deps_config(), clients: w.t.clients.clone(), clock: w.clock.clone() });
        let (out, released) = futures::join!(initialize::handle(env, input), release_when_held(&ctl, &id));
        released?;
        let out = out.map_err(|e| e.to_string())?;
        let reopened = out.task_ids.unwrap_or_default().len();
        let books = Books::read(&w.t).await;
        let pending = books.tasks.iter().filter(|t| t.run_id == RUN_A && t.status == TaskStatus::Pending).count();
        match (reopened, pending, out.skipped.unwrap_or_default().len()) {
            (6, 6, 0) => Ok(()),
            other => Err(format!("initialize re-opened {other:?} (answer, PENDING in the table, skipped)")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "reliability suite: scripts/reliability.sh"]
async fn a_claim_left_behind_is_repaired_even_when_its_failures_are_too_old() {
    let s = Scenario {
        name: "a claim left behind, its failures since too old",
        done: "the built sweeper SIGKILLed right after its claim of a run (before any re-queue); the next \
               scheduled sweeps come after SWEEPER_MAX_AGE_HOURS (72 h) have passed since the run's failures"
            .into(),
        runs: 1,
        checked: "the run is not left RUNNING with an execution that was never started (the repair of a dead \
                  claim ends it, as it does when the failures are younger)"
            .into(),
    };
    chaos::scenario(s, async {
        let emu = Emulator::start();
        let ctl = emu.ctl();
        let w = kill_world(&emu.endpoint, 3).await;
        let id = format!("claim-{}", w.sm_name);
        let mut selector = json!({"operations": ["UpdateItem"], "all_contains": ["retry_generation"]});
        selector["contains"] = json!(chaos::world_names(&w.t, &[&w.sm_name]));
        ctl.hold(&id, 1, "after", &selector);
        let mut sweeper = chaos::Invocation::start(&lambda_binary("sweeper"), &w.lambda_env(), json!({}));
        wait_held(&ctl, &id, Duration::from_secs(60))?;
        sweeper.kill();
        ctl.release(&id, "drop");
        for hours in [73, 74] {
            w.clock.set(chrono::Utc::now() + chrono::Duration::hours(hours));
            Box::pin(arc_sweeper::sweep(&w.deps, SweepRequest::scheduled())).await.map_err(|e| e.to_string())?;
        }
        let books = Books::read(&w.t).await;
        let stuck: Vec<String> = books
            .runs
            .iter()
            .filter(|r| r.status == arc_shared::status::RunStatus::Running && r.retry_generation > 0)
            .map(|r| format!("{} RUNNING with {:?}", r.run_id, r.execution_arn))
            .collect();
        let started = w.executions().await.into_iter().filter(|(n, _)| n.starts_with("retry-")).count();
        match (stuck.is_empty(), started) {
            (true, _) => Ok(()),
            (false, 0) => Err(format!(
                "{}, its execution never started and no sweep repairs it: the repair looks only at runs with due, \
                 queued or in-flight tasks, and its FAILED tasks are deferred too_old",
                stuck.join(", ")
            )),
            (false, n) => Err(format!("{} ({n} retry executions)", stuck.join(", "))),
        }
    })
    .await;
}
