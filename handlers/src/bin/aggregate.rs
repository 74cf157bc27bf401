//! The `aggregate` Lambda: see `arc_handlers::aggregate` for its contract.

// One thread: the function's work is I/O, and a single-threaded runtime spares it the
// cross-thread wake-ups a multi-threaded one pays per request (BENCHMARKS.md, "CPU").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("aggregate", arc_handlers::aggregate::handle).await
}
