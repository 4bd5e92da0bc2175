//! The two statements of a private network's membership, as any COSE
//! library can read them: a [`Credential`] (this key is a member, in this
//! role) and a [`Revocations`] list (these keys no longer are). Both are
//! [`super::multisigned`] statements; their layout byte by byte is in
//! `docs/wire.md`.
//!
//! ```text
//! credential  (content type "application/streembit-credential"):
//!   { "n": network, "k": bstr(32) member key, "r": "gateway" | "member" | "device",
//!     "i": issued (Unix ms), ? "e": expires (Unix ms), "s": serial }
//! revocations (content type "application/streembit-revocations"):
//!   { "n": network, "q": sequence, "i": issued (Unix ms), "k": [ bstr(32) ... ] }
//! ```
//!
//! What this module does not do: decide who may sign which (the
//! transport's membership does: admins sign members and gateways, a
//! gateway signs its own devices), or keep anything.

use std::collections::BTreeSet;

use coset::cbor::Value;

use super::multisigned::{self, Unverified, Verified};
use super::{UnixMillis, WireError};
use crate::identity::{Keypair, PublicKey};

/// Content type of a credential.
pub const CREDENTIAL_TYPE: &str = "application/streembit-credential";
/// Content type of a revocation list.
pub const REVOCATIONS_TYPE: &str = "application/streembit-revocations";
/// Largest credential read (checked before decoding).
pub const MAX_CREDENTIAL_BYTES: usize = 4096;
/// Largest revocation list read (checked before decoding): about 120,000
/// revoked keys.
pub const MAX_REVOCATIONS_BYTES: usize = 4 << 20;

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A member that also hosts devices: it may sign device credentials
    /// for the keys of its own bus devices.
    Gateway,
    /// A member: it joins the DHT, reads, subscribes and (where a point's
    /// writers allow) writes; it cannot admit anyone.
    Member,
    /// A device, admitted by the gateway that hosts it and only while that
    /// gateway is a member.
    Device,
}

impl Role {
    /// The name on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Member => "member",
            Role::Device => "device",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Role::Gateway, Role::Member, Role::Device]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// "This key is a member of this network, in this role."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The network's id.
    pub network: String,
    /// The member's key.
    pub subject: PublicKey,
    /// What it may do.
    pub role: Role,
    /// When it was issued.
    pub issued: UnixMillis,
    /// When it ends (`None`: it does not; revocation ends it).
    pub expires: Option<UnixMillis>,
    /// The issuer's serial number, for the operator's records.
    pub serial: u64,
}

/// A credential as presented: what it says and who signed it.
pub type SignedCredential = (Credential, Vec<PublicKey>);

impl Credential {
    /// Signs this credential by `issuers`.
    pub fn sign(&self, issuers: &[&Keypair]) -> Vec<u8> {
        let mut map = vec![
            text_entry("n", Value::Text(self.network.clone())),
            text_entry("k", Value::Bytes(self.subject.as_bytes().to_vec())),
            text_entry("r", Value::Text(self.role.as_str().to_owned())),
            text_entry("i", Value::from(self.issued.0)),
        ];
        if let Some(e) = self.expires {
            map.push(text_entry("e", Value::from(e.0)));
        }
        map.push(text_entry("s", Value::from(self.serial)));
        multisigned::sign(CREDENTIAL_TYPE, cbor(&Value::Map(map)), issuers)
    }

    /// Reads and verifies a credential; every signature must verify.
    pub fn open(bytes: &[u8]) -> Result<SignedCredential, WireError> {
        let Verified { payload, signers } =
            multisigned::verify(bytes, CREDENTIAL_TYPE, MAX_CREDENTIAL_BYTES)?;
        Ok((Self::from_payload(&payload, &[])?, signers))
    }

    /// Reads a credential **without checking its signatures**, and returns
    /// them to check (in a batch with the handshake's own): nothing in it
    /// may be trusted until they are. Keys among `known` (the admins', the
    /// peer's) are taken from it rather than read again.
    pub fn parse(bytes: &[u8], known: &[PublicKey]) -> Result<(Credential, Unverified), WireError> {
        let read = multisigned::parse(bytes, CREDENTIAL_TYPE, MAX_CREDENTIAL_BYTES, known)?;
        Ok((Self::from_payload(&read.payload, known)?, read))
    }

    fn from_payload(payload: &[u8], known: &[PublicKey]) -> Result<Self, WireError> {
        let map = Fields::decode(payload)?;
        Ok(Credential {
            network: map.text("n")?.to_owned(),
            subject: map.key("k", known)?,
            role: Role::parse(map.text("r")?).ok_or(WireError::BadHeader {
                header: "role",
                reason: "not gateway, member or device".into(),
            })?,
            issued: UnixMillis(map.uint("i")?),
            expires: map.optional_uint("e")?.map(UnixMillis),
            serial: map.uint("s")?,
        })
    }
}

