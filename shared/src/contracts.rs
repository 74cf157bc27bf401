//! Every function's input and output, in one place. Inputs are parsed from the raw event
//! (`arc_shared::input::parse_event`, so an error names the field); outputs are serialized by
//! the runtime. `terraform/handler_contracts.json` is generated from these types
//! ([`handler_contracts`]) and a test keeps the committed file equal to it.
//!
//! Field names and string values are the Python set's: a state machine written for it runs
//! these functions unchanged.

use crate::error::ArcError;
use crate::ids::{RunId, TaskId};
use crate::metrics::{Metrics, TaskRow};
use crate::status::RunStatus;
use crate::store::executions::{EndedStatus, ExecState};
use crate::store::objects::ObjectRef;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;

// ---- initialize ----------------------------------------------------------------------------

/// initialize's event for a new run (`retry` absent or `false`). Tasks come as `task_ids` or
/// as `task_ids_s3` (exactly one); the rules beyond the shape (id syntax, text bounds) are
/// initialize's, so that each error names its field.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NewRunInput {
    pub config_name: String,
    pub task_ids: Option<Vec<String>>,
    /// `s3://bucket/key` of a JSON array of ids, for lists too large for an execution input.
    pub task_ids_s3: Option<String>,
    pub data_source: Option<String>,
    pub triggered_by: Option<String>,
    pub commit_sha: Option<String>,
    pub execution_arn: Option<String>,
    pub execution_start_time: Option<String>,
    /// The run's budget in US dollars (a positive number); `null`/absent: `RUN_MAX_COST_USD`,
    /// else no limit.
    #[schemars(with = "Option<f64>")]
    pub max_cost_usd: Option<Value>,
}

/// The input of a retry execution: what the sweeper and `arcctl runs resume` start. The ids
/// are sorted and unique, so the same tasks always give the same bytes and a StartExecution
/// of the same name stays idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetryInput {
    pub run_id: String,
    pub config_name: String,
    pub task_ids: Vec<String>,
    /// `true`: what tells the state machine (and initialize) this is a retry.
    pub retry: bool,
    pub triggered_by: String,
}

impl RetryInput {
    pub fn new(run_id: &str, config_name: &str, mut task_ids: Vec<String>) -> Self {
        task_ids.sort();
        task_ids.dedup();
        Self {
            run_id: run_id.to_owned(),
            config_name: config_name.to_owned(),
            task_ids,
            retry: true,
            triggered_by: "sweeper".to_owned(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the state machine's retry branch sends initialize: the [`RetryInput`]'s fields and the
/// execution's ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InitializeRetryInput {
    pub run_id: String,
    pub task_ids: Vec<String>,
    pub config_name: String,
    pub retry: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
}

/// initialize's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InitializeOutput {
    pub run_id: String,
    /// Left out when its JSON would exceed 64 KiB (the Map reads `items` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ids: Option<Vec<String>>,
    pub config_name: String,
    pub total_tasks: u64,
    /// The ids this execution's Map processes, as a JSON array in the results bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Vec<Skipped>>,
}

/// A task a retry did not re-open, and why (its status, or `changed concurrently`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Skipped {
    pub task_id: String,
    pub status: String,
}

// ---- handle-error --------------------------------------------------------------------------

/// handle-error's event.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HandleErrorInput {
    #[schemars(with = "String")]
    pub run_id: RunId,
    #[schemars(with = "String")]
    pub task_id: TaskId,
    /// Absent or empty: recorded as `UnknownError`.
    #[serde(default, deserialize_with = "crate::json::object")]
    pub error: StepFunctionsError,
    #[serde(default, deserialize_with = "crate::json::optional_object")]
    pub delivery: Option<DeliveryKey>,
}

/// The `{Error, Cause}` object Step Functions puts in `ResultPath`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StepFunctionsError {
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// A string (Batch puts the job description there as JSON text) or any JSON value.
    #[serde(rename = "Cause", default)]
    pub cause: Option<Value>,
}

/// Where the state machine delivered this failure from (`$$.Execution.Id`,
/// `$$.State.EnteredTime`): the same across HandleError's own retries.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeliveryKey {
    pub execution_arn: String,
    pub entered_at: String,
}

/// What handle-error made of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureOutcome {
    /// FAILED, with `next_retry_at`: the sweeper retries it.
    RetryScheduled,
    /// FAILED_PERMANENT: out of retries or a non-retryable error.
    FailedPermanent,
    /// A late failure of a task already COMPLETED: left completed.
    Completed,
}

