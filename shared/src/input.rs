//! Parsing events at the edge: a JSON value into a typed input, with `InvalidInput` naming
//! the field that is wrong.

use crate::error::ArcError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserializes `event` into `T`; a failure names the offending field path.
pub fn parse_event<T: DeserializeOwned>(event: Value) -> Result<T, ArcError> {
    if !event.is_object() {
        return Err(ArcError::invalid("$", format!("the event must be a JSON object, got {}", kind(&event))));
    }
    serde_path_to_error::deserialize::<_, T>(event).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in the message, at the parent path.
        let field = match inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            Some(missing) if path == "." => missing.to_owned(),
            Some(missing) => format!("{path}.{missing}"),
            None if path == "." => "$".to_owned(),
            None => path,
        };
        ArcError::invalid(field, inner)
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        run_id: String,
        task_ids: Vec<crate::ids::TaskId>,
    }

    fn field_of(v: Value) -> String {
        match parse_event::<In>(v).unwrap_err() {
            ArcError::InvalidInput { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_missing_wrong_and_invalid_fields() {
        assert_eq!(field_of(json!({"task_ids": []})), "run_id");
        assert_eq!(field_of(json!({"run_id": 5, "task_ids": []})), "run_id");
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": ["ok", "b/ad"]})), "task_ids[1]");
        assert_eq!(field_of(json!({"run_id": "r", "task_ids": [], "dryrun": true})), "dryrun");
        assert_eq!(field_of(json!([1])), "$");
    }
}
