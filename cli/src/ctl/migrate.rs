//! `arcctl migrate`: brings the tables of a Python-set deployment to what this product needs.
//!
//! - `status-index`: adds the tasks table's GSI `status-index` (`status` / `updated_at`,
//!   projection ALL) that the sweeper queries, and waits until DynamoDB has built it.
//! - `backfill-runs`: gives every run item the roll-ups (`RUN_ROLLUPS`) the Python worker's
//!   `SET x = x + :v` needs, as 0 where missing; never creates an item.
//!
//! Both are idempotent: rerunning after an interruption (or on a migrated table) is safe.

use super::runs::json_text;
use super::tables::{self, STATUS_INDEX_SPEC};
use super::Ctx;
use crate::exit::{emit, CliError};
use crate::progress::{elapsed, StatusLine};
use crate::table::Table;
use arc_shared::store::admin::rollup_gaps;
use arc_shared::store::schema::{self, describe_table, NewIndex};
use arc_shared::store::Tables;
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::{ScalarAttributeType, TableDescription};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};

/// Options of `migrate status-index`.
#[derive(Debug, Clone)]
pub struct StatusIndexOptions {
    /// Give up waiting for ACTIVE after this long (DynamoDB goes on building the index).
    pub timeout: Duration,
    /// Time between two DescribeTable calls while waiting.
    pub poll: Duration,
    /// Delete an existing status-index of the wrong shape and build it again.
    pub recreate: bool,
}

/// Options of `migrate backfill-runs`.
#[derive(Debug, Clone, Default)]
pub struct BackfillOptions {
    pub dry_run: bool,
    /// Resume the scan after this run id (the key the progress line printed).
    pub start_after: Option<String>,
}

fn failed(e: ArcError) -> CliError {
    CliError::from(e)
}

// --- status-index ---------------------------------------------------------------------------

/// `arcctl migrate status-index`.
pub async fn status_index(ctx: &Ctx, opts: &StatusIndexOptions) -> Result<(), CliError> {
    let db = &ctx.clients.dynamodb;
    let table = ctx.config.tasks_table.as_str();
    let index = STATUS_INDEX_SPEC.name;
    let t = describe_table(db, table).await.map_err(failed)?.ok_or_else(|| {
        CliError::failed(format!("the tasks table {table} does not exist (TASKS_TABLE); nothing changed"))
    })?;
    if !tables::has_keys(&t, "run_id", Some("task_id")) {
        return Err(CliError::failed(format!(
            "{table} does not look like an arc tasks table: its keys are {}, not run_id (HASH) / task_id (RANGE); \
             nothing changed (check TASKS_TABLE)",
            tables::describe_keys(t.key_schema())
        )));
    }
    for k in [STATUS_INDEX_SPEC.hash, STATUS_INDEX_SPEC.range] {
        if let Some(ty) = tables::attribute_type(&t, k).filter(|ty| **ty != ScalarAttributeType::S) {
            return Err(CliError::failed(format!(
                "{table} declares {k} as type {}, but the index needs it as a string (S); nothing changed",
                ty.as_str()
            )));
        }
    }
    let started = Instant::now();
    let mut created = false;
    let mut t = t;
    if let Some(g) = tables::gsi(&t, index) {
        let status = tables::index_status(g).to_owned();
        match tables::index_problem(&t, g, &STATUS_INDEX_SPEC) {
            None if status == "ACTIVE" => {
                return finish(ctx, table, index, "already there and ACTIVE: nothing to do", false, started);
            }
            None if status == "DELETING" => {
                eprintln!("{index} on {table} is being deleted; waiting until it is gone, then creating it");
                t = wait_index(db, table, Until::Gone, opts, started).await?;
            }
            None => eprintln!("{index} on {table} is {status}: waiting until it is ACTIVE"),
            Some(problem) if !opts.recreate => {
                return Err(CliError::failed(format!(
                    "{index} on {table} {problem}: the sweeper cannot use it. Rerun with --recreate to delete and \
                     rebuild it (sweeps fail with IndexMissing until it is ACTIVE again); nothing changed"
                )));
            }
            Some(problem) => {
                eprintln!("{index} on {table} {problem}: deleting it to build it again");
                schema::delete_index(db, table, index).await.map_err(failed)?;
                t = wait_index(db, table, Until::Gone, opts, started).await?;
            }
        }
    }
    if tables::gsi(&t, index).is_none() {
        create_status_index(db, table, &t).await?;
        created = true;
        eprintln!(
            "{index} requested on {table}; DynamoDB builds it from the existing items while the table stays online"
        );
    }
    wait_index(db, table, Until::Active, opts, started).await?;
    let what = if created { "created and ACTIVE" } else { "ACTIVE" };
    finish(ctx, table, index, what, created, started)
}

fn finish(ctx: &Ctx, table: &str, index: &str, what: &str, created: bool, started: Instant) -> Result<(), CliError> {
    let waited = started.elapsed().as_secs();
    if ctx.json {
        emit(&json_text(
            &json!({"table": table, "index": index, "status": "ACTIVE", "created": created, "seconds": waited}),
        )?);
    } else {
        emit(&format!("{index} on {table}: {what} (after {})", elapsed(started.elapsed())));
    }
    Ok(())
}

