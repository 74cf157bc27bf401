//! Configuration, read once at cold start. A malformed value fails there, naming the variable.

use crate::class::{parse_patterns, ClassRules};
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::time::Duration;

/// Everything the functions read from the environment (docs/ARCHITECTURE.md, "Configuration").
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub runs_table: String,
    pub tasks_table: String,
    pub s3_bucket: Option<String>,
    pub max_retries: u32,
    pub cloudwatch_namespace: String,
    pub state_machine_arn: Option<String>,
    pub backoff: BackoffConfig,
    pub sweeper_max_tasks: usize,
    /// `SWEEPER_MAX_AGE_HOURS`: a failure older than this is not retried automatically.
    pub sweeper_max_age: Duration,
    pub non_retryable_errors: BTreeSet<String>,
    /// `ARC_CONCURRENCY`: at most this many AWS requests of one operation in flight at once
    /// (each operation's own bound otherwise: 4 batch writes, 16 item writes, 8 run reads).
    pub concurrency: Option<usize>,
    /// `ARC_ATTEMPT_TIMEOUT_SECONDS`: each AWS request attempt gives up after this long
    /// (default `store::ATTEMPT_TIMEOUT`, 10 s).
    pub attempt_timeout: Option<Duration>,
    /// `INFRA_MAX_RETRIES`: infrastructure failures a task is spared before they count.
    pub infra_max_retries: u32,
    /// `FAILURE_CLASS_*`: how failures are classified.
    pub class_rules: ClassRules,
    /// `RUN_MAX_COST_USD`: the budget of a run whose Initialize input gives none.
    pub run_max_cost_usd: Option<Decimal>,
    /// `BREAKERS_TABLE`: the sweeper's circuit breakers, one item per config.
    pub breakers_table: String,
    /// `SWEEPER_BREAKER_*`.
    pub breaker: BreakerConfig,
}

/// When the sweeper's per-config circuit breaker opens, how long it stays open, how it probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// `SWEEPER_BREAKER_MIN_FAILURES`: provider failures in the window before it may open.
    pub min_failures: u64,
    /// `SWEEPER_BREAKER_FAILURE_RATIO`: provider failures ÷ tasks of the config that ended in
    /// the window, at least this.
    pub failure_ratio: f64,
    /// `SWEEPER_BREAKER_WINDOW_SECONDS`: how far back failures and completions are counted.
    pub window: Duration,
    /// `SWEEPER_BREAKER_COOLDOWN_SECONDS`: open this long before a probe; doubles on each
    /// re-open.
    pub cooldown: Duration,
    /// `SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS`: the doubling stops here.
    pub max_cooldown: Duration,
    /// `SWEEPER_BREAKER_PROBE_TASKS`: tasks a half-open breaker retries.
    pub probe_tasks: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            min_failures: 10,
            failure_ratio: 0.5,
            window: Duration::from_secs(1800),
            cooldown: Duration::from_secs(900),
            max_cooldown: Duration::from_secs(14_400),
            probe_tasks: 5,
        }
    }
}

