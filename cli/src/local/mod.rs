//! `arc-local`: a complete benchmark run on a laptop. The local runner stands in for Step
//! Functions and AWS Batch: it drives the real handler and sweeper code, in the order the
//! state machine does, against the local emulator (moto). Production uses the deployed state
//! machine; nothing here talks to AWS.
//!
//! Round 0 is the run's own execution; every later round advances a compressed clock past the
//! longest backoff, runs the sweeper (whose StartExecution calls land on the emulator's Step
//! Functions), and runs each execution it started the same way — until no task is retryable.

pub mod accounting;
pub mod clock;
pub mod emulator;
pub mod execution;
pub mod prng;
pub mod worker;

use crate::exit::{emit, CliError};
use crate::table::Table;
use crate::view;
use accounting::Final;
use arc_shared::ids::ConfigName;
use arc_shared::runtime::Env;
use arc_shared::status::TaskStatus;
use arc_shared::store::executions::{self, ExecState, StartOutcome};
use arc_shared::store::{schema, Clients};
use arc_shared::time::{format_ts, Clock};
use arc_shared::Config;
use arc_sweeper::{SweepDeps, SweepRequest};
use clap::Parser;
use clock::CompressedClock;
use emulator::{Emulator, Resources};
use execution::{call_handler, ExecutionReport, Runner};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use worker::WorkerSim;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "arc-local",
    version,
    about = "Run a whole benchmark run locally: moto stands in for AWS, this runner for Step Functions and Batch",
    long_about = "Run a whole benchmark run locally against moto: Initialize, a simulated Batch job per task, \
        Aggregate, Complete, then sweeps on a compressed clock and the retry executions they start, until \
        no task is retryable. The local runner stands in for Step Functions and AWS Batch; production \
        uses the deployed state machine.\n\n\
        Uses the emulator at AWS_ENDPOINT_URL when set, else starts moto (scripts/moto.sh). \
        MAX_RETRIES, SWEEPER_* and NON_RETRYABLE_ERRORS are read from the environment like the Lambdas.\n\n\
        Exit codes: 0 ok, 1 error, 2 usage error, 4 the accounting does not add up."
)]
pub struct Options {
    /// Tasks in the run (120 is the size of the ARC-AGI-2 evaluation set).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub tasks: u64,
    /// Probability that a simulated Batch job fails.
    #[arg(long, default_value_t = 0.2, value_parser = parse_rate)]
    pub failure_rate: f64,
    /// The model configuration name of the run.
    #[arg(long, value_name = "NAME", default_value = "local-sim", value_parser = crate::ctl::parse_config)]
    pub config: ConfigName,
    /// Seed of every simulated decision (task ids, failures, costs): same seed, same outcome.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Leave the emulator running at the end and print its endpoint and resource names.
    #[arg(long)]
    pub keep: bool,
    /// Sweep rounds at most before giving up.
    #[arg(long, value_name = "R", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_rounds: u32,
    /// Simulated Batch jobs running at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Simulate a provider outage: every attempt of the executions of the first ROUNDS rounds
    /// fails with a rate-limit error. Rounds then advance the clock by 70% of
    /// SWEEPER_BREAKER_WINDOW_SECONDS (not past the longest backoff) while the outage lasts or
    /// the config's circuit breaker is open, so each round's sweep shows the breaker opening,
    /// probing, re-opening and closing. MAX_RETRIES defaults to 12 here (the worker counts each
    /// of a job's three attempts).
    #[arg(long, value_name = "ROUNDS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub outage: u32,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

/// Runs the lifecycle; stops the emulator it started unless `--keep`.
pub async fn run(opts: Options) -> Result<(), CliError> {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    // A malformed MAX_RETRIES & co. fails here, before anything is started.
    local_config(
        &Resources::named(&suffix, "arn:aws:states:us-east-1:123456789012:stateMachine:check"),
        opts.outage > 0,
    )?;
    let emu = Emulator::start_or_attach(&suffix)?;
    let mut resources = None;
    let mut run_id = None;
    // Ctrl-C still stops the emulator we started (moto runs in the background, out of reach of
    // the terminal's interrupt).
    let result = tokio::select! {
        r = lifecycle(&opts, &emu, &suffix, &mut resources, &mut run_id) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::failed("interrupted")),
    };
    match (&emu.pidfile, opts.keep, &resources) {
        (Some(_), false, _) => emu.stop(),
        (None, _, None) => {}
        (pidfile, _, resources) => {
            match pidfile {
                Some(_) => eprintln!("\nemulator left running at {}", emu.endpoint),
                None => eprintln!("\nresources left in the emulator at {} (not started here)", emu.endpoint),
            }
            if let Some(r) = resources {
                eprintln!(
                    "  RUNS_TABLE={} TASKS_TABLE={} S3_BUCKET={}\n  STATE_MACHINE_ARN={}",
                    r.runs_table, r.tasks_table, r.bucket, r.state_machine_arn
                );
                eprintln!(
                    "  inspect: AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
                     RUNS_TABLE={} TASKS_TABLE={} arcctl runs list",
                    emu.endpoint, r.runs_table, r.tasks_table
                );
                eprintln!("{}", operate_commands(&emu.endpoint, r, run_id.as_deref(), opts.config.as_str()));
            }
            if let Some(pidfile) = pidfile {
                eprintln!("  stop:    scripts/moto.sh stop {}", pidfile.display());
            }
        }
    }
    result
}

