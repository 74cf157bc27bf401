//! The `handle-error` Lambda: see `arc_handlers::handle_error` for its contract.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("handle-error", arc_handlers::handle_error::handle).await
}
