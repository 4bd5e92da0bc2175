//! One verifier type for both sides of the handshake (the rustls
//! `ServerCertVerifier` / `ClientCertVerifier` pair): derive the peer's key
//! from its certificate, check it is the key we dialed, ask the
//! [`Membership`] whether it is admitted (with the credentials that follow
//! the certificate in its chain), and check the handshake signature with
//! Ed25519 only.
//!
//! rustls shows the certificate chain and the handshake signature in two
//! calls, and the membership checks the chain's signatures with the
//! handshake's in one batch (see `membership/handshake.rs`). Between the
//! two, the first step is kept here by the certificate's SHA-256; a
//! handshake signature with no first step kept is refused (`busy`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, PeerMisbehaved, SignatureScheme,
};

use super::cert::{key_from_cert, key_from_rustls_name};
use super::membership::handshake::{Pending, Unfinished};
use super::membership::{Membership, Refusal};
use crate::clock::Clock;
use crate::identity::batch::Signed;
use crate::identity::PublicKey;

/// Keys whose refusal was logged at INFO; past this many, refusals are
/// only counted and logged at DEBUG (a flood of outsiders cannot flood
/// the log).
const LOGGED_REFUSALS: usize = 1024;

/// What handshakes between their two steps may hold here, at most, in
/// bytes (a peer that sends its certificate and never its signature
/// cannot make us keep more); past it the oldest is forgotten, and that
/// handshake refused, counted `busy`, if its signature ever comes.
const MAX_IN_FLIGHT_BYTES: usize = 4 << 20;

/// First steps kept until their handshake signature: (SHA-256 of the
/// certificate, of the whole chain, the step).
#[derive(Debug, Default)]
struct InFlight {
    steps: VecDeque<([u8; 32], [u8; 32], Pending)>,
    bytes: usize,
}

/// Checks peers' certificates against expected keys and the membership.
#[derive(Debug)]
pub(crate) struct PeerVerifier {
    membership: Membership,
    clock: Clock,
    /// Keys refused and said so at INFO (once each).
    logged: Mutex<std::collections::HashSet<PublicKey>>,
    in_flight: Mutex<InFlight>,
}

