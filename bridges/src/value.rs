//! The typed value of a point.

use serde::{Deserialize, Serialize};

/// A point's value, typed as the point is configured.
///
/// Integers that fit an `i64` are always [`Value::Int`]; only unsigned 64-bit
/// values above `i64::MAX` become [`Value::UInt`], so no reading loses bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A coil, a discrete input, an on/off state.
    Bool(bool),
    /// Any integer that fits an `i64`.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A scaled or floating-point value; always finite in a good reading.
    Float(f64),
    /// Text (Modbus string registers, MQTT text payloads).
    String(String),
    /// Raw bytes the bridge does not interpret.
    Bytes(Vec<u8>),
}

impl Value {
    /// An integer, typed `Int` when it fits and `UInt` otherwise.
    #[must_use]
    pub fn from_u64(v: u64) -> Self {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }

    /// The value as an `f64`, for numeric values (bools count as 0/1).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            Value::String(_) | Value::Bytes(_) => None,
        }
    }

    /// A short name of the variant, for error messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "{} bytes", b.len()),
        }
    }
}
