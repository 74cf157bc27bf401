//! Run and task records ↔ DynamoDB items. Typed fields map through serde_dynamo; money
//! (`cost_usd`, `total_cost_usd`) is read from the item's number string exactly, never via
//! a float. Writers update named attributes only, so attributes other tools wrote survive.

use crate::error::ArcError;
use crate::metrics::TaskRow;
use crate::status::{RunStatus, TaskStatus};
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::str::FromStr;

pub type Item = HashMap<String, AttributeValue>;

/// The run's roll-up counters. The Python worker updates them with `SET x = x + :v`, which
/// DynamoDB rejects when the attribute is missing, so every run item carries all of them as
/// numbers from its creation (initialize), and legacy runs get them before a retry
/// (initialize's retry mode, `arcctl migrate backfill-runs`).
pub const RUN_ROLLUPS: [&str; 5] =
    ["completed_tasks", "failed_tasks", "total_cost_usd", "total_input_tokens", "total_output_tokens"];

/// One row of the tasks table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskRecord {
    pub run_id: String,
    pub task_id: String,
    #[serde(default = "missing_task_status")]
    pub status: TaskStatus,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub retry_count: u32,
    pub last_error_type: Option<String>,
    pub last_error_cause: Option<String>,
    pub last_error_at: Option<String>,
    pub last_failed_job_id: Option<String>,
    /// The Batch container's exit code of the last failure handle-error recorded.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub last_error_exit_code: Option<i64>,
    /// The key of the last failure delivery recorded (`job:<id>` or `sfn:<execution>#<time>`).
    pub last_failure_key: Option<String>,
    /// `retry_count` as our last failure write left it (absent before this version: read as
    /// unknown).
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub recorded_retry_count: Option<u64>,
    /// The worker claim (`started_at`) whose failure record a write of ours has seen.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub worker_recorded_claim: Option<String>,
    /// The worker claim whose record answered for a delivered job's failure.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub attributed_claim: Option<String>,
    pub next_retry_at: Option<String>,
    pub retry_execution: Option<String>,
    pub worker_id: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    #[serde(skip)]
    pub cost_usd: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub tokens_input: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub tokens_output: Option<u64>,
    pub result_s3_key: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub error: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub is_correct: Option<bool>,
    /// Whose fault the last recorded failure was (`task`, `infrastructure`, `provider`); `None`
    /// when no failure was classified (or an unknown value).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub failure_class: Option<String>,
    /// Infrastructure failures spared from `retry_count` (`INFRA_MAX_RETRIES` bounds them).
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub infra_failures: Option<u64>,
}

impl TaskRecord {
    /// The stored class of the last failure, when it is one this version knows.
    pub fn class(&self) -> Option<crate::class::FailureClass> {
        self.failure_class.as_deref().and_then(crate::class::FailureClass::parse)
    }

    /// `infra_failures` as a count (saturating).
    pub fn infra_failures(&self) -> u32 {
        self.infra_failures.map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX))
    }
}

fn missing_task_status() -> TaskStatus {
    TaskStatus::Other(String::new())
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub config_name: Option<String>,
    pub data_source: Option<String>,
    #[serde(default = "missing_run_status")]
    pub status: RunStatus,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub triggered_by: Option<String>,
    pub commit_sha: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total_tasks: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub completed_tasks: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub failed_tasks: u64,
    #[serde(skip)]
    pub total_cost_usd: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    pub accuracy: Option<f64>,
    pub completed_at: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    pub duration_seconds: Option<f64>,
    pub results_s3_key: Option<String>,
    pub execution_arn: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub retry_generation: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub retries_pending: u64,
    /// Written by the Python worker's completion (`total_input_tokens + :in`).
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub total_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub total_output_tokens: Option<u64>,
    /// The execution whose Complete step finished this run (complete's idempotency key).
    pub completed_by_execution: Option<String>,
    /// What complete has published to CloudWatch for this run so far (it publishes deltas).
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub published_run_completed: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub published_tasks_completed: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub published_tasks_failed: Option<u64>,
    #[serde(skip)]
    pub published_cost_usd: Option<Decimal>,
    /// Whether complete has published `RunCancelled` for this run.
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub published_run_cancelled: Option<u64>,
    /// Who cancelled the run (`arcctl runs cancel`: the caller's ARN, else `$USER`), why, when.
    pub cancelled_by: Option<String>,
    pub cancelled_reason: Option<String>,
    pub cancelled_at: Option<String>,
    /// Who lifted the last cancellation (`arcctl runs resume`), and when.
    pub resumed_by: Option<String>,
    pub resumed_at: Option<String>,
    /// The run's budget (`max_cost_usd` of Initialize, else `RUN_MAX_COST_USD`); `None`: no limit.
    #[serde(skip)]
    pub max_cost_usd: Option<Decimal>,
    /// Tasks the last sweep left FAILED because retrying them would pass the budget, and when.
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub over_budget_tasks: Option<u64>,
    pub over_budget_at: Option<String>,
}