impl PeerVerifier {
    pub(crate) fn new(membership: Membership, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            membership,
            clock,
            logged: Mutex::default(),
            in_flight: Mutex::default(),
        })
    }

    /// The key in `cert`, if the membership admits it with the credentials
    /// that follow it in the chain (`rest`) but for their signatures: the
    /// step to [`Self::keep`] until the handshake signature.
    fn admit(
        &self,
        cert: &CertificateDer<'_>,
        rest: &[CertificateDer<'_>],
    ) -> Result<(PublicKey, Pending), rustls::Error> {
        let key = key_from_cert(cert).map_err(|_| {
            self.membership.refusals().count(Refusal::BadCertificate);
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
        })?;
        let chain: Vec<&[u8]> = rest.iter().map(|c| c.as_ref()).collect();
        match self
            .membership
            .begin_handshake(&key, &chain, self.clock.wall())
        {
            Ok(pending) => Ok((key, pending)),
            Err(refusal) => Err(self.refused(&key, refusal)),
        }
    }

    /// Says a refusal once per key where an operator looks (INFO): which
    /// key, and why; every refusal is counted in any case (by the
    /// membership).
    fn refused(&self, key: &PublicKey, refusal: Refusal) -> rustls::Error {
        {
            let first = self
                .logged
                .lock()
                .map(|mut l| l.len() < LOGGED_REFUSALS && l.insert(*key))
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
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        }
    }

    /// Keeps a first step until its handshake signature.
    fn keep(&self, cert: &CertificateDer<'_>, rest: &[CertificateDer<'_>], step: Pending) {
        let chain = rest
            .iter()
            .fold(Sha256::new(), |h, c| h.chain_update(c.as_ref()))
            .finalize()
            .into();
        if let Ok(mut f) = self.in_flight.lock() {
            f.bytes += step.weight();
            f.steps
                .push_back((Sha256::digest(cert.as_ref()).into(), chain, step));
            while f.bytes > MAX_IN_FLIGHT_BYTES {
                match f.steps.pop_front() {
                    Some((_, _, old)) => f.bytes -= old.weight(),
                    None => break,
                }
            }
        }
    }

    /// Takes the oldest first step kept for `cert` whose chain is not in
    /// `tried`.
    fn take(&self, cert: &[u8; 32], tried: &[[u8; 32]]) -> Option<([u8; 32], Pending)> {
        let mut f = self.in_flight.lock().ok()?;
        let at = f
            .steps
            .iter()
            .position(|(c, chain, _)| c == cert && !tried.contains(chain))?;
        let (_, chain, step) = f.steps.remove(at)?;
        f.bytes -= step.weight();
        Some((chain, step))
    }

    /// Puts back a first step taken by a handshake signature that was not
    /// its own (a bad one, presenting the same certificate).
    fn put_back(&self, cert: [u8; 32], chain: [u8; 32], step: Pending) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.bytes += step.weight();
            f.steps.push_front((cert, chain, step));
        }
    }

    /// Step two for a handshake signature by `cert`'s key: the signature
    /// and the chain's in one batch, by the membership.
    ///
    /// Two handshakes may present one certificate at once (a peer
    /// dialing twice; someone replaying its certificate with another
    /// chain): each signature takes one step per distinct chain, oldest
    /// first, until one is admitted, and puts back what its own bad
    /// signature could not use.
    fn finish(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        self.finish_signature(message, cert, dss.signature())
    }

    fn finish_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &[u8],
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad_signature = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        let signature: &[u8; 64] = signature.try_into().map_err(|_| bad_signature())?;
        let id: [u8; 32] = Sha256::digest(cert.as_ref()).into();
        let mut tried = Vec::new();
        let mut refused = None;
        while let Some((chain, step)) = self.take(&id, &tried) {
            let signed = Signed {
                key: step.key(),
                message,
                signature,
            };
            match self.membership.finish_handshake(&step, Some(signed)) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(Unfinished::HandshakeSignature) => {
                    self.put_back(id, chain, step);
                    return Err(bad_signature());
                }
                Err(Unfinished::Refused(r)) => {
                    refused = Some((*step.key(), r));
                    tried.push(chain);
                }
            }
        }
        Err(match refused {
            Some((key, r)) => self.refused(&key, r),
            None => {
                // Forgotten (more handshakes in flight than kept), or a
                // signature for a certificate never judged: fail closed.
                self.membership.refusals().count(Refusal::Busy);
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
            }
        })
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
            self.finish(message, cert, dss)
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
        let (key, step) = self.admit(end_entity, intermediates)?;
        // We only ever dial by key: the name we asked for encodes it.
        match key_from_rustls_name(server_name) {
            Some(expected) if expected == key => {
                self.keep(end_entity, intermediates, step);
                Ok(ServerCertVerified::assertion())
            }
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
        let (_, step) = self.admit(end_entity, intermediates)?;
        self.keep(end_entity, intermediates, step);
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::transport::cert::certified_key;
    use crate::transport::membership::Authority;
    use crate::wire::membership::{Credential, Role};
    use crate::wire::UnixMillis;

    const MESSAGE: &[u8] = b"the TLS 1.3 handshake transcript, as signed";

    fn gate(admin: &Keypair) -> Membership {
        let authority = Authority::new(vec![admin.public()], 1).expect("authority");
        Membership::private(&"acme".parse().expect("network id"), [], Some(authority))
    }

    fn credential(admin: &Keypair, member: &Keypair) -> CertificateDer<'static> {
        let c = Credential {
            network: "acme".into(),
            subject: member.public(),
            role: Role::Member,
            issued: UnixMillis(1),
            expires: None,
            serial: 1,
        };
        CertificateDer::from(c.sign(&[admin]))
    }

    /// The credential with one bit of its signature flipped.
    fn forge(good: &CertificateDer<'_>) -> CertificateDer<'static> {
        let mut forged = good.to_vec();
        let at = forged.len() - 3;
        forged[at] ^= 1;
        CertificateDer::from(forged)
    }

    fn leaf(member: &Arc<Keypair>) -> CertificateDer<'static> {
        certified_key(member.clone(), &[])
            .expect("certificate")
            .cert[0]
            .clone()
    }

    fn refused(v: &PeerVerifier, r: Refusal) -> u64 {
        v.membership.refusals().get(r)
    }

    #[test]
    fn a_member_is_admitted_only_with_its_handshake_signature() {
        let admin = Keypair::from_seed(&[1; 32]);
        let member = Arc::new(Keypair::from_seed(&[2; 32]));
        let v = PeerVerifier::new(gate(&admin), Clock::system());
        let (cert, chain) = (leaf(&member), [credential(&admin, &member)]);
        v.verify_client_cert(&cert, &chain, UnixTime::now())
            .expect("chain judged");
        // Not admitted before the signature is checked.
        let now = UnixMillis(2);
        assert!(!v.membership.admits(&member.public(), now).is_admitted());
        // A bad handshake signature is the TLS layer's failure; the step
        // stays for the real one.
        let other = Keypair::from_seed(&[3; 32]).sign(MESSAGE);
        assert!(v.finish_signature(MESSAGE, &cert, &other).is_err());
        assert!(v.finish_signature(MESSAGE, &cert, &[0; 12]).is_err());
        v.finish_signature(MESSAGE, &cert, &member.sign(MESSAGE))
            .expect("admitted");
        assert!(v.membership.admits(&member.public(), now).is_admitted());
        assert_eq!(v.membership.refusals().total(), 0);
        // The step was used once: a second signature finds none.
        assert!(v
            .finish_signature(MESSAGE, &cert, &member.sign(MESSAGE))
            .is_err());
        assert_eq!(refused(&v, Refusal::Busy), 1);
    }

    #[test]
    fn a_forged_credential_is_refused_at_the_signature_and_counted() {
        let admin = Keypair::from_seed(&[1; 32]);
        let member = Arc::new(Keypair::from_seed(&[2; 32]));
        let v = PeerVerifier::new(gate(&admin), Clock::system());
        let forged = forge(&credential(&admin, &member));
        let cert = leaf(&member);
        v.verify_client_cert(&cert, &[forged], UnixTime::now())
            .expect("judged but for its signature");
        assert!(v
            .finish_signature(MESSAGE, &cert, &member.sign(MESSAGE))
            .is_err());
        assert_eq!(refused(&v, Refusal::BadCredential), 1);
        assert!(!v
            .membership
            .admits(&member.public(), UnixMillis(2))
            .is_admitted());
    }

    #[test]
    fn a_certificate_replayed_with_a_forged_chain_does_not_lock_its_owner_out() {
        let admin = Keypair::from_seed(&[1; 32]);
        let member = Arc::new(Keypair::from_seed(&[2; 32]));
        let v = PeerVerifier::new(gate(&admin), Clock::system());
        let cert = leaf(&member);
        let good = credential(&admin, &member);
        // Someone replays the member's certificate with a credential that
        // names the admin but whose signature is forged, just before the
        // member's own handshake.
        let impostor = Keypair::from_seed(&[9; 32]);
        let forged = forge(&good);
        v.verify_client_cert(&cert, &[forged], UnixTime::now())
            .expect("judged but for its signature");
        v.verify_client_cert(&cert, std::slice::from_ref(&good), UnixTime::now())
            .expect("judged");
        // The impostor cannot sign: its attempt takes nothing.
        let theirs = impostor.sign(MESSAGE);
        assert!(v.finish_signature(MESSAGE, &cert, &theirs).is_err());
        // The member's signature tries the forged step (refused, counted),
        // then its own.
        v.finish_signature(MESSAGE, &cert, &member.sign(MESSAGE))
            .expect("the member is admitted");
        assert_eq!(refused(&v, Refusal::BadCredential), 1);
        assert!(v
            .membership
            .admits(&member.public(), UnixMillis(2))
            .is_admitted());
        // The same member twice at once, one chain: each signature takes one step.
        v.verify_client_cert(&cert, std::slice::from_ref(&good), UnixTime::now())
            .expect("judged");
        v.verify_client_cert(&cert, &[good], UnixTime::now())
            .expect("judged");
        for _ in 0..2 {
            v.finish_signature(MESSAGE, &cert, &member.sign(MESSAGE))
                .expect("admitted");
        }
    }

    #[test]
    fn handshakes_that_never_sign_cannot_grow_what_is_kept() {
        let admin = Keypair::from_seed(&[1; 32]);
        let v = PeerVerifier::new(gate(&admin), Clock::system());
        let first = Arc::new(Keypair::generate());
        let first_cert = leaf(&first);
        let chain = [credential(&admin, &first)];
        v.verify_client_cert(&first_cert, &chain, UnixTime::now())
            .expect("judged");
        for _ in 0..20_000 {
            let k = Arc::new(Keypair::generate());
            let chain = [credential(&admin, &k)];
            v.verify_client_cert(&leaf(&k), &chain, UnixTime::now())
                .expect("judged");
        }
        let kept = v.in_flight.lock().map(|f| f.bytes).unwrap_or(usize::MAX);
        assert!(kept <= MAX_IN_FLIGHT_BYTES, "{kept}");
        // The oldest was forgotten: its signature now fails closed, counted.
        assert!(v
            .finish_signature(MESSAGE, &first_cert, &first.sign(MESSAGE))
            .is_err());
        assert_eq!(refused(&v, Refusal::Busy), 1);
    }
}
