//! The `initialize` Lambda: see `arc_handlers::initialize` for its contract.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("initialize", arc_handlers::initialize::handle).await
}
