//! BatchWriteItem in requests of at most 25 items, a bounded number in flight, retrying
//! `UnprocessedItems` with exponential backoff.

use crate::error::{ArcError, Result};
use crate::records::Item;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::time::Duration;

/// DynamoDB's per-request limit.
pub const BATCH_LIMIT: usize = 25;
/// Requests in flight at once.
pub const BATCH_CONCURRENCY: usize = 4;
/// Attempts per chunk before giving up with `DependencyUnavailable`.
const MAX_ATTEMPTS: u32 = 8;

/// Puts every item into `table`. The items are drawn from `items` 25 at a time as requests
/// go out, so only the requests in flight are held in memory (a 10,000-task run is never
/// materialized as 10,000 items at once).
pub async fn batch_put<I>(db: &Client, table: &str, items: I) -> Result<()>
where
    I: IntoIterator<Item = Item>,
{
    let mut items = items.into_iter();
    let chunks = std::iter::from_fn(move || {
        let chunk: Vec<Item> = items.by_ref().take(BATCH_LIMIT).collect();
        (!chunk.is_empty()).then_some(chunk)
    });
    stream::iter(chunks)
        .map(|chunk| async move { write_chunk(db, table, requests(chunk)?).await })
        .buffer_unordered(super::concurrency(BATCH_CONCURRENCY))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// One chunk's put requests.
fn requests(chunk: Vec<Item>) -> Result<Vec<WriteRequest>> {
    chunk
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| ArcError::invalid("item", e.to_string()))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect()
}

async fn write_chunk(db: &Client, table: &str, mut pending: Vec<WriteRequest>) -> Result<()> {
    let mut attempt = 0u32;
    while !pending.is_empty() {
        if attempt > 0 {
            let backoff = Duration::from_millis(50u64 << attempt.min(6));
            tracing::warn!(table, unprocessed = pending.len(), attempt, "retrying unprocessed batch items");
            tokio::time::sleep(backoff).await;
        }
        attempt += 1;
        let out = db
            .batch_write_item()
            .request_items(table, pending.clone())
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("BatchWriteItem", e));
        match out {
            Ok(out) => {
                pending = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
            }
            Err(e @ ArcError::DependencyUnavailable { .. }) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(table, error = %e, attempt, "batch write throttled");
            }
            Err(e) => return Err(e),
        }
        if !pending.is_empty() && attempt >= MAX_ATTEMPTS {
            return Err(ArcError::DependencyUnavailable {
                operation: "BatchWriteItem".into(),
                message: format!("{} items still unprocessed after {attempt} attempts", pending.len()),
            });
        }
    }
    Ok(())
}