/// The arcctl commands that operate the kept run, after one `export` of its settings.
pub fn operate_commands(endpoint: &str, r: &Resources, run_id: Option<&str>, config: &str) -> String {
    let mut out = format!(
        "  operate: export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
         AWS_REGION=us-east-1 RUNS_TABLE={} TASKS_TABLE={} BREAKERS_TABLE={} S3_BUCKET={} STATE_MACHINE_ARN={}",
        r.runs_table, r.tasks_table, r.breakers_table, r.bucket, r.state_machine_arn
    );
    if let Some(run) = run_id {
        for cmd in [
            format!("arcctl runs show {run}"),
            format!("arcctl runs report {run} --csv {run}.csv"),
            format!("arcctl runs watch {run}"),
            format!("arcctl runs cancel {run} --reason \"try it\""),
            format!("arcctl runs resume {run}"),
            "arcctl breakers".to_owned(),
        ] {
            out.push_str(&format!("\n           {cmd}"));
        }
    }
    out.push_str(&format!(
        "\n           arcctl runs start --config {config} --task-id t-0001 --task-id t-0002   \
         (moto keeps the execution without running it: the run waits for its Initialize)"
    ));
    out
}

async fn lifecycle(
    opts: &Options,
    emu: &Emulator,
    suffix: &str,
    resources: &mut Option<Resources>,
    run_id_out: &mut Option<String>,
) -> Result<(), CliError> {
    let seed = opts.seed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 % 1_000_000);
    // Dummy credentials: the local runner never talks to AWS.
    let clients = Clients::from_conf(&schema::emulator_config(&emu.endpoint).await);
    let res = emulator::create_resources(&clients, suffix).await.map_err(|e| {
        CliError::failed(format!("setting up tables, bucket and state machine at {}: {e}", emu.endpoint))
    })?;
    *resources = Some(res.clone());

    let config = local_config(&res, opts.outage > 0)?;
    let clock = Arc::new(CompressedClock::new());
    let env = Arc::new(Env { config: config.clone(), clients: clients.clone(), clock: clock.clone() });
    let deps = SweepDeps::from_env(&env)?;
    let sim = WorkerSim {
        seed,
        failure_rate: opts.failure_rate,
        accuracy: 0.6,
        redeliver_rate: 0.1,
        provider_down_rounds: opts.outage,
    };
    let runner = Runner::new(env.clone(), sim, opts.concurrency as usize);
    let jump = chrono::Duration::from_std(config.backoff.max_delay).unwrap_or(chrono::Duration::hours(6))
        + chrono::Duration::minutes(1);
    // During an outage (or while the breaker is open) a round is short enough that the last
    // round's failures are still in the breaker's window.
    let short_jump =
        chrono::Duration::from_std(config.breaker.window.mul_f64(0.7)).unwrap_or(chrono::Duration::minutes(21));

    emit(&format!(
        "arc-local: {} tasks, failure rate {}, seed {seed}, config {}, MAX_RETRIES {}\n\
         emulator {} (the local runner stands in for Step Functions and Batch)",
        opts.tasks, opts.failure_rate, opts.config, config.max_retries, emu.endpoint
    ));
    if opts.outage > 0 {
        emit(&format!(
            "outage: the provider is down for the executions of rounds 0-{}; breaker: {} provider failures at >= {:.0}% \
             of the tasks ended in {} s open it, cool-down {} s (x2 per re-open, up to {} s), {} probe task(s)",
            opts.outage - 1,
            config.breaker.min_failures,
            config.breaker.failure_ratio * 100.0,
            config.breaker.window.as_secs(),
            config.breaker.cooldown.as_secs(),
            config.breaker.max_cooldown.as_secs(),
            config.breaker.probe_tasks
        ));
    }

    // Round 0: the run's own execution.
    let task_ids = task_ids(seed, opts.tasks);
    let input = json!({"config_name": opts.config, "task_ids": task_ids, "triggered_by": "arc-local"});
    let first = start_execution(&clients, &res, &format!("run-{suffix}"), &input).await?;
    let mut init = input.clone();
    if let Some(obj) = init.as_object_mut() {
        obj.insert("execution_start_time".into(), json!(format_ts(clock.now())));
        obj.insert("data_source".into(), json!("evaluation"));
    }
    let report = runner.run_execution(init, &first, 0, "round 0").await?;
    stop_execution(&clients, &first).await?;
    let run_id = report.run_id.clone();
    *run_id_out = Some(run_id.clone());
    let mut processed: BTreeSet<String> = BTreeSet::from([first]);
    let mut retry_executions = 0u64;
    emit(&format!("\nround 0: execution of run {run_id}"));
    print_round(&env, &run_id, &[report]).await?;

    let mut round = 0u32;
    loop {
        let counts = status_counts(&env, &run_id).await?;
        let retryable = counts.get("FAILED").copied().unwrap_or(0) + counts.get("RETRY_QUEUED").copied().unwrap_or(0);
        if retryable == 0 {
            break;
        }
        if round >= opts.max_rounds {
            return Err(CliError::failed(format!(
                "{retryable} tasks still retryable after {round} sweep rounds (--max-rounds {})",
                opts.max_rounds
            )));
        }
        round += 1;
        let tripped = call_handler(|| deps.breakers.get_breaker(opts.config.as_str())).await?.state.is_tripped();
        clock.jump(if round <= opts.outage || tripped { short_jump } else { jump });
        let summary = call_handler(|| Box::pin(arc_sweeper::sweep(&deps, SweepRequest::scheduled()))).await?;
        emit(&format!(
            "\nround {round}: clock +{}h{:02}m, sweep at {}: {} FAILED scanned, {} due, {} re-queued, {} execution(s) started",
            clock.offset().num_minutes() / 60,
            clock.offset().num_minutes() % 60,
            summary.swept_at,
            summary.scanned,
            summary.due,
            summary.requeued_total,
            summary.executions_started.len()
        ));
        for e in &summary.errors {
            eprintln!("warning: sweep error on {:?}: {} {}", e.run_id, e.error_type, e.message);
        }
        for b in &summary.breakers {
            emit(&format!(
                "  breaker {}: {}{} - {}{}; {} due task(s) held back{}",
                b.config_name,
                b.state,
                b.transition.as_deref().map(|t| format!(" ({t} now)")).unwrap_or_default(),
                b.reason,
                b.half_open_at
                    .as_deref()
                    .filter(|_| b.state == "open")
                    .map(|t| format!("; half-opens at {t}"))
                    .unwrap_or_default(),
                b.deferred_tasks,
                if b.probe_tasks > 0 && b.state == "half_open" {
                    format!(", {} probe task(s)", b.probe_tasks)
                } else {
                    String::new()
                },
            ));
        }
        let mut reports = Vec::new();
        for (arn, input) in new_executions(&clients, &res, &processed).await? {
            let label = format!("round {round}");
            let report = runner.run_execution(input, &arn, round, &label).await?;
            stop_execution(&clients, &arn).await?;
            processed.insert(arn);
            retry_executions += 1;
            reports.push(report);
        }
        print_round(&env, &run_id, &reports).await?;
    }

    let ledger = accounting::Ledger {
        expected_tasks: opts.tasks,
        costs: runner.ledger(),
        completed_twice: runner.completed_twice(),
        failures: runner.failures(),
    };
    let fin = call_handler(|| accounting::check(&env, &run_id, &ledger)).await?;
    print_final(&fin, round, retry_executions);
    if fin.problems.is_empty() {
        emit(&format!(
            "accounting OK: {} tasks = {} completed + {} failed permanently; cost {} in tasks table = run record = S3 report = worker ledger",
            fin.tasks.len(),
            fin.completed,
            fin.failed_permanent,
            view::money(Some(fin.tasks_cost))
        ));
        Ok(())
    } else {
        Err(CliError::Accounting(fin.problems))
    }
}

