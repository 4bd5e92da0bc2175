//! Every reading is sealed by its device's own key.
//!
//! A reading envelope is a broadcast `reading` (docs/wire.md) signed with
//! the device key, so anyone holding only the device's public key can check
//! it without trusting the gateway. Its payload is the CBOR map:
//!
//! ```text
//! { "device": tstr, "point": tstr, ? "value": bool / int / float / tstr / bstr,
//!   ? "unit": tstr, "quality": "good" / "bad: <reason>", "ts": uint (ms),
//!   "seq": uint }
//! ```
//!
//! `seq` grows with every reading of the device (see [`next_seq`]), so a
//! subscriber orders what it receives and drops duplicates by it.
//!
//! Sealing runs in the collector task, behind the bridge's bounded channel:
//! the bus loop never waits for a signature.

use serde::Serialize;
use streembit_bridges::{Quality, Reading, Value};

use crate::identity::Keypair;
use crate::wire::{Audience, Kind, Sealer, UnixMillis, WireError};

#[derive(Serialize)]
struct Payload<'a> {
    device: &'a str,
    point: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    quality: String,
    ts: u64,
    seq: u64,
}

/// The sequence of a device's next reading: above the previous one, and
/// at least the clock in microseconds, so it keeps growing across restarts
/// without being stored (the gateway also seeds `prev` from its
/// store-and-forward queues, which covers a clock that steps back).
pub fn next_seq(prev: u64, now: UnixMillis) -> u64 {
    prev.saturating_add(1).max(now.0.saturating_mul(1000))
}

/// The quality as text: `good` or `bad: <reason>`.
pub(super) fn quality_text(q: &Quality) -> String {
    match q {
        Quality::Good => "good".to_owned(),
        Quality::Bad(e) => format!("bad: {e}"),
    }
}

/// Seals `reading` with `device`'s key.
pub fn seal_reading(
    sealer: &mut Sealer,
    device: &Keypair,
    reading: &Reading,
    seq: u64,
    now: UnixMillis,
) -> Result<Vec<u8>, WireError> {
    let payload = Payload {
        device: &reading.device,
        point: &reading.point,
        value: reading.value.as_ref(),
        unit: reading.unit.as_deref(),
        quality: quality_text(&reading.quality),
        ts: reading.timestamp,
        seq,
    };
    let mut cbor = Vec::with_capacity(96);
    ciborium::into_writer(&payload, &mut cbor).map_err(|e| WireError::Encode(e.to_string()))?;
    sealer.seal(device, Kind::Reading, Audience::Anyone, &cbor, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{open_published, NetworkId, DEFAULT_MAX_ENVELOPE_BYTES};

    #[test]
    fn a_sealed_reading_opens_with_the_device_key_and_carries_the_value() {
        let key = Keypair::from_seed(&[5; 32]);
        let mut sealer = Sealer::with_nonce(NetworkId::public(), 1);
        let r = Reading {
            device: "meter".into(),
            point: "voltage".into(),
            value: Some(Value::Float(230.5)),
            unit: Some("V".into()),
            quality: Quality::Good,
            timestamp: 1_800_000_000_000,
        };
        let env =
            seal_reading(&mut sealer, &key, &r, 9, UnixMillis(1_800_000_000_001)).expect("seal");
        let opened =
            open_published(&env, &NetworkId::public(), DEFAULT_MAX_ENVELOPE_BYTES).expect("open");
        assert_eq!(opened.sender(), key.public());
        assert_eq!(opened.kind(), Kind::Reading);
        let v: ciborium::Value = ciborium::from_reader(opened.payload()).expect("cbor");
        let map = v.as_map().expect("map");
        let get = |k: &str| {
            map.iter()
                .find(|(kk, _)| kk.as_text() == Some(k))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("value").and_then(|v| v.as_float()), Some(230.5));
        assert_eq!(
            get("quality").and_then(|v| v.as_text().map(str::to_owned)),
            Some("good".into())
        );
        assert_eq!(
            get("device").and_then(|v| v.as_text().map(str::to_owned)),
            Some("meter".into())
        );
    }
}
