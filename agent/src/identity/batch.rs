//! Checking several Ed25519 signatures at once, judged as the strict
//! check judges each alone.
//!
//! A batch of two signatures costs about 1.6 single checks: at a
//! handshake, a member's credential is checked together with the TLS
//! handshake signature, and published envelopes are opened by the
//! hundred.
//!
//! What this module does not do: say which signature failed (callers that
//! must say so check the failed batch one by one).

use super::PublicKey;

/// One signature to check: `signature` by `key` over `message`.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// Who signed.
    pub key: &'a PublicKey,
    /// What was signed.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; 64],
}

/// Whether the batch equation judges this signature as the strict check
/// would: `s` below 2^252 (so canonical) and a key of large order. The
/// batch equation is multiplied by the cofactor, so a small-order key
/// would pass it for any message; such signatures go the strict way.
pub fn batchable(key: &PublicKey, signature: &[u8; 64]) -> bool {
    signature[63] & 0xf0 == 0 && !key.verifying_key().is_weak()
}

/// Whether every signature of `items` verifies: the batchable ones in one
/// batch, the others strictly one by one.
pub fn verify_all(items: &[Signed<'_>]) -> bool {
    let (batch, single): (Vec<&Signed<'_>>, Vec<&Signed<'_>>) =
        items.iter().partition(|s| batchable(s.key, s.signature));
    if !single
        .iter()
        .all(|s| s.key.verify(s.message, &s.signature[..]))
    {
        return false;
    }
    match batch.len() {
        0 => true,
        1 => batch[0]
            .key
            .verify(batch[0].message, &batch[0].signature[..]),
        _ => {
            let messages: Vec<&[u8]> = batch.iter().map(|s| s.message).collect();
            let signatures: Vec<ed25519_dalek::Signature> = batch
                .iter()
                .map(|s| ed25519_dalek::Signature::from_bytes(s.signature))
                .collect();
            let keys: Vec<ed25519_dalek::VerifyingKey> =
                batch.iter().map(|s| *s.key.verifying_key()).collect();
            ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn a_batch_fails_when_any_signature_fails() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (ka, kb) = (a.public(), b.public());
        let (sa, sb) = (a.sign(b"one"), b.sign(b"two"));
        let item = |key, message, signature| Signed {
            key,
            message,
            signature,
        };
        assert!(verify_all(&[]));
        assert!(verify_all(&[item(&ka, b"one", &sa)]));
        assert!(verify_all(&[
            item(&ka, b"one", &sa),
            item(&kb, b"two", &sb)
        ]));
        // Swapped messages, a signature by the other key, a flipped bit.
        assert!(!verify_all(&[
            item(&ka, b"two", &sa),
            item(&kb, b"one", &sb)
        ]));
        assert!(!verify_all(&[
            item(&ka, b"one", &sa),
            item(&kb, b"two", &sa)
        ]));
        let mut bad = sb;
        bad[5] ^= 1;
        assert!(!verify_all(&[
            item(&ka, b"one", &sa),
            item(&kb, b"two", &bad)
        ]));
        // A non-canonical `s` (top bits set) is never batched, and refused.
        let mut high = sa;
        high[63] |= 0xf0;
        assert!(!batchable(&ka, &high));
        assert!(!verify_all(&[
            item(&ka, b"one", &high),
            item(&kb, b"two", &sb)
        ]));
    }

    #[test]
    fn a_small_order_key_never_passes_the_batch() {
        // The identity point: with R = sB every "signature" satisfies the
        // cofactored batch equation; the strict check refuses the key.
        let mut id = [0u8; 32];
        id[0] = 1;
        let weak = PublicKey::from_bytes(&id).expect("a point");
        let b = Keypair::from_seed(&[2; 32]);
        let kb = b.public();
        let sb = b.sign(b"two");
        // R = 1·B (the base point, 0x58 0x66…), s = 1.
        let mut forged = [0x66u8; 64];
        forged[0] = 0x58;
        forged[32..].fill(0);
        forged[32] = 1;
        assert!(!batchable(&weak, &forged));
        assert!(!verify_all(&[
            Signed {
                key: &weak,
                message: b"anything",
                signature: &forged
            },
            Signed {
                key: &kb,
                message: b"two",
                signature: &sb
            },
        ]));
    }
}
