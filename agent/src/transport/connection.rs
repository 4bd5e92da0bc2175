//! A connection to a peer whose key the handshake proved, and the
//! refusals a peer states when it closes one.

use std::net::SocketAddr;

use super::cert::{key_from_cert, key_from_server_name};
use super::{PeerRefusal, TransportError};
use crate::identity::PublicKey;

/// A peer whose key was proven in the TLS handshake. Only this module can
/// make one, so code that holds a `VerifiedPeer` cannot have skipped the
/// check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedPeer {
    key: PublicKey,
    addr: SocketAddr,
}

impl VerifiedPeer {
    /// The peer's proven key.
    pub fn key(&self) -> PublicKey {
        self.key
    }
    /// Where its packets come from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// An established connection to a verified peer.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: quinn::Connection,
    peer: VerifiedPeer,
}

impl Connection {
    /// The verified peer at the other end.
    pub fn peer(&self) -> VerifiedPeer {
        self.peer
    }
    /// The QUIC connection, for streams.
    pub fn quic(&self) -> &quinn::Connection {
        &self.inner
    }
    /// On an accepted connection, the key of the identity the client
    /// dialed (from its server name): the gateway's own or a hosted
    /// device's. `None` on connections we dialed.
    pub fn served_as(&self) -> Option<PublicKey> {
        self.inner
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.server_name)
            .and_then(|name| key_from_server_name(&name))
    }

    /// Why the peer refused us, when it closed this connection with the
    /// alert of a refusal (TLS 1.3 may complete our half of the handshake
    /// before the server has checked our certificate, so a refusal can
    /// arrive after the dial seemed to succeed).
    pub fn refused_by_peer(&self) -> Option<TransportError> {
        self.inner.close_reason().as_ref().and_then(peer_refusal)
    }

    /// Closes with an application code and a short reason.
    pub fn close(&self, code: u32, reason: &str) {
        self.inner.close(code.into(), reason.as_bytes());
    }

    pub(super) fn from_quic(inner: quinn::Connection) -> Result<Self, TransportError> {
        let certs = inner
            .peer_identity()
            .and_then(|any| {
                any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .ok_or_else(|| {
                TransportError::BadCertificate("peer presented no certificate".into())
            })?;
        let first = certs
            .first()
            .ok_or_else(|| TransportError::BadCertificate("empty certificate chain".into()))?;
        let key = key_from_cert(first)?;
        let peer = VerifiedPeer {
            key,
            addr: inner.remote_address(),
        };
        Ok(Self { inner, peer })
    }
}

/// A refusal the far side stated with its TLS alert, in words that name
/// the cause and the fix. The alerts are the ones our own verifier and
/// resolver send (verify.rs): access_denied (49) for a key its membership
/// does not admit, handshake_failure (40) for a name it does not answer to.
pub(super) fn peer_refusal(e: &quinn::ConnectionError) -> Option<TransportError> {
    let code = match e {
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        quinn::ConnectionError::TransportError(t) => t.code,
        _ => return None,
    };
    let is = |alert: u8| code == quinn::TransportErrorCode::crypto(alert);
    if is(49) {
        Some(TransportError::Refused(PeerRefusal::NotAdmitted))
    } else if is(40) {
        Some(TransportError::Refused(PeerRefusal::UnknownName))
    } else {
        None
    }
}
