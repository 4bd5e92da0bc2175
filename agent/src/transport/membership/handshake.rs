//! Admission at a handshake, in the two steps TLS takes.
//!
//! 1. The peer's certificate chain arrives: [`Membership::begin_handshake`]
//!    judges everything in it (allowlist, revocation, who signed each
//!    credential, expiry) except the signatures of credentials it has not
//!    verified before.
//! 2. The peer's handshake signature (TLS 1.3 CertificateVerify) arrives:
//!    [`Membership::finish_handshake`] checks it and those signatures in
//!    one Ed25519 batch, then remembers the admission.
//!
//! Why two steps: a batch of two costs about 1.6 single checks (measured
//! in the handshake bench), so a member's first handshake costs about
//! 0.6 of a verification more than an allowlisted one, not a whole one. Nothing is admitted before step two
//! passes: the verifier refuses a handshake whose step one it cannot find.
//!
//! What this module does not do: keep the steps of concurrent handshakes
//! apart (the verifier does, by certificate).

use super::credentials::{self, Basis, Unchecked};
use super::{Membership, Policy, Refusal};
use crate::identity::batch::{self, Signed};
use crate::identity::PublicKey;
use crate::wire::multisigned::Signature;
use crate::wire::UnixMillis;

/// A handshake admitted but for the signatures still to check.
#[derive(Debug)]
pub(crate) struct Pending {
    key: PublicKey,
    /// How a credential admitted it (`None`: the allowlist, or a public
    /// network).
    basis: Option<Basis>,
    unchecked: Unchecked,
}

impl Pending {
    /// The peer's key, from its certificate.
    pub(crate) fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The bytes it holds, to bound what handshakes in flight keep.
    pub(crate) fn weight(&self) -> usize {
        self.unchecked
            .signatures
            .iter()
            .map(|s| s.signed.len() + 96)
            .sum::<usize>()
            + 256
    }
}

/// Why step two failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// The handshake's own signature is bad (the TLS layer's failure, not
    /// counted as a membership refusal).
    HandshakeSignature,
    /// Refused and counted.
    Refused(Refusal),
}

impl Membership {
    /// Step one, at the peer's certificate: admitted but for the chain's
    /// unchecked signatures, or refused and counted.
    pub(crate) fn begin_handshake(
        &self,
        key: &PublicKey,
        chain: &[&[u8]],
        now: UnixMillis,
    ) -> Result<Pending, Refusal> {
        let result = self.judge_chain(key, chain, now);
        if let Err(r) = result {
            self.handshakes.count(r);
        }
        result
    }

    fn judge_chain(
        &self,
        key: &PublicKey,
        chain: &[&[u8]],
        now: UnixMillis,
    ) -> Result<Pending, Refusal> {
        let Ok(p) = self.policy.read() else {
            return Err(Refusal::NotAllowlisted);
        };
        let mut pending = Pending {
            key: *key,
            basis: None,
            unchecked: Unchecked::default(),
        };
        if p.public || p.allowlist.contains(key) && !p.revocations.revoked.contains(key) {
            return Ok(pending);
        }
        if p.revocations.revoked.contains(key) {
            return Err(Refusal::Revoked);
        }
        let cx = credentials::Context {
            network: &p.network,
            authority: p.authority.as_ref(),
            allowlisted: &|k| p.allowlist.contains(k),
            revoked: &|k| p.revocations.revoked.contains(k),
            now,
            verified: &self.verified,
        };
        pending.basis = Some(credentials::admit(&cx, key, chain, &mut pending.unchecked)?);
        Ok(pending)
    }

    /// Step two, at the peer's handshake signature (`handshake`, by the
    /// peer's key; `None` where there is none to check): that signature and
    /// the chain's unchecked ones in one batch, then the admission is
    /// remembered. A revocation that arrived since step one still refuses.
    pub(crate) fn finish_handshake(
        &self,
        pending: &Pending,
        handshake: Option<Signed<'_>>,
    ) -> Result<(), Unfinished> {
        let mut all: Vec<Signed<'_>> = pending
            .unchecked
            .signatures
            .iter()
            .map(Signature::as_signed)
            .collect();
        all.extend(handshake);
        if !batch::verify_all(&all) {
            // Which one failed: the handshake's own, or the chain's.
            if let Some(h) = handshake {
                if !h.key.verify(h.message, &h.signature[..]) {
                    return Err(Unfinished::HandshakeSignature);
                }
            }
            return Err(self.refuse(Refusal::BadCredential));
        }
        if !self.private {
            return Ok(());
        }
        let revoked = |p: &Policy| {
            let gone = |k: &PublicKey| p.revocations.revoked.contains(k);
            gone(&pending.key)
                || pending
                    .basis
                    .as_ref()
                    .and_then(|b| b.via)
                    .is_some_and(|g| gone(&g))
        };
        let Some(basis) = &pending.basis else {
            // Admitted by the allowlist: nothing to remember, so the check
            // again takes only a read lock.
            return match self.policy.read() {
                Ok(p) if !revoked(&p) => Ok(()),
                Ok(p) => {
                    drop(p);
                    Err(self.refuse(Refusal::Revoked))
                }
                Err(_) => Err(self.refuse(Refusal::NotAllowlisted)),
            };
        };
        let Ok(mut p) = self.policy.write() else {
            return Err(self.refuse(Refusal::NotAllowlisted));
        };
        if revoked(&p) {
            drop(p);
            return Err(self.refuse(Refusal::Revoked));
        }
        self.verified.insert(&pending.unchecked);
        p.remember(pending.key, basis.clone());
        Ok(())
    }

    /// Counts a refusal at step two.
    fn refuse(&self, r: Refusal) -> Unfinished {
        self.handshakes.count(r);
        Unfinished::Refused(r)
    }
}
