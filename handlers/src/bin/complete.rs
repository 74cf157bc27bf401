//! The `complete` Lambda: see `arc_handlers::complete` for its contract.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("complete", arc_handlers::complete::handle).await
}
