//! `arcctl breakers` and `arcctl breaker open|close CONFIG`: the sweeper's per-config circuit
//! breakers, listed with their state and why, and overridden by hand (recorded with who and
//! why). A breaker opened by hand stays open until closed by hand; closing one by hand starts
//! its counting afresh (failures before the close no longer open it).

use super::cancel::caller_identity;
use super::Ctx;
use crate::exit::{emit, CliError};
use crate::table::Table;
use arc_shared::breaker::Breaker;
use arc_shared::ids::ConfigName;
use serde_json::json;

/// The breakers as rows (config, state, since, half-opens at, probe, by, reason).
pub fn render(list: &[Breaker]) -> String {
    let mut t = Table::new(["CONFIG", "STATE", "SINCE", "HALF-OPENS AT", "PROBE", "BY", "REASON"]);
    for b in list {
        t.row([
            b.config_name.clone(),
            b.state.as_str().to_owned(),
            b.changed_at.clone(),
            b.half_open_at
                .clone()
                .unwrap_or_else(|| if b.state.is_tripped() { "(by hand)".into() } else { "-".into() }),
            b.probe.len().to_string(),
            b.changed_by.clone(),
            b.reason.clone(),
        ]);
    }
    t.render()
}

/// `arcctl breakers`.
pub async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let list = ctx.breakers().list_breakers().await?;
    if ctx.json {
        emit(&serde_json::to_string(&json!({ "breakers": list })).unwrap_or_default());
    } else if list.is_empty() {
        emit("no breaker recorded: every config's retries run (closed)");
    } else {
        emit(&render(&list));
    }
    Ok(())
}

/// `arcctl breaker open|close CONFIG --reason TEXT`.
pub async fn set(ctx: &Ctx, config: &ConfigName, open: bool, reason: &str) -> Result<(), CliError> {
    let store = ctx.breakers();
    let by = caller_identity(ctx).await;
    // Conditional on the version read: a sweep that moved it meanwhile makes us read again.
    for _ in 0..5 {
        let current = store.get_breaker(config.as_str()).await?;
        let now = chrono::Utc::now();
        let next =
            if open { current.opened_by_hand(reason, now, &by) } else { current.closed_by_hand(reason, now, &by) };
        if store.write_breaker(&next).await? {
            let written = Breaker { version: next.version + 1, ..next };
            if ctx.json {
                emit(&serde_json::to_string(&written).unwrap_or_default());
            } else {
                emit(&render(std::slice::from_ref(&written)));
            }
            return Ok(());
        }
    }
    Err(CliError::failed(format!("the breaker of {} kept changing; try again", config.as_str())))
}
