//! Finding work: tasks by status through `status-index` (paginated), or a run's own
//! partition. `status` is a reserved word: every expression names it as `#status`.

use arc_shared::records::{s, Item, TaskRecord};
use arc_shared::status::TaskStatus;
use arc_shared::store::{Tables, STATUS_INDEX};
use arc_shared::ArcError;

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
            .await
            .map_err(|e| ArcError::from_sdk("Query status-index", e))?;
        out.items.unwrap_or_default().into_iter().for_each(|item| found.push(item));
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(found),
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
