//! `arcctl doctor`: checks the deployment as the functions see it (the tables named by
//! RUNS_TABLE / TASKS_TABLE, their indexes, the runs' roll-ups, the state machine, the
//! worker's rate-limits table, and with `--function` the sweeper and its schedule), one line
//! per check, each failed check with the command that fixes it.

use super::runs::json_text;
use super::tables::{self, IndexSpec, CONFIG_INDEX_SPEC, STATUS_INDEX_SPEC};
use super::Ctx;
use crate::aws;
use crate::exit::{emit, CliError};
use arc_shared::records::RUN_ROLLUPS;
use arc_shared::store::admin::rollup_gaps;
use arc_shared::store::schema::describe_table;
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::TableDescription;
use serde::Serialize;
use std::collections::BTreeMap;

/// Runs read for the roll-up check (one Scan page).
pub const ROLLUP_SAMPLE: i32 = 200;

/// The environment variable naming the worker's rate-limits table (its job definition's).
pub const RATE_LIMIT_TABLE_VAR: &str = "DYNAMODB_RATE_LIMIT_TABLE";

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self { name: name.to_owned(), ok: true, detail: detail.into(), fix: None }
    }

    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.to_owned(), ok: false, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// An AWS call that failed for another reason than "not there".
    fn error(name: &str, e: &ArcError) -> Self {
        Self::fail(
            name,
            format!("cannot check: {e}"),
            "check the credentials and region (AWS_PROFILE, AWS_REGION) and that they may call this API, then rerun arcctl doctor",
        )
    }
}

/// What to check besides the tables and the state machine.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The sweeper Lambda (`<name_prefix>-sweeper`): it and its schedule are checked.
    pub function: Option<String>,
    /// The worker's rate-limits table.
    pub rate_limits_table: Option<String>,
}

/// Every check, in order.
pub async fn checks(ctx: &Ctx, opts: &Options) -> Vec<Check> {
    let db = &ctx.clients.dynamodb;
    let runs_name = &ctx.config.runs_table;
    let tasks_name = &ctx.config.tasks_table;
    let mut out = Vec::new();

    let runs = describe_table(db, runs_name).await;
    out.push(table_check("runs table", "RUNS_TABLE", runs_name, &runs, "run_id", None));
    let runs = runs.ok().flatten().filter(|t| tables::has_keys(t, "run_id", None));
    let tasks = describe_table(db, tasks_name).await;
    out.push(table_check("tasks table", "TASKS_TABLE", tasks_name, &tasks, "run_id", Some("task_id")));
    let tasks = tasks.ok().flatten().filter(|t| tables::has_keys(t, "run_id", Some("task_id")));
    // The sweeper's circuit breakers: without the table it retries as if every breaker were
    // closed and reports an error on every sweep.
    let breakers_name = &ctx.config.breakers_table;
    let breakers = describe_table(db, breakers_name).await;
    out.push(table_check("breakers table", "BREAKERS_TABLE", breakers_name, &breakers, "config_name", None));

    out.push(match &runs {
        Some(t) => index_check(t, runs_name, &CONFIG_INDEX_SPEC, &config_index_fix(runs_name, t)),
        None => Check::fail(
            CONFIG_INDEX_SPEC.name,
            format!("not checked: no usable runs table {runs_name}"),
            "fix the runs table first (above)",
        ),
    });
    out.push(match &tasks {
        Some(t) => index_check(t, tasks_name, &STATUS_INDEX_SPEC, "arcctl migrate status-index"),
        None => Check::fail(
            STATUS_INDEX_SPEC.name,
            format!("not checked: no usable tasks table {tasks_name}"),
            "fix the tasks table first (above)",
        ),
    });
    out.push(match &runs {
        Some(_) => rollups_check(ctx, runs_name).await,
        None => Check::fail(
            "run roll-ups",
            format!("not checked: no usable runs table {runs_name}"),
            "fix the runs table first (above)",
        ),
    });
    out.push(state_machine_check(ctx).await);
    if let Some(name) = &opts.rate_limits_table {
        out.push(rate_limits_check(ctx, name).await);
    }
    if let Some(function) = &opts.function {
        let (function_check, function_arn) = function_check(ctx, function).await;
        out.push(function_check);
        out.push(schedule_check(ctx, function, function_arn.as_deref()).await);
    }
    out
}

