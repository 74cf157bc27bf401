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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_json_numbers() {
        let d = Decimal::from_str("0.1000000000000000055").unwrap();
        assert_eq!(serde_json::to_string(&decimal_to_json(d)).unwrap(), "0.1000000000000000055");
        assert!(decimal_to_json(Decimal::from_str("2.50").unwrap()).is_number());
    }
}
