//! arc-cli: the operator CLI (`arcctl`) and the local benchmark-run lifecycle (`arc-local`).
//!
//! `ctl` holds the operator commands (read the tables, sweep locally or through the deployed
//! sweeper); `local` stands in for Step Functions and Batch on a laptop and drives the real
//! handler and sweeper code against the local emulator. `exit`, `progress`, `table` and `view`
//! are shared; `aws` holds the calls to the services only the CLI uses.

pub mod aws;
pub mod ctl;
pub mod exit;
pub mod local;
pub mod progress;
pub mod table;
pub mod view;
