//! Why a peer was refused, and the counts of refusals by reason: the one
//! list of reasons, whose labels the metrics use.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a peer was refused: at its handshake, or on a stream after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is not a member of this private network: no credential,
    /// no allowlist entry.
    NotAllowlisted,
    /// A credential that does not hold: unreadable, a bad signature, for
    /// another key or another network.
    BadCredential,
    /// A credential not signed by enough of this network's admins, or a
    /// device credential from a key that is not a gateway here.
    UntrustedIssuer,
    /// The credential (or its gateway's) has expired.
    CredentialExpired,
    /// The key (or the gateway that admitted it) was revoked.
    Revoked,
    /// The server presented a key other than the one dialed.
    WrongKey,
    /// The certificate is unparseable or not Ed25519.
    BadCertificate,
    /// The client asked for a server name we do not answer for.
    UnknownServerName,
    /// The peer offered another network or protocol version (ALPN).
    WrongNetwork,
    /// Any other failed incoming handshake (timeouts, TLS errors).
    HandshakeFailed,
    /// Too many handshakes in progress: an unproven address was sent a
    /// stateless Retry, or a proven one was refused (handshake floods).
    Busy,
    /// A hosted device's name asked for from an address with no verified
    /// connection to this agent: answered as if no such identity were
    /// here, before any signature (probing, issue 19).
    DeviceNameUnproven,
}

impl Refusal {
    /// Every refusal, in the order metrics list them.
    pub const ALL: [Refusal; 12] = [
        Refusal::NotAllowlisted,
        Refusal::BadCredential,
        Refusal::UntrustedIssuer,
        Refusal::CredentialExpired,
        Refusal::Revoked,
        Refusal::WrongKey,
        Refusal::BadCertificate,
        Refusal::UnknownServerName,
        Refusal::WrongNetwork,
        Refusal::HandshakeFailed,
        Refusal::Busy,
        Refusal::DeviceNameUnproven,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAllowlisted => "not_allowlisted",
            Refusal::BadCredential => "bad_credential",
            Refusal::UntrustedIssuer => "untrusted_issuer",
            Refusal::CredentialExpired => "credential_expired",
            Refusal::Revoked => "revoked",
            Refusal::WrongKey => "wrong_key",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::UnknownServerName => "unknown_server_name",
            Refusal::WrongNetwork => "wrong_network",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::Busy => "busy",
            Refusal::DeviceNameUnproven => "device_name_unproven",
        }
    }

    /// What a person should read: the cause and, where there is one, the fix.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::NotAllowlisted => {
                "not a member of this private network: no credential, no allowlist entry \
                 (issue one with `streembit member issue`, or add the key to the allowlist)"
            }
            Refusal::BadCredential => {
                "its credential does not hold (bad signature, another key or another network)"
            }
            Refusal::UntrustedIssuer => {
                "its credential is not signed by enough of this network's admins (or its \
                 device credential by a gateway of this network)"
            }
            Refusal::CredentialExpired => {
                "its credential has expired (issue a new one with `streembit member issue`)"
            }
            Refusal::Revoked => "it was revoked by this network's admins",
            Refusal::WrongKey => "the server is not the key that was dialed",
            Refusal::BadCertificate => "the certificate does not carry an Ed25519 key",
            Refusal::UnknownServerName => "no identity here answers to the name asked for",
            Refusal::WrongNetwork => "another network or protocol version",
            Refusal::HandshakeFailed => "the handshake failed",
            Refusal::Busy => "too many handshakes at once",
            Refusal::DeviceNameUnproven => {
                "a hosted device answers only on an address already connected to its \
                 gateway (connect to the gateway first)"
            }
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Counts of refusals by [`Refusal`].
#[derive(Debug, Default)]
pub struct Refusals([AtomicU64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, refusal: Refusal) {
        self.0[refusal.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many of `refusal`.
    pub fn get(&self, refusal: Refusal) -> u64 {
        self.0[refusal.index()].load(Ordering::Relaxed)
    }

    /// `(label, count)` for every refusal, for metrics.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .collect()
    }

    /// All refusals together.
    pub fn total(&self) -> u64 {
        Refusal::ALL.iter().map(|r| self.get(*r)).sum()
    }
}
