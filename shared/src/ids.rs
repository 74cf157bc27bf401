//! Validated identifiers: parsed once at the edge, trusted everywhere after.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError(pub String);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(value: &str, what: &str, max: usize, allowed: impl Fn(char) -> bool, charset: &str) -> Result<(), IdError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(IdError(format!("{what} must not be empty")));
    }
    if len > max {
        return Err(IdError(format!("{what} is {len} characters long; at most {max} allowed")));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(IdError(format!("{what} {value:?} contains {bad:?}; allowed: {charset}")));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr, $charset:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value, $what, $max, $allowed, $charset)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn is_task_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}
fn is_config_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}
fn is_run_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
}

id_type!(
    /// An ARC task id: 1–100 characters of `[A-Za-z0-9_-]`.
    TaskId, "task id", 100, is_task_char, "[A-Za-z0-9_-]"
);
id_type!(
    /// A model configuration name: 1–128 characters of `[A-Za-z0-9._-]`.
    ConfigName, "config_name", 128, is_config_char, "[A-Za-z0-9._-]"
);
id_type!(
    /// A run id, `run-{config_name}-{YYYYMMDD-HHMMSS}-{8 hex}` when this product made it;
    /// runs made by other tools are accepted when they are 1–256 characters of `[A-Za-z0-9._:-]`.
    RunId, "run_id", 256, is_run_char, "[A-Za-z0-9._:-]"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_follow_the_charset_and_length() {
        assert!(TaskId::parse("00576224").is_ok());
        assert!(TaskId::parse("a_b-C").is_ok());
        assert!(TaskId::parse("").is_err());
        assert!(TaskId::parse("a.b").is_err());
        assert!(TaskId::parse("x".repeat(100)).is_ok());
        assert!(TaskId::parse("x".repeat(101)).is_err());
    }

    #[test]
    fn config_names_allow_dots_up_to_128() {
        assert!(ConfigName::parse("gpt-4.1_mini").is_ok());
        assert!(ConfigName::parse("a b").is_err());
        assert!(ConfigName::parse("é").is_err());
        assert!(ConfigName::parse("c".repeat(128)).is_ok());
        assert!(ConfigName::parse("c".repeat(129)).is_err());
    }

    #[test]
    fn error_names_the_offending_character() {
        let err = TaskId::parse("ab/c").unwrap_err();
        assert!(err.0.contains("'/'"), "{err}");
    }
}
