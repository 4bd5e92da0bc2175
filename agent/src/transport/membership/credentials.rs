//! Admission by credential: who signed what, checked with the admin keys
//! alone, with no list of members.
//!
//! A peer's TLS certificate chain is its own self-signed certificate
//! followed by its credentials (see `cert.rs`):
//! - a member or gateway: `[leaf, credential signed by the admins]`;
//! - a device: `[leaf, device credential signed by its gateway, the
//!   gateway's credential signed by the admins]`, or only the first two
//!   when the gateway is on the allowlist.
//!
//! What this module does not do: remember anything (the membership keeps
//! what was admitted and what is revoked) or count (callers do).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::refusal::Refusal;
use crate::identity::PublicKey;
use crate::wire::membership::{Credential, Role, SignedCredential, MAX_CREDENTIAL_BYTES};
use crate::wire::multisigned::Signature;
use crate::wire::{UnixMillis, WireError};

/// Credentials remembered as verified, at most.
const MAX_CACHED: usize = 4096;

/// Credentials whose signatures were verified, by the SHA-256 of their
/// bytes: a peer presents the same credential at every handshake, and a
/// gateway's rides along with each of its devices', so each is verified
/// once, not at every handshake. Only the signature check is skipped:
/// who signed, expiry and revocation are judged at every handshake. When
/// full it starts over (a flood of new credentials costs what it would
/// without the cache).
#[derive(Debug, Default)]
pub(super) struct VerifiedCache(Mutex<HashMap<[u8; 32], SignedCredential>>);

/// The signatures an admission still waits on, and the credentials they
/// belong to, remembered as verified once they pass.
#[derive(Debug, Default)]
pub(crate) struct Unchecked {
    pub signatures: Vec<Signature>,
    credentials: Vec<([u8; 32], SignedCredential)>,
}

impl VerifiedCache {
    /// A credential verified before, or read now with its signatures left
    /// in `unchecked`.
    fn read(
        &self,
        bytes: &[u8],
        known: &[PublicKey],
        unchecked: &mut Unchecked,
    ) -> Result<SignedCredential, WireError> {
        if bytes.len() > MAX_CREDENTIAL_BYTES {
            return Err(WireError::Oversize {
                len: bytes.len(),
                max: MAX_CREDENTIAL_BYTES,
            });
        }
        let id: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(hit) = self.0.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(hit);
        }
        let (credential, read) = Credential::parse(bytes, known)?;
        let signed = (credential, read.signers);
        unchecked.signatures.extend(read.signatures);
        unchecked.credentials.push((id, signed.clone()));
        Ok(signed)
    }

    /// Remembers the credentials of `checked`, whose signatures passed.
    pub(super) fn insert(&self, checked: &Unchecked) {
        if let Ok(mut m) = self.0.lock() {
            for (id, credential) in &checked.credentials {
                if m.len() >= MAX_CACHED {
                    m.clear();
                }
                m.insert(*id, credential.clone());
            }
        }
    }
}

/// The network's admin keys and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    admins: Vec<PublicKey>,
    threshold: usize,
}

impl Authority {
    /// `threshold` of `admins` must sign; an error names what is wrong.
    pub fn new(admins: Vec<PublicKey>, threshold: usize) -> Result<Self, String> {
        if admins.is_empty() {
            return Err("no admin keys".into());
        }
        if threshold == 0 || threshold > admins.len() {
            return Err(format!(
                "admin_threshold {threshold} must be between 1 and the {} admin key(s)",
                admins.len()
            ));
        }
        Ok(Self { admins, threshold })
    }

    /// The admin keys.
    pub fn admins(&self) -> &[PublicKey] {
        &self.admins
    }

    /// How many must sign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Whether enough distinct admins are among `signers`.
    pub fn signed_by_enough(&self, signers: &[PublicKey]) -> bool {
        signers.iter().filter(|s| self.admins.contains(s)).count() >= self.threshold
    }
}