impl FailureOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryScheduled => "RETRY_SCHEDULED",
            Self::FailedPermanent => "FAILED_PERMANENT",
            Self::Completed => "COMPLETED",
        }
    }
}

/// handle-error's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandleErrorOutput {
    pub run_id: String,
    pub task_id: String,
    pub status: FailureOutcome,
    pub retry_count: u32,
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// This delivery added one to `retry_count`.
    pub counted: bool,
}

// ---- aggregate -----------------------------------------------------------------------------

/// aggregate's event.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AggregateInput {
    #[schemars(with = "String")]
    pub run_id: RunId,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// aggregate's answer (complete reads the [`RunFigures`] part of it back as `aggregation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AggregateOutput {
    pub run_id: String,
    pub total_tasks: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    #[serde(with = "crate::json::decimal_number")]
    #[schemars(with = "f64")]
    pub total_cost_usd: Decimal,
    pub accuracy: f64,
    pub results_s3_key: Option<String>,
    pub correct_tasks: u64,
    pub pending_tasks: u64,
    pub retries_pending: u64,
    pub failed_permanent_tasks: u64,
    /// Tasks left in flight by this execution and settled as failed now.
    #[serde(default)]
    pub settled_tasks: u64,
    /// The execution is no longer the run's current one: nothing was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

impl AggregateOutput {
    /// The figures complete reads back.
    pub fn figures(&self) -> RunFigures {
        RunFigures {
            total_tasks: self.total_tasks,
            completed_tasks: self.completed_tasks,
            failed_tasks: self.failed_tasks,
            accuracy: self.accuracy,
            total_cost_usd: self.total_cost_usd,
        }
    }
}

/// The report aggregate writes to `runs/{run_id}/results/aggregated.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateReport<'a> {
    pub run_id: &'a str,
    pub config_name: Option<&'a str>,
    pub execution_arn: Option<&'a str>,
    pub generated_at: &'a str,
    pub metrics: ReportMetrics<'a>,
    /// The run's budget, spend and the projected cost of retrying what is left (absent when
    /// the run has no budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<&'a crate::budget::Budget>,
    pub tasks: &'a [TaskRow],
}

/// The report's `metrics`: the run's counts, token totals and exact cost, and its accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportMetrics<'a> {
    #[serde(flatten)]
    pub counts: &'a Metrics,
    pub accuracy: f64,
}

// ---- complete ------------------------------------------------------------------------------

/// complete's event.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CompleteInput {
    #[schemars(with = "String")]
    pub run_id: RunId,
    /// aggregate's answer (its other fields are ignored).
    #[serde(deserialize_with = "crate::json::object")]
    pub aggregation: RunFigures,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// A run's five headline figures: what aggregate answers, complete reads back and reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunFigures {
    pub total_tasks: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    #[serde(default)]
    pub accuracy: f64,
    #[serde(with = "crate::json::decimal_number")]
    #[schemars(with = "f64")]
    pub total_cost_usd: Decimal,
}

/// The figures a completed run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FinalMetrics {
    pub total_tasks: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub accuracy: f64,
    #[serde(with = "crate::json::decimal_number")]
    #[schemars(with = "f64")]
    pub total_cost_usd: Decimal,
    pub duration_seconds: f64,
}

impl FinalMetrics {
    pub fn new(f: RunFigures, duration_seconds: f64) -> Self {
        Self {
            total_tasks: f.total_tasks,
            completed_tasks: f.completed_tasks,
            failed_tasks: f.failed_tasks,
            accuracy: f.accuracy,
            total_cost_usd: f.total_cost_usd,
            duration_seconds,
        }
    }
}

/// complete's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteOutput {
    pub run_id: String,
    #[schemars(with = "String")]
    pub status: RunStatus,
    pub completed_at: Option<String>,
    pub final_metrics: FinalMetrics,
    pub metrics_published: bool,
    /// The execution is no longer the run's current one: nothing was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

// ---- sweeper ---------------------------------------------------------------------------

