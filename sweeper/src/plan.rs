//! The pure part of a sweep: which FAILED tasks are due (the shared backoff policy), how
//! they group by run, how many fit this sweep (`max_tasks`) and one execution input
//! (256 KiB), and the names of retry executions. No I/O here.

use arc_shared::backoff::due_at;
use arc_shared::config::BackoffConfig;
use arc_shared::records::TaskRecord;
use arc_shared::time::{format_ts, parse_ts};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Step Functions' limit on an execution input, in bytes.
pub const MAX_EXECUTION_INPUT_BYTES: usize = 256 * 1024;

/// A FAILED task as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTask {
    pub run_id: String,
    pub task_id: String,
    pub retry_count: u32,
    /// `last_error_at`, else `updated_at`; `None` when neither parses (then it is due).
    pub failed_at: Option<DateTime<Utc>>,
}

impl FailedTask {
    pub fn from_record(t: &TaskRecord) -> Self {
        let failed_at =
            t.last_error_at.as_deref().and_then(parse_ts).or_else(|| t.updated_at.as_deref().and_then(parse_ts));
        Self { run_id: t.run_id.clone(), task_id: t.task_id.clone(), retry_count: t.retry_count, failed_at }
    }

    /// When this task becomes due under `backoff`; `None` = due (no usable timestamp).
    pub fn due_at(&self, backoff: &BackoffConfig) -> Option<DateTime<Utc>> {
        self.failed_at.map(|t| due_at(backoff, &self.run_id, &self.task_id, self.retry_count, t))
    }
}

pub use arc_shared::contracts::{DeferReason, Deferred};

/// A due task, with its due time for ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTask {
    pub task: FailedTask,
    pub due_at: Option<DateTime<Utc>>,
}

fn deferred(d: &DueTask, reason: DeferReason) -> Deferred {
    Deferred {
        run_id: d.task.run_id.clone(),
        task_id: d.task.task_id.clone(),
        retry_count: d.task.retry_count,
        due_at: d.due_at.map(format_ts),
        reason,
    }
}

/// How a sweep decides which FAILED tasks to retry now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuePolicy<'a> {
    pub backoff: &'a BackoffConfig,
    /// `MAX_RETRIES`: a task that reached it is made permanent, not retried.
    pub max_retries: u32,
    /// Failures older than this stay FAILED (`too_old`); `None` retries them (a manual
    /// request for one run).
    pub max_age: Option<chrono::Duration>,
    /// Every (young enough) task is due now.
    pub ignore_backoff: bool,
}

/// FAILED tasks, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Due, grouped by run, each run's tasks ordered by task id.
    pub due: BTreeMap<String, Vec<DueTask>>,
    /// Left FAILED (not yet due, too old).
    pub deferred: Vec<Deferred>,
    /// `retry_count` already reached `MAX_RETRIES`: to be made FAILED_PERMANENT.
    pub exhausted: Vec<FailedTask>,
}

/// Splits FAILED tasks into due, deferred and exhausted.
pub fn split_due(tasks: Vec<FailedTask>, now: DateTime<Utc>, policy: &DuePolicy<'_>) -> Split {
    let mut split = Split::default();
    for task in tasks {
        if arc_shared::failure::is_exhausted(task.retry_count, policy.max_retries) {
            split.exhausted.push(task);
            continue;
        }
        let at = task.due_at(policy.backoff);
        let d = DueTask { task, due_at: at };
        let too_old = match (policy.max_age, d.task.failed_at) {
            (Some(max), Some(failed)) => failed + max < now,
            _ => false,
        };
        if too_old {
            split.deferred.push(deferred(&d, DeferReason::TooOld));
        } else if policy.ignore_backoff || at.is_none_or(|t| t <= now) {
            split.due.entry(d.task.run_id.clone()).or_default().push(d);
        } else {
            split.deferred.push(deferred(&d, DeferReason::NotYetDue));
        }
    }
    for v in split.due.values_mut() {
        v.sort_by(|a, b| a.task.task_id.cmp(&b.task.task_id));
        v.dedup_by(|a, b| a.task.task_id == b.task.task_id);
    }
    split
}

/// Why a run's retry input would be rejected by Initialize (its run id or config name fails
/// today's validators); `None` when it would be accepted. Task ids are checked one by one
/// by [`valid_task_id`].
pub fn invalid_run(run_id: &str, config_name: &str) -> Option<String> {
    if let Err(e) = arc_shared::ids::RunId::parse(run_id) {
        return Some(format!("run_id is not valid for a retry: {}", e.0));
    }
    if let Err(e) = arc_shared::ids::ConfigName::parse(config_name) {
        return Some(format!("config_name is not valid for a retry: {}", e.0));
    }
    None
}

