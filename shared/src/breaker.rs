//! The per-config circuit breaker of the sweeper (docs/ARCHITECTURE.md, "Circuit breaker"):
//! its states, when it opens, how a probe is judged, and the next step of a breaker. Pure
//! functions; the sweeper and `arcctl` do the I/O (`store::breakers`).
//!
//! closed ── provider failures look like an outage ──▶ open ── cool-down over ──▶ half_open
//!   ▲                                                  ▲                            │
//!   └──────────── every probe task ended without ──────┼─── a probe task failed ◀───┘
//!                 a provider failure                   └─── for the provider (cool-down × 2)

use crate::class::FailureClass;
use crate::config::BreakerConfig;
use crate::status::TaskStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(Self::Closed),
            "open" => Some(Self::Open),
            "half_open" => Some(Self::HalfOpen),
            _ => None,
        }
    }

    /// Open or half-open: the config's retries are held back.
    pub fn is_tripped(self) -> bool {
        self != Self::Closed
    }
}

/// A task a half-open breaker retries to learn whether the provider is back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProbeTask {
    pub run_id: String,
    pub task_id: String,
}

/// One config's breaker, as stored (one item per config in `BREAKERS_TABLE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub config_name: String,
    pub state: BreakerState,
    /// Why it is in this state, in words.
    pub reason: String,
    pub changed_at: String,
    /// `sweeper`, or the operator (`arcctl breaker`: the caller's ARN).
    pub changed_by: String,
    /// When it last opened.
    pub opened_at: Option<String>,
    /// When an open breaker may half-open; `None` for an open breaker an operator opened
    /// (it stays open until closed by hand).
    pub half_open_at: Option<String>,
    /// The current cool-down (doubles on each re-open, up to the maximum).
    pub cooldown_seconds: u64,
    /// Opens since it was last closed.
    pub opens: u64,
    /// The tasks a half-open breaker retries.
    pub probe: Vec<ProbeTask>,
    pub probe_started_at: Option<String>,
    /// When it last closed: failures before this no longer count toward opening it.
    pub closed_at: Option<String>,
    /// Bumped by every write; every write is conditional on the version read (0: no item).
    pub version: u64,
}

impl Breaker {
    /// The breaker of a config that has none stored.
    pub fn closed(config_name: &str) -> Self {
        Self {
            config_name: config_name.to_owned(),
            state: BreakerState::Closed,
            reason: String::new(),
            changed_at: String::new(),
            changed_by: String::new(),
            opened_at: None,
            half_open_at: None,
            cooldown_seconds: 0,
            opens: 0,
            probe: Vec::new(),
            probe_started_at: None,
            closed_at: None,
            version: 0,
        }
    }
}

impl Breaker {
    /// The breaker after `step`, taken at `now` by `by` (`probe`: the tasks a half-opening
    /// breaker retries). The version is the one read: the store writes it + 1.
    pub fn after(&self, step: &Step, now: DateTime<Utc>, by: &str, probe: Vec<ProbeTask>) -> Self {
        let now_s = crate::time::format_ts(now);
        let mut b = Self { changed_at: now_s.clone(), changed_by: by.to_owned(), ..self.clone() };
        let open = |b: &mut Self, reason: &str, cooldown: u64| {
            b.state = BreakerState::Open;
            b.reason = reason.to_owned();
            b.opened_at = Some(now_s.clone());
            let secs = i64::try_from(cooldown).unwrap_or(i64::MAX / 1000).min(365 * 86_400);
            b.half_open_at = Some(crate::time::format_ts(now + chrono::Duration::seconds(secs)));
            b.cooldown_seconds = cooldown;
            b.opens = b.opens.saturating_add(1);
            b.probe.clear();
            b.probe_started_at = None;
        };
        match step {
            Step::Stay => return self.clone(),
            Step::Open { reason, cooldown_seconds } | Step::Reopen { reason, cooldown_seconds } => {
                open(&mut b, reason, *cooldown_seconds)
            }
            Step::HalfOpen => {
                b.state = BreakerState::HalfOpen;
                b.reason =
                    format!("cool-down of {} s over: retrying {} probe task(s)", b.cooldown_seconds, probe.len());
                b.probe = probe;
                b.probe_started_at = Some(now_s);
            }
            Step::Close { reason } => {
                b.state = BreakerState::Closed;
                b.reason = reason.clone();
                b.closed_at = Some(now_s);
                b.half_open_at = None;
                b.opens = 0;
                b.probe.clear();
                b.probe_started_at = None;
            }
        }
        b
    }

