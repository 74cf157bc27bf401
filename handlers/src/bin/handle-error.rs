//! The `handle-error` Lambda: see `arc_handlers::handle_error` for its contract.

// One thread: the function's work is I/O, and a single-threaded runtime spares it the
// cross-thread wake-ups a multi-threaded one pays per request (BENCHMARKS.md, "CPU").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("handle-error", arc_handlers::handle_error::handle).await
}
