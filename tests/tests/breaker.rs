//! Retries that know when to stop (issue 14), against moto with the worker double: the
//! per-config circuit breaker (opens on a provider outage of one config only, probes after its
//! cool-down, closes or re-opens with a doubled cool-down, holds under concurrent sweeps), the
//! per-run budget, and failure classes (a spot reclaim does not consume a retry).
//!
//! Every failure here is made the way production makes it: the worker double runs the job
//! (its own writes, the job definition's three attempts), handle-error gets the Step Functions
//! error of a failed job, Aggregate and Complete end the execution. Retry executions the sweeper
//! starts in moto (which stores them without running them) are run the same way from their
//! input.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::{run_binary, TestEnv};
use arc_shared::breaker::BreakerState;
use arc_shared::runtime::Env;
use arc_shared::status::TaskStatus;
use arc_shared::time::{format_ts, Clock, FixedClock};
use arc_sweeper::plan::DeferReason;
use arc_sweeper::{sweep, SweepDeps, SweepRequest, SweepSummary};
use arc_worker_double::{Behaviour, Completion, Worker};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
}

const OUTAGE: &str = "RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for requests'}}";

fn provider_down() -> Vec<Behaviour> {
    vec![Behaviour::Fail { message: OUTAGE.into() }]
}

fn oom() -> Vec<Behaviour> {
    vec![Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed due to memory usage".into() }]
}

fn complete_at(cost: &str) -> Vec<Behaviour> {
    vec![Behaviour::Complete(Completion {
        cost_usd: cost.parse().unwrap(),
        tokens_input: 1000,
        tokens_output: 200,
        result_s3_key: None,
    })]
}

struct World {
    t: TestEnv,
    env: Arc<Env>,
    deps: SweepDeps,
    clock: Arc<FixedClock>,
    worker: Worker,
    sm_arn: String,
}

async fn world(overrides: &[(&str, &str)]) -> World {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let namespace = format!("ArcBreakerTest{suffix}");
    let mut vars: Vec<(&str, &str)> = vec![("CLOUDWATCH_NAMESPACE", namespace.as_str()), ("MAX_RETRIES", "12")];
    vars.extend_from_slice(overrides);
    let t = TestEnv::new(&vars).await;
    let sm_arn = t.create_state_machine(&format!("arc-{suffix}")).await;
    let clock = Arc::new(FixedClock::new(t0()));
    let env = t.env_with_clock(clock.clone());
    let deps = t.sweep_deps(&sm_arn, clock.clone());
    let worker = Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, clock.clone())
        .with_max_retries(t.config.max_retries);
    World { t, env, deps, clock, worker, sm_arn }
}

impl World {
    /// Runs one execution as the state machine does: Initialize `input`, one Batch job per
    /// task (`plan` says what its attempts do), handle-error for each failed job, Aggregate,
    /// Complete. Returns the run id.
    async fn execution(&self, mut input: Value, arn: &str, plan: impl Fn(&str) -> Vec<Behaviour>) -> String {
        input["execution_arn"] = json!(arn);
        let init = initialize::handle(self.env.clone(), input).await.expect("initialize");
        let run_id = init.run_id.clone();
        // The tasks Initialize made PENDING are the ones this execution's Map runs.
        let tasks = self.t.tables().run_tasks(&run_id).await.unwrap();
        let wanted: BTreeSet<String> =
            tasks.iter().filter(|t| t.status == TaskStatus::Pending).map(|t| t.task_id.clone()).collect();
        for task_id in wanted {
            let job = self.worker.run_job(&run_id, &task_id, &plan(&task_id)).await;
            if !job.succeeded {
                let event = json!({
                    "run_id": run_id, "task_id": task_id,
                    "error": job.step_functions_error(&task_id, &[]),
                    "delivery": {"execution_arn": format!("{arn}/{task_id}"), "entered_at": job.job_id},
                });
                handle_error::handle(self.env.clone(), event).await.expect("handle-error");
            }
        }
        let agg = aggregate::handle(self.env.clone(), json!({"run_id": run_id, "execution_arn": arn}))
            .await
            .expect("aggregate");
        let figures = serde_json::to_value(agg.figures()).unwrap();
        complete::handle(self.env.clone(), json!({"run_id": run_id, "aggregation": figures, "execution_arn": arn}))
            .await
            .expect("complete");
        run_id
    }

