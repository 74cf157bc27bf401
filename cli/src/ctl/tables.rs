//! What DescribeTable (`arc_shared::store::schema::describe_table`) says about a table, in the
//! terms `arcctl doctor` and `arcctl migrate` check: key schema, attribute types, billing mode
//! and the shape of a GSI.

use aws_sdk_dynamodb::types::{
    BillingMode, GlobalSecondaryIndexDescription, IndexStatus, KeyType, ProjectionType, ScalarAttributeType,
    TableDescription,
};

/// `(hash, range)` attribute names of a key schema.
pub fn keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> (Option<&str>, Option<&str>) {
    let find = |kind: KeyType| schema.iter().find(|k| *k.key_type() == kind).map(|k| k.attribute_name());
    (find(KeyType::Hash), find(KeyType::Range))
}

/// A key schema for people: `run_id (HASH) / task_id (RANGE)`.
pub fn describe_keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> String {
    match keys(schema) {
        (Some(h), Some(r)) => format!("{h} (HASH) / {r} (RANGE)"),
        (Some(h), None) => format!("{h} (HASH)"),
        _ => "no key schema".to_owned(),
    }
}

/// Whether the table's key schema is exactly `hash` / `range` (no range key when `None`).
pub fn has_keys(t: &TableDescription, hash: &str, range: Option<&str>) -> bool {
    keys(t.key_schema()) == (Some(hash), range)
}

/// The declared type of a key attribute (`S`, `N`, `B`), when the table declares it.
pub fn attribute_type<'a>(t: &'a TableDescription, name: &str) -> Option<&'a ScalarAttributeType> {
    t.attribute_definitions().iter().find(|d| d.attribute_name() == name).map(|d| d.attribute_type())
}

/// Whether the table is billed per request (on-demand). A table that never switched billing
/// mode may have no BillingModeSummary: it is provisioned.
pub fn on_demand(t: &TableDescription) -> bool {
    t.billing_mode_summary().and_then(|b| b.billing_mode()) == Some(&BillingMode::PayPerRequest)
}

/// The table's provisioned read / write capacity (at least 1 each).
pub fn provisioned_capacity(t: &TableDescription) -> (i64, i64) {
    let p = t.provisioned_throughput();
    let read = p.and_then(|p| p.read_capacity_units()).unwrap_or(0).max(1);
    let write = p.and_then(|p| p.write_capacity_units()).unwrap_or(0).max(1);
    (read, write)
}

/// The billing mode for people.
pub fn billing(t: &TableDescription) -> String {
    if on_demand(t) {
        "on-demand".to_owned()
    } else {
        let (r, w) = provisioned_capacity(t);
        format!("provisioned {r} RCU / {w} WCU")
    }
}

/// The table's GSI named `name`.
pub fn gsi<'a>(t: &'a TableDescription, name: &str) -> Option<&'a GlobalSecondaryIndexDescription> {
    t.global_secondary_indexes().iter().find(|g| g.index_name() == Some(name))
}

/// The index's status name (`ACTIVE`, `CREATING`, …), `UNKNOWN` when not given.
pub fn index_status(g: &GlobalSecondaryIndexDescription) -> &str {
    g.index_status().map_or("UNKNOWN", IndexStatus::as_str)
}

/// What a GSI must be for the code that queries it.
#[derive(Debug, Clone, Copy)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash: &'static str,
    pub range: &'static str,
    /// Non-key attributes the readers need: with `Some`, an INCLUDE projection carrying at
    /// least these serves; with `None`, only ALL does.
    pub include: Option<&'static [&'static str]>,
    /// What breaks without it.
    pub needed_by: &'static str,
}

/// `status-index` on the tasks table: what the sweeper's queries read besides the keys
/// (`run_id`, `task_id`, `status`, `updated_at` are always projected).
pub const STATUS_INDEX_SPEC: IndexSpec = IndexSpec {
    name: arc_shared::store::STATUS_INDEX,
    hash: "status",
    range: "updated_at",
    include: Some(&["retry_count", "last_error_at", "retry_execution"]),
    needed_by: "the sweeper queries it: every sweep fails with IndexMissing",
};

/// `config-created-index` on the runs table: `arcctl runs list --config` reads whole runs.
pub const CONFIG_INDEX_SPEC: IndexSpec = IndexSpec {
    name: arc_shared::store::CONFIG_INDEX,
    hash: "config_name",
    range: "created_at",
    include: None,
    needed_by: "arcctl runs list --config and the operators' queries use it",
};