fn missing_run_status() -> RunStatus {
    RunStatus::Other(String::new())
}

impl TaskRecord {
    pub fn from_item(mut item: Item) -> Result<Self, ArcError> {
        let key = item_key(&item, &["run_id", "task_id"]);
        let cost = take_decimal(&mut item, "cost_usd", &key)?;
        let mut rec: TaskRecord = from_dynamo(item, key)?;
        rec.cost_usd = cost;
        Ok(rec)
    }
}

impl RunRecord {
    pub fn from_item(mut item: Item) -> Result<Self, ArcError> {
        let key = item_key(&item, &["run_id"]);
        let cost = take_decimal(&mut item, "total_cost_usd", &key)?;
        let published_cost = take_decimal(&mut item, "published_cost_usd", &key)?;
        let max_cost = take_decimal(&mut item, "max_cost_usd", &key)?;
        let mut rec: RunRecord = from_dynamo(item, key)?;
        rec.max_cost_usd = max_cost;
        rec.total_cost_usd = cost;
        rec.published_cost_usd = published_cost;
        Ok(rec)
    }
}

/// The report row of a task item, read straight from the item: the fields of a
/// [`TaskRow`] with the leniency [`TaskRecord::from_item`] reads them with (a property test
/// holds the two equal), without converting the whole item into a record. Aggregate reads a
/// run's every task this way; profiled, the whole-record conversion was a fifth of its CPU.
pub fn task_row(mut item: Item) -> Result<TaskRow, ArcError> {
    let task_id = match item.remove("task_id").map(text) {
        Some(Ok(t)) => t,
        Some(Err(other)) => return Err(row_error(&item, "?", "task_id", &format!("has type {other:?}, not a string"))),
        None => return Err(row_error(&item, "?", "task_id", "is missing")),
    };
    let bad = |item: &Item, name: &str, what: String| row_error(item, &task_id, name, &what);
    let status = match item.remove("status").map(text) {
        None => missing_task_status(),
        Some(Ok(v)) => TaskStatus::from(v),
        Some(Err(other)) => return Err(bad(&item, "status", format!("has type {other:?}, not a string"))),
    };
    let cost_usd = take_decimal(&mut item, "cost_usd", &task_id).map_err(|e| match e {
        ArcError::CorruptItem { message, .. } => bad(&item, "cost_usd", message),
        other => other,
    })?;
    let is_correct = match item.remove("is_correct") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::Bool(b)) => Some(b),
        Some(AttributeValue::N(v)) => match num_of(&v).and_then(|n| if let Num::U(u) = n { Some(u) } else { None }) {
            Some(u) => Some(u != 0),
            None => return Err(bad(&item, "is_correct", format!("{v:?} is neither a flag nor 0/1"))),
        },
        Some(other) => match loose_text(other) {
            Ok(v) => flag_text(&v),
            Err(other) => return Err(bad(&item, "is_correct", format!("has type {other:?}, not a flag"))),
        },
    };
    let retry_count = match item.remove("retry_count") {
        None => 0,
        Some(av) => num_attr(&av)
            .and_then(num_to_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(&item, "retry_count", format!("{av:?} is not a count")))?,
    };
    let opt_u64 = |item: &mut Item, name: &str| -> Result<Option<u64>, ArcError> {
        match item.remove(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(av) => match num_attr(&av) {
                Some(n) => Ok(num_to_u64(n)),
                None => Err(bad(item, name, format!("{av:?} is not a number"))),
            },
        }
    };
    let tokens_input = opt_u64(&mut item, "tokens_input")?;
    let tokens_output = opt_u64(&mut item, "tokens_output")?;
    let opt_string = |item: &mut Item, name: &str| -> Result<Option<String>, ArcError> {
        match item.remove(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(av) => {
                text(av).map(Some).map_err(|other| bad(item, name, format!("has type {other:?}, not a string")))
            }
        }
    };
    let last_error_type = opt_string(&mut item, "last_error_type")?;
    let result_s3_key = opt_string(&mut item, "result_s3_key")?;
    let failure_class = match item.remove("failure_class") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(av) => Some(loose_text(av).unwrap_or_else(|_| NON_STRING.to_owned())),
    };
    Ok(TaskRow {
        task_id,
        status: status.as_str().to_owned(),
        cost_usd,
        is_correct,
        retry_count,
        tokens_input,
        tokens_output,
        last_error_type,
        result_s3_key,
        failure_class,
    })
}

