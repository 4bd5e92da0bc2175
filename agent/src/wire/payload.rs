//! Payloads are always one CBOR item. Operators write JSON; this converts.
//!
//! JSON → CBOR is serde's mapping (objects → maps with text keys, numbers →
//! integers or floats). CBOR → JSON is lossy only where JSON has no type:
//! byte strings become `{"$bytes": "<hex>"}`, tags are dropped (their
//! content kept), non-text map keys are written as their JSON text, and
//! NaN/infinity become `null`.

use coset::cbor::Value;
use serde_json::{Map, Number, Value as Json};

/// Encodes operator input as one CBOR item: JSON when it parses as JSON,
/// otherwise the raw bytes as a CBOR byte string.
pub fn input_to_cbor(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 8);
    let written = match serde_json::from_slice::<Json>(input) {
        Ok(json) => coset::cbor::into_writer(&json, &mut out),
        Err(_) => coset::cbor::into_writer(&Value::Bytes(input.to_vec()), &mut out),
    };
    // Writing into a Vec cannot fail for these value types; fall back to an
    // empty byte string rather than panic if it ever does.
    if written.is_err() {
        out = vec![0x40];
    }
    out
}

/// Decodes a payload for display: JSON if it is exactly one CBOR item,
/// otherwise `None`.
pub fn cbor_to_json(payload: &[u8]) -> Option<Json> {
    let mut reader = payload;
    let value: Value = coset::cbor::from_reader(&mut reader).ok()?;
    if !reader.is_empty() {
        return None;
    }
    Some(to_json(value, 0))
}

/// Deeper than this is shown as `null`: ciborium already limits recursion
/// while decoding, this keeps the conversion itself bounded too.
const MAX_DEPTH: usize = 128;

/// One CBOR value as JSON (the same lossy mapping as [`cbor_to_json`]).
pub fn value_to_json(v: Value) -> Json {
    to_json(v, 0)
}

fn to_json(v: Value, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    match v {
        Value::Integer(i) => {
            let i = i128::from(i);
            if let Ok(u) = u64::try_from(i) {
                Json::Number(u.into())
            } else if let Ok(s) = i64::try_from(i) {
                Json::Number(s.into())
            } else {
                Json::String(i.to_string())
            }
        }
        Value::Float(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) => {
            let mut m = Map::new();
            m.insert("$bytes".into(), Json::String(hex::encode(b)));
            Json::Object(m)
        }
        Value::Text(s) => Json::String(s),
        Value::Bool(b) => Json::Bool(b),
        Value::Null => Json::Null,
        Value::Tag(_, inner) => to_json(*inner, depth + 1),
        Value::Array(items) => {
            Json::Array(items.into_iter().map(|x| to_json(x, depth + 1)).collect())
        }
        Value::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Value::Text(s) => s,
                    other => to_json(other, depth + 1).to_string(),
                };
                m.insert(key, to_json(v, depth + 1));
            }
            Json::Object(m)
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_cbor() {
        let text = br#"{"temp":21.5,"ok":true,"n":-3,"list":[1,"a",null]}"#;
        let cbor = input_to_cbor(text);
        let back = cbor_to_json(&cbor).expect("one item");
        assert_eq!(back, serde_json::from_slice::<Json>(text).expect("json"));
    }

    #[test]
    fn raw_bytes_become_a_byte_string() {
        let cbor = input_to_cbor(&[0xff, 0x00, 0x01]);
        assert_eq!(cbor, vec![0x43, 0xff, 0x00, 0x01]);
        assert_eq!(
            cbor_to_json(&cbor),
            Some(serde_json::json!({"$bytes": "ff0001"}))
        );
    }

    #[test]
    fn trailing_or_broken_cbor_is_not_shown_as_json() {
        assert_eq!(cbor_to_json(&[0x01, 0x02]), None);
        assert_eq!(cbor_to_json(&[0x9f]), None);
        assert_eq!(cbor_to_json(&[]), None);
    }
}