/// The Lambdas' configuration for `res`: the resource names are ours, everything else
/// (MAX_RETRIES, SWEEPER_*, NON_RETRYABLE_ERRORS…) comes from the environment.
fn local_config(res: &Resources, outage: bool) -> Result<Config, CliError> {
    let mut overrides: HashMap<&str, String> = HashMap::from([
        ("RUNS_TABLE", res.runs_table.clone()),
        ("TASKS_TABLE", res.tasks_table.clone()),
        ("BREAKERS_TABLE", res.breakers_table.clone()),
        ("S3_BUCKET", res.bucket.clone()),
        ("STATE_MACHINE_ARN", res.state_machine_arn.clone()),
    ]);
    if outage && std::env::var("MAX_RETRIES").is_err() {
        overrides.insert("MAX_RETRIES", "12".to_owned());
    }
    Ok(Config::from_lookup(|k| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()))?)
}

/// `n` distinct ARC-style task ids (8 hex digits), from the seed.
pub fn task_ids(seed: u64, n: u64) -> Vec<String> {
    let mut rng = prng::stream(seed, "task-ids");
    let mut ids = BTreeSet::new();
    while (ids.len() as u64) < n {
        ids.insert(format!("{:08x}", rng.random::<u32>()));
    }
    ids.into_iter().collect()
}

