//! The operators' and tools' table operations, outside a run's own lifecycle: listing runs,
//! reading and backfilling the runs' roll-ups (`arcctl doctor` / `arcctl migrate
//! backfill-runs`), and the scoring write (`is_correct`) that `arc-local` stands in for.
//! Every attribute is named through ExpressionAttributeNames.

use super::{Tables, UpdateExpr, CONFIG_INDEX};
use crate::error::{ArcError, Result};
use crate::records::{n, s, Item, RUN_ROLLUPS};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One page of a Query or Scan, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

impl Page {
    fn new(items: Option<Vec<Item>>, last: Option<Item>) -> Self {
        Self { items: items.unwrap_or_default(), next: last.filter(|k| !k.is_empty()) }
    }
}

/// What a run item of [`Tables::rollups_page`] lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupGaps {
    /// `None`: the item has no string `run_id`.
    pub run_id: Option<String>,
    /// Roll-ups it does not have (or has as NULL).
    pub missing: Vec<&'static str>,
    /// Roll-ups it has as something else than a number (nothing can add to them).
    pub not_numbers: Vec<&'static str>,
}

/// Which roll-ups a run item lacks, and which it has as something else than a number.
pub fn rollup_gaps(item: &Item) -> RollupGaps {
    let run_id = match item.get("run_id") {
        Some(AttributeValue::S(id)) => Some(id.clone()),
        _ => None,
    };
    let mut gaps = RollupGaps { run_id, missing: Vec::new(), not_numbers: Vec::new() };
    for r in RUN_ROLLUPS {
        match item.get(r) {
            None | Some(AttributeValue::Null(_)) => gaps.missing.push(r),
            Some(AttributeValue::N(_)) => {}
            Some(_) => gaps.not_numbers.push(r),
        }
    }
    gaps
}

impl Tables {
    /// DescribeTable of `table` (`None` when it does not exist).
    pub async fn table_description(&self, table: &str) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
        super::schema::describe_table(&self.db, table).await
    }

    /// One page of at most `limit` runs after `start`: of `config`, newest first, through
    /// `config-created-index`; without one, of a table scan (in no particular order).
    pub async fn runs_page(&self, config: Option<&str>, limit: i32, start: Option<Item>) -> Result<Page> {
        match config {
            Some(c) => {
                let out = self
                    .db
                    .query()
                    .table_name(&self.runs)
                    .index_name(CONFIG_INDEX)
                    .key_condition_expression("#config_name = :config_name")
                    .expression_attribute_names("#config_name", "config_name")
                    .expression_attribute_values(":config_name", s(c))
                    .scan_index_forward(false)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| ArcError::from_sdk("Query runs config-created-index", e))?;
                Ok(Page::new(out.items, out.last_evaluated_key))
            }
            None => self.scan_runs(limit, start, None).await,
        }
    }

    /// One page of a scan of the runs table reading only `run_id` and the roll-ups
    /// (`RUN_ROLLUPS`): at most `limit` runs after `start`.
    pub async fn rollups_page(&self, limit: i32, start: Option<Item>) -> Result<Page> {
        let attrs = || std::iter::once("run_id").chain(RUN_ROLLUPS);
        let names: HashMap<String, String> = attrs().map(|a| (format!("#{a}"), a.to_owned())).collect();
        let projection = attrs().map(|a| format!("#{a}")).collect::<Vec<_>>().join(", ");
        self.scan_runs(limit, start, Some((projection, names))).await
    }

    /// One page of a Scan of the runs table, reading only `projection` (with its attribute
    /// names) when given.
    async fn scan_runs(
        &self,
        limit: i32,
        start: Option<Item>,
        projection: Option<(String, HashMap<String, String>)>,
    ) -> Result<Page> {
        let (projection, names) = projection.unzip();
        let out = self
            .db
            .scan()
            .table_name(&self.runs)
            .set_projection_expression(projection)
            .set_expression_attribute_names(names)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ArcError::from_sdk(&format!("Scan {}", self.runs), e))?;
        Ok(Page::new(out.items, out.last_evaluated_key))
    }

    /// Sets each of the roll-ups `missing` that run `run_id` lacks to 0 (what the Python
    /// worker's `SET x = x + :v` needs): `Ok(false)` when the run does not exist (nothing is
    /// created).
    pub async fn zero_missing_rollups(&self, run_id: &str, missing: &[&str]) -> Result<bool> {
        let update = missing.iter().fold(UpdateExpr::new(), |u, r| u.set_if_missing(r, n(0))).exists("run_id");
        self.update_if(&self.runs, Self::run_key(run_id), update, "UpdateItem runs (backfill)").await
    }

    /// Scoring: sets `is_correct` on an existing task (`Ok(false)`: no such task).
    pub async fn set_task_correct(&self, run_id: &str, task_id: &str, correct: bool) -> Result<bool> {
        let update = UpdateExpr::new().set("is_correct", AttributeValue::Bool(correct)).exists("run_id");
        self.update_if(&self.tasks, Self::task_key(run_id, task_id), update, "UpdateItem tasks (scoring)").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_gaps_tell_missing_from_not_a_number() {
        let item: Item = [
            ("run_id", s("r")),
            ("completed_tasks", n(1)),
            ("failed_tasks", n(0)),
            ("total_cost_usd", s("0.5")),
            ("total_input_tokens", AttributeValue::Null(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let gaps = rollup_gaps(&item);
        assert_eq!(gaps.run_id.as_deref(), Some("r"));
        assert_eq!(gaps.missing, ["total_input_tokens", "total_output_tokens"]);
        assert_eq!(gaps.not_numbers, ["total_cost_usd"]);
        assert_eq!(rollup_gaps(&Item::new()).run_id, None);
    }

    #[test]
    fn empty_last_keys_end_the_listing() {
        assert!(Page::new(None, Some(Item::new())).next.is_none());
        assert!(Page::new(None, Some(Tables::run_key("r"))).next.is_some());
    }
}