/// Whether Initialize accepts `task_id` in a retry input.
pub fn valid_task_id(task_id: &str) -> bool {
    arc_shared::ids::TaskId::parse(task_id).is_ok()
}

/// The task as deferred for `reason`.
pub fn defer(d: &DueTask, reason: DeferReason) -> Deferred {
    deferred(d, reason)
}

/// A run eligible for a retry, with its due tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub run_id: String,
    pub config_name: String,
    pub tasks: Vec<DueTask>,
}

/// The tasks of one run this sweep will re-queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub run_id: String,
    pub config_name: String,
    pub tasks: Vec<FailedTask>,
}

/// Chooses what this sweep re-queues: runs in order of their earliest due task, each run's
/// tasks as many as fit one execution input, all within `max_tasks`. The rest is deferred.
pub fn fit(mut candidates: Vec<Candidate>, max_tasks: usize) -> (Vec<Batch>, Vec<Deferred>) {
    let earliest = |c: &Candidate| c.tasks.iter().map(|t| t.due_at).min().flatten();
    candidates.sort_by(|a, b| earliest(a).cmp(&earliest(b)).then_with(|| a.run_id.cmp(&b.run_id)));
    let mut budget = max_tasks;
    let mut batches = Vec::new();
    let mut rest = Vec::new();
    for c in candidates {
        let mut size = input_size(&c.run_id, &c.config_name, &[]);
        let mut taken = Vec::new();
        for d in c.tasks {
            let extra = json_str_len(&d.task.task_id) + usize::from(!taken.is_empty());
            if budget == 0 {
                rest.push(deferred(&d, DeferReason::MaxTasks));
            } else if size + extra > MAX_EXECUTION_INPUT_BYTES {
                rest.push(deferred(&d, DeferReason::InputSize));
            } else {
                size += extra;
                budget -= 1;
                taken.push(d.task);
            }
        }
        if !taken.is_empty() {
            batches.push(Batch { run_id: c.run_id, config_name: c.config_name, tasks: taken });
        }
    }
    (batches, rest)
}

/// The retry execution's input: one type, in the contracts module.
pub use arc_shared::contracts::RetryInput;

/// Bytes of a JSON string literal holding `s`.
fn json_str_len(s: &str) -> usize {
    serde_json::to_string(s).map(|j| j.len()).unwrap_or(s.len() * 6 + 2)
}

/// Bytes of the retry input of `task_ids`.
pub fn input_size(run_id: &str, config_name: &str, task_ids: &[&str]) -> usize {
    let ids: usize = task_ids.iter().map(|t| json_str_len(t)).sum::<usize>() + task_ids.len().saturating_sub(1);
    // {"run_id":R,"config_name":C,"task_ids":[...],"retry":true,"triggered_by":"sweeper"}
    r#"{"run_id":,"config_name":,"task_ids":[],"retry":true,"triggered_by":"sweeper"}"#.len()
        + json_str_len(run_id)
        + json_str_len(config_name)
        + ids
}

