//! The breakers table (`BREAKERS_TABLE`, hash key `config_name`): one item per model config
//! holding its circuit breaker (`crate::breaker`). Every write is one UpdateItem conditional
//! on the version read, so concurrent sweepers and operators agree: the loser reads the item
//! again and follows it.

use super::{conditional, UpdateExpr};
use crate::breaker::{Breaker, BreakerState, ProbeTask};
use crate::error::{ArcError, Result};
use crate::records::{n, s, Item};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client as DynamoDb;
use std::collections::HashMap;

/// The breakers table, by name.
#[derive(Debug, Clone)]
pub struct Breakers {
    db: DynamoDb,
    pub breakers: String,
}

fn key(config_name: &str) -> Item {
    [("config_name".to_owned(), s(config_name))].into()
}

fn text(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn count(item: &Item, k: &str) -> u64 {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Reads a stored breaker; an item this version cannot read is an error naming it.
pub fn breaker_from_item(item: &Item) -> Result<Breaker> {
    let config_name = text(item, "config_name").unwrap_or_default();
    let corrupt = |message: String| ArcError::CorruptItem { key: format!("breaker {config_name}"), message };
    let state_text = text(item, "state").unwrap_or_default();
    let state = BreakerState::parse(&state_text)
        .ok_or_else(|| corrupt(format!("state={state_text:?} is not a breaker state")))?;
    let probe = match item.get("probe") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|v| match v {
                AttributeValue::M(m) => Some(ProbeTask { run_id: text(m, "run_id")?, task_id: text(m, "task_id")? }),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Breaker {
        state,
        reason: text(item, "reason").unwrap_or_default(),
        changed_at: text(item, "changed_at").unwrap_or_default(),
        changed_by: text(item, "changed_by").unwrap_or_default(),
        opened_at: text(item, "opened_at"),
        half_open_at: text(item, "half_open_at"),
        cooldown_seconds: count(item, "cooldown_seconds"),
        opens: count(item, "opens"),
        probe,
        probe_started_at: text(item, "probe_started_at"),
        closed_at: text(item, "closed_at"),
        version: count(item, "version"),
        config_name,
    })
}

fn probe_attr(probe: &[ProbeTask]) -> AttributeValue {
    AttributeValue::L(
        probe
            .iter()
            .map(|p| {
                AttributeValue::M(HashMap::from([
                    ("run_id".to_owned(), s(&p.run_id)),
                    ("task_id".to_owned(), s(&p.task_id)),
                ]))
            })
            .collect(),
    )
}

impl Breakers {
    pub fn new(db: DynamoDb, table: impl Into<String>) -> Self {
        Self { db, breakers: table.into() }
    }

    /// Every stored breaker (one Scan; the table holds one small item per config).
    pub async fn list_breakers(&self) -> Result<Vec<Breaker>> {
        let mut pages = self.db.scan().table_name(&self.breakers).consistent_read(true).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ArcError::from_sdk("Scan breakers", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(breaker_from_item(&item)?);
            }
        }
        out.sort_by(|a, b| a.config_name.cmp(&b.config_name));
        Ok(out)
    }

    /// One config's breaker (closed, version 0, when none is stored).
    pub async fn get_breaker(&self, config_name: &str) -> Result<Breaker> {
        let out = self
            .db
            .get_item()
            .table_name(&self.breakers)
            .set_key(Some(key(config_name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("GetItem breakers", e))?;
        match out.item {
            Some(item) => breaker_from_item(&item),
            None => Ok(Breaker::closed(config_name)),
        }
    }

    /// Writes `b` (its `version` + 1) if the stored item is still at `b.version` (0: absent).
    /// `false`: someone else wrote it first.
    pub async fn write_breaker(&self, b: &Breaker) -> Result<bool> {
        let u = UpdateExpr::new()
            .set("state", s(b.state.as_str()))
            .set("reason", s(&b.reason))
            .set("changed_at", s(&b.changed_at))
            .set("changed_by", s(&b.changed_by))
            .set("cooldown_seconds", n(b.cooldown_seconds))
            .set("opens", n(b.opens))
            .set("probe", probe_attr(&b.probe))
            .set("version", n(b.version + 1))
            .set_or_remove("opened_at", b.opened_at.as_deref().map(s))
            .set_or_remove("half_open_at", b.half_open_at.as_deref().map(s))
            .set_or_remove("probe_started_at", b.probe_started_at.as_deref().map(s))
            .set_or_remove("closed_at", b.closed_at.as_deref().map(s))
            .expect_count("version", b.version);
        let res =
            u.apply(self.db.update_item().table_name(&self.breakers).set_key(Some(key(&b.config_name)))).send().await;
        Ok(conditional("UpdateItem breakers", res)?.is_some())
    }
}
