//! Exit codes scripts can rely on, and the one error type of both binaries.

use arc_shared::ArcError;
use std::fmt;

/// Success.
pub const OK: i32 = 0;
/// Any other failure (AWS unreachable, permissions, a corrupt item, …).
pub const FAILED: i32 = 1;
/// Bad arguments or missing required configuration (clap exits with 2 on its own errors too).
pub const USAGE: i32 = 2;
/// The run (or task) named does not exist.
pub const NOT_FOUND: i32 = 3;
/// `arc-local`: the lifecycle finished but its accounting does not add up.
pub const ACCOUNTING: i32 = 4;

/// Why a command failed; its exit code follows from the kind.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    NotFound(String),
    Failed(String),
    Accounting(Vec<String>),
}

impl CliError {
    pub fn code(&self) -> i32 {
        match self {
            Self::Usage(_) => USAGE,
            Self::NotFound(_) => NOT_FOUND,
            Self::Failed(_) => FAILED,
            Self::Accounting(_) => ACCOUNTING,
        }
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) | Self::NotFound(m) | Self::Failed(m) => f.write_str(m),
            Self::Accounting(problems) => {
                write!(f, "accounting does not add up ({} problems):", problems.len())?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ArcError> for CliError {
    fn from(e: ArcError) -> Self {
        match e {
            ArcError::RunNotFound(_) | ArcError::TaskNotFound { .. } => Self::NotFound(e.to_string()),
            ArcError::InvalidInput { .. } => Self::Usage(e.to_string()),
            other => Self::Failed(format!("{} ({})", other, other.error_type())),
        }
    }
}

impl From<arc_shared::config::ConfigError> for CliError {
    fn from(e: arc_shared::config::ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

/// Prints `text` and a newline on stdout. A closed pipe (`arcctl runs list | head`) ends the
/// output quietly instead of panicking like `println!`.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        std::process::exit(OK);
    }
}

/// Prints `err` on stderr as `<program>: error: …` and returns its exit code.
pub fn report(program: &str, err: &CliError) -> i32 {
    let kind = match err {
        CliError::NotFound(_) => "not found",
        CliError::Usage(_) => "usage",
        _ => "error",
    };
    eprintln!("{program}: {kind}: {err}");
    err.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arc_errors_map_to_stable_exit_codes() {
        assert_eq!(CliError::from(ArcError::RunNotFound("r".into())).code(), NOT_FOUND);
        assert_eq!(CliError::from(ArcError::task_not_found("r", "t")).code(), NOT_FOUND);
        assert_eq!(CliError::from(ArcError::invalid("run_id", "bad")).code(), USAGE);
        assert_eq!(CliError::from(ArcError::Conflict("x".into())).code(), FAILED);
        assert_eq!(CliError::Accounting(vec!["x".into()]).code(), ACCOUNTING);
        let e = CliError::from(ArcError::IndexMissing { table: "tasks".into(), index: "status-index".into() });
        assert_eq!(e.code(), FAILED);
        assert!(e.to_string().contains("run: arcctl migrate status-index (IndexMissing)"), "{e}");
    }
}
