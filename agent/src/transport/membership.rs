//! Who may be part of this network: the one place admission is decided.
//!
//! A [`Membership`] holds the network's policy — public (any key), or an
//! allowlist of keys — and answers [`Membership::admits`] for a key at a
//! time. The TLS verifiers ask it during every handshake (so a refused
//! peer never gets an application byte through); the node asks it again
//! through [`Membership::still_admits`] when a peer opens a stream, since
//! the policy can change while a connection lives (SIGHUP reloads the
//! allowlist). Every refusal is counted under a [`Refusal`], whose
//! [`Refusal::as_str`] is the metric label: there is no second list of
//! reason strings anywhere.
//!
//! An [`Admission`] can carry an expiry, for policies whose members are
//! admitted for a time (signed credentials); the allowlist's never expire.
//!
//! What this module does not do: check certificates or signatures (the
//! verifiers and `wire` do), or close connections of members removed (the
//! node does, when the daemon tells it).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::identity::PublicKey;
use crate::wire::UnixMillis;

/// Why a peer was refused: at its handshake, or on a stream after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is not a member of this private network.
    NotAllowlisted,
    /// The server presented a key other than the one dialed.
    WrongKey,
    /// The certificate is unparseable or not Ed25519.
    BadCertificate,
    /// The client asked for a server name we do not answer for.
    UnknownServerName,
    /// The peer offered another network or protocol version (ALPN).
    WrongNetwork,
    /// Any other failed incoming handshake (timeouts, TLS errors).
    HandshakeFailed,
    /// Too many handshakes in progress: an unproven address was sent a
    /// stateless Retry, or a proven one was refused (handshake floods).
    Busy,
    /// A hosted device's name asked for from an address with no verified
    /// connection to this agent: answered as if no such identity were
    /// here, before any signature (probing, issue 19).
    DeviceNameUnproven,
}

impl Refusal {
    /// Every refusal, in the order metrics list them.
    pub const ALL: [Refusal; 8] = [
        Refusal::NotAllowlisted,
        Refusal::WrongKey,
        Refusal::BadCertificate,
        Refusal::UnknownServerName,
        Refusal::WrongNetwork,
        Refusal::HandshakeFailed,
        Refusal::Busy,
        Refusal::DeviceNameUnproven,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAllowlisted => "not_allowlisted",
            Refusal::WrongKey => "wrong_key",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::UnknownServerName => "unknown_server_name",
            Refusal::WrongNetwork => "wrong_network",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::Busy => "busy",
            Refusal::DeviceNameUnproven => "device_name_unproven",
        }
    }

    /// What a person should read: the cause and, where there is one, the fix.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::NotAllowlisted => {
                "not a member of this private network (add its key to the allowlist)"
            }
            Refusal::WrongKey => "the server is not the key that was dialed",
            Refusal::BadCertificate => "the certificate does not carry an Ed25519 key",
            Refusal::UnknownServerName => "no identity here answers to the name asked for",
            Refusal::WrongNetwork => "another network or protocol version",
            Refusal::HandshakeFailed => "the handshake failed",
            Refusal::Busy => "too many handshakes at once",
            Refusal::DeviceNameUnproven => {
                "a hosted device answers only on an address already connected to its \
                 gateway (connect to the gateway first)"
            }
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

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

/// Who may join.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Policy {
    /// Anyone with a valid key.
    Public,
    /// Only these keys.
    Allowlist(HashSet<PublicKey>),
}