async fn start_execution(clients: &Clients, res: &Resources, name: &str, input: &Value) -> Result<String, CliError> {
    let input = input.to_string();
    match call_handler(|| executions::start(&clients.sfn, &res.state_machine_arn, name, &input)).await? {
        StartOutcome::Started { execution_arn, .. } => Ok(execution_arn),
        // Our own start whose answer was lost: the retry finds it running with our input.
        StartOutcome::AlreadyExists(d) if d.state == ExecState::Live && d.input.as_deref() == Some(input.as_str()) => {
            Ok(executions::execution_arn(&res.state_machine_arn, name))
        }
        StartOutcome::AlreadyExists(_) => Err(CliError::failed(format!("execution {name} already exists"))),
    }
}

/// Ends an execution the local runner has run, so that it is neither run again nor taken for
/// a live one.
async fn stop_execution(clients: &Clients, arn: &str) -> Result<(), CliError> {
    if !call_handler(|| executions::stop(&clients.sfn, arn, None, "run by arc-local")).await? {
        return Err(CliError::failed(format!("StopExecution {arn}: no such execution")));
    }
    Ok(())
}

/// RUNNING executions of the state machine not yet run here, oldest first, with their input.
async fn new_executions(
    clients: &Clients,
    res: &Resources,
    processed: &BTreeSet<String>,
) -> Result<Vec<(String, Value)>, CliError> {
    let mut found: Vec<_> = call_handler(|| executions::list_running(&clients.sfn, &res.state_machine_arn))
        .await?
        .into_iter()
        .filter(|e| !processed.contains(&e.execution_arn))
        .map(|e| (e.started_at, e.execution_arn))
        .collect();
    found.sort();
    let mut out = Vec::new();
    for (_, arn) in found {
        let d = call_handler(|| executions::describe(&clients.sfn, &arn)).await?;
        let input: Value = serde_json::from_str(d.input.as_deref().unwrap_or("{}"))
            .map_err(|e| CliError::failed(format!("execution {arn}: input is not JSON: {e}")))?;
        out.push((arn, input));
    }
    Ok(out)
}

async fn status_counts(env: &Env, run_id: &str) -> Result<BTreeMap<String, u64>, CliError> {
    let tasks = call_handler(|| async { env.tables().run_tasks(run_id).await }).await?;
    Ok(view::status_counts(tasks.iter().map(|t| &t.status)))
}

