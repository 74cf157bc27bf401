//! The `aggregate` Lambda: see `arc_handlers::aggregate` for its contract.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arc_shared::runtime::run("aggregate", arc_handlers::aggregate::handle).await
}
