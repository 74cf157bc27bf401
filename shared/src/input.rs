//! Parsing events at the edge: a JSON value into a typed input, with `InvalidInput` naming
//! the field that is wrong.

use crate::error::ArcError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The longest ARN accepted in an event (AWS ARNs are at most 2,048 characters; an execution's
/// is far shorter): a longer one is `InvalidInput`, never stored.
pub const MAX_ARN_CHARS: usize = 2048;

/// The Lambda payload as the runtime hands it over: the JSON value, or — for a body that is not
/// JSON, or nests deeper than serde_json's recursion limit (128 levels) — the `InvalidInput`
/// naming `$` that the function answers. Its `Deserialize` never fails, so a malformed body
/// reaches the function's own error path (`errorType` `InvalidInput`) instead of the runtime's
/// `DeserializeError`.
#[derive(Debug)]
pub struct RawEvent(pub Result<Value, ArcError>);

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Value::deserialize(d).map_err(|e| ArcError::invalid("$", format!("the event is not valid JSON: {e}")))))
    }
}

/// Reads an event body exactly as the Lambda runtime does (a serde_json reader over the bytes,
/// [`RawEvent`]): the tests feed raw fixture text through it.
pub fn event_from_slice(body: &[u8]) -> Result<Value, ArcError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match RawEvent::deserialize(&mut de) {
        Ok(RawEvent(event)) => event,
        Err(e) => Err(ArcError::invalid("$", format!("the event is not valid JSON: {e}"))),
    }
}

/// `InvalidInput` naming `field` when `v` is longer than `max` characters.
pub fn check_len(field: &str, v: &str, max: usize) -> Result<(), ArcError> {
    let chars = v.chars().count();
    if chars > max {
        return Err(ArcError::invalid(field, format!("{chars} characters; at most {max}")));
    }
    Ok(())
}

/// An optional ARN of an event (`execution_arn`): empty is absent; longer than
/// [`MAX_ARN_CHARS`] is `InvalidInput` naming `field`.
pub fn optional_arn(field: &str, v: Option<String>) -> Result<Option<String>, ArcError> {
    let v = v.filter(|a| !a.is_empty());
    if let Some(a) = &v {
        check_len(field, a, MAX_ARN_CHARS)?;
    }
    Ok(v)
}

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

    #[test]
    fn a_body_that_is_not_json_or_nests_too_deep_is_invalid_input_naming_the_event() {
        let field = |body: &str| match event_from_slice(body.as_bytes()) {
            Err(ArcError::InvalidInput { field, message }) => {
                assert!(message.starts_with("the event is not valid JSON"), "{message}");
                field
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(field(r#"{"run_id": "r"#), "$");
        assert_eq!(field(""), "$");
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(field(&deep), "$");
        // Within the limit, it is an event (and the parser names what is wrong in it).
        let ok = format!("{{\"a\": {}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(event_from_slice(ok.as_bytes()).unwrap().is_object());
    }

    #[test]
    fn arns_are_bounded() {
        assert_eq!(optional_arn("execution_arn", None).unwrap(), None);
        assert_eq!(optional_arn("execution_arn", Some(String::new())).unwrap(), None);
        assert_eq!(optional_arn("execution_arn", Some("arn:x".into())).unwrap().as_deref(), Some("arn:x"));
        let long = Some("a".repeat(MAX_ARN_CHARS + 1));
        assert!(matches!(optional_arn("x.y", long), Err(ArcError::InvalidInput { field, .. }) if field == "x.y"));
    }
}
