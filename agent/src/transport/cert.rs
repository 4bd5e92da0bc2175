//! Binding TLS to Ed25519 identities: our certificates, the server names
//! that carry a key, and reading a peer's key out of its certificate.
//!
//! Every endpoint presents a self-signed X.509 certificate for its Ed25519
//! key. Nothing about the certificate is trusted except its public key: the
//! TLS 1.3 CertificateVerify signature proves the peer holds that key, and
//! the key *is* the identity. Validity dates, issuer and extensions are
//! ignored. On a private network, the member's credentials follow the
//! certificate in the chain.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use super::TransportError;
use crate::identity::{Keypair, PublicKey};

/// DER of an Ed25519 SubjectPublicKeyInfo without the key (RFC 8410): a
/// SEQUENCE of the algorithm id-Ed25519 (1.3.101.112) and a 33-byte BIT
/// STRING holding the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Suffix of every server name; see [`server_name_for`].
pub(crate) const SERVER_NAME_SUFFIX: &str = "streembit";

/// The TLS server name (SNI) under which `key` is dialed.
///
/// A DNS label holds at most 63 characters and a key is 64 hex characters,
/// so the key is split into two 32-character labels under a fixed suffix:
/// `<hex 0..32>.<hex 32..64>.streembit`. A gateway answering for several
/// identities (its own and its devices') picks the certificate by this name.
pub(crate) fn server_name_for(key: &PublicKey) -> String {
    let hex = key.to_string();
    format!("{}.{}.{SERVER_NAME_SUFFIX}", &hex[..32], &hex[32..])
}

/// The key a server name asks for, if it is one of ours.
pub(crate) fn key_from_server_name(name: &str) -> Option<PublicKey> {
    let mut labels = name.split('.');
    let (a, b, suffix) = (labels.next()?, labels.next()?, labels.next()?);
    if labels.next().is_some() || suffix != SERVER_NAME_SUFFIX || a.len() != 32 || b.len() != 32 {
        return None;
    }
    format!("{a}{b}").parse().ok()
}

/// The key from a rustls `ServerName`.
pub(crate) fn key_from_rustls_name(name: &ServerName<'_>) -> Option<PublicKey> {
    match name {
        ServerName::DnsName(d) => key_from_server_name(d.as_ref()),
        _ => None,
    }
}

/// The Ed25519 key a peer's certificate carries.
///
/// The certificate is parsed by webpki (the parser rustls itself trusts);
/// its SubjectPublicKeyInfo must be exactly an Ed25519 key.
pub(crate) fn key_from_cert(cert: &CertificateDer<'_>) -> Result<PublicKey, TransportError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| TransportError::BadCertificate(format!("unparseable certificate: {e}")))?;
    let spki = parsed.subject_public_key_info();
    let der = spki.as_ref();
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(raw) if raw.len() == 32 => PublicKey::from_bytes(raw)
            .map_err(|_| TransportError::BadCertificate("invalid Ed25519 point".into())),
        _ => Err(TransportError::BadCertificate(
            "certificate key is not Ed25519".into(),
        )),
    }
}

/// An Ed25519 identity as rustls and rcgen need it: our dalek key behind
/// their signing traits, so the secret never passes through another
/// library's key parser.
#[derive(Debug, Clone)]
pub(crate) struct TlsKey(Arc<Keypair>);

impl TlsKey {
    fn spki(&self) -> Vec<u8> {
        let mut v = ED25519_SPKI_PREFIX.to_vec();
        v.extend_from_slice(self.0.public().as_bytes());
        v
    }
}

impl rcgen::PublicKeyData for TlsKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_ref_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for TlsKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.0.sign(msg).to_vec())
    }
}

impl SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl Signer for TlsKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        Ok(self.0.sign(message).to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

fn key_serial(key: &TlsKey) -> [u8; 16] {
    let mut s = [0u8; 16];
    s.copy_from_slice(&key.0.node_id().as_bytes()[..16]);
    s
}

/// A self-signed certificate for `key`, named for its server name, with the
/// key to sign handshakes, followed in the chain by `credentials`.
///
/// On a private network the chain carries the member's credentials (see
/// `membership/credentials.rs`): each further entry of the TLS Certificate
/// message is a COSE statement instead of an X.509 certificate. Our
/// verifiers read them as such, and nothing else ever sees them; this
/// needs no X.509 extension parser, and the credential binds the leaf's
/// key by naming it.
pub fn certified_key(
    key: Arc<Keypair>,
    credentials: &[Vec<u8>],
) -> Result<Arc<CertifiedKey>, TransportError> {
    let name = server_name_for(&key.public());
    let tls = TlsKey(key);
    let mut params = rcgen::CertificateParams::new(vec![name])
        .map_err(|e| TransportError::Local(format!("certificate parameters: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    // A positive serial derived from the key: stable, and unique per key.
    let mut serial = key_serial(&tls);
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&tls)
        .map_err(|e| TransportError::Local(format!("self-signing certificate: {e}")))?;
    let mut chain = vec![cert.der().clone()];
    chain.extend(credentials.iter().map(|c| CertificateDer::from(c.clone())));
    Ok(Arc::new(CertifiedKey::new(chain, Arc::new(tls))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_round_trips_and_is_a_valid_dns_name() {
        let key = Keypair::from_seed(&[3; 32]).public();
        let name = server_name_for(&key);
        assert!(name.split('.').all(|l| !l.is_empty() && l.len() <= 63));
        assert!(ServerName::try_from(name.clone()).is_ok(), "{name}");
        assert_eq!(key_from_server_name(&name), Some(key));
        assert_eq!(key_from_server_name("example.com"), None);
        assert_eq!(key_from_server_name(&format!("{name}.x")), None);
        assert_eq!(
            key_from_server_name(&name.replace("streembit", "other")),
            None
        );
    }

    #[test]
    fn our_certificate_carries_our_key() {
        let kp = Arc::new(Keypair::from_seed(&[4; 32]));
        let ck = certified_key(kp.clone(), &[]).expect("cert");
        assert_eq!(key_from_cert(&ck.cert[0]).ok(), Some(kp.public()));
    }

    #[test]
    fn garbage_certificates_are_refused() {
        for bad in [&[][..], &[0x30, 0x00], &[0xff; 64]] {
            assert!(key_from_cert(&CertificateDer::from(bad.to_vec())).is_err());
        }
    }
}
