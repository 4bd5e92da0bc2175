//! The DHT's messages: CBOR payloads carried inside the signed envelopes of
//! the `wire` module.
//!
//! The envelope already names the message kind and the (verified) sender,
//! so a payload holds only what the kind needs, in a CBOR map with one-
//! letter keys. Every limit is checked before or while decoding: the whole
//! payload against a per-kind byte cap first, then contact lists stop at
//! [`MAX_CONTACTS`] and address lists at
//! [`MAX_ADDRS`](super::contact::MAX_ADDRS) without allocating past them.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::NodeId;

use super::contact::{Bytes32, Contact, MAX_ADDRS, MAX_ADDR_LEN};
use super::DhtError;

/// At most this many contacts in a NODES or VALUE reply (k = 20).
pub(crate) const MAX_CONTACTS: usize = 20;
/// At most this many bytes of record in a STORE or VALUE payload.
pub const MAX_RECORD_WIRE_BYTES: usize = 4096;
/// The largest encoding of one contact: array head, key, addresses.
const MAX_CONTACT_BYTES: usize = 1 + 2 + 32 + 1 + MAX_ADDRS * (2 + MAX_ADDR_LEN);
/// Cap for a payload without contacts or records.
const SMALL_CAP: usize = 64;
/// Cap for a payload with a contact list.
const NODES_CAP: usize = 32 + 3 + MAX_CONTACTS * MAX_CONTACT_BYTES;

/// The eight DHT message kinds; [`MessageKind::name`] is the kind's name on
/// the wire (the envelope's `kind` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Liveness probe.
    Ping,
    /// Answer to PING.
    Pong,
    /// Ask for the k contacts closest to a target id.
    FindNode,
    /// Answer to FIND_NODE.
    Nodes,
    /// Ask for the record stored under a key, else closest contacts.
    FindValue,
    /// Answer to FIND_VALUE.
    Value,
    /// Ask the peer to keep a record.
    Store,
    /// Answer to STORE.
    Stored,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 8] = [
        Self::Ping,
        Self::Pong,
        Self::FindNode,
        Self::Nodes,
        Self::FindValue,
        Self::Value,
        Self::Store,
        Self::Stored,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::FindNode => "find_node",
            Self::Nodes => "nodes",
            Self::FindValue => "find_value",
            Self::Value => "value",
            Self::Store => "store",
            Self::Stored => "stored",
        }
    }

    /// The kind for a wire name; `None` for kinds that are not the DHT's.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The largest payload this kind may have, checked before decoding.
    pub fn max_payload(self) -> usize {
        match self {
            Self::Ping | Self::Pong | Self::Stored | Self::FindNode | Self::FindValue => SMALL_CAP,
            Self::Nodes => NODES_CAP,
            Self::Store => 32 + MAX_RECORD_WIRE_BYTES,
            Self::Value => NODES_CAP + MAX_RECORD_WIRE_BYTES,
        }
    }
}

/// Why a node refused a STORE (carried in STORED; also counted locally).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreRefusal {
    /// The record is larger than the node's `max_record_bytes`.
    TooLarge,
    /// Bad signature, malformed, expired, or a TTL over the hard maximum.
    Invalid,
    /// The node holds a higher sequence for this key.
    Stale,
    /// The sending peer used up its quota of stored records.
    PublisherQuota,
    /// The node holds `max_records` records or `max_total_bytes` bytes.
    Full,
    /// The node knows k or more nodes closer to the record's key than
    /// itself, so the key is not its to hold.
    NotClosest,
}

impl StoreRefusal {
    fn code(self) -> u8 {
        match self {
            Self::TooLarge => 1,
            Self::Invalid => 2,
            Self::Stale => 3,
            Self::PublisherQuota => 4,
            Self::Full => 5,
            Self::NotClosest => 6,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::TooLarge,
            2 => Self::Invalid,
            3 => Self::Stale,
            4 => Self::PublisherQuota,
            5 => Self::Full,
            6 => Self::NotClosest,
            _ => return None,
        })
    }
}

/// A decoded DHT message. `rid` is the requester's id for the exchange;
/// a reply echoes it, and the core accepts a reply only from the peer the
/// request went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// PING.
    Ping {
        /// Request id.
        rid: u64,
    },
    /// PONG.
    Pong {
        /// Echoed request id.
        rid: u64,
    },
    /// FIND_NODE.
    FindNode {
        /// Request id.
        rid: u64,
        /// The id whose closest contacts are wanted.
        target: NodeId,
    },
    /// NODES: at most [`MAX_CONTACTS`] contacts.
    Nodes {
        /// Echoed request id.
        rid: u64,
        /// Closest contacts the peer knows.
        nodes: Vec<Contact>,
    },
    /// FIND_VALUE.
    FindValue {
        /// Request id.
        rid: u64,
        /// The record key (SHA-256 of the owner's key).
        key: NodeId,
    },
    /// VALUE: the record if held, else closest contacts.
    Value {
        /// Echoed request id.
        rid: u64,
        /// The record bytes (a signed envelope), if the peer has it.
        record: Option<Vec<u8>>,
        /// Closest contacts, when there is no record.
        nodes: Vec<Contact>,
    },
    /// STORE.
    Store {
        /// Request id.
        rid: u64,
        /// The record bytes (a signed envelope).
        record: Vec<u8>,
    },
    /// STORED.
    Stored {
        /// Echoed request id.
        rid: u64,
        /// `Ok` if kept, else why not.
        result: Result<(), StoreRefusal>,
    },
}

