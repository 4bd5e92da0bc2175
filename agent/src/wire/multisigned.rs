//! Statements signed by one or more keys: a tagged COSE_Sign (RFC 9052
//! §4.1, CBOR tag 98), the container of membership credentials and
//! revocation lists.
//!
//! COSE_Sign rather than the COSE_Sign1 of live messages because a private
//! network may need several of its admins to sign (a threshold): each
//! signature covers the same body and protected header, and a cosigner
//! adds its own without touching the others'. Every signature's protected
//! header carries `alg` EdDSA (-8) and `kid`, the signer's 32-byte public
//! key; the body's protected header carries the content type, so a
//! signature over one kind of statement can never be read as another.
//! Admins sign together (`member issue --admin-key A --admin-key B`).
//! The external AAD is empty: the network is inside the payload.
//!
//! What this module does not do: decide what a signer may sign (the
//! transport's membership does), or read the payload (the statements in
//! [`super::membership`] do).

use coset::{
    iana, CoseSign, CoseSignBuilder, CoseSignature, CoseSignatureBuilder, HeaderBuilder,
    TaggedCborSerializable,
};

use super::WireError;
use crate::identity::batch::{self, Signed};
use crate::identity::{Keypair, PublicKey};

/// At most this many signatures are read from one statement: more than any
/// admin threshold, few enough that checking them all stays cheap.
pub const MAX_SIGNATURES: usize = 16;

/// A statement whose signatures all verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payload, still CBOR.
    pub payload: Vec<u8>,
    /// Who signed it, each key once, in signature order.
    pub signers: Vec<PublicKey>,
}

/// Signs `payload` of `content_type` by every key of `signers`.
pub fn sign(content_type: &str, payload: Vec<u8>, signers: &[&Keypair]) -> Vec<u8> {
    let protected = HeaderBuilder::new()
        .content_type(content_type.to_owned())
        .build();
    let mut builder = CoseSignBuilder::new().protected(protected).payload(payload);
    for key in signers {
        builder =
            builder.add_created_signature(signature_header(key), &[], |tbs| key.sign(tbs).to_vec());
    }
    to_bytes(builder.build())
}

/// One signature of a statement, not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Who signed (the signature's `kid`).
    pub signer: PublicKey,
    /// The bytes signed (COSE's Sig_structure).
    pub signed: Vec<u8>,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl Signature {
    /// This signature, to check in a batch.
    pub fn as_signed(&self) -> Signed<'_> {
        Signed {
            key: &self.signer,
            message: &self.signed,
            signature: &self.signature,
        }
    }
}

/// A statement read but whose signatures are **not checked yet**: for a
/// caller that checks them in a batch with others (a handshake checks a
/// member's credential with the TLS handshake signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The payload, still CBOR.
    pub payload: Vec<u8>,
    /// Who signed it, each key once, in signature order.
    pub signers: Vec<PublicKey>,
    /// Every signature, to check.
    pub signatures: Vec<Signature>,
}

/// Reads a statement of `content_type` of at most `max` bytes (checked
/// before decoding) and verifies every signature on it. One bad signature
/// refuses the whole statement: a forgery is never half-accepted.
pub fn verify(bytes: &[u8], content_type: &str, max: usize) -> Result<Verified, WireError> {
    let read = parse(bytes, content_type, max, &[])?;
    let signed: Vec<Signed<'_>> = read.signatures.iter().map(Signature::as_signed).collect();
    if !batch::verify_all(&signed) {
        return Err(WireError::BadSignature);
    }
    Ok(Verified {
        payload: read.payload,
        signers: read.signers,
    })
}

/// Reads a statement as [`verify`] does, but leaves its signatures to the
/// caller: nothing in it may be trusted until they are checked. Signers
/// among `known` are taken from it (see [`PublicKey::from_bytes_among`]).
pub fn parse(
    bytes: &[u8],
    content_type: &str,
    max: usize,
    known: &[PublicKey],
) -> Result<Unverified, WireError> {
    if bytes.len() > max {
        return Err(WireError::Oversize {
            len: bytes.len(),
            max,
        });
    }
    let sign = CoseSign::from_tagged_slice(bytes)
        .map_err(|e| WireError::Malformed(format!("not a tagged COSE_Sign: {e}")))?;
    match &sign.protected.header.content_type {
        Some(coset::ContentType::Text(t)) if t == content_type => {}
        _ => {
            return Err(WireError::BadHeader {
                header: "content type",
                reason: format!("expected {content_type:?}"),
            })
        }
    }
    if sign.signatures.is_empty() || sign.signatures.len() > MAX_SIGNATURES {
        return Err(WireError::Malformed(format!(
            "{} signatures (1 to {MAX_SIGNATURES} allowed)",
            sign.signatures.len()
        )));
    }
    let mut signers: Vec<PublicKey> = Vec::with_capacity(sign.signatures.len());
    let mut signatures = Vec::with_capacity(sign.signatures.len());
    for s in &sign.signatures {
        if s.protected.header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
            return Err(WireError::WrongAlg(format!("{:?}", s.protected.header.alg)));
        }
        let signer = PublicKey::from_bytes_among(&s.protected.header.key_id, known)
            .map_err(|_| WireError::BadSenderKey)?;
        let signature: [u8; 64] = s
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| WireError::BadSignature)?;
        signatures.push(Signature {
            signer,
            signed: sign.tbs_data(&[], s),
            signature,
        });
        if !signers.contains(&signer) {
            signers.push(signer);
        }
    }
    let payload = sign
        .payload
        .ok_or_else(|| WireError::Malformed("no payload".into()))?;
    Ok(Unverified {
        payload,
        signers,
        signatures,
    })
}

fn signature_header(key: &Keypair) -> CoseSignature {
    CoseSignatureBuilder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::EdDSA)
                .key_id(key.public().as_bytes().to_vec())
                .build(),
        )
        .build()
}

fn to_bytes(sign: CoseSign) -> Vec<u8> {
    // Serialising a structure we built cannot fail.
    sign.to_tagged_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "application/test";

    #[test]
    fn every_signer_is_verified_and_named_once() {
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let one = sign(CT, vec![1, 2, 3], &[&a]);
        let v = verify(&one, CT, 4096).expect("verifies");
        assert_eq!(v.signers, vec![a.public()]);
        assert_eq!(v.payload, vec![1, 2, 3]);
        let three = sign(CT, vec![1], &[&a, &b, &a]);
        assert_eq!(
            verify(&three, CT, 4096).expect("verifies").signers,
            vec![a.public(), b.public()]
        );
    }

    #[test]
    fn forgeries_and_confusions_are_refused() {
        let a = Keypair::from_seed(&[1; 32]);
        let good = sign(CT, vec![1, 2, 3], &[&a]);
        // Another content type: a revocation list is not a credential.
        assert!(matches!(
            verify(&good, "application/other", 4096),
            Err(WireError::BadHeader { .. })
        ));
        // Any flipped byte: refused, never accepted.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad, CT, 4096).is_err(), "byte {i}");
        }
        assert!(matches!(
            verify(&good, CT, 10),
            Err(WireError::Oversize { .. })
        ));
        assert!(verify(&[], CT, 10).is_err());
    }
}
