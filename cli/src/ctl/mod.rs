//! `arcctl`: the operator's commands. Arguments are parsed and validated by clap at the edge
//! (a bad argument exits 2 before anything is read); each command then reads or sweeps and
//! prints a table for people or JSON (`--json`) for scripts.

pub mod breakers;
pub mod cancel;
pub mod doctor;
pub mod migrate;
pub mod report;
pub mod runs;
pub mod start;
pub mod sweep;
pub mod tables;
pub mod watch;

use crate::exit::CliError;
use arc_shared::ids::{ConfigName, RunId, TaskId};
use arc_shared::store::{Clients, Tables};
use arc_shared::Config;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "arcctl",
    version,
    about = "Operate arc-orchestrator benchmark runs: start, watch, cancel, resume and report runs, sweep and retry failed tasks, check and migrate a deployment",
    long_about = "Operate arc-orchestrator benchmark runs.\n\n\
        Works against AWS with the default credential chain, or against a local emulator when \
        AWS_ENDPOINT_URL is set. Tables come from RUNS_TABLE / TASKS_TABLE (defaults \
        arc_benchmark_runs / arc_task_progress), like the Lambdas.\n\n\
        Exit codes: 0 ok, 1 error (or a failed doctor check, or a watched run that did not end \
        COMPLETED), 2 usage error, 3 run not found."
)]
pub struct Cli {
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, watch, cancel, resume, report, list and inspect runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Sweep FAILED tasks that are due into retry executions (the sweeper, run here or invoked).
    Sweep(SweepArgs),
    /// Retry a run's FAILED tasks now, ignoring backoff (= sweep --now --run-id RUN_ID).
    Retry(RetryArgs),
    /// Check the deployment as the functions see it: tables, indexes, run roll-ups, state
    /// machine (and the rate-limits table, the sweeper and its schedule when named); each
    /// failed check names its fix. Exit 0 only when every check passes.
    Doctor(DoctorArgs),
    /// Bring the tables of a Python-set deployment to what this product needs.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The sweeper's per-config circuit breakers: state, since when, until when, why, by whom.
    Breakers,
    /// Open or close one config's circuit breaker by hand (recorded with who and why).
    #[command(subcommand)]
    Breaker(BreakerCommand),
}