/// The retry backoff: due at `last_error_at + min(max, base * 2^(retry_count-1))` × jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { base_delay: Duration::from_secs(300), max_delay: Duration::from_secs(21_600) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable}={value:?}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let name = |k: &str, default: &str| -> Result<String, ConfigError> {
            let v = get(k).unwrap_or_else(|| default.to_owned());
            if v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && v.len() >= 3
                && v.len() <= 255
            {
                Ok(v)
            } else {
                Err(err(k, &v, "a DynamoDB table name is 3-255 characters of [A-Za-z0-9_.-]"))
            }
        };
        let number = |k: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match get(k) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    Ok(_) => Err(err(k, &v, &format!("must be between {min} and {max}"))),
                    Err(_) => Err(err(k, &v, "must be a whole number")),
                },
            }
        };
        let base = number("SWEEPER_BASE_DELAY_SECONDS", 300, 1, 30 * 86_400)?;
        let max = number("SWEEPER_MAX_DELAY_SECONDS", 21_600, 1, 30 * 86_400)?;
        if max < base {
            return Err(err(
                "SWEEPER_MAX_DELAY_SECONDS",
                &max.to_string(),
                &format!("must be at least SWEEPER_BASE_DELAY_SECONDS ({base})"),
            ));
        }
        let state_machine_arn = match get("STATE_MACHINE_ARN") {
            Some(v) if !v.starts_with("arn:") || v.split(':').count() < 7 => {
                return Err(err(
                    "STATE_MACHINE_ARN",
                    &v,
                    "must be a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)",
                ))
            }
            other => other,
        };
        let cooldown = number("SWEEPER_BREAKER_COOLDOWN_SECONDS", 900, 60, 86_400)?;
        let max_cooldown = number("SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS", 14_400, 60, 7 * 86_400)?;
        if max_cooldown < cooldown {
            return Err(err(
                "SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS",
                &max_cooldown.to_string(),
                &format!("must be at least SWEEPER_BREAKER_COOLDOWN_SECONDS ({cooldown})"),
            ));
        }
        let failure_ratio = match get("SWEEPER_BREAKER_FAILURE_RATIO") {
            None => 0.5,
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1.0 => r,
                _ => return Err(err("SWEEPER_BREAKER_FAILURE_RATIO", &v, "must be a number above 0 and at most 1")),
            },
        };
        let breaker = BreakerConfig {
            min_failures: number("SWEEPER_BREAKER_MIN_FAILURES", 10, 1, 100_000)?,
            failure_ratio,
            window: Duration::from_secs(number("SWEEPER_BREAKER_WINDOW_SECONDS", 1800, 60, 86_400)?),
            cooldown: Duration::from_secs(cooldown),
            max_cooldown: Duration::from_secs(max_cooldown),
            probe_tasks: number("SWEEPER_BREAKER_PROBE_TASKS", 5, 1, 100)? as usize,
        };
        let run_max_cost_usd = match get("RUN_MAX_COST_USD") {
            None => None,
            Some(v) => Some(crate::budget::parse_usd(&v).ok_or_else(|| {
                err("RUN_MAX_COST_USD", &v, "must be a positive number of US dollars (unset: no limit)")
            })?),
        };
        let mut class_rules = ClassRules::default();
        if let Some(v) = get("FAILURE_CLASS_INFRA_EXIT_CODES") {
            class_rules.infra_exit_codes = v
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    c.parse::<i64>()
                        .map_err(|_| err("FAILURE_CLASS_INFRA_EXIT_CODES", &v, "must be comma-separated whole numbers"))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("FAILURE_CLASS_INFRA_PATTERNS") {
            class_rules.infra_patterns = parse_patterns(&v);
        }
        if let Some(v) = get("FAILURE_CLASS_PROVIDER_PATTERNS") {
            class_rules.provider_patterns = parse_patterns(&v);
        }
        Ok(Self {
            infra_max_retries: number("INFRA_MAX_RETRIES", 5, 0, 100)? as u32,
            class_rules,
            run_max_cost_usd,
            breakers_table: name("BREAKERS_TABLE", "arc_config_breakers")?,
            breaker,
            runs_table: name("RUNS_TABLE", "arc_benchmark_runs")?,
            tasks_table: name("TASKS_TABLE", "arc_task_progress")?,
            s3_bucket: get("S3_BUCKET"),
            max_retries: number("MAX_RETRIES", 3, 1, 100)? as u32,
            cloudwatch_namespace: get("CLOUDWATCH_NAMESPACE").unwrap_or_else(|| "ArcBenchmark".to_owned()),
            state_machine_arn,
            backoff: BackoffConfig { base_delay: Duration::from_secs(base), max_delay: Duration::from_secs(max) },
            sweeper_max_tasks: number("SWEEPER_MAX_TASKS", 1000, 1, 100_000)? as usize,
            sweeper_max_age: Duration::from_secs(number("SWEEPER_MAX_AGE_HOURS", 72, 1, 8760)? * 3600),
            non_retryable_errors: get("NON_RETRYABLE_ERRORS")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            concurrency: match get("ARC_CONCURRENCY") {
                None => None,
                Some(_) => Some(number("ARC_CONCURRENCY", 16, 1, 64)? as usize),
            },
            attempt_timeout: match get("ARC_ATTEMPT_TIMEOUT_SECONDS") {
                None => None,
                Some(_) => Some(Duration::from_secs(number("ARC_ATTEMPT_TIMEOUT_SECONDS", 10, 1, 300)?)),
            },
        })
    }

    /// The sweeper's state machine, required for it (and only for it).
    pub fn require_state_machine_arn(&self) -> Result<&str, ConfigError> {
        self.state_machine_arn.as_deref().ok_or_else(|| err("STATE_MACHINE_ARN", "", "is required by the sweeper"))
    }
}

