//! Peer records on the wire, and the record verifier the node shell uses.
//!
//! A peer record is a `peer_record` envelope (COSE_Sign1, broadcast
//! audience) signed by the peer's own key, whose payload is the CBOR map
//! `{ "s": seq, "t": ttl_secs, "a": [address, ...] }`. Its lifetime starts
//! at the envelope's timestamp. [`WireRecordVerifier`] opens such an
//! envelope with `wire::open_published` (signature, network, kind) and
//! reports owner, sequence and expiry to the core, which applies the rest
//! of the rules (key = SHA-256 of the owner, TTL at most 48 h, not expired,
//! higher sequence wins). Device records join in a later issue.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::Keypair;
use crate::wire::{self, Audience, Kind, NetworkId, Opened, UnixMillis, WireError};

use super::contact::Addrs;
use super::device_record::DeviceRecord;
use super::record::{RecordError, RecordVerifier, VerifiedRecord};
use super::revocation_record::{self, ListCheck};
use super::timer::Time;
use super::{Dht, DhtError, MAX_RECORD_WIRE_BYTES};

impl From<UnixMillis> for Time {
    fn from(t: UnixMillis) -> Time {
        Time(t.0)
    }
}

impl From<Time> for UnixMillis {
    fn from(t: Time) -> UnixMillis {
        UnixMillis(t.0)
    }
}

/// The payload of a `peer_record` envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Owner's sequence number; higher replaces lower.
    #[serde(rename = "s")]
    pub seq: u64,
    /// Lifetime in seconds from the envelope's timestamp.
    #[serde(rename = "t")]
    pub ttl_secs: u64,
    /// Where the peer can be reached.
    #[serde(rename = "a")]
    pub addrs: Addrs,
}

impl PeerRecord {
    /// Seals this record as a `peer_record` envelope signed by `owner`.
    pub fn seal(
        &self,
        owner: &Keypair,
        network: &NetworkId,
        now: UnixMillis,
        nonce: u64,
    ) -> Result<Vec<u8>, WireError> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).map_err(|e| WireError::Encode(e.to_string()))?;
        wire::seal(
            owner,
            network,
            Kind::PeerRecord,
            Audience::Anyone,
            &payload,
            now,
            nonce,
        )
    }
}

/// Verifies records as `wire` envelopes of this network.
#[derive(Clone)]
pub(crate) struct WireRecordVerifier {
    network: NetworkId,
    /// How the network's revocation record is judged; without it, such
    /// records are refused (a public network has none).
    lists: Option<ListCheck>,
}

impl std::fmt::Debug for WireRecordVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireRecordVerifier")
            .field("network", &self.network)
            .field("lists", &self.lists.is_some())
            .finish()
    }
}

impl WireRecordVerifier {
    /// A verifier for records of `network`.
    pub(crate) fn new(network: NetworkId) -> Self {
        Self {
            network,
            lists: None,
        }
    }

    /// Also keeps the network's revocation record, when `check` accepts
    /// the list inside.
    pub(crate) fn with_revocations(mut self, check: ListCheck) -> Self {
        self.lists = Some(check);
        self
    }
}

impl RecordVerifier for WireRecordVerifier {
    fn verify(&mut self, record: &[u8], _now: Time) -> Result<VerifiedRecord, RecordError> {
        let opened = wire::open_published(record, &self.network, MAX_RECORD_WIRE_BYTES).map_err(
            |e| match e {
                WireError::BadSignature | WireError::BadSenderKey => RecordError::BadSignature,
                WireError::WrongNetwork { .. } | WireError::WrongAudience { .. } => {
                    RecordError::WrongContext
                }
                _ => RecordError::Malformed,
            },
        )?;
        if opened.kind() == Kind::RevocationRecord {
            let check = self.lists.as_ref().ok_or(RecordError::WrongContext)?;
            let seq = check(opened.payload()).ok_or(RecordError::BadSignature)?;
            let issued = Time::from(opened.timestamp());
            return Ok(VerifiedRecord {
                owner: opened.sender(),
                seq,
                issued,
                expires: issued + revocation_record::TTL,
                host: None,
                under: Some(revocation_record::revocations_key(&self.network)),
            });
        }
        let (seq, ttl_secs, host) = match opened.kind() {
            Kind::PeerRecord => {
                let p: PeerRecord =
                    ciborium::from_reader(opened.payload()).map_err(|_| RecordError::Malformed)?;
                (p.seq, p.ttl_secs, None)
            }
            Kind::DeviceRecord => {
                let d = DeviceRecord::open(opened.payload(), &opened.sender(), &self.network)?;
                (d.seq, d.ttl_secs, Some(d.gateway))
            }
            _ => return Err(RecordError::WrongContext),
        };
        let issued = Time::from(opened.timestamp());
        let ttl = Duration::from_secs(ttl_secs.min(u64::from(u32::MAX)));
        Ok(VerifiedRecord {
            owner: opened.sender(),
            seq,
            issued,
            expires: issued + ttl,
            host,
            under: None,
        })
    }
}

impl Dht {
    /// [`Dht::handle_payload`] for an envelope `wire` opened: the sender key
    /// comes from the proof value, so it cannot be unverified. `addrs` is
    /// where the shell saw the peer (e.g. the QUIC remote address).
    pub(crate) fn handle_opened<V: RecordVerifier + ?Sized>(
        &mut self,
        now: Time,
        opened: &Opened,
        addrs: Addrs,
        verifier: &mut V,
    ) -> Result<(), DhtError> {
        let sender = opened.sender();
        self.handle_payload(
            now,
            &sender,
            addrs,
            opened.kind().name(),
            opened.payload(),
            verifier,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::RecordVerifier;

    #[test]
    fn sealed_peer_record_verifies_and_binds_network_and_kind() {
        let kp = Keypair::from_seed(&[4; 32]);
        let net = NetworkId::public();
        let rec = PeerRecord {
            seq: 3,
            ttl_secs: 3600,
            addrs: Addrs::new(&["192.0.2.1:4433"]).expect("addrs"),
        };
        let bytes = rec.seal(&kp, &net, UnixMillis(1_000), 1).expect("seal");
        let mut v = WireRecordVerifier::new(net.clone());
        let got = v.verify(&bytes, Time(2_000)).expect("valid");
        assert_eq!(
            (got.owner, got.seq, got.issued, got.expires),
            (kp.public(), 3, Time(1_000), Time(3_601_000))
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(v.verify(&bad, Time(2_000)), Err(RecordError::BadSignature));
        let other: NetworkId = "lab".parse().expect("network id");
        assert_eq!(
            WireRecordVerifier::new(other).verify(&bytes, Time(2_000)),
            Err(RecordError::WrongContext)
        );
    }
}