#[derive(Serialize, Deserialize)]
struct RidBody {
    r: u64,
}

#[derive(Serialize, Deserialize)]
struct FindBody {
    r: u64,
    t: Bytes32,
}

#[derive(Serialize, Deserialize)]
struct NodesBody {
    r: u64,
    #[serde(deserialize_with = "bounded_contacts")]
    n: Vec<Contact>,
}

#[derive(Serialize, Deserialize)]
struct ValueBody {
    r: u64,
    #[serde(default)]
    v: Option<Blob>,
    #[serde(deserialize_with = "bounded_contacts", default)]
    n: Vec<Contact>,
}

#[derive(Serialize, Deserialize)]
struct StoreBody {
    r: u64,
    v: Blob,
}

#[derive(Serialize, Deserialize)]
struct StoredBody {
    r: u64,
    s: u8,
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Ping { .. } => MessageKind::Ping,
            Self::Pong { .. } => MessageKind::Pong,
            Self::FindNode { .. } => MessageKind::FindNode,
            Self::Nodes { .. } => MessageKind::Nodes,
            Self::FindValue { .. } => MessageKind::FindValue,
            Self::Value { .. } => MessageKind::Value,
            Self::Store { .. } => MessageKind::Store,
            Self::Stored { .. } => MessageKind::Stored,
        }
    }

    /// The request id.
    pub fn rid(&self) -> u64 {
        match self {
            Self::Ping { rid }
            | Self::Pong { rid }
            | Self::FindNode { rid, .. }
            | Self::Nodes { rid, .. }
            | Self::FindValue { rid, .. }
            | Self::Value { rid, .. }
            | Self::Store { rid, .. }
            | Self::Stored { rid, .. } => *rid,
        }
    }

    /// The CBOR payload to seal into an envelope of kind `self.kind()`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let r = match self {
            Self::Ping { rid } | Self::Pong { rid } => {
                ciborium::into_writer(&RidBody { r: *rid }, &mut out)
            }
            Self::FindNode { rid, target: t } | Self::FindValue { rid, key: t } => {
                ciborium::into_writer(
                    &FindBody {
                        r: *rid,
                        t: Bytes32(t.0),
                    },
                    &mut out,
                )
            }
            Self::Nodes { rid, nodes } => {
                ciborium::into_writer(&NodesRef { r: *rid, n: nodes }, &mut out)
            }
            Self::Value { rid, record, nodes } => ciborium::into_writer(
                &ValueRef {
                    r: *rid,
                    v: record.as_deref().map(BlobRef),
                    n: nodes,
                },
                &mut out,
            ),
            Self::Store { rid, record } => ciborium::into_writer(
                &StoreRef {
                    r: *rid,
                    v: BlobRef(record),
                },
                &mut out,
            ),
            Self::Stored { rid, result } => ciborium::into_writer(
                &StoredBody {
                    r: *rid,
                    s: result.err().map_or(0, StoreRefusal::code),
                },
                &mut out,
            ),
        };
        // Writing to a Vec cannot fail and every field serializes.
        debug_assert!(r.is_ok());
        out
    }

    /// Decodes a payload of `kind`, checking the byte cap before parsing and
    /// the list caps while parsing. Errors blame the peer.
    pub fn decode(kind: MessageKind, payload: &[u8]) -> Result<Message, DhtError> {
        if payload.len() > kind.max_payload() {
            return Err(DhtError::Oversize {
                kind: kind.name(),
                len: payload.len(),
                max: kind.max_payload(),
            });
        }
        let bad = |e: ciborium::de::Error<std::io::Error>| DhtError::Malformed {
            kind: kind.name(),
            reason: e.to_string(),
        };
        Ok(match kind {
            MessageKind::Ping => Message::Ping {
                rid: ciborium::from_reader::<RidBody, _>(payload).map_err(bad)?.r,
            },
            MessageKind::Pong => Message::Pong {
                rid: ciborium::from_reader::<RidBody, _>(payload).map_err(bad)?.r,
            },
            MessageKind::FindNode => {
                let b: FindBody = ciborium::from_reader(payload).map_err(bad)?;
                Message::FindNode {
                    rid: b.r,
                    target: NodeId(b.t.0),
                }
            }
            MessageKind::FindValue => {
                let b: FindBody = ciborium::from_reader(payload).map_err(bad)?;
                Message::FindValue {
                    rid: b.r,
                    key: NodeId(b.t.0),
                }
            }
            MessageKind::Nodes => {
                let b: NodesBody = ciborium::from_reader(payload).map_err(bad)?;
                Message::Nodes {
                    rid: b.r,
                    nodes: b.n,
                }
            }
            MessageKind::Value => {
                let b: ValueBody = ciborium::from_reader(payload).map_err(bad)?;
                Message::Value {
                    rid: b.r,
                    record: b.v.map(|v| v.0),
                    nodes: b.n,
                }
            }
            MessageKind::Store => {
                let b: StoreBody = ciborium::from_reader(payload).map_err(bad)?;
                Message::Store {
                    rid: b.r,
                    record: b.v.0,
                }
            }
            MessageKind::Stored => {
                let b: StoredBody = ciborium::from_reader(payload).map_err(bad)?;
                let result = match b.s {
                    0 => Ok(()),
                    c => Err(StoreRefusal::from_code(c).ok_or(DhtError::Malformed {
                        kind: kind.name(),
                        reason: format!("unknown STORED status {c}"),
                    })?),
                };
                Message::Stored { rid: b.r, result }
            }
        })
    }
}

