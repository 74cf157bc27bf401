//! arc-shared: the model crate every arc-orchestrator function uses.
//!
//! Pure domain rules (ids, statuses, backoff, failure accounting, aggregation math) sit in
//! their own modules with unit and property tests; `store` is the one AWS adapter layer;
//! `runtime` is the common Lambda entry point.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod class;
pub mod config;
pub mod contracts;
pub mod error;
pub mod failure;
pub mod ids;
pub mod input;
pub mod json;
pub mod metrics;
pub mod records;
pub mod runtime;
pub mod status;
pub mod store;
pub mod time;

pub use config::Config;
pub use error::{ArcError, Result};
