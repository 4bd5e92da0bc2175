//! QUIC transport with identity-bound TLS, and the network's membership.
//!
//! - [`cert`]: our self-signed Ed25519 certificates, the server-name
//!   encoding of keys, and reading a peer's key from its certificate.
//! - `verify.rs`: the rustls verifier used on both sides of a handshake.
//! - `membership/`: [`Membership`], the one place admission is decided
//!   (public; or an allowlist, admin-signed credentials and revocation
//!   lists), and refusals counted by [`Refusal`].
//! - [`endpoint`]: the quinn endpoint: bind, dial by key, accept.
//! - `connection.rs`: [`Connection`], to a peer whose key was proven.
//! - [`framing`]: length-prefixed envelopes on streams, request/response.
//! - [`socket`]: the UDP socket under QUIC, which also carries relayed
//!   paths (virtual peer addresses) and hole-punching probes.
//! - [`relay`]: what a relay forwards, for whom, within which limits.
//!
//! A handshake only completes when the peer proves an Ed25519 key (TLS 1.3
//! CertificateVerify), that key is the one dialed, the membership admits it, and
//! both sides speak the same protocol version and network (ALPN). All of
//! that happens before any application stream can exist.
//!
//! What this module does not do: interpret frames (the node does), or sign
//! them (wire does).

pub(crate) mod cert;
mod connection;
mod endpoint;
pub(crate) mod framing;
mod membership;
pub(crate) mod relay;
pub(crate) mod socket;
mod verify;

use std::net::SocketAddr;

pub use connection::Connection;
pub(crate) use connection::VerifiedPeer;
pub use endpoint::{alpn_for, Answer, Endpoint, TransportConfig};
pub(crate) use membership::RevocationError;
pub(crate) use membership::{read_allowlist, Refusals};
pub use membership::{Authority, Membership};

/// What went wrong in the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Local misuse or setup failure (our fault, not the peer's).
    #[error("{0}")]
    Local(String),
    /// The peer's certificate does not carry a usable Ed25519 key.
    #[error("peer certificate refused: {0}")]
    BadCertificate(String),
    /// The handshake failed (refused by either side, wrong network, timeout).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The connection is closed or lost.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A stream failed or was reset by the peer.
    #[error("stream error: {0}")]
    Stream(String),
    /// The peer announced a frame longer than the cap.
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// Cap.
        max: usize,
    },
    /// No answer in time.
    #[error("timed out")]
    TimedOut,
    /// The peer refused us in the handshake, and said why (its TLS alert).
    #[error("refused by the peer: {}", .0.explain())]
    Refused(PeerRefusal),
}

/// Why a peer refused our handshake, as its TLS alert says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// access_denied: its membership does not admit our key.
    NotAdmitted,
    /// handshake_failure: it does not answer to the name we asked for.
    UnknownName,
}

impl PeerRefusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            PeerRefusal::NotAdmitted => "not_admitted",
            PeerRefusal::UnknownName => "unknown_name",
        }
    }

    /// The cause and the fix, for a person.
    pub fn explain(self) -> &'static str {
        match self {
            PeerRefusal::NotAdmitted => {
                "this agent's key is not admitted by the peer's network: no credential it \
                 accepts (missing, expired, of another network's admins) and not on its \
                 allowlist, or revoked; `streembit members` shows this agent's credential, \
                 `streembit id` its key for the operator"
            }
            PeerRefusal::UnknownName => {
                "no identity there answers to the key dialed (not hosted there, or a device \
                 asked for before a connection to its gateway)"
            }
        }
    }
}

#[cfg(test)]
mod tests;
