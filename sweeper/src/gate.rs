//! The gates between a sweep's due tasks and its retries: each config's circuit breaker
//! (moved along here: opened on an outage, half-opened after its cool-down, closed or
//! re-opened by its probe) and each run's budget. Returns what passes and what it did;
//! `sweep.rs` folds it into the summary.

use crate::plan::{defer, Candidate, DeferReason, Deferred};
use crate::summary::Event;
use crate::sweep::Sweep;
use arc_shared::breaker::{
    judge_probe, next_step, Breaker, BreakerState, ProbeState, ProbeTask, ProbeVerdict, Stats, Step,
};
use arc_shared::budget::Budget;
use arc_shared::class::{classify, ClassRules, Evidence, FailureClass};
use arc_shared::contracts::{BreakerReport, BudgetStop};
use arc_shared::records::{RunRecord, TaskRecord};
use arc_shared::status::RunStatus;
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::ArcError;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Who the sweeper's breaker writes are by.
const SWEEPER: &str = "sweeper";

/// What the gates let through, and what they did.
pub(crate) struct Gated {
    pub candidates: Vec<Candidate>,
    pub events: Vec<Event>,
    /// Breakers open or half-open after this sweep.
    pub breakers_open: u64,
    /// Runs read for the breakers' figures (the sweep keeps them).
    pub runs: Vec<(String, Option<RunRecord>)>,
}

/// The class of a task's last failure: as stored, else from the worker's own error text (a
/// failure the worker recorded that handle-error has not classified yet).
pub(crate) fn class_of(t: &TaskRecord, rules: &ClassRules) -> Option<FailureClass> {
    t.class().or_else(|| {
        t.error.as_deref().map(|e| classify(rules, &Evidence { batch: None, cause: None, worker_error: Some(e) }))
    })
}

/// The first `n` due tasks of a config's candidates (runs in order of their earliest due
/// task): what a half-opening breaker retries.
fn choose_probe(cands: &[Candidate], n: usize) -> Vec<ProbeTask> {
    let mut all: Vec<(Option<DateTime<Utc>>, &str, &str)> = cands
        .iter()
        .flat_map(|c| c.tasks.iter().map(move |d| (d.due_at, c.run_id.as_str(), d.task.task_id.as_str())))
        .collect();
    all.sort();
    all.into_iter().take(n).map(|(_, r, t)| ProbeTask { run_id: r.to_owned(), task_id: t.to_owned() }).collect()
}

/// Splits a config's candidates by its breaker: all pass a closed one; an open one holds all
/// (deferred `breaker_open`, due when it may half-open); a half-open one passes its probe
/// tasks only. `forced`: the run a manual request forces past the breaker.
fn hold(b: &Breaker, cands: Vec<Candidate>, forced: Option<&str>) -> (Vec<Candidate>, Vec<Deferred>) {
    if b.state == BreakerState::Closed {
        return (cands, Vec::new());
    }
    let probe: BTreeSet<(&str, &str)> = b.probe.iter().map(|p| (p.run_id.as_str(), p.task_id.as_str())).collect();
    let mut pass = Vec::new();
    let mut held = Vec::new();
    for mut c in cands {
        if forced == Some(c.run_id.as_str()) {
            pass.push(c);
            continue;
        }
        let (go, stay): (Vec<_>, Vec<_>) = c.tasks.into_iter().partition(|d| {
            b.state == BreakerState::HalfOpen && probe.contains(&(c.run_id.as_str(), d.task.task_id.as_str()))
        });
        held.extend(
            stay.iter().map(|d| Deferred { due_at: b.half_open_at.clone(), ..defer(d, DeferReason::BreakerOpen) }),
        );
        if !go.is_empty() {
            c.tasks = go;
            pass.push(c);
        }
    }
    (pass, held)
}

