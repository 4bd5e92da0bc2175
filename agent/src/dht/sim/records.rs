//! Signed records for the simulator, and a verifier that caches by hash.
//!
//! The node shell's records are COSE envelopes opened by `wire`; the
//! simulator uses a flat format with a real Ed25519 signature by the owner
//! so that self-certification is exercised for real. Verification results
//! are cached by SHA-256 of the record bytes (one signature check per
//! distinct record, not per copy), which keeps 10,000 nodes cheap without
//! trusting anything that was not verified once.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::dht::{RecordError, RecordVerifier, Time, VerifiedRecord};
use crate::identity::{Keypair, PublicKey};

const MAGIC: &[u8; 4] = b"SREC";
const HEADER: usize = 4 + 32 + 8 + 8 + 8;
const SIG: usize = 64;

/// Builds a record: magic, owner key, seq, issued, expires, padding, and
/// the owner's signature over all of that.
pub(crate) fn sign_record(
    owner: &Keypair,
    seq: u64,
    issued: Time,
    expires: Time,
    padding: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + padding + SIG);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(owner.public().as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&issued.0.to_be_bytes());
    out.extend_from_slice(&expires.0.to_be_bytes());
    out.resize(HEADER + padding, 0x5a);
    let sig = owner.sign(&out);
    out.extend_from_slice(&sig);
    out
}

fn parse(record: &[u8]) -> Result<VerifiedRecord, RecordError> {
    if record.len() < HEADER + SIG || &record[..4] != MAGIC {
        return Err(RecordError::Malformed);
    }
    let (body, sig) = record.split_at(record.len() - SIG);
    let owner = PublicKey::from_bytes(&body[4..36]).map_err(|_| RecordError::Malformed)?;
    if !owner.verify(body, sig) {
        return Err(RecordError::BadSignature);
    }
    let num = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[at..at + 8]);
        u64::from_be_bytes(b)
    };
    Ok(VerifiedRecord {
        owner,
        seq: num(36),
        issued: Time(num(44)),
        expires: Time(num(52)),
        host: None,
        under: None,
    })
}

/// Verifies [`sign_record`] records, caching results by record hash.
#[derive(Clone, Debug, Default)]
pub(crate) struct SimVerifier {
    cache: HashMap<[u8; 32], Result<VerifiedRecord, RecordError>>,
    /// Signatures actually checked.
    pub(crate) signature_checks: u64,
}

impl RecordVerifier for SimVerifier {
    fn verify(&mut self, record: &[u8], _now: Time) -> Result<VerifiedRecord, RecordError> {
        let h: [u8; 32] = Sha256::digest(record).into();
        if let Some(r) = self.cache.get(&h) {
            return r.clone();
        }
        self.signature_checks += 1;
        let r = parse(record);
        self.cache.insert(h, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_record_verifies_and_tampering_fails() {
        let kp = Keypair::from_seed(&[3; 32]);
        let r = sign_record(&kp, 7, Time(10), Time(20), 5);
        let mut v = SimVerifier::default();
        let ok = v.verify(&r, Time(0)).expect("valid");
        assert_eq!((ok.owner, ok.seq, ok.expires), (kp.public(), 7, Time(20)));
        let mut bad = r.clone();
        bad[40] ^= 1;
        assert_eq!(v.verify(&bad, Time(0)), Err(RecordError::BadSignature));
        assert_eq!(v.verify(&r[..10], Time(0)), Err(RecordError::Malformed));
        let _ = v.verify(&r, Time(0));
        assert_eq!(
            v.signature_checks, 3,
            "second check of the same bytes is cached"
        );
    }
}