    /// Opened by an operator: it stays open (no half-open time) until closed by hand.
    pub fn opened_by_hand(&self, reason: &str, now: DateTime<Utc>, by: &str) -> Self {
        let mut b = self.after(&Step::Open { reason: reason.to_owned(), cooldown_seconds: 0 }, now, by, Vec::new());
        b.half_open_at = None;
        b
    }

    /// Closed by an operator.
    pub fn closed_by_hand(&self, reason: &str, now: DateTime<Utc>, by: &str) -> Self {
        self.after(&Step::Close { reason: reason.to_owned() }, now, by, Vec::new())
    }

    /// What a step is called in a sweep's report.
    pub fn transition_name(step: &Step) -> Option<&'static str> {
        match step {
            Step::Stay => None,
            Step::Open { .. } => Some("opened"),
            Step::HalfOpen => Some("half_opened"),
            Step::Close { .. } => Some("closed"),
            Step::Reopen { .. } => Some("reopened"),
        }
    }
}

/// What the tables say of a config's recent tasks: of the tasks that ended (COMPLETED,
/// FAILED, FAILED_PERMANENT) in the window, how many failed for the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub ended: u64,
    pub provider_failures: u64,
}

impl Stats {
    pub fn add(&mut self, status: &TaskStatus, class: Option<FailureClass>) {
        self.ended += 1;
        if status.is_failed() && class == Some(FailureClass::Provider) {
            self.provider_failures += 1;
        }
    }

    /// Whether these figures look like a provider outage rather than flaky tasks.
    pub fn looks_like_outage(&self, cfg: &BreakerConfig) -> bool {
        self.ended > 0
            && self.provider_failures >= cfg.min_failures
            && self.provider_failures as f64 >= cfg.failure_ratio * self.ended as f64
    }
}

/// One probe task as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeState {
    /// Still FAILED from before the probe started: not retried yet (a sweeper stopped between
    /// half-opening and re-queueing it, or its run was busy).
    NotRetried,
    /// Re-queued or running.
    InFlight,
    /// Completed, gone, or failed for a reason of its own.
    EndedWell,
    /// Failed again for the provider.
    ProviderFailed,
}

impl ProbeState {
    /// A probe task's state from its status, class and last write time.
    pub fn of(
        status: Option<&TaskStatus>,
        class: Option<FailureClass>,
        written_at: Option<DateTime<Utc>>,
        probe_started: Option<DateTime<Utc>>,
    ) -> Self {
        let Some(status) = status else { return Self::EndedWell };
        if status.is_failed() {
            // The probe's re-queue wrote `updated_at` = its start: a failure written at or
            // after it is the probe's.
            let failed_since_probe = match (written_at, probe_started) {
                (Some(w), Some(p)) => w >= p,
                _ => true,
            };
            if !failed_since_probe && *status == TaskStatus::Failed {
                Self::NotRetried
            } else if failed_since_probe && class == Some(FailureClass::Provider) {
                Self::ProviderFailed
            } else {
                Self::EndedWell
            }
        } else if *status == TaskStatus::Completed {
            Self::EndedWell
        } else {
            Self::InFlight
        }
    }
}

/// What a half-open breaker's probe says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// Some probe tasks have not ended (or not been retried yet).
    Pending,
    /// Every probe task ended, none failed for the provider.
    Passed,
    /// A probe task failed for the provider again.
    Failed,
}