// Borrowing twins of the bodies, so encoding does not clone contact lists.
#[derive(Serialize)]
struct NodesRef<'a> {
    r: u64,
    n: &'a [Contact],
}

#[derive(Serialize)]
struct ValueRef<'a> {
    r: u64,
    v: Option<BlobRef<'a>>,
    n: &'a [Contact],
}

#[derive(Serialize)]
struct StoreRef<'a> {
    r: u64,
    v: BlobRef<'a>,
}

struct BlobRef<'a>(&'a [u8]);

impl Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Record bytes as a CBOR byte string of at most [`MAX_RECORD_WIRE_BYTES`].
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string of at most {MAX_RECORD_WIRE_BYTES} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                if v.len() > MAX_RECORD_WIRE_BYTES {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A contact list that stops at [`MAX_CONTACTS`] instead of growing.
fn bounded_contacts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Contact>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Contact>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {MAX_CONTACTS} contacts")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Contact>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_CONTACTS));
            while let Some(c) = seq.next_element::<Contact>()? {
                if out.len() == MAX_CONTACTS {
                    return Err(de::Error::custom("too many contacts"));
                }
                out.push(c);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::contact::Addrs;
    use crate::identity::Keypair;

    fn contact(i: u8) -> Contact {
        let addrs = Addrs::new(&[format!("10.0.0.{i}:4433")]).expect("addrs");
        Contact::from_verified(&Keypair::from_seed(&[i; 32]).public(), addrs)
    }

    #[test]
    fn every_kind_round_trips() {
        let msgs = vec![
            Message::Ping { rid: 1 },
            Message::Pong { rid: u64::MAX },
            Message::FindNode {
                rid: 2,
                target: NodeId([7; 32]),
            },
            Message::Nodes {
                rid: 3,
                nodes: (0..20).map(contact).collect(),
            },
            Message::FindValue {
                rid: 4,
                key: NodeId([9; 32]),
            },
            Message::Value {
                rid: 5,
                record: Some(vec![1, 2, 3]),
                nodes: vec![],
            },
            Message::Value {
                rid: 6,
                record: None,
                nodes: vec![contact(1)],
            },
            Message::Store {
                rid: 7,
                record: vec![0; MAX_RECORD_WIRE_BYTES],
            },
            Message::Stored {
                rid: 8,
                result: Ok(()),
            },
            Message::Stored {
                rid: 9,
                result: Err(StoreRefusal::PublisherQuota),
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert!(
                bytes.len() <= m.kind().max_payload(),
                "{:?} {}",
                m.kind(),
                bytes.len()
            );
            assert_eq!(Message::decode(m.kind(), &bytes).ok(), Some(m.clone()));
            assert_eq!(MessageKind::from_name(m.kind().name()), Some(m.kind()));
        }
    }

    #[test]
    fn caps_are_enforced_and_garbage_is_an_error() {
        let too_many = Message::Nodes {
            rid: 1,
            nodes: (0..21).map(contact).collect(),
        }
        .encode();
        assert!(matches!(
            Message::decode(MessageKind::Nodes, &too_many),
            Err(DhtError::Malformed { .. })
        ));
        let oversize = vec![0u8; MessageKind::Ping.max_payload() + 1];
        assert!(matches!(
            Message::decode(MessageKind::Ping, &oversize),
            Err(DhtError::Oversize { .. })
        ));
        for junk in [&b""[..], &[0xff], &[0xa1, 0x61, 0x72], &[0x9f; 40]] {
            for kind in MessageKind::ALL {
                assert!(Message::decode(kind, junk).is_err(), "{kind:?} {junk:?}");
            }
        }
        let five_addrs = Addrs(vec!["a".into(); 5].into());
        let c = Contact::from_claimed([1; 32], five_addrs);
        let bytes = Message::Nodes {
            rid: 1,
            nodes: vec![c],
        }
        .encode();
        assert!(Message::decode(MessageKind::Nodes, &bytes).is_err());
        assert!(MessageKind::from_name("reading").is_none());
    }
}