/// A `CorruptItem` of task `task_id` (of the run the item names) about attribute `name`.
fn row_error(item: &Item, task_id: &str, name: &str, what: &str) -> ArcError {
    let run = match item.get("run_id") {
        Some(AttributeValue::S(r)) => r.as_str(),
        _ => "?",
    };
    ArcError::CorruptItem { key: format!("{run}/{task_id}"), message: format!("{name} {what}") }
}

/// What a lenient string reader makes of a value that is not a string.
const NON_STRING: &str = "(non-string error value)";

/// A string attribute's text; the attribute back when it is not one.
fn text(av: AttributeValue) -> Result<String, AttributeValue> {
    match av {
        AttributeValue::S(v) => Ok(v),
        other => Err(other),
    }
}

/// Text where the record reader takes any shape (`is_correct`, `failure_class`): a string, or
/// binary that is UTF-8; the attribute back when it is neither.
fn loose_text(av: AttributeValue) -> Result<String, AttributeValue> {
    match av {
        AttributeValue::B(b) => String::from_utf8(b.into_inner())
            .map_err(|e| AttributeValue::B(aws_smithy_types::Blob::new(e.into_bytes()))),
        other => text(other),
    }
}

/// A number attribute as the record reader sees it: a DynamoDB number is the first of i64, u64
/// and f64 that parses it (serde_dynamo's order), text is kept as text.
fn num_attr(av: &AttributeValue) -> Option<Num> {
    match av {
        AttributeValue::N(v) => num_of(v),
        AttributeValue::S(v) => Some(Num::S(v.clone())),
        AttributeValue::B(b) => std::str::from_utf8(b.as_ref()).ok().map(|v| Num::S(v.to_owned())),
        _ => None,
    }
}

fn num_of(v: &str) -> Option<Num> {
    if let Ok(i) = v.parse::<i64>() {
        Some(u64::try_from(i).map_or(Num::I(i), Num::U))
    } else if let Ok(u) = v.parse::<u64>() {
        Some(Num::U(u))
    } else {
        v.parse::<f64>().ok().map(Num::F)
    }
}

/// `is_correct` written as text.
fn flag_text(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Reads `item` as a record; an attribute that cannot be read is a `CorruptItem` naming the
/// item (`key`) and the attribute.
fn from_dynamo<T: serde::de::DeserializeOwned>(item: Item, key: String) -> Result<T, ArcError> {
    let item: serde_dynamo::Item = item.into();
    let de = serde_dynamo::Deserializer::from_attribute_value(serde_dynamo::AttributeValue::M(item.into()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = match inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            Some(missing) => format!("{missing} is missing"),
            None if path == "." => inner,
            None => format!("{path}: {inner}"),
        };
        ArcError::CorruptItem { key, message }
    })
}

fn item_key(item: &Item, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| match item.get(*n) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Removes `name` from `item` and reads it as an exact decimal (a DynamoDB number, or a
/// numeric string some tools write).
fn take_decimal(item: &mut Item, name: &str, key: &str) -> Result<Option<Decimal>, ArcError> {
    match item.remove(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) | Some(AttributeValue::S(n)) => parse_decimal(&n).map(Some).ok_or_else(|| {
            ArcError::CorruptItem { key: key.to_owned(), message: format!("{name}={n:?} is not a number") }
        }),
        Some(other) => Err(ArcError::CorruptItem {
            key: key.to_owned(),
            message: format!("{name} has type {other:?}, not a number"),
        }),
    }
}

/// Parses a decimal written by Python (`Decimal("0.0123")`, `1E-7`, `12`).
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    Decimal::from_str(s).ok().or_else(|| Decimal::from_scientific(s).ok()).map(|d| d.normalize())
}

