//! Contacts: a peer's key, the node id derived from it, and its addresses.
//!
//! Node ids are derived, never claimed: there is no way to build a
//! [`Contact`] from an id, only from a key (the id is SHA-256 of it). A
//! contact decoded from a NODES reply is only a lookup *candidate*; it
//! enters the routing table only after that peer itself sent us a message
//! signed by its key ([`Contact::from_verified`]).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::identity::{NodeId, PublicKey};

use super::DhtError;

/// At most this many addresses per contact, on the wire and in the table.
pub(crate) const MAX_ADDRS: usize = 4;
/// At most this many bytes per address (a relayed one,
/// `relay:<64 hex>@[IPv6]:port`, takes up to 118).
pub(crate) const MAX_ADDR_LEN: usize = 128;

/// A peer's transport addresses, opaque to the DHT (the node shell puts
/// QUIC socket addresses here). Bounded: [`MAX_ADDRS`] entries of at most
/// [`MAX_ADDR_LEN`] bytes, checked while decoding.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Addrs(pub(crate) Box<[Box<str>]>);

impl Addrs {
    /// No addresses (the simulator routes by key).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Checks the caps.
    pub fn new<S: AsRef<str>>(list: &[S]) -> Result<Self, DhtError> {
        if list.len() > MAX_ADDRS {
            return Err(DhtError::LocalMisuse("more than MAX_ADDRS addresses"));
        }
        if list.iter().any(|a| a.as_ref().len() > MAX_ADDR_LEN) {
            return Err(DhtError::LocalMisuse("address longer than MAX_ADDR_LEN"));
        }
        Ok(Self(list.iter().map(|a| a.as_ref().into()).collect()))
    }

    /// The addresses, in the order the peer gave them.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|a| &**a)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len() * std::mem::size_of::<Box<str>>()
            + self.0.iter().map(|a| a.len()).sum::<usize>()
    }
}

impl fmt::Debug for Addrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Addrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Addrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Addrs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX_ADDRS} addresses")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Addrs, A::Error> {
                let mut out: Vec<Box<str>> = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    if out.len() == MAX_ADDRS {
                        return Err(de::Error::custom("too many addresses"));
                    }
                    if a.len() > MAX_ADDR_LEN {
                        return Err(de::Error::custom("address too long"));
                    }
                    out.push(a.into());
                }
                Ok(Addrs(out.into()))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A peer as the DHT knows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Contact {
    id: NodeId,
    key: [u8; 32],
    addrs: Addrs,
}

impl Contact {
    /// A contact for a key whose signature the shell has verified (the
    /// sender of an opened envelope). Only such contacts enter the routing
    /// table.
    pub fn from_verified(key: &PublicKey, addrs: Addrs) -> Self {
        Self {
            id: key.node_id(),
            key: *key.as_bytes(),
            addrs,
        }
    }

    /// A contact for key bytes somebody told us about (a NODES entry, a
    /// configured seed). The id is derived here; whether the key is real is
    /// proven only when the peer answers.
    pub fn from_claimed(key: [u8; 32], addrs: Addrs) -> Self {
        Self {
            id: NodeId(Sha256::digest(key).into()),
            key,
            addrs,
        }
    }

    /// SHA-256 of the key.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The raw Ed25519 key (the shell dials and verifies this key).
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key as a [`PublicKey`], or `None` if the bytes are not a valid
    /// curve point (possible only for claimed contacts).
    pub fn public_key(&self) -> Option<PublicKey> {
        PublicKey::from_bytes(&self.key).ok()
    }

    /// Where the peer says it can be reached.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.addrs.heap_bytes()
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contact({:?}, {:?})", self.id, self.addrs)
    }
}

/// On the wire a contact is `[key: bstr(32), addrs: [tstr]]`: no id, the
/// receiver derives it.
impl Serialize for Contact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Bytes32(self.key))?;
        t.serialize_element(&self.addrs)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Contact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (key, addrs) = <(Bytes32, Addrs)>::deserialize(d)?;
        Ok(Contact::from_claimed(key.0, addrs))
    }
}

/// 32 bytes as a CBOR byte string (serde's default would be an array of
/// 32 integers).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes32(pub(crate) [u8; 32]);

impl Serialize for Bytes32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes32, E> {
                <[u8; 32]>::try_from(v)
                    .map(Bytes32)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}
