//! Who may be part of this network: the one place admission is decided.
//!
//! - `refusal.rs`: [`Refusal`], why a peer was refused, and [`Refusals`],
//!   the counts by reason (the metric labels; there is no second list).
//! - `allowlist.rs`: the static allowlist file.
//! - `credentials.rs`: [`Authority`] (the admin keys and their threshold)
//!   and the check of a peer's credential chain.
//! - `handshake.rs`: admission at a handshake in two steps, so the
//!   chain's signatures are checked in one batch with the handshake's.
//!
//! A [`Membership`] holds the network's policy and answers, for a key at a
//! time:
//! - at a handshake, with the credentials the peer's certificate chain
//!   carries, so a refused peer never gets an application byte through:
//!   in the two steps of `handshake.rs` for the TLS verifiers, in one
//!   ([`Membership::admit_handshake`]) for everyone else;
//! - afterwards, [`Membership::still_admits`], when a peer opens a stream
//!   or before a delivery: the policy may have changed while the
//!   connection lived (SIGHUP reloads the allowlist; a revocation list
//!   arrives; a credential expires).
//!
//! A private network admits the keys of its allowlist, and the holders of a
//! credential signed by enough of its admins; a gateway (a credential of
//! the gateway role, or an allowlist entry) admits its own devices by
//! signing their device credentials. Nobody is admitted whose key, or
//! whose gateway's key, is on the newest revocation list; lists are kept
//! in a file of the state directory and replaced only by a higher
//! sequence. Every change that removes members is announced on
//! [`Membership::removals`], so the node and the devices can close what
//! those keys hold.
//!
//! What this module does not do: read TLS messages (the verifiers do, and
//! hand it the handshake signature to check with the chain's),
//! move revocation lists between peers (the node does), or close
//! connections (the node and the devices do, when told).

mod allowlist;
mod credentials;
pub(crate) mod handshake;
mod refusal;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub(crate) use allowlist::read_allowlist;
pub use credentials::Authority;
use credentials::{Basis, VerifiedCache};
pub(crate) use refusal::{Refusal, Refusals};

use crate::identity::PublicKey;
use crate::wire::membership::Revocations;
use crate::wire::{NetworkId, UnixMillis, WireError};

/// Keys admitted by credential that are remembered, for the checks after
/// their handshake; past it the oldest are forgotten, and their next
/// stream is refused until they connect again (failing closed).
const MAX_ADMITTED: usize = 65_536;

/// The answer to "may this key take part now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Yes; until this wall-clock time when the membership expires.
    Admitted {
        /// When the admission ends (`None`: it does not).
        until: Option<UnixMillis>,
    },
    /// No, and why.
    Refused(Refusal),
}

impl Admission {
    /// Whether the key is admitted.
    pub fn is_admitted(self) -> bool {
        matches!(self, Admission::Admitted { .. })
    }
}

/// The newest revocation list this node holds.
#[derive(Debug, Clone, Default)]
pub struct RevocationState {
    /// Its sequence (0: none yet).
    pub seq: u64,
    /// The revoked keys.
    pub revoked: HashSet<PublicKey>,
    /// The signed list, as received, to pass on.
    pub bytes: Arc<Vec<u8>>,
}

