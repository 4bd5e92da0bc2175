//! Device records: a device behind a gateway as a DHT record of its own.
//!
//! A device record is a `device_record` envelope signed by the **device's**
//! key and stored under SHA-256(device key), like a peer record. Its payload
//! names the hosting gateway and carries the gateway's counter-signature,
//! so a lookup of a device key leads to the gateway that hosts it, and
//! nobody can claim to host a device without the gateway's key:
//!
//! ```text
//! { "s": seq, "t": ttl_secs, "g": bstr(32) gateway key, "a": [gateway address, ...],
//!   "c": bstr(64) Ed25519 signature by the gateway key over
//!        CBOR ["streembit-device-record", network, device key, gateway key, seq, ttl_secs, addresses] }
//! ```

use coset::cbor::Value;

use crate::identity::{Keypair, PublicKey};
use crate::wire::{self, Audience, Kind, NetworkId, UnixMillis, WireError};

use super::contact::Addrs;
use super::record::RecordError;

/// The decoded payload of a device record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRecord {
    /// Sequence; higher replaces lower.
    pub seq: u64,
    /// Lifetime in seconds from the envelope's timestamp.
    pub ttl_secs: u64,
    /// The hosting gateway.
    pub gateway: PublicKey,
    /// Where the gateway can be reached.
    pub addrs: Addrs,
}

const CONTEXT: &str = "streembit-device-record";

fn countersigned(network: &NetworkId, device: &PublicKey, r: &DeviceRecord) -> Vec<u8> {
    let statement = Value::Array(vec![
        Value::Text(CONTEXT.to_owned()),
        Value::Text(network.as_str().to_owned()),
        Value::Bytes(device.as_bytes().to_vec()),
        Value::Bytes(r.gateway.as_bytes().to_vec()),
        Value::from(r.seq),
        Value::from(r.ttl_secs),
        Value::Array(r.addrs.iter().map(|a| Value::Text(a.to_owned())).collect()),
    ]);
    let mut out = Vec::new();
    // A Vec writer cannot fail for these value types.
    let _ = coset::cbor::into_writer(&statement, &mut out);
    out
}

impl DeviceRecord {
    /// Seals this record: counter-signed by `gateway`, signed by `device`.
    pub(crate) fn seal(
        &self,
        device: &Keypair,
        gateway: &Keypair,
        network: &NetworkId,
        now: UnixMillis,
        nonce: u64,
    ) -> Result<Vec<u8>, WireError> {
        if gateway.public() != self.gateway {
            return Err(WireError::Encode(
                "gateway key differs from the record's".into(),
            ));
        }
        let counter = gateway.sign(&countersigned(network, &device.public(), self));
        let payload = Value::Map(vec![
            (Value::Text("s".into()), Value::from(self.seq)),
            (Value::Text("t".into()), Value::from(self.ttl_secs)),
            (
                Value::Text("g".into()),
                Value::Bytes(self.gateway.as_bytes().to_vec()),
            ),
            (
                Value::Text("a".into()),
                Value::Array(
                    self.addrs
                        .iter()
                        .map(|a| Value::Text(a.to_owned()))
                        .collect(),
                ),
            ),
            (Value::Text("c".into()), Value::Bytes(counter.to_vec())),
        ]);
        let mut bytes = Vec::new();
        coset::cbor::into_writer(&payload, &mut bytes)
            .map_err(|e| WireError::Encode(e.to_string()))?;
        wire::seal(
            device,
            network,
            Kind::DeviceRecord,
            Audience::Anyone,
            &bytes,
            now,
            nonce,
        )
    }