/// A manual sweeper request (`{}` and EventBridge events are scheduled sweeps). Unknown fields
/// are rejected: a typo like `dryrun` must never cause real retries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepManualRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_backoff: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub run_id: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<String>>")]
    pub task_ids: Option<Vec<TaskId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u64>,
    /// Retry `run_id` even while its config's circuit breaker is open (needs `run_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// Why a task was not re-queued by this sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferReason {
    /// Its backoff has not elapsed.
    NotYetDue,
    /// The sweep's task budget (`SWEEPER_MAX_TASKS` / `max_tasks`) was used up.
    MaxTasks,
    /// The run's execution input would exceed 256 KiB.
    InputSize,
    /// The failure is older than `SWEEPER_MAX_AGE_HOURS`: left for an operator (a manual
    /// request for the run retries it).
    TooOld,
    /// The task id is not one Initialize accepts: a retry execution would be rejected.
    InvalidId,
    /// Its config's circuit breaker is open (or half-open and this task is not a probe);
    /// `due_at` is when the breaker may half-open.
    BreakerOpen,
    /// Retrying it would take its run past its budget (`max_cost_usd`).
    OverBudget,
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotYetDue => "not_yet_due",
            Self::MaxTasks => "max_tasks",
            Self::InputSize => "input_size",
            Self::TooOld => "too_old",
            Self::InvalidId => "invalid_id",
            Self::BreakerOpen => "breaker_open",
            Self::OverBudget => "over_budget",
        }
    }
}

/// A task left FAILED for a later sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    pub run_id: String,
    pub task_id: String,
    pub retry_count: u32,
    /// When it is (or was) due, RFC 3339; `null` when it has no usable timestamp.
    pub due_at: Option<String>,
    pub reason: DeferReason,
}

/// At most this many deferred tasks are listed one by one (all are counted).
pub const DEFERRED_LISTED: usize = 200;

/// The sweep's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
// Read back by arcctl: a field an older sweeper does not send reads as empty.
#[serde(default)]
pub struct SweepSummary {
    /// Nothing was written and nothing started; the counts say what would have been.
    pub dry_run: bool,
    /// `scheduled` or `manual`.
    pub trigger: String,
    /// The sweep's clock reading.
    pub swept_at: String,
    /// FAILED tasks read.
    pub scanned: u64,
    /// Of those, due now (backoff elapsed, or `ignore_backoff`).
    pub due: u64,
    /// Tasks left FAILED for a later sweep (not yet due, over `max_tasks`, over the input bound).
    pub deferred_count: u64,
    /// The first deferred tasks with their due times and reasons.
    pub deferred: Vec<Deferred>,
    /// Tasks moved FAILED → RETRY_QUEUED, per run.
    pub requeued: BTreeMap<String, u64>,
    pub requeued_total: u64,
    /// Retry executions started (or, in a dry run, that would be).
    pub executions_started: Vec<StartedExecution>,
    /// Runs with due tasks left alone, and why (e.g. their execution is still running).
    pub skipped_runs: Vec<SkippedRun>,
    /// Repairs: executions started for orphaned RETRY_QUEUED tasks, tasks sent back to FAILED,
    /// runs whose execution ended finished.
    pub repaired: Vec<Repair>,
    /// FAILED tasks whose `retry_count` had already reached MAX_RETRIES: made
    /// FAILED_PERMANENT (counted on their run once) instead of retried.
    pub made_permanent: Vec<TaskRef>,
    /// Task ids of the request that are not FAILED tasks of the run.
    pub unmatched_task_ids: Vec<String>,
    /// Errors that did not stop the sweep (one run's failure does not block the others).
    pub errors: Vec<SweepError>,
    /// The circuit breakers of the configs this sweep looked at, as it left them.
    pub breakers: Vec<BreakerReport>,
    /// Breakers open or half-open after this sweep (all configs).
    pub breakers_open: u64,
    /// Runs that stopped retrying (some of) their tasks for their budget.
    pub over_budget: Vec<BudgetStop>,
}

/// A config's breaker as a sweep left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerReport {
    pub config_name: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// What this sweep did to it: `opened`, `half_opened`, `closed`, `reopened`, or `null`.
    pub transition: Option<String>,
    pub reason: String,
    /// When an open breaker may half-open (`null` when opened by an operator).
    pub half_open_at: Option<String>,
    /// The probe tasks of a half-open breaker.
    pub probe_tasks: u64,
    /// Due tasks of this config held back by it in this sweep.
    pub deferred_tasks: u64,
}

/// A run whose retry this sweep cut for its budget: its due tasks were `retryable_tasks`,
/// `fit_tasks` of them went on, `over_budget_tasks` were deferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStop {
    pub run_id: String,
    #[serde(flatten)]
    pub budget: crate::budget::Budget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedExecution {
    pub run_id: String,
    pub execution_name: String,
    pub execution_arn: String,
    pub retry_generation: u64,
    pub tasks: u64,
    pub reason: StartReason,
}

/// Why an execution was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartReason {
    /// A new retry generation.
    Retry,
    /// A claimed generation whose start was lost.
    Repair,
}

