//! The four Step Functions task Lambdas. Each module reads top to bottom as the contract it
//! serves (docs/ARCHITECTURE.md, "Contracts"): parse the event, decide, write, answer.

pub mod aggregate;
pub mod complete;
pub mod handle_error;
pub mod initialize;
