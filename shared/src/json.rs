//! JSON numbers for exact decimals: rendered as numbers (not strings) in outputs, and read
//! from numbers or numeric strings in inputs.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::str::FromStr;

/// `d` as a JSON number with every digit kept.
pub fn decimal_to_json(d: Decimal) -> Value {
    match serde_json::Number::from_str(&d.normalize().to_string()) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(d.to_string()),
    }
}

/// Deserializes a decimal from a JSON number or numeric string, exactly.
pub fn deserialize_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = Value::deserialize(d)?;
    let text = match &v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(serde::de::Error::custom(format!("expected a number, got {other}"))),
    };
    crate::records::parse_decimal(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text} is not a decimal number")))
}

/// `#[serde(with = "arc_shared::json::decimal_number")]`: an exact decimal written as a
/// normalized JSON number (`0.03`, not `0.030`), read from a number or a numeric string.
pub mod decimal_number {
    use rust_decimal::Decimal;
    use serde::{Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        super::decimal_to_json(*d).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        super::deserialize_decimal(d)
    }
}

/// [`decimal_number`] for an optional decimal (`null` when absent).
pub mod decimal_number_opt {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        d.map(super::decimal_to_json).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<serde_json::Value>::deserialize(d)? {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => super::deserialize_decimal(v).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// `#[serde(deserialize_with = "arc_shared::json::object")]`: a struct field given as a JSON
/// object only. Serde's derive also reads a struct from an array, by position
/// (`"error": ["States.TaskFailed"]`); an event never means that, so it is a wrong type. The
/// object's own fields are read through the caller's deserializer, so an error still names
/// the field inside (`aggregation.total_tasks`).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// [`object`] for an optional field: absent or `null` is `None`.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct Opt<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Opt<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            object(d).map(Some)
        }
    }
    d.deserialize_option(Opt(std::marker::PhantomData))
}

struct ObjectOnly<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(deserialize_with = "object")]
        inner: Inner,
        #[serde(default, deserialize_with = "optional_object")]
        opt: Option<Inner>,
    }

    #[test]
    fn struct_fields_are_objects_only_and_errors_name_the_inner_field() {
        let field = |v: Value| match crate::input::parse_event::<Outer>(v) {
            Err(crate::ArcError::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let ok: Outer = crate::input::parse_event(serde_json::json!({"inner": {"a": 1}, "opt": null})).unwrap();
        assert_eq!(ok, Outer { inner: Inner { a: 1 }, opt: None });
        let ok: Outer = crate::input::parse_event(serde_json::json!({"inner": {"a": 1}, "opt": {"a": 2}})).unwrap();
        assert_eq!(ok.opt, Some(Inner { a: 2 }));
        assert_eq!(field(serde_json::json!({"inner": [1]})), "inner");
        assert_eq!(field(serde_json::json!({"inner": {"a": 1}, "opt": [2]})), "opt");
        assert_eq!(field(serde_json::json!({"inner": {"a": "x"}})), "inner.a");
        assert_eq!(field(serde_json::json!({"inner": {}})), "inner.a");
        assert_eq!(field(serde_json::json!({"inner": null})), "inner");
    }

    #[test]
    fn decimals_are_json_numbers() {
        let d = Decimal::from_str("0.1000000000000000055").unwrap();
        assert_eq!(serde_json::to_string(&decimal_to_json(d)).unwrap(), "0.1000000000000000055");
        assert!(decimal_to_json(Decimal::from_str("2.50").unwrap()).is_number());
    }
}