impl StartReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Repair => "repair",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub run_id: String,
    pub task_id: String,
    pub retry_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRun {
    pub run_id: String,
    pub due_tasks: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    pub run_id: String,
    pub action: RepairAction,
    pub execution_name: Option<String>,
    /// The execution's status as described.
    pub execution_status: Option<ExecutionStatus>,
    pub tasks: u64,
    /// The run's status afterwards, when it changed.
    pub run_status: Option<RunStatus>,
}

/// What a repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairAction {
    /// The claimed execution that never started was started.
    ExecutionStarted,
    /// RETRY_QUEUED tasks went back to FAILED.
    TasksUnqueued,
    /// The run's execution ended: its tasks were settled and its status recomputed.
    RunFinished,
    /// Nothing could be re-queued: the claim was given back.
    ClaimReleased,
}

impl RepairAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ExecutionStarted => "execution_started",
            Self::TasksUnqueued => "tasks_unqueued",
            Self::RunFinished => "run_finished",
            Self::ClaimReleased => "claim_released",
        }
    }
}

/// An execution's status as a repair saw it: Step Functions' names, and two of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    /// Live (RUNNING, or a status not known to be over).
    #[serde(rename = "RUNNING")]
    Running,
    /// No execution of that name exists.
    #[serde(rename = "NOT_FOUND")]
    NotFound,
    /// The tasks name no execution (RETRY_QUEUED without `retry_execution`).
    #[serde(rename = "NONE")]
    Unnamed,
    #[serde(untagged)]
    Ended(EndedStatus),
}

impl ExecutionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::NotFound => "NOT_FOUND",
            Self::Unnamed => "NONE",
            Self::Ended(s) => s.as_str(),
        }
    }
}