fn err(variable: &str, value: &str, message: &str) -> ConfigError {
    ConfigError { variable: variable.to_owned(), value: value.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_python_set() {
        let c = with(&[]).unwrap();
        assert_eq!(c.runs_table, "arc_benchmark_runs");
        assert_eq!(c.tasks_table, "arc_task_progress");
        assert_eq!(c.s3_bucket, None);
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.cloudwatch_namespace, "ArcBenchmark");
        assert_eq!(c.backoff, BackoffConfig::default());
        assert_eq!(c.sweeper_max_tasks, 1000);
        assert_eq!(c.sweeper_max_age, Duration::from_secs(72 * 3600));
        assert!(c.non_retryable_errors.is_empty());
        assert!(c.require_state_machine_arn().is_err());
        assert_eq!(c.infra_max_retries, 5);
        assert_eq!(c.class_rules, ClassRules::default());
        assert_eq!(c.run_max_cost_usd, None);
        assert_eq!(c.breakers_table, "arc_config_breakers");
        assert_eq!(c.breaker, BreakerConfig::default());
    }

    #[test]
    fn breaker_budget_and_class_settings() {
        let c = with(&[
            ("SWEEPER_BREAKER_FAILURE_RATIO", "0.8"),
            ("SWEEPER_BREAKER_PROBE_TASKS", "2"),
            ("RUN_MAX_COST_USD", "12.50"),
            ("FAILURE_CLASS_INFRA_EXIT_CODES", "137, 143"),
            ("FAILURE_CLASS_PROVIDER_PATTERNS", "Gateway Said No"),
        ])
        .unwrap();
        assert_eq!((c.breaker.failure_ratio, c.breaker.probe_tasks), (0.8, 2));
        assert_eq!(c.run_max_cost_usd, Some(Decimal::new(1250, 2)));
        assert_eq!(c.class_rules.infra_exit_codes.iter().copied().collect::<Vec<_>>(), vec![137, 143]);
        assert_eq!(c.class_rules.provider_patterns, vec!["gateway said no"]);
        for (k, v) in [
            ("SWEEPER_BREAKER_FAILURE_RATIO", "0"),
            ("SWEEPER_BREAKER_FAILURE_RATIO", "1.5"),
            ("SWEEPER_BREAKER_PROBE_TASKS", "0"),
            ("RUN_MAX_COST_USD", "-1"),
            ("RUN_MAX_COST_USD", "lots"),
            ("FAILURE_CLASS_INFRA_EXIT_CODES", "1,x"),
            ("INFRA_MAX_RETRIES", "101"),
        ] {
            assert_eq!(with(&[(k, v)]).unwrap_err().variable, k, "{k}={v}");
        }
        let e = with(&[("SWEEPER_BREAKER_COOLDOWN_SECONDS", "600"), ("SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS", "300")])
            .unwrap_err();
        assert_eq!(e.variable, "SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let e = with(&[("MAX_RETRIES", "abc")]).unwrap_err();
        assert_eq!(e.variable, "MAX_RETRIES");
        assert!(e.to_string().contains("MAX_RETRIES"), "{e}");
        assert_eq!(with(&[("SWEEPER_MAX_TASKS", "-1")]).unwrap_err().variable, "SWEEPER_MAX_TASKS");
        assert_eq!(with(&[("MAX_RETRIES", "0")]).unwrap_err().variable, "MAX_RETRIES");
        assert_eq!(with(&[("SWEEPER_MAX_AGE_HOURS", "0")]).unwrap_err().variable, "SWEEPER_MAX_AGE_HOURS");
        assert_eq!(with(&[("RUNS_TABLE", "a b")]).unwrap_err().variable, "RUNS_TABLE");
        assert_eq!(with(&[("STATE_MACHINE_ARN", "sm")]).unwrap_err().variable, "STATE_MACHINE_ARN");
        let e = with(&[("SWEEPER_BASE_DELAY_SECONDS", "600"), ("SWEEPER_MAX_DELAY_SECONDS", "60")]).unwrap_err();
        assert_eq!(e.variable, "SWEEPER_MAX_DELAY_SECONDS");
    }

    #[test]
    fn lists_and_overrides() {
        let c = with(&[
            ("NON_RETRYABLE_ERRORS", "InvalidTask, BadConfig,,"),
            ("S3_BUCKET", "results"),
            ("MAX_RETRIES", "5"),
            ("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:arc"),
        ])
        .unwrap();
        assert_eq!(c.non_retryable_errors.iter().cloned().collect::<Vec<_>>(), vec!["BadConfig", "InvalidTask"]);
        assert_eq!(c.s3_bucket.as_deref(), Some("results"));
        assert_eq!(c.max_retries, 5);
        assert!(c.require_state_machine_arn().is_ok());
    }
}
