//! `arcctl`: the operator's commands. Arguments are parsed and validated by clap at the edge
//! (a bad argument exits 2 before anything is read); each command then reads or sweeps and
//! prints a table for people or JSON (`--json`) for scripts.

pub mod doctor;
pub mod migrate;
pub mod runs;
pub mod sweep;
pub mod tables;

use crate::exit::CliError;
use arc_shared::ids::{ConfigName, RunId, TaskId};
use arc_shared::store::{Clients, Tables};
use arc_shared::Config;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "arcctl",
    version,
    about = "Operate arc-orchestrator benchmark runs: list and inspect runs, sweep and retry failed tasks, check and migrate a deployment",
    long_about = "Operate arc-orchestrator benchmark runs.\n\n\
        Works against AWS with the default credential chain, or against a local emulator when \
        AWS_ENDPOINT_URL is set. Tables come from RUNS_TABLE / TASKS_TABLE (defaults \
        arc_benchmark_runs / arc_task_progress), like the Lambdas.\n\n\
        Exit codes: 0 ok, 1 error (or a failed doctor check), 2 usage error, 3 run not found."
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
    /// List and inspect runs.
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
}

fn parse_config(s: &str) -> Result<ConfigName, String> {
    ConfigName::parse(s).map_err(|e| e.0)
}

fn parse_run_id(s: &str) -> Result<RunId, String> {
    RunId::parse(s).map_err(|e| e.0)
}

fn parse_task_id(s: &str) -> Result<TaskId, String> {
    TaskId::parse(s).map_err(|e| e.0)
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
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let clients = Clients::from_conf(&sdk);
        Ok(Self { config, clients, sdk, json })
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.clients.dynamodb.clone(), &self.config.runs_table, &self.config.tasks_table)
    }
}

/// Runs one parsed command; what it prints goes to stdout, warnings to stderr.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx::from_env(cli.json).await?;
    match cli.command {
        Command::Runs(RunsCommand::List { config, limit }) => runs::list(&ctx, config.as_ref(), limit as usize).await,
        Command::Runs(RunsCommand::Show { run_id }) => runs::show(&ctx, &run_id).await,
        Command::Sweep(args) => {
            let req = sweep::Request {
                dry_run: args.dry_run,
                ignore_backoff: args.now,
                run_id: args.run_id,
                task_ids: args.task_ids,
                max_tasks: args.max_tasks,
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