/// A DynamoDB number attribute holding `d` exactly.
pub fn decimal_attr(d: Decimal) -> AttributeValue {
    AttributeValue::N(d.normalize().to_string())
}

/// A number as written by Python: an integer, or an integral float like `3.0`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

fn num_to_u64(n: Num) -> Option<u64> {
    match n {
        Num::U(u) => Some(u),
        Num::I(i) => u64::try_from(i).ok(),
        Num::F(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Some(f as u64),
        Num::F(_) => None,
        Num::S(s) => s.trim().parse::<u64>().ok().or_else(|| parse_decimal(&s).and_then(|d| u64::try_from(d).ok())),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = Num::deserialize(d)?;
    num_to_u64(n).ok_or_else(|| serde::de::Error::custom("expected a non-negative whole number"))
}

fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = lenient_u64(d)?;
    u32::try_from(n).map_err(|_| serde::de::Error::custom("count out of range"))
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Num>::deserialize(d)?.and_then(num_to_u64))
}

fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Num>::deserialize(d)?.and_then(|n| match n {
        Num::U(u) => i64::try_from(u).ok(),
        Num::I(i) => Some(i),
        Num::F(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(f as i64),
        Num::F(_) => None,
        Num::S(s) => s.trim().parse().ok(),
    }))
}

fn lenient_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Num>::deserialize(d)?.and_then(|n| match n {
        Num::U(u) => Some(u as f64),
        Num::I(i) => Some(i as f64),
        Num::F(f) => Some(f),
        Num::S(s) => s.trim().parse().ok(),
    }))
}

/// `is_correct` as a boolean, or the 0/1 some scoring scripts wrote.
fn lenient_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Num(u64),
        Text(String),
    }
    Ok(Option::<Flag>::deserialize(d)?.and_then(|b| match b {
        Flag::Bool(b) => Some(b),
        Flag::Num(n) => Some(n != 0),
        Flag::Text(s) => flag_text(&s),
    }))
}

