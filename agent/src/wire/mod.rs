//! Signed envelopes: every message on the network is a COSE_Sign1
//! (RFC 9052) over CBOR, signed with Ed25519 by its sender.
//!
//! - [`header`]: the protected header (sender key, network, kind,
//!   timestamp, nonce), [`Kind`]s and their [`Audience`].
//! - [`envelope`]: [`seal`] and signature-only verification into an
//!   [`Opened`] proof value.
//! - [`opener`]: [`Opener`], the receive path for live messages: size cap,
//!   network, freshness window and replay window, in that order.
//! - [`replay`]: [`ReplayWindow`], the bounded memory of recently seen
//!   `(sender, nonce)` pairs.
//! - `session.rs`: [`Session`], one identity's sealer and opener for
//!   point-to-point exchanges, and [`FromPeer`], the proof that an
//!   envelope came from the peer the connection proved.
//! - [`payload`]: operator JSON to CBOR payloads and back, for display.
//! - [`multisigned`]: statements signed by several keys (COSE_Sign), and
//!   [`membership`]: the two a private network's admins sign, credentials
//!   and revocation lists.
//!
//! The exact byte layout, so that anyone can verify our messages with any
//! COSE library, is in `docs/wire.md`.
//!
//! What this module does not do: decide what a payload means (the DHT and
//! device layers do), or move bytes (the transport does).

mod envelope;
mod header;
pub mod membership;
pub mod multisigned;
mod opener;
pub mod payload;
pub(crate) mod replay;
mod session;

pub use envelope::{
    open_published, open_published_batch, peek_unverified, seal, verify_signature, Opened, Sealer,
};
pub use header::{
    Audience, Kind, NetworkId, UnixMillis, BROADCAST_AAD, LABEL_KIND, LABEL_NETWORK, LABEL_NONCE,
    LABEL_TIMESTAMP,
};
pub use opener::{Opener, WireConfig};
pub use replay::ReplayWindow;
pub use session::{FromPeer, Session, SessionError, TimeSource};

/// Largest envelope any configuration may accept, checked before decoding.
pub const HARD_MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Default cap on one envelope: plenty for DHT replies and readings.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Why an envelope was refused (receive side) or could not be made (send side).
///
/// Each receive-side variant is a distinct, counted rejection reason; see
/// [`WireError::reason`] for the metric label.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Longer than the configured cap; refused before any decoding.
    #[error("envelope of {len} bytes exceeds the {max}-byte cap")]
    Oversize {
        /// Bytes received.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not a tagged COSE_Sign1 in well-formed CBOR.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A required protected header is absent.
    #[error("missing protected header {0}")]
    MissingHeader(&'static str),
    /// A header label appears twice (within a map or in both maps).
    #[error("duplicate header {0}")]
    DuplicateHeader(String),
    /// A header is present with a value of the wrong type or range.
    #[error("bad value for header {header}: {reason}")]
    BadHeader {
        /// Which header.
        header: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The algorithm is not EdDSA.
    #[error("algorithm {0} is not EdDSA (-8)")]
    WrongAlg(String),
    /// The `kid` is not a valid 32-byte Ed25519 public key.
    #[error("sender key (kid) is not a valid Ed25519 public key")]
    BadSenderKey,
    /// The signature does not verify under the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// Signed for another network.
    #[error("envelope is for network {got:?}, this is {expected:?}")]
    WrongNetwork {
        /// Our network.
        expected: String,
        /// Theirs.
        got: String,
    },
    /// Timestamp outside the skew window around our clock.
    #[error("timestamp {timestamp} ms is outside ±{skew_ms} ms of now ({now} ms)")]
    Stale {
        /// The envelope's timestamp.
        timestamp: u64,
        /// Our clock.
        now: u64,
        /// The allowed skew.
        skew_ms: u64,
    },
    /// The `(sender, nonce)` pair was already seen, or is older than what
    /// the bounded replay window can still tell apart from a replay.
    #[error("replayed envelope (sender and nonce already seen)")]
    Replayed,
    /// A message kind this version does not know.
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    /// The envelope's kind is addressed differently from what was asked
    /// (e.g. a point-to-point kind without a recipient).
    #[error("kind {kind} must be {expected}")]
    WrongAudience {
        /// The kind.
        kind: Kind,
        /// What its audience is.
        expected: &'static str,
    },
    /// CBOR encoding failed while sealing (local error).
    #[error("cannot encode envelope: {0}")]
    Encode(String),
}

impl WireError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Oversize { .. } => "oversize",
            WireError::Malformed(_) => "malformed",
            WireError::MissingHeader(_) => "missing_header",
            WireError::DuplicateHeader(_) => "duplicate_header",
            WireError::BadHeader { .. } => "bad_header",
            WireError::WrongAlg(_) => "wrong_alg",
            WireError::BadSenderKey => "bad_sender_key",
            WireError::BadSignature => "bad_signature",
            WireError::WrongNetwork { .. } => "wrong_network",
            WireError::Stale { .. } => "stale",
            WireError::Replayed => "replayed",
            WireError::UnknownKind(_) => "unknown_kind",
            WireError::WrongAudience { .. } => "wrong_audience",
            WireError::Encode(_) => "encode",
        }
    }
}

#[cfg(test)]
mod tests;