#[derive(Debug, Subcommand)]
pub enum BreakerCommand {
    /// Hold back every retry of CONFIG until it is closed by hand (no automatic half-open).
    Open {
        #[arg(value_name = "CONFIG", value_parser = parse_config)]
        config: ConfigName,
        /// Why (kept on the breaker).
        #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
        reason: String,
    },
    /// Let CONFIG's retries run again; failures before now no longer count toward opening it.
    Close {
        #[arg(value_name = "CONFIG", value_parser = parse_config)]
        config: ConfigName,
        /// Why (kept on the breaker).
        #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this sweeper Lambda (`<name_prefix>-sweeper`) and its EventBridge Scheduler schedule.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Also check the worker's rate-limits table (default: $DYNAMODB_RATE_LIMIT_TABLE).
    #[arg(long, value_name = "NAME", value_parser = parse_table_name)]
    pub rate_limits_table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Add the tasks table's GSI status-index (status / updated_at, projection ALL), which the
    /// sweeper queries, and wait until it is ACTIVE. Idempotent.
    StatusIndex {
        /// Stop waiting after this many minutes (DynamoDB goes on building the index).
        #[arg(long, value_name = "MINUTES", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=10_080))]
        timeout_minutes: u64,
        /// Seconds between two status reads while waiting.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        poll_seconds: u64,
        /// Delete an existing status-index of the wrong shape and build it again.
        #[arg(long)]
        recreate: bool,
    },
    /// Set every missing run roll-up (completed_tasks, failed_tasks, total_cost_usd,
    /// total_input_tokens, total_output_tokens) to 0, which the Python worker adds to.
    /// Idempotent and resumable.
    BackfillRuns {
        /// Report what would be updated, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Resume the scan after this run id (printed in the progress lines).
        #[arg(long, value_name = "RUN_ID", value_parser = parse_key)]
        start_after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first: of one config through config-created-index, or a bounded scan.
    List {
        /// Only runs of this config (queries config-created-index, newest first).
        #[arg(long, value_name = "NAME", value_parser = parse_config)]
        config: Option<ConfigName>,
        /// At most this many runs.
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// One run: status counts, cost, accuracy, and every failed task with its last error.
    Show {
        #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
        run_id: RunId,
    },
    /// Start a new run's execution: the input validated as Initialize validates it, a task list
    /// too large for an execution input uploaded to S3_BUCKET; prints the execution ARN and the
    /// run id Initialize will give it. The same input within the same minute (or the same
    /// --name) starts one execution.
    Start(StartArgs),
    /// A live view of a run until it ends (COMPLETED / COMPLETED_WITH_ERRORS / FAILED with no task
    /// in flight, or CANCELLED): exit 0 on COMPLETED, 1 otherwise, 3 if the run does not exist.
    /// With --json, one JSON line per refresh.
    Watch {
        #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
        run_id: RunId,
        /// Seconds between two refreshes.
        #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
    /// Stop a run for good: its execution is stopped and the run marked CANCELLED (who, why,
    /// when); the sweeper then never repairs, retries or re-queues its tasks.
    Cancel {
        #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
        run_id: RunId,
        /// Why (kept on the run as cancelled_reason).
        #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
        reason: Option<String>,
    },
    /// Undo a cancel: the run becomes COMPLETED_WITH_ERRORS and the tasks its stopped execution
    /// left in flight FAILED (not charged an attempt), so the sweeper retries them.
    Resume {
        #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
        run_id: RunId,
    },
    /// Per-task results (task id order) and the run's summary (its S3 report when there is one).
    Report {
        #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
        run_id: RunId,
        /// Write the task rows as CSV (with a header row) to FILE; `-` for stdout.
        #[arg(long, value_name = "FILE")]
        csv: Option<String>,
        /// Only tasks of this status (repeatable), e.g. FAILED_PERMANENT.
        #[arg(long = "status", value_name = "S", value_parser = parse_status)]
        statuses: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The model configuration (config_name).
    #[arg(long, value_name = "NAME")]
    pub config: String,
    /// A file of task ids: a JSON array of strings, or one id per line.
    #[arg(long, value_name = "FILE", required_unless_present = "task_ids", conflicts_with = "task_ids")]
    pub task_ids_file: Option<std::path::PathBuf>,
    /// A task id (repeatable).
    #[arg(long = "task-id", value_name = "ID")]
    pub task_ids: Vec<String>,
    /// data_source (Initialize's default: evaluation).
    #[arg(long, value_name = "S")]
    pub data_source: Option<String>,
    /// triggered_by (Initialize's default: unknown).
    #[arg(long, value_name = "WHO")]
    pub triggered_by: Option<String>,
    /// commit_sha (Initialize's default: empty).
    #[arg(long, value_name = "SHA")]
    pub commit_sha: Option<String>,
    /// The state machine (default: $STATE_MACHINE_ARN).
    #[arg(long, value_name = "ARN", value_parser = parse_state_machine_arn)]
    pub state_machine_arn: Option<String>,
    /// The execution's name (default: run-<config>-<YYYYMMDDHHMM>-<8 hex of the input's sha256>).
    #[arg(long, value_name = "NAME", value_parser = parse_execution_name)]
    pub name: Option<String>,
    /// Then follow the run like `arcctl runs watch`.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: seconds between two refreshes.
    #[arg(long, value_name = "SECS", default_value_t = 5, requires = "wait", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// The run's budget in US dollars: the sweeper never starts a retry that would take the
    /// run past it (default: the deployment's RUN_MAX_COST_USD, else no limit).
    #[arg(long, value_name = "USD", value_parser = parse_budget)]
    pub max_cost_usd: Option<rust_decimal::Decimal>,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Decide and report, write nothing, start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore backoff: every FAILED task is due now.
    #[arg(long)]
    pub now: bool,
    /// Only this run.
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<RunId>,
    /// Only these tasks of --run-id (repeatable).
    #[arg(long = "task-id", value_name = "ID", value_parser = parse_task_id, requires = "run_id")]
    pub task_ids: Vec<TaskId>,
    /// Re-queue at most N tasks (also bounded by SWEEPER_MAX_TASKS).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tasks: Option<u64>,
    /// Invoke the deployed sweeper Lambda with the same request instead of sweeping here.
    #[arg(long, value_name = "FUNCTION_NAME")]
    pub invoke: Option<String>,
    /// Retry --run-id even while its config's circuit breaker is open.
    #[arg(long, requires = "run_id")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[arg(value_name = "RUN_ID", value_parser = parse_run_id)]
    pub run_id: RunId,
    /// Only these tasks (repeatable).
    #[arg(long = "task-id", value_name = "ID", value_parser = parse_task_id)]
    pub task_ids: Vec<TaskId>,
    /// Decide and report, write nothing, start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Invoke the deployed sweeper Lambda instead of sweeping here.
    #[arg(long, value_name = "FUNCTION_NAME")]
    pub invoke: Option<String>,
    /// Retry even while the run's config's circuit breaker is open.
    #[arg(long)]
    pub force: bool,
}

/// A config name (both binaries' `--config`).
pub(crate) fn parse_config(s: &str) -> Result<ConfigName, String> {
    ConfigName::parse(s).map_err(|e| e.0)
}

/// A budget: a positive number of US dollars.
fn parse_budget(s: &str) -> Result<rust_decimal::Decimal, String> {
    arc_shared::budget::parse_usd(s).ok_or_else(|| format!("{s:?} is not a positive number of US dollars"))
}

fn parse_run_id(s: &str) -> Result<RunId, String> {
    RunId::parse(s).map_err(|e| e.0)
}

fn parse_task_id(s: &str) -> Result<TaskId, String> {
    TaskId::parse(s).map_err(|e| e.0)
}

fn parse_reason(s: &str) -> Result<String, String> {
    let chars = s.chars().count();
    if s.trim().is_empty() || chars > MAX_REASON_CHARS {
        Err(format!("a reason is 1-{MAX_REASON_CHARS} characters; {chars} given"))
    } else {
        Ok(s.to_owned())
    }
}

/// `--reason` at most this long (it is kept on the run item).
pub const MAX_REASON_CHARS: usize = 1000;

/// A task status name: known ones and those other tools wrote (`RUNNING`), upper case.
fn parse_status(s: &str) -> Result<String, String> {
    let up = s.trim().to_ascii_uppercase();
    if !up.is_empty() && up.len() <= 64 && up.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(up)
    } else {
        Err(format!("{s:?} is not a task status (e.g. {})", crate::view::STATUS_ORDER.join(", ")))
    }
}

fn parse_state_machine_arn(s: &str) -> Result<String, String> {
    if s.starts_with("arn:") && s.split(':').count() >= 7 && s.contains(":stateMachine:") {
        Ok(s.to_owned())
    } else {
        Err("a state machine ARN: arn:aws:states:REGION:ACCOUNT:stateMachine:NAME".to_owned())
    }
}

fn parse_execution_name(s: &str) -> Result<String, String> {
    start::valid_execution_name(s).map(|()| s.to_owned())
}

fn parse_table_name(s: &str) -> Result<String, String> {
    if (3..=255).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        Ok(s.to_owned())
    } else {
        Err("a DynamoDB table name is 3-255 characters of [A-Za-z0-9_.-]".to_owned())
    }
}

/// A scan key as printed by a progress line: any non-empty run id (legacy ids included).
fn parse_key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 1024 {
        Err("a run id of 1-1024 characters".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// What every command reads: the configuration and the AWS clients.
pub struct Ctx {
    pub config: Config,
    pub clients: Clients,
    pub sdk: aws_config::SdkConfig,
    pub json: bool,
}

impl Ctx {
    pub async fn from_env(json: bool) -> Result<Self, CliError> {
        let config = Config::from_env()?;
        let sdk = arc_shared::store::sdk_defaults().load().await;
        let clients = Clients::from_conf(&sdk);
        Ok(Self { config, clients, sdk, json })
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.clients.dynamodb.clone(), &self.config.runs_table, &self.config.tasks_table)
    }

    pub fn breakers(&self) -> arc_shared::store::breakers::Breakers {
        arc_shared::store::breakers::Breakers::new(self.clients.dynamodb.clone(), &self.config.breakers_table)
    }
}

/// Runs one parsed command; what it prints goes to stdout, warnings to stderr.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx::from_env(cli.json).await?;
    match cli.command {
        Command::Runs(RunsCommand::List { config, limit }) => runs::list(&ctx, config.as_ref(), limit as usize).await,
        Command::Runs(RunsCommand::Show { run_id }) => runs::show(&ctx, &run_id).await,
        Command::Runs(RunsCommand::Start(a)) => {
            let req = start::StartRequest {
                config: a.config,
                task_ids_file: a.task_ids_file,
                task_ids: a.task_ids,
                data_source: a.data_source,
                triggered_by: a.triggered_by,
                commit_sha: a.commit_sha,
                state_machine_arn: a.state_machine_arn,
                name: a.name,
                max_cost_usd: a.max_cost_usd,
                wait: a.wait,
                interval: std::time::Duration::from_secs(a.interval),
            };
            start::start(&ctx, req).await
        }
        Command::Runs(RunsCommand::Watch { run_id, interval }) => {
            let opts = watch::WatchOptions { interval: std::time::Duration::from_secs(interval), execution_arn: None };
            watch::watch(&ctx, run_id.as_str(), &opts).await
        }
        Command::Runs(RunsCommand::Cancel { run_id, reason }) => {
            cancel::cancel(&ctx, run_id.as_str(), reason.as_deref()).await
        }
        Command::Runs(RunsCommand::Resume { run_id }) => cancel::resume(&ctx, run_id.as_str()).await,
        Command::Runs(RunsCommand::Report { run_id, csv, statuses }) => {
            report::report(&ctx, run_id.as_str(), &report::ReportRequest { csv, statuses }).await
        }
        Command::Sweep(args) => {
            let req = sweep::Request {
                dry_run: args.dry_run,
                ignore_backoff: args.now,
                run_id: args.run_id,
                task_ids: args.task_ids,
                max_tasks: args.max_tasks,
                force: args.force,
            };
            sweep::sweep(&ctx, req, args.invoke.as_deref()).await
        }
        Command::Retry(args) => {
            let req = sweep::Request {
                dry_run: args.dry_run,
                ignore_backoff: true,
                run_id: Some(args.run_id),
                task_ids: args.task_ids,
                max_tasks: None,
                force: args.force,
            };
            sweep::sweep(&ctx, req, args.invoke.as_deref()).await
        }
        Command::Doctor(args) => {
            let rate_limits_table = match args.rate_limits_table {
                Some(t) => Some(t),
                None => match std::env::var(doctor::RATE_LIMIT_TABLE_VAR).ok().filter(|v| !v.trim().is_empty()) {
                    Some(v) => Some(
                        parse_table_name(v.trim())
                            .map_err(|e| CliError::Usage(format!("{}={v:?}: {e}", doctor::RATE_LIMIT_TABLE_VAR)))?,
                    ),
                    None => None,
                },
            };
            doctor::doctor(&ctx, &doctor::Options { function: args.function, rate_limits_table }).await
        }
        Command::Migrate(MigrateCommand::StatusIndex { timeout_minutes, poll_seconds, recreate }) => {
            let opts = migrate::StatusIndexOptions {
                timeout: std::time::Duration::from_secs(timeout_minutes * 60),
                poll: std::time::Duration::from_secs(poll_seconds),
                recreate,
            };
            migrate::status_index(&ctx, &opts).await
        }
        Command::Migrate(MigrateCommand::BackfillRuns { dry_run, start_after }) => {
            migrate::backfill_runs(&ctx, &migrate::BackfillOptions { dry_run, start_after }).await
        }
        Command::Breakers => breakers::list(&ctx).await,
        Command::Breaker(BreakerCommand::Open { config, reason }) => breakers::set(&ctx, &config, true, &reason).await,
        Command::Breaker(BreakerCommand::Close { config, reason }) => {
            breakers::set(&ctx, &config, false, &reason).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            vec!["arcctl", "runs", "list", "--limit", "0"],
            vec!["arcctl", "runs", "list", "--config", "a b"],
            vec!["arcctl", "runs", "show"],
            vec!["arcctl", "runs", "show", "run/1"],
            vec!["arcctl", "sweep", "--task-id", "t1"],
            vec!["arcctl", "sweep", "--max-tasks", "0"],
            vec!["arcctl", "retry"],
            vec!["arcctl", "frobnicate"],
            vec!["arcctl", "doctor", "--rate-limits-table", "a b"],
            vec!["arcctl", "migrate"],
            vec!["arcctl", "migrate", "status-index", "--timeout-minutes", "0"],
            vec!["arcctl", "migrate", "backfill-runs", "--start-after", ""],
            vec!["arcctl", "runs", "start", "--task-id", "t1"],
            vec!["arcctl", "runs", "start", "--config", "c"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--task-ids-file", "ids.json"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--name", "a b"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--state-machine-arn", "x"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--interval", "2"],
            vec!["arcctl", "runs", "watch", "run-a", "--interval", "0"],
            vec!["arcctl", "runs", "cancel"],
            vec!["arcctl", "runs", "cancel", "run-a", "--reason", ""],
            vec!["arcctl", "runs", "resume", "run/a"],
            vec!["arcctl", "runs", "report", "run-a", "--status", "NOT A STATUS"],
            vec!["arcctl", "sweep", "--force"],
            vec!["arcctl", "breaker", "open", "cfg"],
            vec!["arcctl", "breaker", "close", "bad config", "--reason", "x"],
            vec!["arcctl", "breaker", "half-open", "cfg", "--reason", "x"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--max-cost-usd", "-3"],
            vec!["arcctl", "runs", "start", "--config", "c", "--task-id", "t1", "--max-cost-usd", "lots"],
        ] {
            let e = Cli::try_parse_from(&args).expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{}", args.join(" "));
        }
    }

    #[test]
    fn retry_takes_task_ids_and_json_is_global() {
        let cli =
            Cli::try_parse_from(["arcctl", "retry", "run-a", "--task-id", "t1", "--task-id", "t2", "--json"]).unwrap();
        assert!(cli.json);
        match cli.command {
            Command::Retry(a) => {
                assert_eq!(a.run_id.as_str(), "run-a");
                assert_eq!(a.task_ids.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