/// `error` as the worker wrote it: a string, or a map/other shape rendered as text.
fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        S(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(Option::<S>::deserialize(d)?.map(|s| match s {
        S::S(s) => s,
        S::Other(_) => NON_STRING.to_owned(),
    }))
}

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn reads_python_written_task() {
        let it = item(vec![
            ("run_id", s("r1")),
            ("task_id", s("t1")),
            ("status", s("COMPLETED")),
            ("retry_count", n("1")),
            ("cost_usd", AttributeValue::N("0.012345678901234567890".into())),
            ("tokens_input", n("1200")),
            ("tokens_output", AttributeValue::N("300.0".into())),
            ("is_correct", AttributeValue::Bool(true)),
            ("last_error_exit_code", n("137")),
            ("something_else", s("kept by other tools")),
        ]);
        let t = TaskRecord::from_item(it).unwrap();
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.retry_count, 1);
        assert_eq!(t.cost_usd, Some(Decimal::from_str("0.01234567890123456789").unwrap()));
        assert_eq!(t.tokens_input, Some(1200));
        assert_eq!(t.tokens_output, Some(300));
        assert_eq!(t.is_correct, Some(true));
        assert_eq!(t.last_error_exit_code, Some(137));
    }

    #[test]
    fn missing_attributes_are_tolerated() {
        let t = TaskRecord::from_item(item(vec![("run_id", s("r")), ("task_id", s("t"))])).unwrap();
        assert_eq!(t.retry_count, 0);
        assert_eq!(t.cost_usd, None);
        let r = RunRecord::from_item(item(vec![("run_id", s("r")), ("status", s("RUNNING"))])).unwrap();
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.total_tasks, 0);
    }

    #[test]
    fn bad_money_is_a_corrupt_item_naming_the_key() {
        let e = TaskRecord::from_item(item(vec![("run_id", s("r")), ("task_id", s("t")), ("cost_usd", s("lots"))]))
            .unwrap_err();
        assert!(matches!(e, ArcError::CorruptItem { ref key, .. } if key == "r/t"), "{e:?}");
    }

    #[test]
    fn a_wrong_typed_attribute_is_a_corrupt_item_naming_item_and_attribute() {
        let cases = vec![
            (vec![("retry_count", s("lots"))], "retry_count"),
            (vec![("retry_count", n("-1"))], "retry_count"),
            (vec![("status", n("5"))], "status"),
            (vec![("updated_at", AttributeValue::Bool(true))], "updated_at"),
            (vec![("last_error_at", AttributeValue::L(vec![]))], "last_error_at"),
            (vec![("cost_usd", AttributeValue::Bool(false))], "cost_usd"),
        ];
        for (attrs, attr) in cases {
            let mut it = item(vec![("run_id", s("r")), ("task_id", s("t"))]);
            it.extend(attrs.into_iter().map(|(k, v)| (k.to_owned(), v)));
            match TaskRecord::from_item(it) {
                Err(ArcError::CorruptItem { key, message }) => {
                    assert_eq!(key, "r/t");
                    assert!(message.starts_with(attr), "{attr}: {message}");
                }
                other => panic!("{attr}: {other:?}"),
            }
        }
        match RunRecord::from_item(item(vec![("run_id", s("r")), ("total_tasks", s("many"))])) {
            Err(e @ ArcError::CorruptItem { .. }) => assert!(e.to_string().contains("r: total_tasks"), "{e}"),
            other => panic!("{other:?}"),
        }
        match TaskRecord::from_item(item(vec![("task_id", s("t"))])) {
            Err(e @ ArcError::CorruptItem { .. }) => assert!(e.to_string().contains("run_id is missing"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Option<AttributeValue>> {
        use proptest::prelude::*;
        let texts = prop::sample::select(vec![
            "",
            "x",
            "0",
            "1",
            "5",
            "-3",
            "1.5",
            "3.0",
            "1e3",
            "true",
            "FALSE",
            "COMPLETED",
            "IN_PROGRESS",
            "18446744073709551615",
            "99999999999999999999",
            "0.0125",
            " 7",
            "NaN",
            "inf",
        ]);
        prop_oneof![
            Just(None),
            texts.clone().prop_map(|t| Some(AttributeValue::S(t.to_owned()))),
            texts.prop_map(|t| Some(AttributeValue::N(t.to_owned()))),
            any::<bool>().prop_map(|b| Some(AttributeValue::Bool(b))),
            Just(Some(AttributeValue::Null(true))),
            Just(Some(AttributeValue::L(vec![]))),
            Just(Some(AttributeValue::M(HashMap::new()))),
            Just(Some(AttributeValue::Ss(vec!["a".into()]))),
            Just(Some(AttributeValue::B(aws_smithy_types::Blob::new(b"1".to_vec())))),
            Just(Some(AttributeValue::B(aws_smithy_types::Blob::new(vec![0xff, 0xfe])))),
        ]
    }

    proptest::proptest! {
        /// The report row read straight from an item is the row of the whole record, and is
        /// refused exactly when the whole record is (for items whose other attributes are
        /// sound): whatever types the row's attributes hold.
        #[test]
        fn the_direct_row_reader_equals_the_record_reader(
            values in proptest::collection::vec(any_value(), 9),
            task_id in any_value(),
        ) {
            let names = ["status", "cost_usd", "is_correct", "retry_count", "tokens_input", "tokens_output",
                "last_error_type", "result_s3_key", "failure_class"];
            let mut it = item(vec![("run_id", s("r"))]);
            it.insert("task_id".into(), task_id.unwrap_or_else(|| s("t")));
            for (name, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    it.insert((*name).to_owned(), v);
                }
            }
            let whole = TaskRecord::from_item(it.clone()).map(TaskRow::from);
            let direct = task_row(it.clone());
            match (whole, direct) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(ArcError::CorruptItem { .. }), Err(ArcError::CorruptItem { .. })) => {}
                (a, b) => proptest::prop_assert!(false, "{it:?}: record {a:?}, direct {b:?}"),
            }
        }
    }

    #[test]
    fn decimals_round_trip_exactly() {
        let d = parse_decimal("1E-7").unwrap();
        assert_eq!(decimal_attr(d), AttributeValue::N("0.0000001".into()));
        assert_eq!(parse_decimal("0.10"), parse_decimal("0.1"));
    }
}