/// `retry-<first 16 hex of sha256(run_id)>-g<generation>`: at most 80 characters, the
/// charset Step Functions allows, the same for every sweeper.
pub fn execution_name(run_id: &str, generation: u64) -> String {
    let digest = hex::encode(Sha256::digest(run_id.as_bytes()));
    format!("retry-{}-g{generation}", &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use std::time::Duration as StdDuration;

    fn backoff() -> BackoffConfig {
        BackoffConfig { base_delay: StdDuration::from_secs(300), max_delay: StdDuration::from_secs(21_600) }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn task(run: &str, id: &str, rc: u32, failed_at: Option<DateTime<Utc>>) -> FailedTask {
        FailedTask { run_id: run.into(), task_id: id.into(), retry_count: rc, failed_at }
    }

    fn policy(b: &BackoffConfig, ignore_backoff: bool) -> DuePolicy<'_> {
        DuePolicy { backoff: b, max_retries: 10, max_age: None, ignore_backoff }
    }

    fn split_due(
        tasks: Vec<FailedTask>,
        now: DateTime<Utc>,
        b: &BackoffConfig,
        ignore: bool,
    ) -> (BTreeMap<String, Vec<DueTask>>, Vec<Deferred>) {
        let s = super::split_due(tasks, now, &policy(b, ignore));
        (s.due, s.deferred)
    }

    #[test]
    fn exhausted_and_too_old_tasks_are_not_retried() {
        let b = backoff();
        let p = DuePolicy { backoff: &b, max_retries: 3, max_age: Some(Duration::hours(72)), ignore_backoff: true };
        let tasks = vec![
            task("r", "exhausted", 3, Some(t0())),
            task("r", "old", 1, Some(t0() - Duration::hours(73))),
            task("r", "young", 1, Some(t0() - Duration::hours(71))),
            task("r", "no-timestamp", 2, None),
        ];
        let s = super::split_due(tasks.clone(), t0(), &p);
        assert_eq!(s.exhausted.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), vec!["exhausted"]);
        assert_eq!(s.deferred.len(), 1);
        assert_eq!((s.deferred[0].task_id.as_str(), s.deferred[0].reason), ("old", DeferReason::TooOld));
        let due: Vec<&str> = s.due["r"].iter().map(|d| d.task.task_id.as_str()).collect();
        assert_eq!(due, vec!["no-timestamp", "young"]);
        // A manual request for the run ignores the age.
        let s = super::split_due(tasks, t0(), &DuePolicy { max_age: None, ..p });
        assert_eq!(s.due["r"].len(), 3);
    }

    #[test]
    fn retry_inputs_initialize_would_reject_are_named() {
        assert_eq!(invalid_run("run-cfg-20261126-120000-deadbeef", "gpt-4o"), None);
        assert!(invalid_run("run with space", "cfg").unwrap().contains("run_id"));
        assert!(invalid_run("run-a", "bad config!").unwrap().contains("config_name"));
        assert!(valid_task_id("00576224"));
        assert!(!valid_task_id("task/with/slash"));
    }

    #[test]
    fn due_follows_retry_count_and_timestamps() {
        let b = backoff();
        // retry_count 1: due within [150 s, 300 s]; retry_count 3: within [600 s, 1200 s].
        let one = task("r", "a", 1, Some(t0()));
        let three = task("r", "b", 3, Some(t0()));
        let no_ts = task("r", "c", 2, None);
        let (due, later) =
            split_due(vec![one.clone(), three.clone(), no_ts.clone()], t0() + Duration::seconds(301), &b, false);
        let ids: Vec<&str> = due["r"].iter().map(|d| d.task.task_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "c"]);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].task_id, "b");
        assert_eq!(later[0].reason, DeferReason::NotYetDue);
        let want = three.due_at(&b).unwrap();
        assert_eq!(later[0].due_at.as_deref(), Some(format_ts(want).as_str()));
        assert!(want >= t0() + Duration::seconds(600) && want <= t0() + Duration::seconds(1200));
        // Before the earliest possible due time nothing with a timestamp is due.
        let (due, later) = split_due(vec![one.clone(), three.clone()], t0() + Duration::seconds(149), &b, false);
        assert!(due.is_empty());
        assert_eq!(later.len(), 2);
        // ignore_backoff: everything is due.
        let (due, later) = split_due(vec![one, three], t0(), &b, true);
        assert_eq!(due["r"].len(), 2);
        assert!(later.is_empty());
    }

    #[test]
    fn from_record_falls_back_to_updated_at() {
        let mut rec = arc_shared::records::TaskRecord::from_item(
            [
                ("run_id".to_owned(), arc_shared::records::s("r")),
                ("task_id".to_owned(), arc_shared::records::s("t")),
                ("updated_at".to_owned(), arc_shared::records::s("2026-11-26T12:00:00.000000+00:00")),
            ]
            .into(),
        )
        .unwrap();
        assert_eq!(FailedTask::from_record(&rec).failed_at, Some(t0()));
        rec.last_error_at = Some("2026-11-26T11:00:00Z".into());
        assert_eq!(FailedTask::from_record(&rec).failed_at, Some(t0() - Duration::hours(1)));
        rec.last_error_at = Some("garbage".into());
        rec.updated_at = Some("also garbage".into());
        assert_eq!(FailedTask::from_record(&rec).failed_at, None);
    }

    fn cand(run: &str, n: usize, id_len: usize, due: DateTime<Utc>) -> Candidate {
        Candidate {
            run_id: run.into(),
            config_name: "cfg".into(),
            tasks: (0..n)
                .map(|i| DueTask {
                    task: task(run, &format!("{i:0>width$}", width = id_len), 1, None),
                    due_at: Some(due),
                })
                .collect(),
        }
    }

    #[test]
    fn budget_takes_oldest_runs_first() {
        let (batches, rest) = fit(vec![cand("late", 3, 4, t0()), cand("early", 3, 4, t0() - Duration::hours(1))], 4);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].run_id, "early");
        assert_eq!(batches[0].tasks.len(), 3);
        assert_eq!(batches[1].tasks.len(), 1);
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|d| d.reason == DeferReason::MaxTasks && d.run_id == "late"));
    }

    #[test]
    fn input_never_exceeds_256_kib() {
        // 100-character ids: ~103 bytes each, so about 2,540 fit.
        let (batches, rest) = fit(vec![cand("r", 3000, 100, t0())], 100_000);
        let ids: Vec<String> = batches[0].tasks.iter().map(|t| t.task_id.clone()).collect();
        let json = RetryInput::new("r", "cfg", ids.clone()).to_json();
        assert!(json.len() <= MAX_EXECUTION_INPUT_BYTES, "{}", json.len());
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(input_size("r", "cfg", &refs), json.len());
        // One more id would not have fitted.
        assert!(json.len() + 103 > MAX_EXECUTION_INPUT_BYTES);
        assert_eq!(ids.len() + rest.len(), 3000);
        assert!(rest.iter().all(|d| d.reason == DeferReason::InputSize));
    }

    #[test]
    fn execution_names() {
        let n = execution_name("run-cfg-20261126-120000-deadbeef", 3);
        assert!(n.starts_with("retry-") && n.ends_with("-g3"), "{n}");
        assert_eq!(n.len(), "retry-".len() + 16 + 3);
        assert_eq!(n, execution_name("run-cfg-20261126-120000-deadbeef", 3));
        assert_ne!(n, execution_name("run-cfg-20261126-120000-deadbeee", 3));
        assert!(execution_name(&"r".repeat(256), u64::MAX).len() <= 80);
    }

    #[test]
    fn retry_input_shape_is_fixed() {
        let i = RetryInput::new("r", "c", vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(
            i.to_json(),
            r#"{"run_id":"r","config_name":"c","task_ids":["a","b"],"retry":true,"triggered_by":"sweeper"}"#
        );
    }

    proptest! {
        #[test]
        fn jitter_makes_due_time_stable_and_bounded(run in "[a-z0-9-]{1,30}", id in "[a-z0-9_]{1,20}", rc in 1u32..12, secs in 0i64..1_000_000) {
            let b = backoff();
            let at = t0() + Duration::seconds(secs);
            let t = task(&run, &id, rc, Some(at));
            let due = t.due_at(&b).unwrap();
            prop_assert_eq!(Some(due), t.clone().due_at(&b));
            let raw = (300i64 << (rc - 1).min(20)).min(21_600);
            prop_assert!(due >= at + Duration::milliseconds(raw * 500));
            prop_assert!(due <= at + Duration::seconds(raw));
        }

        #[test]
        fn split_partitions_every_task_and_groups_by_run(
            tasks in proptest::collection::vec(("r[0-3]", "t[0-9]{1,3}", 1u32..6, proptest::option::of(0i64..40_000)), 0..60),
            ignore in any::<bool>(),
        ) {
            let mut seen = std::collections::BTreeSet::new();
            let input: Vec<FailedTask> = tasks
                .into_iter()
                .filter(|(r, t, _, _)| seen.insert((r.clone(), t.clone())))
                .map(|(r, t, rc, ago)| task(&r, &t, rc, ago.map(|a| t0() - Duration::seconds(a))))
                .collect();
            let (due, later) = split_due(input.clone(), t0(), &backoff(), ignore);
            let n_due: usize = due.values().map(Vec::len).sum();
            prop_assert_eq!(n_due + later.len(), input.len());
            if ignore {
                prop_assert!(later.is_empty());
            }
            for (run, list) in &due {
                prop_assert!(list.iter().all(|d| &d.task.run_id == run));
                prop_assert!(list.windows(2).all(|w| w[0].task.task_id < w[1].task.task_id));
                prop_assert!(ignore || list.iter().all(|d| d.due_at.is_none_or(|at| at <= t0())));
            }
        }

        #[test]
        fn fit_respects_both_bounds(sizes in proptest::collection::vec(1usize..60, 1..12), max in 1usize..300) {
            let cands: Vec<Candidate> = sizes.iter().enumerate().map(|(i, n)| cand(&format!("r{i}"), *n, 8, t0())).collect();
            let total: usize = sizes.iter().sum();
            let (batches, rest) = fit(cands, max);
            let taken: usize = batches.iter().map(|b| b.tasks.len()).sum();
            prop_assert!(taken <= max);
            prop_assert_eq!(taken + rest.len(), total);
            prop_assert_eq!(taken, total.min(max));
        }
    }
}
