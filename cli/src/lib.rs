//! arc-cli: the operator CLI (`arcctl`) and the local benchmark-run lifecycle (`arc-local`).
//!
//! `ctl` holds the operator commands (read the tables, sweep locally or through the deployed
//! sweeper); `local` stands in for Step Functions and Batch on a laptop and drives the real
//! handler and sweeper code against the local emulator. `exit`, `table` and `view` are shared.

pub mod ctl;
pub mod exit;
pub mod local;
pub mod table;
pub mod view;
