//! A reading on the wire: sealed by its device's own key, and checked
//! against that key wherever it arrives.
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
//! One type, [`Payload`], is that map in both directions. `seq` grows with
//! every reading of the device (see [`next_seq`]), so a subscriber orders
//! what it receives and drops duplicates by it.
//!
//! The shapes of a reading, one per boundary: the bus's
//! [`streembit_bridges::Reading`], this payload on the wire, the API's
//! [`ReadingView`], and [`super::SignedReading`] inside the agent.

use serde::{Deserialize, Serialize};
use streembit_bridges::{Quality, Reading};

use super::ProtocolError;
use crate::api::ReadingView;
use crate::identity::{Keypair, PublicKey};
use crate::wire::payload::value_to_json;
use crate::wire::{
    open_published, open_published_batch, Audience, Kind, NetworkId, Opened, Sealer, UnixMillis,
    WireError,
};

/// The payload of a `reading` envelope: sealed with borrowed text and the
/// bus's value (`S` = `&str`, `V` = [`streembit_bridges::Value`]), opened
/// into owned text and any CBOR value.
#[derive(Debug, Serialize, Deserialize)]
struct Payload<S, V> {
    device: S,
    point: S,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<V>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<S>,
    quality: String,
    ts: u64,
    #[serde(default)]
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

/// The API's view of a reading this gateway made, with the sequence it
/// was sealed under (`None`: it could not be sealed). Its `cose` is left
/// for whoever shows it to fill from the envelope.
pub(super) fn view_of(reading: &Reading, seq: Option<u64>) -> ReadingView {
    ReadingView {
        device: reading.device.clone(),
        point: reading.point.clone(),
        value: reading
            .value
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok()),
        unit: reading.unit.clone(),
        quality: quality_text(&reading.quality),
        timestamp_ms: reading.timestamp,
        seq: seq.unwrap_or(0),
        cose: None,
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
        device: reading.device.as_str(),
        point: reading.point.as_str(),
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

/// Opens a `reading` envelope and checks that `device` signed it: a
/// reading signed by any other key (the gateway's included) is refused.
pub fn verify_reading(
    envelope: &[u8],
    device: &PublicKey,
    network: &NetworkId,
    max_len: usize,
) -> Result<ReadingView, ProtocolError> {
    let opened = open_published(envelope, network, max_len)?;
    view_from(&opened, envelope, device)
}

/// [`verify_reading`] for a burst, with one batch signature check (see
/// [`open_published_batch`]): one result per envelope, in order.
pub fn verify_readings<E: AsRef<[u8]>>(
    envelopes: &[E],
    device: &PublicKey,
    network: &NetworkId,
    max_len: usize,
) -> Vec<Result<ReadingView, ProtocolError>> {
    let refs: Vec<&[u8]> = envelopes.iter().map(AsRef::as_ref).collect();
    open_published_batch(&refs, network, max_len)
        .into_iter()
        .zip(&refs)
        .map(|(opened, env)| view_from(&opened?, env, device))
        .collect()
}

fn view_from(
    opened: &Opened,
    envelope: &[u8],
    device: &PublicKey,
) -> Result<ReadingView, ProtocolError> {
    if opened.kind() != Kind::Reading {
        return Err(ProtocolError::UnexpectedKind {
            expected: "a reading",
            got: opened.kind(),
        });
    }
    if opened.sender() != *device {
        return Err(ProtocolError::WrongSigner {
            device: Box::new(*device),
            got: Box::new(opened.sender()),
        });
    }
    let mut rest = opened.payload();
    let p: Payload<String, coset::cbor::Value> = ciborium::from_reader(&mut rest)
        .map_err(|e| ProtocolError::malformed(format!("the reading is not a reading map: {e}")))?;
    if !rest.is_empty() {
        return Err(ProtocolError::malformed("bytes after the reading map"));
    }
    Ok(ReadingView {
        device: p.device,
        point: p.point,
        value: p.value.map(value_to_json),
        unit: p.unit,
        quality: p.quality,
        timestamp_ms: p.ts,
        seq: p.seq,
        cose: Some(hex::encode(envelope)),
    })
}

#[cfg(test)]
mod tests {
    use coset::cbor::Value;
    use streembit_bridges::Value as BusValue;

    use super::*;
    use crate::wire::DEFAULT_MAX_ENVELOPE_BYTES;

    #[test]
    fn a_sealed_reading_opens_with_the_device_key_and_carries_the_value() {
        let key = Keypair::from_seed(&[5; 32]);
        let mut sealer = Sealer::with_nonce(NetworkId::public(), 1);
        let r = Reading {
            device: "meter".into(),
            point: "voltage".into(),
            value: Some(BusValue::Float(230.5)),
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
        // The view from the wire and the view of the board agree.
        let verified = verify_reading(&env, &key.public(), &NetworkId::public(), 1 << 16)
            .expect("the device's own reading");
        let mut on_board = view_of(&r, Some(9));
        on_board.cose = Some(hex::encode(&env));
        assert_eq!(verified, on_board);
    }

    /// What `read` relies on: a reading is accepted only when the device
    /// key signed it, so a gateway re-signing with its own key is caught.
    #[test]
    fn a_reading_signed_by_anyone_but_the_device_is_refused() {
        let device = Keypair::from_seed(&[1; 32]);
        let gateway = Keypair::from_seed(&[2; 32]);
        let net = NetworkId::public();
        let payload = Value::Map(vec![
            (Value::Text("device".into()), Value::Text("meter".into())),
            (Value::Text("point".into()), Value::Text("temp".into())),
            (Value::Text("value".into()), Value::Integer(21.into())),
            (Value::Text("quality".into()), Value::Text("good".into())),
            (Value::Text("ts".into()), Value::Integer(1.into())),
            (Value::Text("seq".into()), Value::Integer(5.into())),
        ]);
        let mut payload_bytes = Vec::new();
        ciborium::into_writer(&payload, &mut payload_bytes).expect("cbor");
        let mut sealer = Sealer::with_nonce(net.clone(), 1);
        let mut seal = |key: &Keypair, kind, bytes: &[u8]| {
            sealer
                .seal(key, kind, Audience::Anyone, bytes, UnixMillis(1))
                .expect("seal")
        };
        let good = seal(&device, Kind::Reading, &payload_bytes);
        let r = verify_reading(&good, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES)
            .expect("the device's own reading");
        assert_eq!((r.seq, r.value), (5, Some(serde_json::json!(21))));
        let resigned = seal(&gateway, Kind::Reading, &payload_bytes);
        let err = verify_reading(
            &resigned,
            &device.public(),
            &net,
            DEFAULT_MAX_ENVELOPE_BYTES,
        )
        .expect_err("re-signed by the gateway");
        assert!(err.to_string().contains("not by the device"), "{err}");
        let note = seal(&device, Kind::Note, &payload_bytes);
        assert!(verify_reading(&note, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES).is_err());
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(
            verify_reading(&flipped, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES).is_err()
        );
        // A device-signed map without a timestamp is not a reading.
        let mut no_ts = Vec::new();
        ciborium::into_writer(
            &Value::Map(vec![
                (Value::Text("device".into()), Value::Text("meter".into())),
                (Value::Text("point".into()), Value::Text("temp".into())),
                (Value::Text("quality".into()), Value::Text("good".into())),
            ]),
            &mut no_ts,
        )
        .expect("cbor");
        let env = seal(&device, Kind::Reading, &no_ts);
        assert!(verify_reading(&env, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES).is_err());
    }
}