    /// A new run of `config` with `ids`, its execution run at the clock's time.
    async fn new_run(
        &self,
        config: &str,
        ids: &[String],
        extra: Value,
        plan: impl Fn(&str) -> Vec<Behaviour>,
    ) -> String {
        let arn = format!("{}:run-{config}", self.sm_arn.replace(":stateMachine:", ":execution:"));
        let mut input =
            json!({"config_name": config, "task_ids": ids, "execution_start_time": format_ts(self.clock.now())});
        if let (Some(obj), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        self.execution(input, &arn, plan).await
    }

    async fn sweep(&self) -> SweepSummary {
        Box::pin(sweep(&self.deps, SweepRequest::scheduled())).await.expect("sweep")
    }

    /// Runs every execution `s` started, from its stored input.
    async fn run_started(&self, s: &SweepSummary, plan: impl Fn(&str) -> Vec<Behaviour> + Copy) -> Vec<Vec<String>> {
        let mut ran = Vec::new();
        for e in &s.executions_started {
            let d = self.t.clients.sfn.describe_execution().execution_arn(&e.execution_arn).send().await.unwrap();
            let input: Value = serde_json::from_str(d.input().unwrap_or("{}")).unwrap();
            let ids: Vec<String> = serde_json::from_value(input["task_ids"].clone()).unwrap();
            self.execution(input, &e.execution_arn, plan).await;
            self.t.clients.sfn.stop_execution().execution_arn(&e.execution_arn).send().await.unwrap();
            ran.push(ids);
        }
        ran
    }

    async fn breaker(&self, config: &str) -> arc_shared::breaker::Breaker {
        self.deps.breakers.get_breaker(config).await.unwrap()
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

fn deferred_for(s: &SweepSummary, run_id: &str, reason: DeferReason) -> usize {
    s.deferred.iter().filter(|d| d.run_id == run_id && d.reason == reason).count()
}

#[tokio::test]
async fn an_outage_of_one_config_opens_its_breaker_probes_reopens_and_closes() {
    let w = world(&[("SWEEPER_BREAKER_PROBE_TASKS", "3")]).await;
    // Config A: the provider is down, all 50 tasks fail (the worker records each attempt).
    // Config B: healthy, 3 of 20 tasks OOM (the task's own fault).
    let run_a = w.new_run("cfg-a", &ids("a", 50), json!({}), |_| provider_down()).await;
    let run_b =
        w.new_run("cfg-b", &ids("b", 20), json!({}), |t| if t < "b003" { oom() } else { complete_at("0.01") }).await;
    let a_task = w.t.tables().get_task(&run_a, "a000").await.unwrap().unwrap();
    assert_eq!((a_task.status.clone(), a_task.retry_count), (TaskStatus::Failed, 3), "three attempts, each recorded");
    assert_eq!(a_task.class(), Some(arc_shared::class::FailureClass::Provider));

    // 21 minutes on: everything is due, A's failures are inside the 30-minute window.
    w.clock.advance(Duration::minutes(21));
    let s = w.sweep().await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let a = w.breaker("cfg-a").await;
    assert_eq!(a.state, BreakerState::Open, "{a:?}");
    assert!(a.reason.contains("50 of 50"), "{}", a.reason);
    assert_eq!(w.breaker("cfg-b").await.state, BreakerState::Closed);
    assert_eq!(s.breakers_open, 1);
    assert_eq!(deferred_for(&s, &run_a, DeferReason::BreakerOpen), 50);
    let half_open_at = a.half_open_at.clone().unwrap();
    assert!(s
        .deferred
        .iter()
        .filter(|d| d.run_id == run_a)
        .all(|d| d.due_at.as_deref() == Some(half_open_at.as_str())));
    assert_eq!(half_open_at, format_ts(w.clock.now() + Duration::seconds(900)));
    // B's three failures were retried; nothing was started for A.
    assert_eq!(s.executions_started.len(), 1);
    assert_eq!(s.executions_started[0].run_id, run_b);
    assert_eq!(s.requeued.get(&run_b), Some(&3));
    w.run_started(&s, |_| complete_at("0.01")).await;

    // Before the cool-down is over: still open, nothing started.
    w.clock.advance(Duration::minutes(10));
    let s = w.sweep().await;
    assert!(s.executions_started.is_empty(), "{:?}", s.executions_started);
    assert_eq!(deferred_for(&s, &run_a, DeferReason::BreakerOpen), 50);

    // After it: half-open, a probe of at most 3 tasks.
    w.clock.advance(Duration::minutes(6));
    let s = w.sweep().await;
    let a = w.breaker("cfg-a").await;
    assert_eq!(a.state, BreakerState::HalfOpen);
    assert_eq!(a.probe.len(), 3);
    assert_eq!(s.executions_started.len(), 1);
    assert_eq!(s.requeued.get(&run_a), Some(&3));
    assert_eq!(deferred_for(&s, &run_a, DeferReason::BreakerOpen), 47);
    let probe: BTreeSet<String> = a.probe.iter().map(|p| p.task_id.clone()).collect();
    // The provider is still down: the probe fails.
    let ran = w.run_started(&s, |_| provider_down()).await;
    assert_eq!(ran[0].iter().cloned().collect::<BTreeSet<_>>(), probe);

    // The probe failed for the provider: re-opened with a doubled cool-down.
    w.clock.advance(Duration::minutes(5));
    let s = w.sweep().await;
    let a = w.breaker("cfg-a").await;
    assert_eq!((a.state, a.cooldown_seconds, a.opens), (BreakerState::Open, 1800, 2), "{a:?}");
    assert_eq!(a.half_open_at, Some(format_ts(w.clock.now() + Duration::seconds(1800))));
    assert!(s.breakers.iter().any(|b| b.config_name == "cfg-a" && b.transition.as_deref() == Some("reopened")));
    assert!(s.executions_started.is_empty());

    // After the doubled cool-down: a new probe; the provider is back.
    w.clock.advance(Duration::minutes(31));
    let s = w.sweep().await;
    assert_eq!(w.breaker("cfg-a").await.state, BreakerState::HalfOpen);
    assert_eq!(s.requeued.get(&run_a), Some(&3));
    w.run_started(&s, |_| complete_at("0.02")).await;

    // The probe completed: closed, and A's remaining due tasks are retried at once.
    w.clock.advance(Duration::minutes(5));
    let s = w.sweep().await;
    let a = w.breaker("cfg-a").await;
    assert_eq!((a.state, a.opens), (BreakerState::Closed, 0), "{a:?}");
    assert!(s.breakers.iter().any(|b| b.config_name == "cfg-a" && b.transition.as_deref() == Some("closed")));
    assert_eq!(s.breakers_open, 0);
    // 50 - 3 completed probes - 3 failed probes (retry_count 6: not due yet) = 44.
    assert_eq!(s.requeued.get(&run_a), Some(&44), "{:?}", s.deferred.iter().take(5).collect::<Vec<_>>());
}

#[tokio::test]
async fn two_concurrent_sweeps_over_an_open_breaker_start_nothing_for_it_and_agree_on_its_probe() {
    let w = world(&[("SWEEPER_BREAKER_PROBE_TASKS", "2")]).await;
    let run_a = w.new_run("cfg-a", &ids("a", 20), json!({}), |_| provider_down()).await;
    w.clock.advance(Duration::minutes(21));
    let s = w.sweep().await;
    assert_eq!(w.breaker("cfg-a").await.state, BreakerState::Open);
    assert!(s.executions_started.is_empty());

    // Two sweeps at once while it is open: neither starts anything.
    w.clock.advance(Duration::minutes(5));
    let deps2 = w.t.sweep_deps(&w.sm_arn, w.clock.clone());
    let (s1, s2) = tokio::join!(
        Box::pin(sweep(&w.deps, SweepRequest::scheduled())),
        Box::pin(sweep(&deps2, SweepRequest::scheduled()))
    );
    for s in [s1.unwrap(), s2.unwrap()] {
        assert!(s.executions_started.is_empty(), "{:?}", s.executions_started);
        assert_eq!(deferred_for(&s, &run_a, DeferReason::BreakerOpen), 20);
    }

    // Two sweeps at once when it may half-open: one writes the transition, the other follows
    // it; the probe is re-queued once, in one execution.
    w.clock.advance(Duration::minutes(11));
    let version_before = w.breaker("cfg-a").await.version;
    let (s1, s2) = tokio::join!(
        Box::pin(sweep(&w.deps, SweepRequest::scheduled())),
        Box::pin(sweep(&deps2, SweepRequest::scheduled()))
    );
    let (s1, s2) = (s1.unwrap(), s2.unwrap());
    let a = w.breaker("cfg-a").await;
    assert_eq!((a.state, a.probe.len(), a.version), (BreakerState::HalfOpen, 2, version_before + 1), "{a:?}");
    let transitions =
        [&s1, &s2].iter().filter(|s| s.breakers.iter().any(|b| b.transition.as_deref() == Some("half_opened"))).count();
    assert_eq!(transitions, 1);
    let started: Vec<_> = s1.executions_started.iter().chain(&s2.executions_started).collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].tasks, 2);
    let queued: usize =
        w.t.tables().run_tasks(&run_a).await.unwrap().iter().filter(|t| t.status == TaskStatus::RetryQueued).count();
    assert_eq!(queued, 2);
}

#[tokio::test]
async fn a_run_at_95_percent_of_its_budget_retries_only_what_fits() {
    let w = world(&[]).await;
    // $10 budget; 19 tasks complete at $0.50 ($9.50 spent, 95%); 10 tasks OOM.
    let all = ids("t", 29);
    let run = w
        .new_run(
            "cfg-budget",
            &all,
            json!({"max_cost_usd": 10}),
            |t| if t < "t010" { oom() } else { complete_at("0.50") },
        )
        .await;
    let rec = w.t.tables().require_run(&run).await.unwrap();
    assert_eq!(rec.max_cost_usd, Some(Decimal::from(10)));
    assert_eq!(rec.total_cost_usd, Some("9.5".parse().unwrap()));
    // Aggregate's report already says what fits.
    let key = rec.results_s3_key.clone().unwrap();
    let obj = w.t.clients.s3().get_object().bucket(&w.t.bucket).key(&key).send().await.unwrap();
    let report: Value = serde_json::from_slice(&obj.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(
        report["budget"],
        json!({"max_cost_usd": 10, "spent_usd": 9.5, "estimate_per_task_usd": 0.5, "retryable_tasks": 10,
               "projected_retry_cost_usd": 5, "fit_tasks": 1, "over_budget_tasks": 9})
    );

    w.clock.advance(Duration::minutes(10));
    let s = w.sweep().await;
    assert_eq!(s.requeued.get(&run), Some(&1));
    assert_eq!(s.executions_started.len(), 1);
    assert_eq!(s.executions_started[0].tasks, 1);
    assert_eq!(deferred_for(&s, &run, DeferReason::OverBudget), 9);
    assert_eq!(s.over_budget.len(), 1);
    assert_eq!((s.over_budget[0].budget.fit_tasks, s.over_budget[0].budget.over_budget_tasks), (1, 9));
    // Never a silent truncation: the run says so, and so does `arcctl runs show`.
    let rec = w.t.tables().require_run(&run).await.unwrap();
    assert_eq!(rec.over_budget_tasks, Some(9));
    assert_eq!(rec.over_budget_at, Some(format_ts(w.clock.now())));
    let shown = run_binary("arcctl", &w.t.lambda_env(), &["runs", "show", &run, "--json"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    let v = shown.json();
    assert_eq!(v["budget"]["over_budget_tasks"], 9, "{v:#}");
    assert_eq!(v["budget"]["projected_retry_cost_usd"], 5, "{v:#}");
    assert_eq!(v["run"]["over_budget_tasks"], 9);
    assert!(v["failed_tasks"].as_array().unwrap().iter().all(|t| t["failure_class"] == "task"), "{v:#}");
    let text = run_binary("arcctl", &w.t.lambda_env(), &["runs", "show", &run]);
    assert!(text.stdout.contains("9 NOT retried: over budget"), "{}", text.stdout);
    // The one retried task completes at $0.50: the budget is spent, nothing more is retried.
    w.run_started(&s, |_| complete_at("0.50")).await;
    w.clock.advance(Duration::minutes(10));
    let s = w.sweep().await;
    assert!(s.executions_started.is_empty());
    assert_eq!(deferred_for(&s, &run, DeferReason::OverBudget), 9);
    // Without a budget (another run), nothing is cut.
    let free = w.new_run("cfg-free", &ids("f", 3), json!({}), |_| oom()).await;
    w.clock.advance(Duration::minutes(10));
    let s = w.sweep().await;
    assert_eq!(s.requeued.get(&free), Some(&3));
    // A bad budget is refused by Initialize, naming the field.
    let bad =
        initialize::handle(w.env.clone(), json!({"config_name": "c", "task_ids": ["x1"], "max_cost_usd": -1})).await;
    match bad {
        Err(arc_shared::ArcError::InvalidInput { field, .. }) => assert_eq!(field, "max_cost_usd"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_spot_reclaim_leaves_retry_count_unchanged_and_is_retried() {
    let w = world(&[("INFRA_MAX_RETRIES", "2"), ("MAX_RETRIES", "3")]).await;
    let spot = Behaviour::Killed { exit_code: 143, reason: "Host EC2 (instance i-0abc) terminated.".into() };
    // The reclaimed attempt's job is retried by Batch; the next attempt finds the task claimed
    // and exits 0 (the real worker): the job ends well with the task left IN_PROGRESS.
    let run =
        w.new_run("cfg-spot", &ids("s", 2), json!({}), |_| vec![spot.clone(), complete_at("0.1")[0].clone()]).await;
    let t = w.t.tables().get_task(&run, "s000").await.unwrap().unwrap();
    assert_eq!((t.status.clone(), t.retry_count, t.infra_failures()), (TaskStatus::Failed, 0, 1), "{t:?}");
    assert_eq!(t.class(), Some(arc_shared::class::FailureClass::Infrastructure));
    // An image that cannot be pulled (no attempt ran): handle-error's path, also spared.
    let pull = Behaviour::NotStarted { status_reason: "CannotPullContainerError: pull image manifest".into() };
    let run2 = w.new_run("cfg-pull", &ids("p", 1), json!({}), |_| vec![pull.clone()]).await;
    let p = w.t.tables().get_task(&run2, "p000").await.unwrap().unwrap();
    assert_eq!((p.status.clone(), p.retry_count, p.infra_failures()), (TaskStatus::Failed, 0, 1), "{p:?}");

    // It is retried, and completes (the image stays broken).
    let plan = |t: &str| if t.starts_with('p') { vec![pull.clone()] } else { complete_at("0.1") };
    w.clock.advance(Duration::minutes(10));
    let s = w.sweep().await;
    assert_eq!(s.requeued.get(&run), Some(&2));
    w.run_started(&s, plan).await;
    assert_eq!(w.t.tables().get_task(&run, "s000").await.unwrap().unwrap().status, TaskStatus::Completed);

    // Bounded: a broken image keeps failing; after INFRA_MAX_RETRIES spared failures the next
    // ones count, up to MAX_RETRIES, and the task is permanent.
    let s = w.sweep_until_quiet(&run2, plan).await;
    let p = w.t.tables().get_task(&run2, "p000").await.unwrap().unwrap();
    assert_eq!((p.status.clone(), p.retry_count, p.infra_failures()), (TaskStatus::FailedPermanent, 3, 2), "{p:?} {s}");
}

impl World {
    /// Sweeps (an hour apart) and runs what each sweep starts until nothing of `run` is
    /// retried any more; returns how many rounds it took.
    async fn sweep_until_quiet(&self, run: &str, plan: impl Fn(&str) -> Vec<Behaviour> + Copy) -> usize {
        for round in 1..=20 {
            self.clock.advance(Duration::hours(7));
            let s = self.sweep().await;
            if !s.executions_started.iter().any(|e| e.run_id == run) {
                return round;
            }
            self.run_started(&s, plan).await;
        }
        panic!("still retrying after 20 rounds");
    }
}

#[tokio::test]
async fn operators_list_open_close_and_force_past_a_breaker() {
    let w = world(&[]).await;
    let run = w.new_run("cfg-hand", &ids("h", 3), json!({}), |_| oom()).await;
    let store = &w.deps.breakers;
    let b = store.get_breaker("cfg-hand").await.unwrap();
    assert!(store.write_breaker(&b.opened_by_hand("provider maintenance", w.clock.now(), "op@example")).await.unwrap());
    // A stale write (the version read before) is refused.
    assert!(!store.write_breaker(&b.closed_by_hand("stale", w.clock.now(), "other")).await.unwrap());
    w.clock.advance(Duration::hours(30));
    let s = w.sweep().await;
    // Opened by hand: no half-open however long it stays.
    assert_eq!(w.breaker("cfg-hand").await.state, BreakerState::Open);
    assert_eq!(deferred_for(&s, &run, DeferReason::BreakerOpen), 3);
    assert!(s.deferred.iter().all(|d| d.due_at.is_none()));
    // `force` for one run goes past it (and needs run_id).
    let forced = arc_sweeper::parse_request(json!({"run_id": run, "force": true})).unwrap();
    let s = Box::pin(sweep(&w.deps, forced)).await.unwrap();
    assert_eq!(s.requeued.get(&run), Some(&3));
    assert!(arc_sweeper::parse_request(json!({"force": true})).is_err());
    let list = store.list_breakers().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].changed_by.as_str(), list[0].reason.as_str()), ("op@example", "provider maintenance"));
}

#[tokio::test]
async fn a_sweeper_that_died_after_half_opening_leaves_a_probe_the_next_sweep_runs() {
    let w = world(&[("SWEEPER_BREAKER_PROBE_TASKS", "2")]).await;
    let run_a = w.new_run("cfg-a", &ids("a", 12), json!({}), |_| provider_down()).await;
    w.clock.advance(Duration::minutes(21));
    w.sweep().await;
    let open = w.breaker("cfg-a").await;
    assert_eq!(open.state, BreakerState::Open);
    // What a sweeper that half-opened the breaker and died before re-queueing wrote: the
    // breaker, its probe chosen, the probe tasks still FAILED from before.
    w.clock.advance(Duration::minutes(16));
    let probe = vec![
        arc_shared::breaker::ProbeTask { run_id: run_a.clone(), task_id: "a003".into() },
        arc_shared::breaker::ProbeTask { run_id: run_a.clone(), task_id: "a007".into() },
    ];
    let half = open.after(&arc_shared::breaker::Step::HalfOpen, w.clock.now(), "sweeper", probe);
    assert!(w.deps.breakers.write_breaker(&half).await.unwrap());
    // The next sweep understands it: it re-queues exactly that probe and holds the rest.
    w.clock.advance(Duration::minutes(2));
    let s = w.sweep().await;
    assert_eq!(w.breaker("cfg-a").await.state, BreakerState::HalfOpen);
    assert_eq!(s.executions_started.len(), 1);
    let ran = w.run_started(&s, |_| complete_at("0.01")).await;
    assert_eq!(ran[0], vec!["a003".to_owned(), "a007".to_owned()]);
    assert_eq!(deferred_for(&s, &run_a, DeferReason::BreakerOpen), 10);
    // The probe completed: closed.
    w.clock.advance(Duration::minutes(2));
    w.sweep().await;
    assert_eq!(w.breaker("cfg-a").await.state, BreakerState::Closed);
}