    /// Decodes a payload signed by `device` on `network` and checks the
    /// gateway's counter-signature.
    pub(crate) fn open(
        payload: &[u8],
        device: &PublicKey,
        network: &NetworkId,
    ) -> Result<Self, RecordError> {
        let mut reader = payload;
        let value: Value =
            coset::cbor::from_reader(&mut reader).map_err(|_| RecordError::Malformed)?;
        let Value::Map(fields) = value else {
            return Err(RecordError::Malformed);
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v)
                .ok_or(RecordError::Malformed)
        };
        let uint = |v: &Value| {
            v.as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or(RecordError::Malformed)
        };
        let bytes = |v: &Value| v.as_bytes().cloned().ok_or(RecordError::Malformed);
        let addrs: Vec<String> = field("a")?
            .as_array()
            .ok_or(RecordError::Malformed)?
            .iter()
            .map(|a| a.as_text().map(str::to_owned).ok_or(RecordError::Malformed))
            .collect::<Result<_, _>>()?;
        let record = DeviceRecord {
            seq: uint(field("s")?)?,
            ttl_secs: uint(field("t")?)?,
            gateway: PublicKey::from_bytes(&bytes(field("g")?)?)
                .map_err(|_| RecordError::Malformed)?,
            addrs: Addrs::new(&addrs).map_err(|_| RecordError::Malformed)?,
        };
        let counter = bytes(field("c")?)?;
        if !record
            .gateway
            .verify(&countersigned(network, device, &record), &counter)
        {
            return Err(RecordError::BadSignature);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::{RecordVerifier, Time, WireRecordVerifier};

    fn record(gateway: &Keypair) -> DeviceRecord {
        DeviceRecord {
            seq: 7,
            ttl_secs: 3600,
            gateway: gateway.public(),
            addrs: Addrs::new(&["192.0.2.1:7470"]).expect("addrs"),
        }
    }

    #[test]
    fn sealed_device_record_verifies_and_names_its_gateway() {
        let (device, gateway) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let net = NetworkId::public();
        let bytes = record(&gateway)
            .seal(&device, &gateway, &net, UnixMillis(1_000), 1)
            .expect("seal");
        let v = WireRecordVerifier::new(net.clone())
            .verify(&bytes, Time(2_000))
            .expect("valid");
        assert_eq!((v.owner, v.seq), (device.public(), 7));
        let opened = wire::open_published(&bytes, &net, 4096).expect("open");
        let r = DeviceRecord::open(opened.payload(), &device.public(), &net).expect("payload");
        assert_eq!(r.gateway, gateway.public());
    }

    #[test]
    fn a_counter_signature_that_does_not_match_is_refused() {
        let (device, gateway, other) = (
            Keypair::from_seed(&[1; 32]),
            Keypair::from_seed(&[2; 32]),
            Keypair::from_seed(&[3; 32]),
        );
        let net = NetworkId::public();
        // Claims `gateway` hosts it, but the counter-signature is `other`'s:
        // build the record for `other`, then swap the named gateway.
        let forged = DeviceRecord {
            gateway: other.public(),
            ..record(&gateway)
        };
        let counter = other.sign(&countersigned(&net, &device.public(), &forged));
        let payload = Value::Map(vec![
            (Value::Text("s".into()), Value::from(7u64)),
            (Value::Text("t".into()), Value::from(3600u64)),
            (
                Value::Text("g".into()),
                Value::Bytes(gateway.public().as_bytes().to_vec()),
            ),
            (
                Value::Text("a".into()),
                Value::Array(vec![Value::Text("192.0.2.1:7470".into())]),
            ),
            (Value::Text("c".into()), Value::Bytes(counter.to_vec())),
        ]);
        let mut p = Vec::new();
        coset::cbor::into_writer(&payload, &mut p).expect("cbor");
        let bytes = wire::seal(
            &device,
            &net,
            Kind::DeviceRecord,
            Audience::Anyone,
            &p,
            UnixMillis(1_000),
            1,
        )
        .expect("seal");
        assert_eq!(
            WireRecordVerifier::new(net.clone()).verify(&bytes, Time(2_000)),
            Err(RecordError::BadSignature)
        );
        // Another network's counter-signature does not carry over either.
        let lab: NetworkId = "lab".parse().expect("id");
        let good_elsewhere = record(&gateway)
            .seal(&device, &gateway, &lab, UnixMillis(1_000), 2)
            .expect("seal");
        assert!(WireRecordVerifier::new(lab)
            .verify(&good_elsewhere, Time(2_000))
            .is_ok());
        assert!(WireRecordVerifier::new(net)
            .verify(&good_elsewhere, Time(2_000))
            .is_err());
    }
}
