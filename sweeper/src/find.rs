//! Finding work: tasks by status through `status-index` (paginated), or a run's own
//! partition. `status` is a reserved word: every expression names it as `#status`.

use arc_shared::error::describe_sdk_error;
use arc_shared::records::{s, Item, TaskRecord};
use arc_shared::status::TaskStatus;
use arc_shared::store::{Tables, STATUS_INDEX};
use arc_shared::ArcError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::QueryError;

/// Tasks read, and the items that could not be read as tasks (reported, not fatal).
#[derive(Debug, Default)]
pub struct Found {
    pub tasks: Vec<TaskRecord>,
    pub corrupt: Vec<ArcError>,
}

impl Found {
    fn push(&mut self, item: Item) {
        match TaskRecord::from_item(item) {
            Ok(t) => self.tasks.push(t),
            Err(e) => self.corrupt.push(e),
        }
    }
}

/// Tasks whose status is `status` (and, when given, `updated_at <= cutoff` and only the
/// attributes in `projection`), through `status-index`, every page.
pub async fn by_status(
    tables: &Tables,
    status: &TaskStatus,
    cutoff: Option<&str>,
    projection: Option<&str>,
) -> Result<Found, ArcError> {
    let mut found = Found::default();
    let mut start: Option<Item> = None;
    let key = match cutoff {
        Some(_) => "#status = :status AND updated_at <= :cutoff",
        None => "#status = :status",
    };
    loop {
        let out = tables
            .db
            .query()
            .table_name(&tables.tasks)
            .index_name(STATUS_INDEX)
            .key_condition_expression(key)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(
                [(":status".to_owned(), s(status.as_str()))]
                    .into_iter()
                    .chain(cutoff.map(|c| (":cutoff".to_owned(), s(c))))
                    .collect(),
            ))
            .set_projection_expression(projection.map(str::to_owned))
            .set_exclusive_start_key(start.take())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err(query_error(tables, e).await),
        };
        out.items.unwrap_or_default().into_iter().for_each(|item| found.push(item));
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(found),
        }
    }
}

/// Whether a failed Query may mean that the index does not exist: DynamoDB answers a query on
/// a missing index with a ValidationException (and some emulators with ResourceNotFound).
fn may_be_missing_index(e: &SdkError<QueryError, HttpResponse>) -> bool {
    e.as_service_error()
        .is_some_and(|se| se.is_resource_not_found_exception() || se.code() == Some("ValidationException"))
}

/// The error of a failed status-index Query: `IndexMissing` when the tasks table exists
/// without `status-index` (a table created by the Python set's definitions), else the
/// Query's own error.
async fn query_error(tables: &Tables, e: SdkError<QueryError, HttpResponse>) -> ArcError {
    let maybe_missing = may_be_missing_index(&e);
    let original = ArcError::from_sdk("Query status-index", e);
    if !maybe_missing {
        return original;
    }
    match tables.db.describe_table().table_name(&tables.tasks).send().await {
        Ok(out) => {
            let has_index = out
                .table()
                .map(|t| t.global_secondary_indexes().iter().any(|g| g.index_name() == Some(STATUS_INDEX)))
                .unwrap_or(false);
            if has_index {
                original
            } else {
                ArcError::IndexMissing { table: tables.tasks.clone(), index: STATUS_INDEX.to_owned() }
            }
        }
        Err(d) => {
            tracing::warn!(
                table = %tables.tasks,
                error = %describe_sdk_error(&d),
                "Query status-index failed; DescribeTable could not tell whether the index exists"
            );
            original
        }
    }
}

/// Every task of one run (strongly consistent), every page.
pub async fn run_partition(tables: &Tables, run_id: &str) -> Result<Found, ArcError> {
    let mut found = Found::default();
    tables
        .for_each_task_item(run_id, |item| {
            found.push(item);
            Ok(())
        })
        .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
    use aws_smithy_types::body::SdkBody;

    fn query_failed(status: u16, err: QueryError) -> SdkError<QueryError, HttpResponse> {
        SdkError::service_error(err, HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()))
    }

    fn generic(code: &str) -> QueryError {
        QueryError::generic(ErrorMetadata::builder().code(code).message("x").build())
    }

    #[test]
    fn a_missing_index_is_suspected_by_error_kind_only() {
        assert!(may_be_missing_index(&query_failed(400, generic("ValidationException"))));
        let not_found = QueryError::ResourceNotFoundException(ResourceNotFoundException::builder().build());
        assert!(may_be_missing_index(&query_failed(400, not_found)));
        assert!(!may_be_missing_index(&query_failed(400, generic("AccessDeniedException"))));
        assert!(!may_be_missing_index(&query_failed(500, generic("InternalServerError"))));
    }
}
