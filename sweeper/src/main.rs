//! The `sweeper` Lambda: parse the event, sweep, return the summary.

use arc_sweeper::{parse_request, sweep, SweepDeps};

// One thread: the function's work is I/O, and a single-threaded runtime spares it the
// cross-thread wake-ups a multi-threaded one pays per request (BENCHMARKS.md, "CPU").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // STATE_MACHINE_ARN is required by the sweeper only: fail at cold start, naming it.
    if let Err(e) = arc_shared::Config::from_env().and_then(|c| c.require_state_machine_arn().map(|_| ())) {
        eprintln!("sweeper cold start failed: {e}");
        return Err(e.into());
    }
    arc_shared::runtime::run("sweeper", |env, event| async move {
        let request = parse_request(event)?;
        let deps = SweepDeps::from_env(&env)?;
        Box::pin(sweep(&deps, request)).await
    })
    .await
}