/// Counts of refusals by [`Refusal`].
#[derive(Debug, Default)]
pub struct Refusals([AtomicU64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, refusal: Refusal) {
        self.0[refusal.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many of `refusal`.
    pub fn get(&self, refusal: Refusal) -> u64 {
        self.0[refusal.index()].load(Ordering::Relaxed)
    }

    /// `(label, count)` for every refusal, for metrics.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .collect()
    }

    /// All refusals together.
    pub fn total(&self) -> u64 {
        Refusal::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// The network's membership policy and its refusal counts. Clones share
/// both, so a reload seen by one is seen by every verifier at once.
#[derive(Debug, Clone)]
pub struct Membership {
    policy: Arc<RwLock<Policy>>,
    private: bool,
    /// Refused handshakes.
    handshakes: Arc<Refusals>,
    /// Streams refused after the handshake (the policy changed since).
    streams: Arc<Refusals>,
}

impl Membership {
    fn with(policy: Policy) -> Self {
        Self {
            private: policy != Policy::Public,
            policy: Arc::new(RwLock::new(policy)),
            handshakes: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// A public network: every key may connect.
    pub fn public() -> Self {
        Self::with(Policy::Public)
    }

    /// A private network admitting only `keys`.
    pub fn allowlist(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self::with(Policy::Allowlist(keys.into_iter().collect()))
    }

    /// Whether this is a private network.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Whether `key` may take part at `now`. Nothing is counted: callers
    /// that refuse say where (a handshake, a stream).
    pub fn admits(&self, key: &PublicKey, _now: UnixMillis) -> Admission {
        let Ok(policy) = self.policy.read() else {
            // A poisoned lock admits nobody: failing closed.
            return Admission::Refused(Refusal::NotAllowlisted);
        };
        match &*policy {
            Policy::Public => Admission::Admitted { until: None },
            Policy::Allowlist(keys) if keys.contains(key) => Admission::Admitted { until: None },
            Policy::Allowlist(_) => Admission::Refused(Refusal::NotAllowlisted),
        }
    }

    /// The check at a handshake: admitted, or refused and counted.
    pub(crate) fn admit_handshake(&self, key: &PublicKey, now: UnixMillis) -> Result<(), Refusal> {
        match self.admits(key, now) {
            Admission::Admitted { .. } => Ok(()),
            Admission::Refused(r) => {
                self.handshakes.count(r);
                Err(r)
            }
        }
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
    /// be closed.
    pub fn replace_allowlist(&self, keys: impl IntoIterator<Item = PublicKey>) -> Vec<PublicKey> {
        let new: HashSet<PublicKey> = keys.into_iter().collect();
        let Ok(mut policy) = self.policy.write() else {
            return Vec::new();
        };
        let Policy::Allowlist(old) = &mut *policy else {
            return Vec::new();
        };
        let removed = old.difference(&new).copied().collect();
        *old = new;
        removed
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

/// Parses an allowlist: one 64-hex public key per line; `#` starts a
/// comment; blank lines are ignored. Errors name the line.
pub(crate) fn parse_allowlist(text: &str, origin: &str) -> Result<Vec<PublicKey>, Vec<String>> {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match entry.parse::<PublicKey>() {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(format!("{origin}:{}: {e}", n + 1)),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

/// Reads and parses an allowlist file (at most 4 MiB: ~60,000 keys).
pub(crate) fn read_allowlist(path: &Path) -> Result<Vec<PublicKey>, Vec<String>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    if meta.len() > 4 << 20 {
        return Err(vec![format!("{shown}: allowlist larger than 4 MiB")]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    parse_allowlist(&text, &shown.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    const NOW: UnixMillis = UnixMillis(1);

    #[test]
    fn allowlist_file_with_comments() {
        let a = Keypair::from_seed(&[1; 32]).public();
        let b = Keypair::from_seed(&[2; 32]).public();
        let text = format!("# site keys\n{a}  # gateway 1\n\n   {b}\n");
        assert_eq!(parse_allowlist(&text, "f"), Ok(vec![a, b]));
        let err = parse_allowlist(&format!("{a}\nnot-a-key\n"), "allow.txt");
        assert!(err.is_err_and(|e| e.len() == 1 && e[0].starts_with("allow.txt:2:")));
    }

    #[test]
    fn membership_admits_and_reloads() {
        let a = Keypair::from_seed(&[1; 32]).public();
        let b = Keypair::from_seed(&[2; 32]).public();
        assert!(Membership::public().admits(&a, NOW).is_admitted());
        let m = Membership::allowlist([a]);
        assert!(m.admits(&a, NOW).is_admitted());
        assert_eq!(
            m.admits(&b, NOW),
            Admission::Refused(Refusal::NotAllowlisted)
        );
        let removed = m.replace_allowlist([b]);
        assert_eq!(removed, vec![a]);
        assert_eq!(m.still_admits(&a, NOW), Err(Refusal::NotAllowlisted));
        assert!(m.still_admits(&b, NOW).is_ok());
        assert_eq!(m.stream_refusals().get(Refusal::NotAllowlisted), 1);
        assert_eq!(m.refusals().total(), 0);
        // A public network has no list to replace.
        assert!(Membership::public().replace_allowlist([a]).is_empty());
    }

    #[test]
    fn every_refusal_has_its_own_label() {
        let labels: HashSet<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len());
        let counts = Refusals::default();
        counts.count(Refusal::DeviceNameUnproven);
        assert_eq!(counts.snapshot().last(), Some(&("device_name_unproven", 1)));
    }
}
