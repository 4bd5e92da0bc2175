//! One verifier type for both sides of the handshake (the rustls
//! `ServerCertVerifier` / `ClientCertVerifier` pair): derive the peer's key
//! from its certificate, check it is the key we dialed, ask the
//! [`Membership`] whether it is admitted (with the credentials that follow
//! the certificate in its chain), and check the handshake signature with
//! Ed25519 only.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::cert::{key_from_cert, key_from_rustls_name};
use super::membership::{Membership, Refusal};
use crate::clock::Clock;
use crate::identity::PublicKey;

/// Keys whose refusal was logged at INFO; past this many, refusals are
/// only counted and logged at DEBUG (a flood of outsiders cannot flood
/// the log).
const LOGGED_REFUSALS: usize = 1024;

/// Checks peers' certificates against expected keys and the membership.
#[derive(Debug)]
pub(crate) struct PeerVerifier {
    membership: Membership,
    clock: Clock,
    algorithms: WebPkiSupportedAlgorithms,
    /// Keys refused and said so at INFO (once each).
    logged: std::sync::Mutex<std::collections::HashSet<PublicKey>>,
}

impl PeerVerifier {
    pub(crate) fn new(membership: Membership, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            membership,
            clock,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            logged: std::sync::Mutex::default(),
        })
    }

    /// The key in `cert`, if the membership admits it with the credentials
    /// that follow it in the chain (`rest`).
    fn admit(
        &self,
        cert: &CertificateDer<'_>,
        rest: &[CertificateDer<'_>],
    ) -> Result<PublicKey, rustls::Error> {
        let key = key_from_cert(cert).map_err(|_| {
            self.membership.refusals().count(Refusal::BadCertificate);
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
        })?;
        let chain: Vec<&[u8]> = rest.iter().map(|c| c.as_ref()).collect();
        if let Err(refusal) = self
            .membership
            .admit_handshake(&key, &chain, self.clock.wall())
        {
            // Said once per key where an operator looks (INFO): which key,
            // and why; every refusal is counted in any case.
            let first = self
                .logged
                .lock()
                .map(|mut l| l.len() < LOGGED_REFUSALS && l.insert(key))
                .unwrap_or(false);
            if first {
                let detail = match refusal {
                    Refusal::Revoked => format!(
                        " (revocation list sequence {})",
                        self.membership.revocation_seq()
                    ),
                    _ => String::new(),
                };
                tracing::info!(peer = %key, reason = refusal.as_str(), "peer refused in the handshake: {}{detail}", refusal.explain());
            } else {
                tracing::debug!(peer = %key, reason = refusal.as_str(), "refused: {}", refusal.explain());
            }
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(key)
    }
}

/// The handshake-signature half, identical for both sides: TLS 1.2 is never
/// offered, TLS 1.3 signatures are checked with Ed25519 only.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }
    };
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = self.admit(end_entity, intermediates)?;
        // We only ever dial by key: the name we asked for encodes it.
        match key_from_rustls_name(server_name) {
            Some(expected) if expected == key => Ok(ServerCertVerified::assertion()),
            _ => {
                self.membership.refusals().count(Refusal::WrongKey);
                tracing::debug!(presented = %key, "refused: server is not the key we dialed");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ))
            }
        }
    }

    handshake_signatures!();
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.admit(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}
