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
use crate::table::Table;
use arc_shared::records::{n, Item};
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, CreateGlobalSecondaryIndexAction, DeleteGlobalSecondaryIndexAction,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType, ProvisionedThroughput,
    ScalarAttributeType, TableDescription,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};
use serde_json::json;
use std::io::IsTerminal;
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
    let t = tables::describe(db, table).await.map_err(failed)?.ok_or_else(|| {
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
                t = wait_until_gone(db, table, index, opts, started).await?;
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
                update_table(db, table, |u| {
                    Ok(u.global_secondary_index_updates(
                        GlobalSecondaryIndexUpdate::builder()
                            .delete(build(DeleteGlobalSecondaryIndexAction::builder().index_name(index).build())?)
                            .build(),
                    ))
                })
                .await?;
                t = wait_until_gone(db, table, index, opts, started).await?;
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
    wait_until_active(db, table, index, opts, started).await?;
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

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, CliError> {
    r.map_err(|e| CliError::failed(format!("building the request: {e}")))
}

fn attr(name: &str) -> Result<AttributeDefinition, CliError> {
    build(AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build())
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, CliError> {
    build(KeySchemaElement::builder().attribute_name(name).key_type(kind).build())
}

/// UpdateTable on `table`, `f` adding what changes.
async fn update_table(
    db: &Client,
    table: &str,
    f: impl FnOnce(
        aws_sdk_dynamodb::operation::update_table::builders::UpdateTableFluentBuilder,
    ) -> Result<aws_sdk_dynamodb::operation::update_table::builders::UpdateTableFluentBuilder, CliError>,
) -> Result<(), CliError> {
    f(db.update_table().table_name(table))?
        .send()
        .await
        .map_err(|e| failed(ArcError::from_sdk(&format!("UpdateTable {table}"), e)))?;
    Ok(())
}

/// The GSI request: `status` / `updated_at`, projection ALL; on a provisioned table with the
/// table's own read / write capacity (an on-demand table needs none).
async fn create_status_index(db: &Client, table: &str, t: &TableDescription) -> Result<(), CliError> {
    let mut action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(STATUS_INDEX_SPEC.name)
        .key_schema(key(STATUS_INDEX_SPEC.hash, KeyType::Hash)?)
        .key_schema(key(STATUS_INDEX_SPEC.range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build());
    if !tables::on_demand(t) {
        let (read, write) = tables::provisioned_capacity(t);
        eprintln!("{table} is provisioned: the index gets the table's capacity, {read} RCU / {write} WCU");
        action = action.provisioned_throughput(build(
            ProvisionedThroughput::builder().read_capacity_units(read).write_capacity_units(write).build(),
        )?);
    }
    let action = build(action.build())?;
    // The table's own definitions and the index keys: UpdateTable takes the key attributes of
    // the table and of every index being created.
    let mut definitions: Vec<AttributeDefinition> = t.attribute_definitions().to_vec();
    for k in [STATUS_INDEX_SPEC.hash, STATUS_INDEX_SPEC.range] {
        if !definitions.iter().any(|d| d.attribute_name() == k) {
            definitions.push(attr(k)?);
        }
    }
    update_table(db, table, |u| {
        Ok(u.set_attribute_definitions(Some(definitions))
            .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(action).build()))
    })
    .await
}

/// Progress on stderr: overwritten in place on a terminal, one line per change otherwise.
struct Progress {
    tty: bool,
    last: String,
    last_at: Instant,
}

impl Progress {
    fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last: String::new(), last_at: Instant::now() }
    }

    fn show(&mut self, state: &str, started: Instant) {
        let line = format!("{state} ({} elapsed)", elapsed(started.elapsed()));
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else if state != self.last || self.last_at.elapsed() >= Duration::from_secs(60) {
            eprintln!("{line}");
            self.last_at = Instant::now();
        }
        self.last = state.to_owned();
    }

    fn done(&self) {
        if self.tty && !self.last.is_empty() {
            eprintln!();
        }
    }
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

async fn wait_until_active(
    db: &Client,
    table: &str,
    index: &str,
    opts: &StatusIndexOptions,
    started: Instant,
) -> Result<(), CliError> {
    let mut progress = Progress::new();
    loop {
        let t = tables::describe(db, table)
            .await
            .map_err(failed)?
            .ok_or_else(|| CliError::failed(format!("{table} disappeared while waiting for {index}")))?;
        let Some(g) = tables::gsi(&t, index) else {
            progress.done();
            return Err(CliError::failed(format!(
                "{index} disappeared from {table} while waiting (deleted by someone else?): rerun arcctl migrate status-index"
            )));
        };
        let status = tables::index_status(g);
        let mut state = format!("{index} on {table}: IndexStatus {status}");
        if let Some(b) = g.backfilling() {
            state.push_str(&format!(", Backfilling {b}"));
        }
        if let Some(n) = g.item_count() {
            state.push_str(&format!(", ItemCount {n}"));
        }
        progress.show(&state, started);
        if status == "ACTIVE" {
            progress.done();
            return Ok(());
        }
        if started.elapsed() >= opts.timeout {
            progress.done();
            return Err(CliError::failed(format!(
                "{index} on {table} is still {status} after {}: DynamoDB goes on building it; \
                 rerun arcctl migrate status-index to wait again",
                elapsed(started.elapsed())
            )));
        }
        tokio::time::sleep(opts.poll).await;
    }
}

async fn wait_until_gone(
    db: &Client,
    table: &str,
    index: &str,
    opts: &StatusIndexOptions,
    started: Instant,
) -> Result<TableDescription, CliError> {
    let mut progress = Progress::new();
    loop {
        let t = tables::describe(db, table)
            .await
            .map_err(failed)?
            .ok_or_else(|| CliError::failed(format!("{table} disappeared while waiting for {index} to be deleted")))?;
        let Some(g) = tables::gsi(&t, index) else {
            progress.done();
            return Ok(t);
        };
        progress.show(&format!("{index} on {table}: IndexStatus {}", tables::index_status(g)), started);
        if started.elapsed() >= opts.timeout {
            progress.done();
            return Err(CliError::failed(format!(
                "{index} on {table} is still being deleted after {}: rerun arcctl migrate status-index --recreate",
                elapsed(started.elapsed())
            )));
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

fn run_id_of(item: &Item) -> Option<String> {
    match item.get("run_id") {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Sets the missing roll-ups of one run to 0: `Ok(true)` written, `Ok(false)` the run no
/// longer exists (nothing created).
async fn backfill_one(tables: &Tables, run_id: &str, missing: &[&str]) -> Result<bool, ArcError> {
    let update = missing.iter().fold(UpdateExpr::new(), |u, r| u.set_if_missing(r, n(0))).exists("run_id");
    let res = update
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .send()
        .await;
    Ok(conditional("UpdateItem runs", res)?.is_some())
}

/// Scans the runs table and backfills; `progress` gets a line per page.
pub async fn backfill(
    tables: &Tables,
    opts: &BackfillOptions,
    mut progress: impl FnMut(&BackfillReport),
) -> Result<BackfillReport, CliError> {
    let table = tables.runs.as_str();
    let t = tables::describe(&tables.db, table).await.map_err(failed)?.ok_or_else(|| {
        CliError::failed(format!("the runs table {table} does not exist (RUNS_TABLE); nothing changed"))
    })?;
    if !tables::has_keys(&t, "run_id", None) {
        return Err(CliError::failed(format!(
            "{table} does not look like an arc runs table: its keys are {}, not run_id (HASH); nothing changed (check RUNS_TABLE)",
            tables::describe_keys(t.key_schema())
        )));
    }
    let (projection, names) = super::doctor::rollup_projection();
    let mut report = BackfillReport { dry_run: opts.dry_run, ..BackfillReport::default() };
    let mut pages = tables
        .db
        .scan()
        .table_name(table)
        .projection_expression(projection)
        .set_expression_attribute_names(Some(names.into_iter().collect()))
        .set_exclusive_start_key(opts.start_after.as_deref().map(Tables::run_key))
        .into_paginator()
        .page_size(BACKFILL_PAGE)
        .send();
    while let Some(page) = pages.next().await {
        // Where this page starts: every run before it is done.
        let resume_key = report.last_key.clone().or_else(|| opts.start_after.clone());
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                let e = ArcError::from_sdk(&format!("Scan {table}"), e);
                return Err(CliError::failed(format!(
                    "{e} ({}); {} run(s) updated so far; resume with: {}",
                    e.error_type(),
                    report.updated,
                    resume_command(resume_key.as_deref())
                )));
            }
        };
        let mut todo = Vec::new();
        for item in page.items.unwrap_or_default() {
            report.scanned += 1;
            let Some(run_id) = run_id_of(&item) else { continue };
            let (missing, wrong) = super::doctor::rollup_gaps(&item);
            if !wrong.is_empty() {
                report.not_numbers.push(format!("{run_id} ({})", wrong.join(", ")));
            }
            if !missing.is_empty() {
                report.lacking += 1;
                todo.push((run_id.clone(), missing));
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
                    let r = backfill_one(tables, &run_id, &missing).await;
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
    }
    Ok(report)
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