/// "These keys are no longer members": the whole list at a sequence, so
/// the newest list alone says everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    /// The network's id.
    pub network: String,
    /// Higher replaces lower.
    pub seq: u64,
    /// When it was signed.
    pub issued: UnixMillis,
    /// The revoked keys.
    pub revoked: BTreeSet<PublicKey>,
}

impl Revocations {
    /// Signs this list by `admins`.
    pub fn sign(&self, admins: &[&Keypair]) -> Vec<u8> {
        let keys = self
            .revoked
            .iter()
            .map(|k| Value::Bytes(k.as_bytes().to_vec()))
            .collect();
        let map = Value::Map(vec![
            text_entry("n", Value::Text(self.network.clone())),
            text_entry("q", Value::from(self.seq)),
            text_entry("i", Value::from(self.issued.0)),
            text_entry("k", Value::Array(keys)),
        ]);
        multisigned::sign(REVOCATIONS_TYPE, cbor(&map), admins)
    }

    /// Reads and verifies a list; every signature must verify.
    pub fn open(bytes: &[u8]) -> Result<(Revocations, Vec<PublicKey>), WireError> {
        let Verified { payload, signers } =
            multisigned::verify(bytes, REVOCATIONS_TYPE, MAX_REVOCATIONS_BYTES)?;
        let map = Fields::decode(&payload)?;
        let Some(Value::Array(keys)) = map.get("k") else {
            return Err(missing("k"));
        };
        let revoked = keys
            .iter()
            .map(|v| match v {
                Value::Bytes(b) => PublicKey::from_bytes(b).map_err(|_| WireError::BadHeader {
                    header: "revoked key",
                    reason: "not an Ed25519 public key".into(),
                }),
                _ => Err(missing("k")),
            })
            .collect::<Result<_, _>>()?;
        let list = Revocations {
            network: map.text("n")?.to_owned(),
            seq: map.uint("q")?,
            issued: UnixMillis(map.uint("i")?),
            revoked,
        };
        Ok((list, signers))
    }
}

fn text_entry(k: &str, v: Value) -> (Value, Value) {
    (Value::Text(k.to_owned()), v)
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // A Vec writer cannot fail for these value types.
    let _ = coset::cbor::into_writer(v, &mut out);
    out
}

fn missing(field: &'static str) -> WireError {
    WireError::MissingHeader(field)
}

/// A payload map with text keys, each at most once.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let value: Value = coset::cbor::from_reader(payload)
            .map_err(|e| WireError::Malformed(format!("payload: {e}")))?;
        let Value::Map(entries) = value else {
            return Err(WireError::Malformed("payload is not a map".into()));
        };
        let mut fields: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Value::Text(k) = k else {
                return Err(WireError::Malformed("payload key is not text".into()));
            };
            if fields.iter().any(|(seen, _)| *seen == k) {
                return Err(WireError::DuplicateHeader(k));
            }
            fields.push((k, v));
        }
        Ok(Self(fields))
    }

    fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(f, _)| f == k).map(|(_, v)| v)
    }

    fn text(&self, k: &'static str) -> Result<&str, WireError> {
        match self.get(k) {
            Some(Value::Text(t)) => Ok(t),
            _ => Err(missing(k)),
        }
    }

    fn uint(&self, k: &'static str) -> Result<u64, WireError> {
        self.optional_uint(k)?.ok_or_else(|| missing(k))
    }

    fn optional_uint(&self, k: &'static str) -> Result<Option<u64>, WireError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Integer(i)) => u64::try_from(*i).map(Some).map_err(|_| missing(k)),
            Some(_) => Err(missing(k)),
        }
    }

    fn key(&self, k: &'static str, known: &[PublicKey]) -> Result<PublicKey, WireError> {
        match self.get(k) {
            Some(Value::Bytes(b)) => {
                PublicKey::from_bytes_among(b, known).map_err(|_| WireError::BadSenderKey)
            }
            _ => Err(missing(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_round_trips_with_its_signers() {
        let admin = Keypair::from_seed(&[1; 32]);
        let member = Keypair::from_seed(&[2; 32]).public();
        let c = Credential {
            network: "acme".into(),
            subject: member,
            role: Role::Gateway,
            issued: UnixMillis(1_700_000_000_000),
            expires: Some(UnixMillis(1_800_000_000_000)),
            serial: 7,
        };
        let bytes = c.sign(&[&admin]);
        assert!(bytes.len() < 400, "{} bytes", bytes.len());
        assert_eq!(Credential::open(&bytes), Ok((c, vec![admin.public()])));
        // A revocation list's signature is not a credential's.
        assert!(Revocations::open(&bytes).is_err());
    }

    #[test]
    fn a_revocation_list_round_trips() {
        let admin = Keypair::from_seed(&[1; 32]);
        let list = Revocations {
            network: "acme".into(),
            seq: 3,
            issued: UnixMillis(5),
            revoked: (10..20u8)
                .map(|i| Keypair::from_seed(&[i; 32]).public())
                .collect(),
        };
        let bytes = list.sign(&[&admin]);
        assert_eq!(Revocations::open(&bytes), Ok((list, vec![admin.public()])));
        assert!(Credential::open(&bytes).is_err());
    }
}