/// The command: prints the checks, exit 0 only when all pass.
pub async fn doctor(ctx: &Ctx, opts: &Options) -> Result<(), CliError> {
    if opts.rate_limits_table.is_none() && !ctx.json {
        eprintln!(
            "note: the worker's rate-limits table is not checked: name it with --rate-limits-table NAME or {RATE_LIMIT_TABLE_VAR}"
        );
    }
    let checks = checks(ctx, opts).await;
    let failed = checks.iter().filter(|c| !c.ok).count();
    if ctx.json {
        emit(&json_text(&serde_json::json!({"checks": checks, "ok": failed == 0}))?);
    } else {
        emit(&render(ctx, &checks));
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::failed(format!("{failed} of {} checks failed; each ✗ names its fix", checks.len())))
    }
}

/// The checks for people: one line each, the fix under a failed one.
pub fn render(ctx: &Ctx, checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let mut out = format!(
        "deployment: RUNS_TABLE={} TASKS_TABLE={} BREAKERS_TABLE={}",
        ctx.config.runs_table, ctx.config.tasks_table, ctx.config.breakers_table
    );
    for c in checks {
        out.push_str(&format!("\n{} {:<width$}  {}", if c.ok { "✓" } else { "✗" }, c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("\n  {:<width$}  fix: {fix}", ""));
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        out.push_str(&format!("\nall {} checks passed", checks.len()));
    } else {
        out.push_str(&format!("\n{failed} of {} checks failed", checks.len()));
    }
    out
}

fn table_check(
    name: &str,
    var: &str,
    table: &str,
    found: &Result<Option<TableDescription>, ArcError>,
    hash: &str,
    range: Option<&str>,
) -> Check {
    let expected = match range {
        Some(r) => format!("{hash} (HASH) / {r} (RANGE)"),
        None => format!("{hash} (HASH)"),
    };
    match found {
        Err(e) => Check::error(name, e),
        Ok(None) => Check::fail(
            name,
            format!(
                "{table} does not exist: set {var} to the deployment's table, or let the module create it \
                 ({} = true)",
                if var == "BREAKERS_TABLE" { "create_breakers_table" } else { "create_tables" }
            ),
            "terraform apply",
        ),
        Ok(Some(t)) if !tables::has_keys(t, hash, range) => Check::fail(
            name,
            format!(
                "{table} has the keys {}, not {expected}: it is not this product's {name} ({var})",
                tables::describe_keys(t.key_schema())
            ),
            format!("export {var}=<the {name} the functions use>"),
        ),
        Ok(Some(t)) => {
            let status = t.table_status().map_or("UNKNOWN", |s| s.as_str());
            Check::pass(name, format!("{table}: {expected}, {status}, {}", tables::billing(t)))
        }
    }
}

fn index_check(t: &TableDescription, table: &str, spec: &IndexSpec, create_fix: &str) -> Check {
    let Some(g) = tables::gsi(t, spec.name) else {
        return Check::fail(spec.name, format!("{table} has no GSI {} ({})", spec.name, spec.needed_by), create_fix);
    };
    if let Some(problem) = tables::index_problem(t, g, spec) {
        let fix = if spec.name == STATUS_INDEX_SPEC.name {
            "arcctl migrate status-index --recreate".to_owned()
        } else {
            format!(
                "aws dynamodb update-table --table-name {table} --global-secondary-index-updates \
                 '[{{\"Delete\":{{\"IndexName\":\"{}\"}}}}]' && (once it is gone) {create_fix}",
                spec.name
            )
        };
        return Check::fail(spec.name, format!("{table}: {} {problem}", spec.name), fix);
    }
    let status = tables::index_status(g);
    if status != "ACTIVE" {
        let (wait, fix) = if spec.name == STATUS_INDEX_SPEC.name {
            ("the migration waits until it is ACTIVE", "arcctl migrate status-index")
        } else {
            ("rerun doctor once DynamoDB has built it", "arcctl doctor")
        };
        return Check::fail(
            spec.name,
            format!("{table}: {} is {status} ({wait}): {}", spec.name, tables::describe_index(g)),
            fix,
        );
    }
    Check::pass(spec.name, format!("{table}: {}", tables::describe_index(g)))
}

/// The AWS CLI command that adds config-created-index to a runs table.
fn config_index_fix(table: &str, t: &TableDescription) -> String {
    let throughput = if tables::on_demand(t) {
        String::new()
    } else {
        let (r, w) = tables::provisioned_capacity(t);
        format!(",\"ProvisionedThroughput\":{{\"ReadCapacityUnits\":{r},\"WriteCapacityUnits\":{w}}}")
    };
    format!(
        "aws dynamodb update-table --table-name {table} \
         --attribute-definitions AttributeName=config_name,AttributeType=S AttributeName=created_at,AttributeType=S \
         --global-secondary-index-updates '[{{\"Create\":{{\"IndexName\":\"config-created-index\",\
         \"KeySchema\":[{{\"AttributeName\":\"config_name\",\"KeyType\":\"HASH\"}},{{\"AttributeName\":\"created_at\",\"KeyType\":\"RANGE\"}}],\
         \"Projection\":{{\"ProjectionType\":\"ALL\"}}{throughput}}}}}]'"
    )
}

async fn rollups_check(ctx: &Ctx, table: &str) -> Check {
    const NAME: &str = "run roll-ups";
    let page = match ctx.tables().rollups_page(ROLLUP_SAMPLE, None).await {
        Ok(page) => page,
        Err(e) => return Check::error(NAME, &e),
    };
    let more = page.next.is_some();
    let items = page.items;
    let sample = format!("{} run(s) sampled{}", items.len(), if more { " (the first page of a scan)" } else { "" });
    let mut lacking = 0usize;
    let mut by_attr: BTreeMap<&str, usize> = BTreeMap::new();
    let mut not_numbers: Vec<String> = Vec::new();
    for item in &items {
        let gaps = rollup_gaps(item);
        if !gaps.missing.is_empty() {
            lacking += 1;
            for m in gaps.missing {
                *by_attr.entry(m).or_default() += 1;
            }
        }
        if !gaps.not_numbers.is_empty() {
            let id = gaps.run_id.as_deref().unwrap_or("?");
            not_numbers.push(format!("{id} ({})", gaps.not_numbers.join(", ")));
        }
    }
    if lacking == 0 && not_numbers.is_empty() {
        return Check::pass(NAME, format!("{sample}: every run has {} as numbers", RUN_ROLLUPS.join(", ")));
    }
    let mut detail = format!("{sample}: ");
    let mut fixes = Vec::new();
    if lacking > 0 {
        let counts: Vec<String> = by_attr.iter().map(|(a, n)| format!("{a} {n}")).collect();
        detail.push_str(&format!(
            "{lacking} lack a roll-up the Python worker adds to ({}): completing their tasks fails \
             (preview the fix: arcctl migrate backfill-runs --dry-run)",
            counts.join(", ")
        ));
        fixes.push("arcctl migrate backfill-runs".to_owned());
    }
    if !not_numbers.is_empty() {
        if lacking > 0 {
            detail.push_str("; ");
        }
        detail.push_str(&format!(
            "{} have a roll-up that is not a number, which no migration changes: {}",
            not_numbers.len(),
            not_numbers.join(", ")
        ));
        fixes.push(format!(
            "aws dynamodb update-item --table-name {table} --key '{{\"run_id\":{{\"S\":\"<RUN_ID>\"}}}}' \
             --update-expression 'SET #a = :v' --expression-attribute-names '{{\"#a\":\"<ATTRIBUTE>\"}}' \
             --expression-attribute-values '{{\":v\":{{\"N\":\"<NUMBER>\"}}}}'"
        ));
    }
    Check::fail(NAME, detail, fixes.join(" && "))
}

async fn state_machine_check(ctx: &Ctx) -> Check {
    const NAME: &str = "state machine";
    let Some(arn) = ctx.config.state_machine_arn.as_deref() else {
        return Check::fail(
            NAME,
            "STATE_MACHINE_ARN is not set: sweeps start retry executions on it (the module's <name_prefix>-pipeline)",
            "export STATE_MACHINE_ARN=$(terraform output -raw state_machine_arn)",
        );
    };
    match aws::state_machine(&ctx.clients.sfn, arn).await {
        Ok(Some(sm)) => {
            Check::pass(NAME, format!("{} ({})", sm.name, sm.status.as_deref().unwrap_or("status unknown")))
        }
        Ok(None) => Check::fail(
            NAME,
            format!(
                "{arn} does not exist (STATE_MACHINE_ARN): the module creates <name_prefix>-pipeline; then \
                     export STATE_MACHINE_ARN=$(terraform output -raw state_machine_arn)"
            ),
            "terraform apply",
        ),
        Err(e) => Check::error(NAME, &e),
    }
}

async fn rate_limits_check(ctx: &Ctx, table: &str) -> Check {
    const NAME: &str = "rate-limits table";
    match describe_table(&ctx.clients.dynamodb, table).await {
        Err(e) => Check::error(NAME, &e),
        Ok(None) => Check::fail(
            NAME,
            format!("{table} does not exist (the worker's {RATE_LIMIT_TABLE_VAR})"),
            format!(
                "aws dynamodb create-table --table-name {table} --attribute-definitions AttributeName=provider,AttributeType=S \
                 --key-schema AttributeName=provider,KeyType=HASH --billing-mode PAY_PER_REQUEST"
            ),
        ),
        Ok(Some(t)) if !tables::has_keys(&t, "provider", None) => Check::fail(
            NAME,
            format!("{table} has the keys {}, not provider (HASH): the worker cannot use it", tables::describe_keys(t.key_schema())),
            format!("arcctl doctor --rate-limits-table <the {RATE_LIMIT_TABLE_VAR} of the worker's job definition>"),
        ),
        Ok(Some(t)) => Check::pass(
            NAME,
            format!("{table}: provider (HASH), {}", t.table_status().map_or("UNKNOWN", |s| s.as_str())),
        ),
    }
}

/// The sweeper function, and its ARN when it exists.
async fn function_check(ctx: &Ctx, function: &str) -> (Check, Option<String>) {
    const NAME: &str = "sweeper function";
    match aws::function(&ctx.sdk, function).await {
        Ok(Some(f)) => {
            let arn = f.arn;
            let var = |k: &str| f.env.get(k).map(String::as_str);
            // The function must see the tables this check looked at.
            let mut differs = Vec::new();
            for (k, ours) in [("RUNS_TABLE", &ctx.config.runs_table), ("TASKS_TABLE", &ctx.config.tasks_table)] {
                match var(k) {
                    Some(theirs) if theirs != ours.as_str() => differs.push(format!("{k}={theirs} (checked: {ours})")),
                    _ => {}
                }
            }
            if !differs.is_empty() {
                let fix = format!(
                    "RUNS_TABLE={} TASKS_TABLE={} arcctl doctor --function {function}",
                    var("RUNS_TABLE").unwrap_or(&ctx.config.runs_table),
                    var("TASKS_TABLE").unwrap_or(&ctx.config.tasks_table)
                );
                return (Check::fail(NAME, format!("{function} uses {}", differs.join(", ")), fix), arn);
            }
            let runtime = f.runtime.as_deref().unwrap_or("unknown runtime");
            (Check::pass(NAME, format!("{function} ({runtime})")), arn)
        }
        Ok(None) => (
            Check::fail(
                NAME,
                format!("Lambda function {function} does not exist (the module deploys <name_prefix>-sweeper)"),
                "terraform apply",
            ),
            None,
        ),
        Err(e) => (Check::error(NAME, &e), None),
    }
}

/// The schedule groups to look in: the module's own (`<name_prefix>`, the function name
/// without `-sweeper`), then the default group.
pub fn schedule_groups(function: &str) -> Vec<String> {
    let mut groups = Vec::new();
    if let Some(prefix) = function.strip_suffix("-sweeper").filter(|p| !p.is_empty()) {
        groups.push(prefix.to_owned());
    }
    groups.push("default".to_owned());
    groups
}

async fn schedule_check(ctx: &Ctx, function: &str, function_arn: Option<&str>) -> Check {
    const NAME: &str = "sweeper schedule";
    let groups = schedule_groups(function);
    for group in &groups {
        match aws::schedule(&ctx.sdk, function, group).await {
            Ok(Some(sc)) => {
                let state = sc.state.as_deref().unwrap_or("UNKNOWN");
                let expression = sc.expression.as_deref().unwrap_or("no expression");
                let target = sc.target.as_deref().unwrap_or_default();
                let detail = format!("{function} in group {group}: {expression}, {state}");
                if state != "ENABLED" {
                    return Check::fail(
                        NAME,
                        format!("{detail}: no scheduled sweeps (the module enables it with enable_schedule = true)"),
                        "terraform apply",
                    );
                }
                let targets_function = match function_arn {
                    Some(arn) => target == arn || target.starts_with(&format!("{arn}:")),
                    None => {
                        target.ends_with(&format!(":function:{function}"))
                            || target.contains(&format!(":function:{function}:"))
                    }
                };
                if !targets_function {
                    return Check::fail(NAME, format!("{detail}, but it targets {target}"), "terraform apply");
                }
                return Check::pass(NAME, detail);
            }
            Ok(None) => continue,
            Err(e) => return Check::error(NAME, &e),
        }
    }
    Check::fail(
        NAME,
        format!(
            "no EventBridge Scheduler schedule {function} (looked in group(s) {}); the module creates it with \
             enable_schedule = true",
            groups.join(", ")
        ),
        "terraform apply",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_names_the_schedule_group_after_the_prefix() {
        assert_eq!(schedule_groups("arc-prod-sweeper"), ["arc-prod", "default"]);
        assert_eq!(schedule_groups("my-sweeper-fn"), ["default"]);
        assert_eq!(schedule_groups("-sweeper"), ["default"]);
    }

    #[test]
    fn checks_serialize_with_an_optional_fix() {
        let v = serde_json::to_value(Check::pass("a", "fine")).unwrap();
        assert_eq!(v, serde_json::json!({"name": "a", "ok": true, "detail": "fine"}));
        let v = serde_json::to_value(Check::fail("b", "broken", "do this")).unwrap();
        assert_eq!(v["fix"], "do this");
    }
}