/// Adds `status-index` (`status` / `updated_at`, projection ALL); on a provisioned table with
/// the table's own read / write capacity (an on-demand table needs none).
async fn create_status_index(db: &Client, table: &str, t: &TableDescription) -> Result<(), CliError> {
    let capacity = (!tables::on_demand(t)).then(|| tables::provisioned_capacity(t));
    if let Some((read, write)) = capacity {
        eprintln!("{table} is provisioned: the index gets the table's capacity, {read} RCU / {write} WCU");
    }
    let index = NewIndex {
        name: STATUS_INDEX_SPEC.name,
        hash: STATUS_INDEX_SPEC.hash,
        range: STATUS_INDEX_SPEC.range,
        capacity,
    };
    schema::create_index(db, table, t, &index).await.map_err(failed)
}

/// What [`wait_index`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The index is ACTIVE.
    Active,
    /// The index is gone (deleted).
    Gone,
}

/// Reads the table every `opts.poll` until `status-index` is as `until` says, showing its
/// status on stderr; gives up after `opts.timeout` (counted from `started`).
async fn wait_index(
    db: &Client,
    table: &str,
    until: Until,
    opts: &StatusIndexOptions,
    started: Instant,
) -> Result<TableDescription, CliError> {
    let index = STATUS_INDEX_SPEC.name;
    let mut progress = StatusLine::new();
    loop {
        let t = describe_table(db, table).await.map_err(failed)?.ok_or_else(|| {
            CliError::failed(match until {
                Until::Active => format!("{table} disappeared while waiting for {index}"),
                Until::Gone => format!("{table} disappeared while waiting for {index} to be deleted"),
            })
        })?;
        let Some(g) = tables::gsi(&t, index) else {
            progress.done();
            return match until {
                Until::Gone => Ok(t),
                Until::Active => Err(CliError::failed(format!(
                    "{index} disappeared from {table} while waiting (deleted by someone else?): rerun arcctl migrate status-index"
                ))),
            };
        };
        let status = tables::index_status(g).to_owned();
        let mut state = format!("{index} on {table}: IndexStatus {status}");
        if until == Until::Active {
            if let Some(b) = g.backfilling() {
                state.push_str(&format!(", Backfilling {b}"));
            }
            if let Some(n) = g.item_count() {
                state.push_str(&format!(", ItemCount {n}"));
            }
        }
        progress.show(&state, started);
        if until == Until::Active && status == "ACTIVE" {
            progress.done();
            return Ok(t);
        }
        if started.elapsed() >= opts.timeout {
            progress.done();
            return Err(CliError::failed(match until {
                Until::Active => format!(
                    "{index} on {table} is still {status} after {}: DynamoDB goes on building it; \
                     rerun arcctl migrate status-index to wait again",
                    elapsed(started.elapsed())
                ),
                Until::Gone => format!(
                    "{index} on {table} is still being deleted after {}: rerun arcctl migrate status-index --recreate",
                    elapsed(started.elapsed())
                ),
            }));
        }
        tokio::time::sleep(opts.poll).await;
    }
}

// --- backfill-runs --------------------------------------------------------------------------

/// Items read per Scan page (each page ends with a progress line and a resume key).
const BACKFILL_PAGE: i32 = 100;
/// UpdateItem calls at once.
const BACKFILL_CONCURRENCY: usize = 8;

/// One run that lacks roll-ups.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lacking {
    pub run_id: String,
    pub missing: Vec<&'static str>,
    /// `updated`, `would update` (dry run) or `gone` (deleted meanwhile: not created).
    pub action: &'static str,
}

/// What a backfill did.
#[derive(Debug, Default, serde::Serialize)]
pub struct BackfillReport {
    pub dry_run: bool,
    pub scanned: u64,
    pub lacking: u64,
    pub updated: u64,
    pub runs: Vec<Lacking>,
    /// Runs with a roll-up that is not a number (neither the worker nor a backfill can add to
    /// it): `run_id (attributes)`.
    pub not_numbers: Vec<String>,
    /// The last run id scanned (`--start-after` resumes after it).
    pub last_key: Option<String>,
}