/// How a key was admitted by credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Basis {
    /// Its role.
    pub role: Role,
    /// When its admission ends (the earliest expiry in its chain).
    pub until: Option<UnixMillis>,
    /// The gateway that admitted it, for a device.
    pub via: Option<PublicKey>,
    /// Whether that gateway was a member by the allowlist (rather than by
    /// a credential, whose expiry is already in `until`).
    pub via_allowlist: bool,
    /// The admins who signed the credential that admitted it (for a
    /// device, its gateway's): checked again when the admin keys change.
    pub admitted_by: Vec<PublicKey>,
}

/// What the rest of the chain is checked against.
pub(super) struct Context<'a> {
    pub network: &'a str,
    pub authority: Option<&'a Authority>,
    pub allowlisted: &'a dyn Fn(&PublicKey) -> bool,
    pub revoked: &'a dyn Fn(&PublicKey) -> bool,
    pub now: UnixMillis,
    pub verified: &'a VerifiedCache,
}

/// Admits `leaf` by the credentials after it in its chain, or says why
/// not; the signatures not verified before are left in `unchecked`, and
/// the admission holds only once they pass.
pub(super) fn admit(
    cx: &Context<'_>,
    leaf: &PublicKey,
    chain: &[&[u8]],
    unchecked: &mut Unchecked,
) -> Result<Basis, Refusal> {
    let Some(first) = chain.first() else {
        return Err(Refusal::NotAllowlisted);
    };
    let (credential, signers) = open_for(cx, leaf, first, unchecked)?;
    match credential.role {
        Role::Gateway | Role::Member => {
            let authority = cx.authority.ok_or(Refusal::UntrustedIssuer)?;
            if !authority.signed_by_enough(&signers) {
                return Err(Refusal::UntrustedIssuer);
            }
            Ok(Basis {
                role: credential.role,
                until: credential.expires,
                via: None,
                via_allowlist: false,
                admitted_by: signers,
            })
        }
        Role::Device => {
            // Exactly one issuer: the gateway that hosts it.
            let [gateway] = signers[..] else {
                return Err(Refusal::UntrustedIssuer);
            };
            if (cx.revoked)(&gateway) {
                return Err(Refusal::Revoked);
            }
            let via_allowlist = (cx.allowlisted)(&gateway);
            let mut admitted_by = Vec::new();
            let gateway_until = if via_allowlist {
                None
            } else {
                let Some(second) = chain.get(1) else {
                    return Err(Refusal::UntrustedIssuer);
                };
                let (theirs, by) = open_for(cx, &gateway, second, unchecked)?;
                let authority = cx.authority.ok_or(Refusal::UntrustedIssuer)?;
                if theirs.role != Role::Gateway || !authority.signed_by_enough(&by) {
                    return Err(Refusal::UntrustedIssuer);
                }
                admitted_by = by;
                theirs.expires
            };
            Ok(Basis {
                role: Role::Device,
                until: earliest(credential.expires, gateway_until),
                via: Some(gateway),
                via_allowlist,
                admitted_by,
            })
        }
    }
}

/// Reads a credential that must be for `subject` on this network and still
/// valid at `now` (its signatures, unless verified before, into
/// `unchecked`).
fn open_for(
    cx: &Context<'_>,
    subject: &PublicKey,
    bytes: &[u8],
    unchecked: &mut Unchecked,
) -> Result<(Credential, Vec<PublicKey>), Refusal> {
    let admins = cx.authority.map(Authority::admins).unwrap_or_default();
    let known: Vec<PublicKey> = std::iter::once(*subject)
        .chain(admins.iter().copied())
        .collect();
    let (credential, signers) = cx
        .verified
        .read(bytes, &known, unchecked)
        .map_err(|_| Refusal::BadCredential)?;
    if credential.subject != *subject || credential.network != cx.network {
        return Err(Refusal::BadCredential);
    }
    if credential.expires.is_some_and(|e| e <= cx.now) {
        return Err(Refusal::CredentialExpired);
    }
    Ok((credential, signers))
}

fn earliest(a: Option<UnixMillis>, b: Option<UnixMillis>) -> Option<UnixMillis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