async fn print_round(env: &Env, run_id: &str, reports: &[ExecutionReport]) -> Result<(), CliError> {
    for r in reports {
        emit(&format!(
            "  {} job(s): {} completed, {} failed ({} of them permanently){}{}; run now {}",
            r.jobs,
            r.completed,
            r.failed_jobs,
            r.failed_permanent,
            failure_notes(r),
            if r.not_claimed > 0 { format!(", {} not claimed", r.not_claimed) } else { String::new() },
            r.run_status
        ));
    }
    let counts = status_counts(env, run_id).await?;
    emit(&view::status_table(&counts).render());
    Ok(())
}

/// `(3 recorded by the worker itself, 1 delivered twice)`, or nothing.
fn failure_notes(r: &ExecutionReport) -> String {
    let mut notes = Vec::new();
    if r.failed_attempts > 0 {
        notes.push(format!(
            "{} failed attempt(s), {} recorded by the worker itself",
            r.failed_attempts, r.worker_recorded
        ));
    }
    if r.redelivered > 0 {
        notes.push(format!("{} delivered twice", r.redelivered));
    }
    if r.spared > 0 {
        notes.push(format!("{} infrastructure failure(s) not charged to the task", r.spared));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    }
}

fn print_final(fin: &Final, rounds: u32, retry_executions: u64) {
    emit(&format!(
        "\nfinal: run {} {} after {rounds} sweep round(s), {retry_executions} retry execution(s)",
        fin.run.run_id, fin.run.status
    ));
    let counts = view::status_counts(fin.tasks.iter().map(|t| &t.status));
    emit(&view::status_table(&counts).render());
    let retried = fin.tasks.iter().filter(|t| t.retry_count > 0 && t.status == TaskStatus::Completed).count();
    let mut t = Table::new(["METRIC", "VALUE"]);
    t.row([
        "accuracy".to_owned(),
        format!("{} ({} of {} completed tasks correct)", view::percent(fin.run.accuracy), fin.correct, fin.completed),
    ]);
    t.row(["cost".to_owned(), view::money(Some(fin.tasks_cost))]);
    t.row(["completed".to_owned(), format!("{} ({retried} after a retry)", fin.completed)]);
    t.row(["permanently failed".to_owned(), fin.failed_permanent.to_string()]);
    t.row(["report".to_owned(), fin.report_url.clone().unwrap_or_else(|| "-".to_owned())]);
    emit(&format!("\n{}\n", t.render()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_distinct_valid_and_seeded() {
        let a = task_ids(7, 120);
        assert_eq!(a.len(), 120);
        assert_eq!(a, task_ids(7, 120));
        assert_ne!(a, task_ids(8, 120));
        assert!(a.iter().all(|t| arc_shared::ids::TaskId::parse(t.as_str()).is_ok()));
    }

    #[test]
    fn kept_runs_print_the_commands_that_operate_them() {
        let r = Resources::named("abc", "arn:aws:states:us-east-1:123456789012:stateMachine:sm");
        let text = operate_commands("http://127.0.0.1:5000", &r, Some("run-x"), "local-sim");
        assert!(text.contains("export AWS_ENDPOINT_URL=http://127.0.0.1:5000 "), "{text}");
        assert!(text.contains(&format!("STATE_MACHINE_ARN={}", r.state_machine_arn)), "{text}");
        for cmd in [
            "runs show run-x",
            "runs report run-x --csv",
            "runs watch run-x",
            "runs cancel run-x",
            "runs resume run-x",
            "arcctl breakers",
        ] {
            assert!(text.contains(cmd), "{cmd}: {text}");
        }
        assert!(text.contains("arcctl runs start --config local-sim"), "{text}");
    }

    #[test]
    fn options_reject_bad_values_with_usage_errors() {
        for args in [
            vec!["arc-local", "--tasks", "0"],
            vec!["arc-local", "--failure-rate", "1.5"],
            vec!["arc-local", "--failure-rate", "x"],
            vec!["arc-local", "--config", "a b"],
            vec!["arc-local", "--seed", "-1"],
        ] {
            let e = Options::try_parse_from(&args).expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{}", args.join(" "));
        }
        let o = Options::try_parse_from(["arc-local"]).unwrap();
        assert_eq!((o.tasks, o.failure_rate, o.config.as_str(), o.keep), (120, 0.2, "local-sim", false));
    }
}