impl From<ExecState> for ExecutionStatus {
    fn from(s: ExecState) -> Self {
        match s {
            ExecState::Live => Self::Running,
            ExecState::Ended(e) => Self::Ended(e),
            ExecState::Missing => Self::NotFound,
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepError {
    pub run_id: Option<String>,
    pub error_type: String,
    pub message: String,
}

/// What a step of a sweep did, folded into the summary by [`SweepSummary::record`].
#[derive(Debug)]
pub enum SweepEvent {
    Requeued {
        run_id: String,
        tasks: u64,
    },
    Started(StartedExecution),
    Repaired(Repair),
    Skipped(SkippedRun),
    MadePermanent(TaskRef),
    /// Tasks left FAILED by this step.
    Deferred(Vec<Deferred>),
    /// A config's breaker as this sweep left it.
    Breaker(BreakerReport),
    /// A run whose retry was cut to its budget.
    OverBudget(BudgetStop),
    /// A failure that did not stop the step (an item that is not a task).
    Error {
        run_id: Option<String>,
        error: ArcError,
    },
}

impl SweepSummary {
    /// Folds one event in.
    pub fn record(&mut self, event: SweepEvent) {
        match event {
            SweepEvent::Requeued { run_id, tasks } => {
                self.requeued.insert(run_id, tasks);
                self.requeued_total += tasks;
            }
            SweepEvent::Started(s) => self.executions_started.push(s),
            SweepEvent::Repaired(r) => self.repaired.push(r),
            SweepEvent::Skipped(s) => self.skipped_runs.push(s),
            SweepEvent::MadePermanent(t) => self.made_permanent.push(t),
            SweepEvent::Deferred(d) => self.defer(d),
            SweepEvent::Breaker(b) => self.breakers.push(b),
            SweepEvent::OverBudget(b) => self.over_budget.push(b),
            SweepEvent::Error { run_id, error } => self.error(run_id.as_deref(), &error),
        }
    }

    pub fn defer(&mut self, d: Vec<Deferred>) {
        self.deferred_count += d.len() as u64;
        let room = DEFERRED_LISTED.saturating_sub(self.deferred.len());
        self.deferred.extend(d.into_iter().take(room));
    }

    pub fn error(&mut self, run_id: Option<&str>, e: &ArcError) {
        tracing::error!(run_id, error_type = e.error_type(), error = %e, "sweep error");
        self.errors.push(SweepError {
            run_id: run_id.map(str::to_owned),
            error_type: e.error_type().to_owned(),
            message: e.to_string(),
        });
    }

    /// Runs repaired (distinct).
    pub fn runs_repaired(&self) -> u64 {
        let runs: std::collections::BTreeSet<&str> = self.repaired.iter().map(|r| r.run_id.as_str()).collect();
        runs.len() as u64
    }

    /// Retry executions of a new generation started.
    pub fn runs_retried(&self) -> u64 {
        self.executions_started.iter().filter(|e| e.reason == StartReason::Retry).count() as u64
    }

    /// The metrics of this sweep, in publishing order.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("TasksRequeued", self.requeued_total as f64),
            ("TasksDeferred", self.deferred_count as f64),
            ("RunsRetried", self.runs_retried() as f64),
            ("RunsRepaired", self.runs_repaired() as f64),
            ("SweepErrors", self.errors.len() as f64),
            ("BreakersOpen", self.breakers_open as f64),
        ]
    }
}

// ---- the contracts file --------------------------------------------------------------------

/// One state of the state machine: the function it invokes, the fields its payload must and
/// may carry, and the fields the answer always carries (read from the types' schemas, as
/// serde reads and writes them).
fn contract<I: JsonSchema, O: JsonSchema>(function: &str) -> Value {
    use schemars::generate::SchemaSettings;
    let input = SchemaSettings::draft2020_12().for_deserialize().into_generator().into_root_schema_for::<I>();
    let output = SchemaSettings::draft2020_12().for_serialize().into_generator().into_root_schema_for::<O>();
    let names = |schema: &schemars::Schema, key: &str| -> Vec<String> {
        let mut out: Vec<String> = match schema.as_value().get(key) {
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            Some(Value::Object(o)) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.sort();
        out
    };
    let required = names(&input, "required");
    let optional: Vec<String> = names(&input, "properties").into_iter().filter(|p| !required.contains(p)).collect();
    json!({
        "function": function,
        "required": required,
        "optional": optional,
        "output": names(&output, "required"),
    })
}

/// `terraform/handler_contracts.json`: per state of the state machine, its function's
/// contract, generated from the types above.
pub fn handler_contracts() -> Value {
    json!({
        "Initialize": contract::<NewRunInput, InitializeOutput>("initialize"),
        "InitializeRetry": contract::<InitializeRetryInput, InitializeOutput>("initialize"),
        "HandleError": contract::<HandleErrorInput, HandleErrorOutput>("handle-error"),
        "Aggregate": contract::<AggregateInput, AggregateOutput>("aggregate"),
        "Complete": contract::<CompleteInput, CompleteOutput>("complete"),
    })
}

/// The committed file as [`handler_contracts`] writes it.
pub fn handler_contracts_text() -> String {
    let mut text = serde_json::to_string_pretty(&handler_contracts()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ARC_WRITE_CONTRACTS=1 cargo test -p arc-shared contracts` rewrites the file.
    #[test]
    fn the_committed_contracts_file_is_generated_from_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/handler_contracts.json");
        let want = handler_contracts_text();
        if std::env::var_os("ARC_WRITE_CONTRACTS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            have, want,
            "terraform/handler_contracts.json is stale: run ARC_WRITE_CONTRACTS=1 cargo test -p arc-shared contracts"
        );
    }

    #[test]
    fn a_sweep_summary_reads_back_as_written() {
        let mut s = SweepSummary { trigger: "manual".into(), scanned: 3, ..SweepSummary::default() };
        s.defer(vec![Deferred {
            run_id: "r".into(),
            task_id: "t".into(),
            retry_count: 1,
            due_at: None,
            reason: DeferReason::TooOld,
        }]);
        for (status, text) in [
            (ExecutionStatus::Ended(EndedStatus::Aborted), "ABORTED"),
            (ExecutionStatus::NotFound, "NOT_FOUND"),
            (ExecutionStatus::Running, "RUNNING"),
        ] {
            s.repaired.push(Repair {
                run_id: "r".into(),
                action: RepairAction::RunFinished,
                execution_name: Some("e".into()),
                execution_status: Some(status),
                tasks: 2,
                run_status: Some(RunStatus::CompletedWithErrors),
            });
            assert!(serde_json::to_string(&s).unwrap().contains(&format!("\"execution_status\":\"{text}\"")));
        }
        let back: SweepSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn the_contracts_say_what_each_state_needs() {
        let c = handler_contracts();
        assert_eq!(c["Initialize"]["required"], json!(["config_name"]));
        assert_eq!(c["InitializeRetry"]["required"], json!(["config_name", "retry", "run_id", "task_ids"]));
        assert_eq!(c["InitializeRetry"]["optional"], json!(["execution_arn"]));
        assert_eq!(c["HandleError"]["required"], json!(["run_id", "task_id"]));
        assert_eq!(c["Complete"]["required"], json!(["aggregation", "run_id"]));
        // Optional answers (task_ids over 64 KiB, items without a bucket) are not promised.
        assert_eq!(c["Initialize"]["output"], json!(["config_name", "run_id", "total_tasks"]));
        assert!(c["Aggregate"]["output"].as_array().unwrap().contains(&json!("results_s3_key")));
    }
}