/// Why a revocation list was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Unreadable or forged.
    #[error("revocation list refused: {0}")]
    Wire(#[from] WireError),
    /// For another network.
    #[error("revocation list is for network {0:?}")]
    WrongNetwork(String),
    /// Not signed by enough admins (or this network has none).
    #[error("revocation list is not signed by enough of this network's admins")]
    Untrusted,
    /// Not newer than the one held.
    #[error("revocation list sequence {got} is not newer than {held}")]
    NotNewer {
        /// The list's.
        got: u64,
        /// Ours.
        held: u64,
    },
    /// Applied, but not kept on disk.
    #[error("revocation list applied but not saved to {path}: {error}")]
    NotSaved {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
}

#[derive(Debug, Default)]
struct Policy {
    /// Public network: nothing below applies.
    public: bool,
    network: String,
    allowlist: HashSet<PublicKey>,
    authority: Option<Authority>,
    revocations: RevocationState,
    /// Keys admitted by credential, and how.
    admitted: HashMap<PublicKey, Basis>,
    admitted_order: VecDeque<PublicKey>,
}

impl Policy {
    fn remember(&mut self, key: PublicKey, basis: Basis) {
        if self.admitted.insert(key, basis).is_none() {
            self.admitted_order.push_back(key);
            while self.admitted_order.len() > MAX_ADMITTED {
                if let Some(old) = self.admitted_order.pop_front() {
                    self.admitted.remove(&old);
                }
            }
        }
    }

    /// The devices admitted through a gateway that `gone` says has left.
    fn devices_of(&self, gone: impl Fn(&PublicKey) -> bool) -> Vec<PublicKey> {
        self.admitted
            .iter()
            .filter(|(_, b)| b.via.as_ref().is_some_and(&gone))
            .map(|(k, _)| *k)
            .collect()
    }

    fn admits(&self, key: &PublicKey, now: UnixMillis) -> Admission {
        if self.public {
            return Admission::Admitted { until: None };
        }
        if self.revocations.revoked.contains(key) {
            return Admission::Refused(Refusal::Revoked);
        }
        if self.allowlist.contains(key) {
            return Admission::Admitted { until: None };
        }
        match self.admitted.get(key) {
            Some(b) if b.via.is_some_and(|g| self.revocations.revoked.contains(&g)) => {
                Admission::Refused(Refusal::Revoked)
            }
            // A gateway admitted by the allowlist may have left it since.
            Some(b) if b.via_allowlist && b.via.is_some_and(|g| !self.allowlist.contains(&g)) => {
                Admission::Refused(Refusal::NotAllowlisted)
            }
            Some(b) if b.until.is_some_and(|u| u <= now) => {
                Admission::Refused(Refusal::CredentialExpired)
            }
            // Admitted by admin signatures that no longer count (the admin
            // keys changed since).
            Some(b)
                if !b.via_allowlist
                    && !self
                        .authority
                        .as_ref()
                        .is_some_and(|a| a.signed_by_enough(&b.admitted_by)) =>
            {
                Admission::Refused(Refusal::UntrustedIssuer)
            }
            Some(b) => Admission::Admitted { until: b.until },
            None => Admission::Refused(Refusal::NotAllowlisted),
        }
    }
}

/// The network's membership policy and its refusal counts. Clones share
/// both, so a reload seen by one is seen by every verifier at once.
#[derive(Debug, Clone)]
pub struct Membership {
    policy: Arc<RwLock<Policy>>,
    private: bool,
    /// Where the newest revocation list is kept.
    revocations_file: Option<PathBuf>,
    /// Keys removed from the membership, for whoever must close their
    /// connections, subscriptions and queues.
    removals: tokio::sync::broadcast::Sender<Vec<PublicKey>>,
    /// The sequence of the newest revocation list held, for whoever passes
    /// lists on.
    updates: Arc<tokio::sync::watch::Sender<u64>>,
    /// Credentials already verified.
    verified: Arc<VerifiedCache>,
    /// Refused handshakes.
    handshakes: Arc<Refusals>,
    /// Streams refused after the handshake (the policy changed since).
    streams: Arc<Refusals>,
}

impl Membership {
    fn with(policy: Policy) -> Self {
        Self {
            private: !policy.public,
            policy: Arc::new(RwLock::new(policy)),
            revocations_file: None,
            removals: tokio::sync::broadcast::channel(64).0,
            updates: Arc::new(tokio::sync::watch::channel(0).0),
            verified: Arc::default(),
            handshakes: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// A public network: every key may connect.
    pub fn public() -> Self {
        Self::with(Policy {
            public: true,
            ..Policy::default()
        })
    }

    /// A private network admitting the keys of `allowlist`, and, with an
    /// `authority`, the holders of its credentials.
    pub fn private(
        network: &NetworkId,
        allowlist: impl IntoIterator<Item = PublicKey>,
        authority: Option<Authority>,
    ) -> Self {
        Self::with(Policy {
            network: network.as_str().to_owned(),
            allowlist: allowlist.into_iter().collect(),
            authority,
            ..Policy::default()
        })
    }

    /// Keeps revocation lists in `path`, and applies the one found there.
    /// A list that cannot be read is an error naming the file: starting
    /// without it would readmit revoked keys.
    pub fn keep_revocations_in(mut self, path: PathBuf) -> Result<Self, RevocationError> {
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.apply_revocations(&bytes).map_err(|e| match e {
                    RevocationError::NotSaved { .. } => e,
                    other => RevocationError::NotSaved {
                        path: path.display().to_string(),
                        error: format!("the kept list does not load: {other}"),
                    },
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RevocationError::NotSaved {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })
            }
        }
        self.revocations_file = Some(path);
        Ok(self)
    }

    /// Whether this is a private network.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The admin keys and threshold, if this network has them.
    pub fn authority(&self) -> Option<Authority> {
        self.policy.read().ok()?.authority.clone()
    }

    /// Whether `key` may take part at `now`. Nothing is counted: callers
    /// that refuse say where (a handshake, a stream).
    pub fn admits(&self, key: &PublicKey, now: UnixMillis) -> Admission {
        match self.policy.read() {
            Ok(p) => p.admits(key, now),
            // A poisoned lock admits nobody: failing closed.
            Err(_) => Admission::Refused(Refusal::NotAllowlisted),
        }
    }

    /// The check at a handshake, with the credentials after the peer's
    /// certificate (`chain`), in one step: admitted, or refused and
    /// counted. (The TLS verifiers take the two steps of [`handshake`], to
    /// check the chain's signatures with the handshake's own.)
    pub fn admit_handshake(
        &self,
        key: &PublicKey,
        chain: &[&[u8]],
        now: UnixMillis,
    ) -> Result<(), Refusal> {
        let pending = self.begin_handshake(key, chain, now)?;
        self.finish_handshake(&pending, None).map_err(|e| match e {
            handshake::Unfinished::Refused(r) => r,
            handshake::Unfinished::HandshakeSignature => Refusal::BadCredential,
        })
    }

    /// The check when a peer admitted at its handshake opens a stream (or
    /// answers one of ours): still a member, or refused and counted.
    pub fn still_admits(&self, key: &PublicKey, now: UnixMillis) -> Result<(), Refusal> {
        match self.admits(key, now) {
            Admission::Admitted { .. } => Ok(()),
            Admission::Refused(r) => {
                self.streams.count(r);
                Err(r)
            }
        }
    }

    /// Replaces the allowlist of a private network (no effect on a public
    /// one). Returns the keys that were removed, so their connections can
    /// be closed; they are also announced on [`Membership::removals`].
    pub fn replace_allowlist(&self, keys: impl IntoIterator<Item = PublicKey>) -> Vec<PublicKey> {
        let new: HashSet<PublicKey> = keys.into_iter().collect();
        let Ok(mut p) = self.policy.write() else {
            return Vec::new();
        };
        if p.public {
            return Vec::new();
        }
        let mut removed: Vec<PublicKey> = p.allowlist.difference(&new).copied().collect();
        p.allowlist = new;
        // Devices of a gateway that left with it.
        removed.extend(p.devices_of(|g| removed.contains(g)));
        drop(p);
        self.announce(&removed);
        removed
    }

    /// Replaces the admin keys and threshold (a reload; no effect on a
    /// public network). Members admitted by credentials that the new admins
    /// do not sign for are removed and announced on [`Membership::removals`];
    /// everyone else keeps their sessions.
    pub fn replace_authority(&self, authority: Option<Authority>) -> Vec<PublicKey> {
        let Ok(mut p) = self.policy.write() else {
            return Vec::new();
        };
        if p.public || p.authority == authority {
            return Vec::new();
        }
        p.authority = authority;
        let out: Vec<PublicKey> = p
            .admitted
            .iter()
            .filter(|(_, b)| {
                !b.via_allowlist
                    && !p
                        .authority
                        .as_ref()
                        .is_some_and(|a| a.signed_by_enough(&b.admitted_by))
            })
            .map(|(k, _)| *k)
            .collect();
        for k in &out {
            p.admitted.remove(k);
        }
        drop(p);
        self.announce(&out);
        out
    }

    /// Applies a signed revocation list if it is for this network, signed
    /// by enough admins and newer than the one held; keeps it on disk.
    /// Returns the keys newly out (the revoked, and the devices of revoked
    /// gateways), also announced on [`Membership::removals`].
    pub fn apply_revocations(&self, bytes: &[u8]) -> Result<Vec<PublicKey>, RevocationError> {
        let newly = {
            let Ok(mut p) = self.policy.write() else {
                return Err(RevocationError::Untrusted);
            };
            let list = judge_list(&p, bytes)?;
            if list.seq <= p.revocations.seq {
                return Err(RevocationError::NotNewer {
                    got: list.seq,
                    held: p.revocations.seq,
                });
            }
            let revoked: HashSet<PublicKey> = list.revoked.into_iter().collect();
            let mut newly: Vec<PublicKey> = revoked
                .difference(&p.revocations.revoked)
                .copied()
                .collect();
            newly.extend(p.devices_of(|g| revoked.contains(g)));
            p.revocations = RevocationState {
                seq: list.seq,
                revoked,
                bytes: Arc::new(bytes.to_vec()),
            };
            newly
        };
        self.announce(&newly);
        self.updates.send_replace(self.revocation_seq());
        if let Some(path) = &self.revocations_file {
            crate::state_file::write_atomic(path, bytes).map_err(|e| {
                RevocationError::NotSaved {
                    path: path.display().to_string(),
                    error: e.to_string(),
                }
            })?;
        }
        Ok(newly)
    }

    /// Whether `bytes` is a revocation list this network's admins signed
    /// (enough of them), and its sequence; nothing is applied. What the
    /// DHT's copy of the list is checked with before a node keeps it.
    pub fn check_revocations(&self, bytes: &[u8]) -> Result<u64, RevocationError> {
        let p = self.policy.read().map_err(|_| RevocationError::Untrusted)?;
        judge_list(&p, bytes).map(|l| l.seq)
    }

    /// The newest revocation list held (sequence 0 and no bytes: none).
    pub fn revocations(&self) -> RevocationState {
        self.policy
            .read()
            .map(|p| p.revocations.clone())
            .unwrap_or_default()
    }

    /// How many keys the newest revocation list revokes.
    pub fn revoked_count(&self) -> usize {
        self.policy
            .read()
            .map(|p| p.revocations.revoked.len())
            .unwrap_or(0)
    }

    /// The sequence of the newest revocation list held.
    pub fn revocation_seq(&self) -> u64 {
        self.policy.read().map(|p| p.revocations.seq).unwrap_or(0)
    }

    /// The sequence of the newest revocation list held, as it changes.
    pub fn revocation_updates(&self) -> tokio::sync::watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Keys removed from the membership, as they go.
    pub fn removals(&self) -> tokio::sync::broadcast::Receiver<Vec<PublicKey>> {
        self.removals.subscribe()
    }

    fn announce(&self, removed: &[PublicKey]) {
        if !removed.is_empty() {
            let _ = self.removals.send(removed.to_vec());
        }
    }

    /// How many keys are remembered as admitted by credential.
    pub fn admitted_by_credential(&self) -> usize {
        self.policy.read().map(|p| p.admitted.len()).unwrap_or(0)
    }

    /// Handshakes refused so far, by reason.
    pub fn refusals(&self) -> &Refusals {
        &self.handshakes
    }

    /// Streams refused after a handshake, by reason.
    pub fn stream_refusals(&self) -> &Refusals {
        &self.streams
    }
}

/// A revocation list opened and judged against `p`: for this (private)
/// network and signed by enough of its admins. Its sequence is the
/// caller's to compare.
fn judge_list(p: &Policy, bytes: &[u8]) -> Result<Revocations, RevocationError> {
    let (list, signers) = Revocations::open(bytes)?;
    if list.network != p.network || p.public {
        return Err(RevocationError::WrongNetwork(list.network));
    }
    if !p
        .authority
        .as_ref()
        .is_some_and(|a| a.signed_by_enough(&signers))
    {
        return Err(RevocationError::Untrusted);
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