pub fn judge_probe(states: &[ProbeState]) -> ProbeVerdict {
    if states.contains(&ProbeState::ProviderFailed) {
        ProbeVerdict::Failed
    } else if states.iter().all(|s| *s == ProbeState::EndedWell) {
        ProbeVerdict::Passed
    } else {
        ProbeVerdict::Pending
    }
}

/// What a sweep does to one breaker.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Stay,
    Open { reason: String, cooldown_seconds: u64 },
    HalfOpen,
    Close { reason: String },
    Reopen { reason: String, cooldown_seconds: u64 },
}

/// The next step of `b`: `stats` are the config's recent figures (closed breakers), `probe`
/// the verdict of a half-open breaker's probe.
pub fn next_step(
    b: &Breaker,
    stats: Option<Stats>,
    probe: Option<ProbeVerdict>,
    now: DateTime<Utc>,
    cfg: &BreakerConfig,
) -> Step {
    let base = cfg.cooldown.as_secs();
    match b.state {
        BreakerState::Closed => match stats {
            Some(s) if s.looks_like_outage(cfg) => Step::Open {
                reason: format!(
                    "{} of {} tasks that ended in the last {} s failed for the provider",
                    s.provider_failures,
                    s.ended,
                    cfg.window.as_secs()
                ),
                cooldown_seconds: base,
            },
            _ => Step::Stay,
        },
        BreakerState::Open => {
            let due = b.half_open_at.as_deref().and_then(crate::time::parse_ts).is_some_and(|t| t <= now);
            if due {
                Step::HalfOpen
            } else {
                Step::Stay
            }
        }
        BreakerState::HalfOpen => match probe {
            Some(ProbeVerdict::Passed) => {
                Step::Close { reason: format!("{} probe task(s) ended without a provider failure", b.probe.len()) }
            }
            Some(ProbeVerdict::Failed) => Step::Reopen {
                reason: "a probe task failed for the provider again".to_owned(),
                cooldown_seconds: b.cooldown_seconds.max(base).saturating_mul(2).min(cfg.max_cooldown.as_secs()),
            },
            _ => Step::Stay,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    #[test]
    fn opens_only_on_enough_provider_failures_at_the_ratio() {
        let cfg = BreakerConfig::default();
        let b = Breaker::closed("a");
        let step = |ended, provider_failures| next_step(&b, Some(Stats { ended, provider_failures }), None, t0(), &cfg);
        assert!(matches!(step(50, 50), Step::Open { cooldown_seconds: 900, .. }));
        assert!(matches!(step(20, 10), Step::Open { .. }));
        assert_eq!(step(21, 10), Step::Stay, "below the ratio");
        assert_eq!(step(9, 9), Step::Stay, "below the minimum");
        assert_eq!(step(0, 0), Step::Stay);
        assert_eq!(next_step(&b, None, None, t0(), &cfg), Step::Stay);
    }

    #[test]
    fn half_opens_after_the_cooldown_unless_opened_by_hand() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::closed("a");
        b.state = BreakerState::Open;
        b.half_open_at = Some(crate::time::format_ts(t0()));
        assert_eq!(next_step(&b, None, None, t0() - Duration::seconds(1), &cfg), Step::Stay);
        assert_eq!(next_step(&b, None, None, t0(), &cfg), Step::HalfOpen);
        b.half_open_at = None;
        assert_eq!(next_step(&b, None, None, t0() + Duration::days(30), &cfg), Step::Stay);
    }

    #[test]
    fn probe_verdicts_close_or_reopen_with_a_doubled_capped_cooldown() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::closed("a");
        b.state = BreakerState::HalfOpen;
        b.cooldown_seconds = 900;
        assert!(matches!(next_step(&b, None, Some(ProbeVerdict::Passed), t0(), &cfg), Step::Close { .. }));
        assert_eq!(next_step(&b, None, Some(ProbeVerdict::Pending), t0(), &cfg), Step::Stay);
        let reopen = |b: &Breaker| match next_step(b, None, Some(ProbeVerdict::Failed), t0(), &cfg) {
            Step::Reopen { cooldown_seconds, .. } => cooldown_seconds,
            other => panic!("{other:?}"),
        };
        assert_eq!(reopen(&b), 1800);
        b.cooldown_seconds = 10_000;
        assert_eq!(reopen(&b), 14_400);
    }

    #[test]
    fn transitions_keep_what_the_next_sweep_needs() {
        let b = Breaker::closed("a");
        let open = b.after(&Step::Open { reason: "r".into(), cooldown_seconds: 900 }, t0(), "sweeper", vec![]);
        assert_eq!(open.state, BreakerState::Open);
        assert_eq!(open.half_open_at.as_deref(), Some(crate::time::format_ts(t0() + Duration::seconds(900)).as_str()));
        assert_eq!(open.opens, 1);
        let probe = vec![ProbeTask { run_id: "r".into(), task_id: "t".into() }];
        let half = open.after(&Step::HalfOpen, t0(), "sweeper", probe.clone());
        assert_eq!((half.state, half.probe.clone()), (BreakerState::HalfOpen, probe));
        assert_eq!(half.probe_started_at.as_deref(), Some(crate::time::format_ts(t0()).as_str()));
        let re = half.after(&Step::Reopen { reason: "again".into(), cooldown_seconds: 1800 }, t0(), "sweeper", vec![]);
        assert_eq!((re.state, re.cooldown_seconds, re.opens, re.probe.len()), (BreakerState::Open, 1800, 2, 0));
        let closed = re.closed_by_hand("provider back", t0(), "arn:aws:iam::1:user/op");
        assert_eq!(
            (closed.state, closed.opens, closed.changed_by.as_str()),
            (BreakerState::Closed, 0, "arn:aws:iam::1:user/op")
        );
        assert_eq!(closed.closed_at.as_deref(), Some(crate::time::format_ts(t0()).as_str()));
        let manual = closed.opened_by_hand("maintenance", t0(), "op");
        assert_eq!((manual.state, manual.half_open_at.clone()), (BreakerState::Open, None));
        assert_eq!(b.after(&Step::Stay, t0(), "x", vec![]), b);
    }

    #[test]
    fn probe_states_and_verdicts() {
        let p = Some(t0());
        let before = Some(t0() - Duration::seconds(5));
        let after = Some(t0() + Duration::seconds(5));
        let prov = Some(FailureClass::Provider);
        assert_eq!(ProbeState::of(Some(&TaskStatus::Failed), prov, before, p), ProbeState::NotRetried);
        assert_eq!(ProbeState::of(Some(&TaskStatus::Failed), prov, after, p), ProbeState::ProviderFailed);
        assert_eq!(ProbeState::of(Some(&TaskStatus::FailedPermanent), prov, after, p), ProbeState::ProviderFailed);
        assert_eq!(
            ProbeState::of(Some(&TaskStatus::Failed), Some(FailureClass::Task), after, p),
            ProbeState::EndedWell
        );
        assert_eq!(ProbeState::of(Some(&TaskStatus::Completed), None, after, p), ProbeState::EndedWell);
        assert_eq!(ProbeState::of(Some(&TaskStatus::RetryQueued), None, after, p), ProbeState::InFlight);
        assert_eq!(ProbeState::of(None, None, None, p), ProbeState::EndedWell);
        use ProbeState::*;
        assert_eq!(judge_probe(&[EndedWell, EndedWell]), ProbeVerdict::Passed);
        assert_eq!(judge_probe(&[EndedWell, InFlight]), ProbeVerdict::Pending);
        assert_eq!(judge_probe(&[NotRetried]), ProbeVerdict::Pending);
        assert_eq!(judge_probe(&[InFlight, ProviderFailed]), ProbeVerdict::Failed);
    }
}