impl Sweep<'_> {
    /// Passes `candidates` through the breakers, then the budgets.
    pub(crate) async fn gate(&self, candidates: Vec<Candidate>) -> Gated {
        let mut g = Gated { candidates: Vec::new(), events: Vec::new(), breakers_open: 0, runs: Vec::new() };
        let passed = self.breakers(candidates, &mut g).await;
        g.candidates = self.budgets(passed, &mut g).await;
        g
    }

    async fn breakers(&self, candidates: Vec<Candidate>, g: &mut Gated) -> Vec<Candidate> {
        let store = &self.deps.breakers;
        let stored = match store.list_breakers().await {
            Ok(list) => list,
            Err(e) => {
                // Without its breakers the sweep retries as if all were closed; the error is
                // reported (and counted in SweepErrors).
                g.events.push(Event::Error { run_id: None, error: e });
                return candidates;
            }
        };
        let mut breakers: BTreeMap<String, Breaker> = stored.into_iter().map(|b| (b.config_name.clone(), b)).collect();
        let mut by_config: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
        for c in candidates {
            by_config.entry(c.config_name.clone()).or_default().push(c);
        }
        // Every config with due tasks, and every tripped breaker (it may half-open or close).
        let mut configs: BTreeSet<String> = by_config.keys().cloned().collect();
        configs.extend(breakers.values().filter(|b| b.state.is_tripped()).map(|b| b.config_name.clone()));
        let closed_with_work: BTreeSet<String> = by_config
            .keys()
            .filter(|c| breakers.get(*c).is_none_or(|b| b.state == BreakerState::Closed))
            .cloned()
            .collect();
        let stats = self.breaker_stats(&closed_with_work, &breakers, g).await;
        let settings = &self.deps.settings.breaker;
        let forced = self.req.force.then(|| self.req.run_id.as_ref().map(|r| r.as_str())).flatten();
        let mut passed = Vec::new();
        for config in configs {
            let cands = by_config.remove(&config).unwrap_or_default();
            let read = breakers.remove(&config).unwrap_or_else(|| Breaker::closed(&config));
            let probe = match read.state {
                BreakerState::HalfOpen => match self.probe_verdict(&read).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        g.events.push(Event::Error { run_id: None, error: e });
                        Some(ProbeVerdict::Pending)
                    }
                },
                _ => None,
            };
            let step = next_step(&read, stats.get(&config).copied(), probe, self.now, settings);
            let chosen = if step == Step::HalfOpen { choose_probe(&cands, settings.probe_tasks) } else { Vec::new() };
            let mut b = read.after(&step, self.now, SWEEPER, chosen);
            let mut transition = Breaker::transition_name(&step);
            if transition.is_some() && !self.req.dry_run {
                match store.write_breaker(&b).await {
                    Ok(true) => {
                        b.version += 1;
                        tracing::warn!(config_name = %config, state = b.state.as_str(), reason = %b.reason, half_open_at = b.half_open_at.as_deref(), "circuit breaker changed");
                    }
                    Ok(false) => {
                        // Another sweeper or an operator wrote first: follow what they wrote.
                        tracing::info!(config_name = %config, "breaker changed meanwhile: following the stored one");
                        transition = None;
                        b = match store.get_breaker(&config).await {
                            Ok(stored) => stored,
                            Err(e) => {
                                g.events.push(Event::Error { run_id: None, error: e });
                                read
                            }
                        };
                    }
                    Err(e) => {
                        g.events.push(Event::Error { run_id: None, error: e });
                        transition = None;
                        b = read;
                    }
                }
            }
            let (pass, held) = hold(&b, cands, forced);
            if !held.is_empty() {
                tracing::info!(config_name = %config, state = b.state.as_str(), tasks = held.len(), "deferred: circuit breaker");
            }
            if b.state.is_tripped() {
                g.breakers_open += 1;
            }
            if b.state.is_tripped() || transition.is_some() {
                g.events.push(Event::Breaker(BreakerReport {
                    config_name: config.clone(),
                    state: b.state.as_str().to_owned(),
                    transition: transition.map(str::to_owned),
                    reason: b.reason.clone(),
                    half_open_at: b.half_open_at.clone(),
                    probe_tasks: b.probe.len() as u64,
                    deferred_tasks: held.len() as u64,
                }));
            }
            if !held.is_empty() {
                g.events.push(Event::Deferred(held));
            }
            passed.extend(pass);
        }
        passed
    }

    /// What a half-open breaker's probe tasks say now.
    async fn probe_verdict(&self, b: &Breaker) -> Result<ProbeVerdict, ArcError> {
        let started = b.probe_started_at.as_deref().and_then(parse_ts);
        let rules = &self.deps.settings.class_rules;
        let mut states = Vec::with_capacity(b.probe.len());
        for p in &b.probe {
            let task = self.deps.tables.get_task(&p.run_id, &p.task_id).await?;
            let cancelled = matches!(self.runs.get(&p.run_id), Some(Some(r)) if r.status == RunStatus::Cancelled);
            states.push(match task {
                // A probe in a run an operator cancelled will never run again.
                Some(_) if cancelled => ProbeState::EndedWell,
                Some(t) => ProbeState::of(
                    Some(&t.status),
                    class_of(&t, rules),
                    t.updated_at.as_deref().and_then(parse_ts),
                    started,
                ),
                None => ProbeState::EndedWell,
            });
        }
        Ok(judge_probe(&states))
    }

    /// The recent figures of `configs` (closed breakers with due tasks): of their tasks that
    /// ended in the window (and since the breaker last closed), how many failed for the
    /// provider. One status-index query per ended status; the runs of those tasks are read
    /// for their config.
    async fn breaker_stats(
        &self,
        configs: &BTreeSet<String>,
        breakers: &BTreeMap<String, Breaker>,
        g: &mut Gated,
    ) -> BTreeMap<String, Stats> {
        let mut stats = BTreeMap::new();
        if configs.is_empty() {
            return stats;
        }
        let window = chrono::Duration::from_std(self.deps.settings.breaker.window).unwrap_or(chrono::Duration::zero());
        let window_start = self.now - window;
        let since = |c: &str| -> DateTime<Utc> {
            let closed = breakers.get(c).and_then(|b| b.closed_at.as_deref()).and_then(parse_ts);
            closed.map_or(window_start, |t| t.max(window_start))
        };
        let earliest = configs.iter().map(|c| since(c)).min().unwrap_or(window_start);
        let found = match self.deps.tables.ended_tasks_since(&format_ts(earliest)).await {
            Ok(f) => f,
            Err(e) => {
                g.events.push(Event::Error { run_id: None, error: e });
                return stats;
            }
        };
        for e in found.corrupt {
            g.events.push(Event::Error { run_id: None, error: e });
        }
        let mut config_of: BTreeMap<String, Option<String>> = BTreeMap::new();
        let unknown: BTreeSet<String> =
            found.tasks.iter().filter(|t| !self.runs.contains_key(&t.run_id)).map(|t| t.run_id.clone()).collect();
        for (id, r) in self.deps.tables.get_runs(unknown).await {
            match r {
                Ok(run) => g.runs.push((id, run)),
                Err(e) => g.events.push(Event::Error { run_id: Some(id), error: e }),
            }
        }
        for (id, run) in self.runs.iter().chain(g.runs.iter().map(|(i, r)| (i, r))) {
            config_of.insert(id.clone(), run.as_ref().and_then(|r| r.config_name.clone()));
        }
        let rules = &self.deps.settings.class_rules;
        for t in &found.tasks {
            let Some(Some(config)) = config_of.get(&t.run_id) else { continue };
            if !configs.contains(config) {
                continue;
            }
            let at = t.updated_at.as_deref().and_then(parse_ts);
            if at.is_some_and(|at| at >= since(config)) {
                stats.entry(config.clone()).or_insert_with(Stats::default).add(&t.status, class_of(t, rules));
            }
        }
        for (config, s) in &stats {
            tracing::info!(config_name = %config, ended = s.ended, provider_failures = s.provider_failures, "breaker figures");
        }
        stats
    }

    /// Cuts each run's retry to what its budget allows; the rest is deferred `over_budget`
    /// and the run records how many (`over_budget_tasks`).
    async fn budgets(&self, candidates: Vec<Candidate>, g: &mut Gated) -> Vec<Candidate> {
        let mut out = Vec::with_capacity(candidates.len());
        for mut c in candidates {
            let Some(Some(run)) = self.runs.get(&c.run_id) else {
                out.push(c);
                continue;
            };
            let Some(max) = run.max_cost_usd else {
                out.push(c);
                continue;
            };
            let spent = run.total_cost_usd.unwrap_or_default();
            let budget = Budget::of(max, spent, run.completed_tasks, c.tasks.len() as u64);
            let over = budget.over_budget_tasks;
            if !self.req.dry_run && run.over_budget_tasks.unwrap_or(0) != over {
                if let Err(e) = self.deps.tables.record_budget_stop(&c.run_id, over, &self.now_s).await {
                    g.events.push(Event::Error { run_id: Some(c.run_id.clone()), error: e });
                }
            }
            if over == 0 {
                out.push(c);
                continue;
            }
            let fit = usize::try_from(budget.fit_tasks).unwrap_or(usize::MAX);
            let rest = c.tasks.split_off(fit.min(c.tasks.len()));
            tracing::warn!(run_id = %c.run_id, max_cost_usd = %max, spent_usd = %spent, requeued = c.tasks.len(), over_budget = rest.len(), "retry cut to the run's budget");
            g.events.push(Event::OverBudget(BudgetStop { run_id: c.run_id.clone(), budget }));
            g.events.push(Event::Deferred(rest.iter().map(|d| defer(d, DeferReason::OverBudget)).collect()));
            if !c.tasks.is_empty() {
                out.push(c);
            }
        }
        out
    }
}
