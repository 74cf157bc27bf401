//! A builder for UpdateItem expressions that names every attribute through
//! `ExpressionAttributeNames` (`status` is a reserved word in DynamoDB), so no expression in
//! this product spells an attribute name inline.

use crate::error::{ArcError, Result};
use crate::records::Item;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct UpdateExpr {
    sets: Vec<String>,
    adds: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateExpr {
    pub fn new() -> Self {
        Self::default()
    }

    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    fn value(&mut self, prefix: &str, attr: &str, v: AttributeValue) -> String {
        let placeholder = format!(":{prefix}_{attr}");
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// `SET attr = v`.
    pub fn set(mut self, attr: &str, v: AttributeValue) -> Self {
        let n = self.name(attr);
        let p = self.value("set", attr, v);
        self.sets.push(format!("{n} = {p}"));
        self
    }

    /// `SET attr = if_not_exists(attr, v)`: writes `v` only where the attribute is missing.
    pub fn set_if_missing(mut self, attr: &str, v: AttributeValue) -> Self {
        let n = self.name(attr);
        let p = self.value("default", attr, v);
        self.sets.push(format!("{n} = if_not_exists({n}, {p})"));
        self
    }

    /// `SET attr = v` when `v` is given, else `REMOVE attr`.
    pub fn set_or_remove(self, attr: &str, v: Option<AttributeValue>) -> Self {
        match v {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }

    /// `SET attr = v` when `v` is given.
    pub fn set_opt(self, attr: &str, v: Option<AttributeValue>) -> Self {
        match v {
            Some(v) => self.set(attr, v),
            None => self,
        }
    }

    /// `ADD attr v` (numbers).
    pub fn add(mut self, attr: &str, v: AttributeValue) -> Self {
        let n = self.name(attr);
        let p = self.value("add", attr, v);
        self.adds.push(format!("{n} {p}"));
        self
    }

    /// `REMOVE attr`.
    pub fn remove(mut self, attr: &str) -> Self {
        let n = self.name(attr);
        self.removes.push(n);
        self
    }

    /// Condition: the item exists (its key attribute does).
    pub fn exists(mut self, key_attr: &str) -> Self {
        let n = self.name(key_attr);
        self.conditions.push(format!("attribute_exists({n})"));
        self
    }

    /// Condition: `attr = v`.
    pub fn expect_eq(mut self, attr: &str, v: AttributeValue) -> Self {
        let n = self.name(attr);
        let p = self.value("expect", attr, v);
        self.conditions.push(format!("{n} = {p}"));
        self
    }

    /// Condition: `attr = v`, or the attribute is absent when `v` is `None`.
    pub fn expect_eq_or_missing(mut self, attr: &str, v: Option<AttributeValue>) -> Self {
        match v {
            Some(v) => self.expect_eq(attr, v),
            None => {
                let n = self.name(attr);
                self.conditions.push(format!("attribute_not_exists({n})"));
                self
            }
        }
    }

    /// Condition: the counter `attr` still holds `v` (absent counts as 0).
    pub fn expect_count(mut self, attr: &str, v: u64) -> Self {
        let n = self.name(attr);
        let p = self.value("expect", attr, AttributeValue::N(v.to_string()));
        if v == 0 {
            self.conditions.push(format!("(attribute_not_exists({n}) OR {n} = {p})"));
        } else {
            self.conditions.push(format!("{n} = {p}"));
        }
        self
    }

    /// Condition: `attr` is one of `vs`.
    pub fn expect_in(mut self, attr: &str, vs: &[AttributeValue]) -> Self {
        let n = self.name(attr);
        let ps: Vec<String> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!(":in_{attr}_{i}");
                self.values.insert(p.clone(), v.clone());
                p
            })
            .collect();
        self.conditions.push(format!("{n} IN ({})", ps.join(", ")));
        self
    }

    /// Condition: `attr` is absent or differs from `v`.
    pub fn expect_missing_or_ne(mut self, attr: &str, v: AttributeValue) -> Self {
        let n = self.name(attr);
        let p = self.value("ne", attr, v);
        self.conditions.push(format!("(attribute_not_exists({n}) OR {n} <> {p})"));
        self
    }

    pub fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        parts.join(" ")
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    /// Applies the expression to an UpdateItem request.
    pub fn apply(self, req: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        let update = self.update_expression();
        let cond = self.condition_expression();
        req.update_expression(update)
            .set_condition_expression(cond)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
    }

    /// The same expression as one action of a TransactWriteItems request.
    pub fn into_transact(self, table: &str, key: Item) -> Result<Update> {
        let update = self.update_expression();
        let cond = self.condition_expression();
        Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(cond)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .map_err(|e| ArcError::invalid("update", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::s;

    #[test]
    fn names_every_attribute() {
        let u = UpdateExpr::new()
            .set("status", s("FAILED"))
            .add("failed_tasks", AttributeValue::N("1".into()))
            .remove("next_retry_at")
            .expect_eq("status", s("IN_PROGRESS"))
            .expect_eq_or_missing("retry_count", None);
        assert_eq!(
            u.update_expression(),
            "SET #status = :set_status ADD #failed_tasks :add_failed_tasks REMOVE #next_retry_at"
        );
        assert_eq!(
            u.condition_expression().unwrap(),
            "#status = :expect_status AND attribute_not_exists(#retry_count)"
        );
        assert!(!u.update_expression().contains(" status"));
        assert_eq!(u.names.get("#status").map(String::as_str), Some("status"));
    }
}