/// Why an existing index does not serve `spec` (keys, key types, projection), or `None`.
pub fn index_problem(t: &TableDescription, g: &GlobalSecondaryIndexDescription, spec: &IndexSpec) -> Option<String> {
    let (h, r) = keys(g.key_schema());
    if (h, r) != (Some(spec.hash), Some(spec.range)) {
        return Some(format!(
            "has the keys {}, not {} (HASH) / {} (RANGE)",
            describe_keys(g.key_schema()),
            spec.hash,
            spec.range
        ));
    }
    for k in [spec.hash, spec.range] {
        match attribute_type(t, k) {
            Some(ScalarAttributeType::S) | None => {}
            Some(other) => return Some(format!("has the key {k} of type {}, not S (string)", other.as_str())),
        }
    }
    let projection = g.projection();
    match projection.and_then(|p| p.projection_type()) {
        Some(ProjectionType::All) => None,
        Some(ProjectionType::Include) if spec.include.is_some() => {
            let have = projection.map(|p| p.non_key_attributes()).unwrap_or_default();
            let missing: Vec<&str> =
                spec.include.unwrap_or_default().iter().copied().filter(|a| !have.iter().any(|h| h == a)).collect();
            if missing.is_empty() {
                None
            } else {
                Some(format!("projects INCLUDE without {}", missing.join(", ")))
            }
        }
        Some(other) => Some(format!(
            "projects {}, not {}",
            other.as_str(),
            if spec.include.is_some() { "ALL (or INCLUDE with the attributes the sweeper reads)" } else { "ALL" }
        )),
        None => Some("has no projection".to_owned()),
    }
}

/// The index for people: `status / updated_at, projection ALL, ACTIVE, 12 items`.
pub fn describe_index(g: &GlobalSecondaryIndexDescription) -> String {
    let projection = match g.projection().and_then(|p| p.projection_type()) {
        Some(ProjectionType::Include) => {
            format!("INCLUDE {}", g.projection().map(|p| p.non_key_attributes().join(", ")).unwrap_or_default())
        }
        Some(p) => p.as_str().to_owned(),
        None => "none".to_owned(),
    };
    let mut out = format!("{}, projection {projection}, {}", describe_keys(g.key_schema()), index_status(g));
    if g.backfilling() == Some(true) {
        out.push_str(", backfilling");
    }
    if let Some(n) = g.item_count() {
        out.push_str(&format!(", {n} items"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{AttributeDefinition, KeySchemaElement, Projection};

    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
    }

    fn table(status_type: ScalarAttributeType, index: GlobalSecondaryIndexDescription) -> TableDescription {
        TableDescription::builder()
            .key_schema(key("run_id", KeyType::Hash))
            .key_schema(key("task_id", KeyType::Range))
            .attribute_definitions(
                AttributeDefinition::builder().attribute_name("status").attribute_type(status_type).build().unwrap(),
            )
            .global_secondary_indexes(index)
            .build()
    }

    fn index(hash: &str, projection: Projection) -> GlobalSecondaryIndexDescription {
        GlobalSecondaryIndexDescription::builder()
            .index_name("status-index")
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key("updated_at", KeyType::Range))
            .projection(projection)
            .index_status(IndexStatus::Active)
            .build()
    }

    fn problem(status_type: ScalarAttributeType, hash: &str, projection: Projection) -> Option<String> {
        let t = table(status_type, index(hash, projection));
        let g = gsi(&t, "status-index").unwrap();
        index_problem(&t, g, &STATUS_INDEX_SPEC)
    }

    #[test]
    fn status_index_shapes() {
        let all = Projection::builder().projection_type(ProjectionType::All).build();
        assert_eq!(problem(ScalarAttributeType::S, "status", all.clone()), None);
        let enough = Projection::builder()
            .projection_type(ProjectionType::Include)
            .non_key_attributes("retry_count")
            .non_key_attributes("last_error_at")
            .non_key_attributes("retry_execution")
            .non_key_attributes("other")
            .build();
        assert_eq!(problem(ScalarAttributeType::S, "status", enough), None);
        let short =
            Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("retry_count").build();
        let p = problem(ScalarAttributeType::S, "status", short).unwrap();
        assert!(p.contains("last_error_at, retry_execution"), "{p}");
        let keys_only = Projection::builder().projection_type(ProjectionType::KeysOnly).build();
        assert!(problem(ScalarAttributeType::S, "status", keys_only).unwrap().contains("KEYS_ONLY"));
        assert!(problem(ScalarAttributeType::S, "state", all.clone()).unwrap().contains("state (HASH)"));
        assert!(problem(ScalarAttributeType::N, "status", all).unwrap().contains("type N"));
    }

    #[test]
    fn billing_mode_without_a_summary_is_provisioned() {
        let t = TableDescription::builder().build();
        assert!(!on_demand(&t));
        assert_eq!(provisioned_capacity(&t), (1, 1));
    }
}