/// Scans the runs table and backfills; `progress` gets a line per page.
pub async fn backfill(
    tables: &Tables,
    opts: &BackfillOptions,
    mut progress: impl FnMut(&BackfillReport),
) -> Result<BackfillReport, CliError> {
    let table = tables.runs.as_str();
    let t = tables.table_description(table).await.map_err(failed)?.ok_or_else(|| {
        CliError::failed(format!("the runs table {table} does not exist (RUNS_TABLE); nothing changed"))
    })?;
    if !tables::has_keys(&t, "run_id", None) {
        return Err(CliError::failed(format!(
            "{table} does not look like an arc runs table: its keys are {}, not run_id (HASH); nothing changed (check RUNS_TABLE)",
            tables::describe_keys(t.key_schema())
        )));
    }
    let mut report = BackfillReport { dry_run: opts.dry_run, ..BackfillReport::default() };
    let mut start = opts.start_after.as_deref().map(Tables::run_key);
    loop {
        // Where this page starts: every run before it is done.
        let resume_key = report.last_key.clone().or_else(|| opts.start_after.clone());
        let page = match tables.rollups_page(BACKFILL_PAGE, start.take()).await {
            Ok(p) => p,
            Err(e) => {
                return Err(CliError::failed(format!(
                    "{e} ({}); {} run(s) updated so far; resume with: {}",
                    e.error_type(),
                    report.updated,
                    resume_command(resume_key.as_deref())
                )));
            }
        };
        let mut todo = Vec::new();
        for item in &page.items {
            report.scanned += 1;
            let gaps = rollup_gaps(item);
            let Some(run_id) = gaps.run_id else { continue };
            if !gaps.not_numbers.is_empty() {
                report.not_numbers.push(format!("{run_id} ({})", gaps.not_numbers.join(", ")));
            }
            if !gaps.missing.is_empty() {
                report.lacking += 1;
                todo.push((run_id.clone(), gaps.missing));
            }
            report.last_key = Some(run_id);
        }
        if opts.dry_run {
            report.runs.extend(todo.into_iter().map(|(run_id, missing)| Lacking {
                run_id,
                missing,
                action: "would update",
            }));
        } else {
            let results: Vec<(String, Vec<&'static str>, Result<bool, ArcError>)> = stream::iter(todo)
                .map(|(run_id, missing)| async move {
                    let r = tables.zero_missing_rollups(&run_id, &missing).await;
                    (run_id, missing, r)
                })
                .buffered(BACKFILL_CONCURRENCY)
                .collect()
                .await;
            let mut first_error = None;
            for (run_id, missing, r) in results {
                match r {
                    Ok(true) => {
                        report.updated += 1;
                        report.runs.push(Lacking { run_id, missing, action: "updated" });
                    }
                    Ok(false) => report.runs.push(Lacking { run_id, missing, action: "gone" }),
                    Err(e) => {
                        first_error.get_or_insert(format!("run {run_id}: {e} ({})", e.error_type()));
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(CliError::failed(format!(
                    "{e}; {} run(s) updated so far; resume with: {} (rerunning is safe: backfilled runs are skipped)",
                    report.updated,
                    resume_command(resume_key.as_deref())
                )));
            }
        }
        progress(&report);
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(report),
        }
    }
}

/// The command that resumes a backfill after `key` (from the start without one).
pub fn resume_command(key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arcctl migrate backfill-runs --start-after {k}"),
        None => "arcctl migrate backfill-runs".to_owned(),
    }
}

/// `arcctl migrate backfill-runs`.
pub async fn backfill_runs(ctx: &Ctx, opts: &BackfillOptions) -> Result<(), CliError> {
    let tables = ctx.tables();
    let report = backfill(&tables, opts, |r| {
        let key = r
            .last_key
            .as_deref()
            .map_or(String::new(), |k| format!("; last key run_id={k} (resume: {})", resume_command(Some(k))));
        let verb = if r.dry_run { "would update" } else { "updated" };
        let n = if r.dry_run { r.lacking } else { r.updated };
        eprintln!("backfill-runs: scanned {}, lacking a roll-up {}, {verb} {n}{key}", r.scanned, r.lacking);
    })
    .await?;
    if ctx.json {
        emit(&json_text(&serde_json::to_value(&report).map_err(|e| CliError::failed(format!("report: {e}")))?)?);
    } else {
        emit(&render(&report, &ctx.config.runs_table));
    }
    if report.not_numbers.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{} run(s) have a roll-up that is not a number, which neither the worker nor a backfill can add to; \
             set them by hand: {}",
            report.not_numbers.len(),
            report.not_numbers.join(", ")
        )))
    }
}

/// The report for people: the counts, and in a dry run every run that would be updated.
pub fn render(r: &BackfillReport, table: &str) -> String {
    let mut out = if r.dry_run {
        format!(
            "dry run (nothing written): {table}: scanned {} run(s), {} lacking a roll-up, would update {}",
            r.scanned, r.lacking, r.lacking
        )
    } else {
        let gone = r.runs.iter().filter(|l| l.action == "gone").count();
        format!(
            "{table}: scanned {} run(s), {} lacking a roll-up, updated {}{}",
            r.scanned,
            r.lacking,
            r.updated,
            if gone > 0 { format!(" ({gone} deleted meanwhile, not created)") } else { String::new() }
        )
    };
    if r.dry_run && !r.runs.is_empty() {
        let mut t = Table::new(["RUN", "MISSING (would be set to 0)"]);
        for l in &r.runs {
            t.row([l.run_id.clone(), l.missing.join(", ")]);
        }
        out.push_str(&format!("\n\n{}", t.render()));
    }
    out
}
