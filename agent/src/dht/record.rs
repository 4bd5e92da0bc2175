//! Self-certifying records: what a record must prove before a node keeps
//! or returns it.
//!
//! A record is stored under SHA-256 of its owner's public key and is a
//! signed envelope by that key. The core does not parse envelopes itself: it
//! asks a [`RecordVerifier`] (the node shell's is built on
//! `wire::open_published`; tests and the simulator inject their own) for the
//! owner, sequence and expiry, and then enforces the rules that do not
//! depend on the envelope format: the key must be the owner's id, the
//! record must not be expired, its lifetime must not exceed the hard
//! maximum, and a lower sequence never replaces a higher one.

use std::time::Duration;

use crate::identity::{NodeId, PublicKey};

use super::timer::Time;

/// Default record lifetime.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// No record may claim to live longer than this.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(48 * 3600);

/// What a verifier proved about a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VerifiedRecord {
    /// The key that signed it. The record lives under `owner.node_id()`.
    pub owner: PublicKey,
    /// Owner's sequence number: higher replaces lower.
    pub seq: u64,
    /// When the owner signed it (its envelope timestamp).
    pub issued: Time,
    /// When it stops being valid (`issued + ttl`).
    pub expires: Time,
    /// For a device record: the gateway that counter-signed it (the store
    /// charges the record to that gateway's device budget when the gateway
    /// itself stores it).
    pub host: Option<PublicKey>,
    /// Stored under this key instead of the owner's id: a record of the
    /// whole network (its revocation list), which any member may publish.
    pub under: Option<NodeId>,
}

impl VerifiedRecord {
    /// The key it is stored under.
    pub(crate) fn key(&self) -> NodeId {
        self.under.unwrap_or_else(|| self.owner.node_id())
    }

    /// The lifetime the owner gave it.
    pub(crate) fn ttl(&self) -> Duration {
        self.expires.since(self.issued)
    }
}

/// Why a record is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a record envelope.
    #[error("malformed record")]
    Malformed,
    /// The signature does not verify, or is not the owner's.
    #[error("bad record signature")]
    BadSignature,
    /// Signed for another network or not a record kind.
    #[error("record for another network or of another kind")]
    WrongContext,
    /// It expired, or claims a TTL over [`MAX_TTL`].
    #[error("record expired or TTL over the hard maximum")]
    BadLifetime,
    /// It is not the record stored under the key it was asked for.
    #[error("record key does not match")]
    WrongKey,
}

/// Checks a record's signature and reads its header. Implementations must
/// be pure functions of `(record, now)` apart from caching.
pub(crate) trait RecordVerifier {
    /// Verifies `record` and says who signed it, with which sequence and
    /// lifetime.
    fn verify(&mut self, record: &[u8], now: Time) -> Result<VerifiedRecord, RecordError>;
}

/// Verifies `record` and applies the format-independent rules: not
/// expired at `now`, lifetime at most [`MAX_TTL`], and (when given) stored
/// under `expected_key`.
pub(crate) fn check<V: RecordVerifier + ?Sized>(
    verifier: &mut V,
    record: &[u8],
    expected_key: Option<&NodeId>,
    now: Time,
) -> Result<VerifiedRecord, RecordError> {
    let v = verifier.verify(record, now)?;
    if v.expires <= now || v.ttl() > MAX_TTL || v.expires > now + MAX_TTL {
        return Err(RecordError::BadLifetime);
    }
    if expected_key.is_some_and(|k| *k != v.key()) {
        return Err(RecordError::WrongKey);
    }
    Ok(v)
}
