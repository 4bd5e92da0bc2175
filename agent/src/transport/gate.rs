//! The network gate: who may connect, and the count of who was refused.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::identity::PublicKey;

/// Public (anyone with a valid key) or private (only the allowlist).
///
/// The allowlist is shared with the verifiers of every live endpoint and can
/// be replaced at run time ([`Gate::replace_allowlist`]); new handshakes see
/// the new list at once.
#[derive(Debug, Clone)]
pub struct Gate {
    allowlist: Option<Arc<RwLock<HashSet<PublicKey>>>>,
    refusals: Arc<Refusals>,
}

impl Gate {
    /// A public network: every key may connect.
    pub fn public() -> Self {
        Self {
            allowlist: None,
            refusals: Arc::default(),
        }
    }

    /// A private network admitting only `keys`.
    pub fn private(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            allowlist: Some(Arc::new(RwLock::new(keys.into_iter().collect()))),
            refusals: Arc::default(),
        }
    }

    /// Whether this is a private network.
    pub fn is_private(&self) -> bool {
        self.allowlist.is_some()
    }

    /// Whether `key` may connect.
    pub fn admits(&self, key: &PublicKey) -> bool {
        match &self.allowlist {
            None => true,
            Some(list) => list.read().map(|l| l.contains(key)).unwrap_or(false),
        }
    }

    /// Replaces the allowlist of a private network (no effect on a public
    /// one). Returns the keys that were removed, so their connections can
    /// be closed.
    pub fn replace_allowlist(&self, keys: impl IntoIterator<Item = PublicKey>) -> Vec<PublicKey> {
        let Some(list) = &self.allowlist else {
            return Vec::new();
        };
        let new: HashSet<PublicKey> = keys.into_iter().collect();
        let Ok(mut guard) = list.write() else {
            return Vec::new();
        };
        let removed = guard.difference(&new).copied().collect();
        *guard = new;
        removed
    }

    /// Handshake refusals so far.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }
}

/// Why handshakes were refused, counted (exported as metrics).
#[derive(Debug, Default)]
pub struct Refusals {
    /// Peer key not on a private network's allowlist.
    pub not_allowlisted: AtomicU64,
    /// Server presented a key other than the one dialed.
    pub wrong_key: AtomicU64,
    /// Certificate unparseable or not Ed25519.
    pub bad_certificate: AtomicU64,
    /// Client asked for a server name we do not answer for.
    pub unknown_server_name: AtomicU64,
    /// Peer offered another network or protocol version (ALPN mismatch).
    pub wrong_network: AtomicU64,
    /// Any other failed incoming handshake (timeouts, TLS errors).
    pub handshake_failed: AtomicU64,
    /// Too many handshakes in progress: an unproven address was sent a
    /// stateless Retry, or a proven one was refused (handshake floods).
    pub busy: AtomicU64,
}

impl Refusals {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(reason, count)` pairs, for metrics and status.
    pub fn snapshot(&self) -> [(&'static str, u64); 7] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("not_allowlisted", g(&self.not_allowlisted)),
            ("wrong_key", g(&self.wrong_key)),
            ("bad_certificate", g(&self.bad_certificate)),
            ("unknown_server_name", g(&self.unknown_server_name)),
            ("wrong_network", g(&self.wrong_network)),
            ("handshake_failed", g(&self.handshake_failed)),
            ("busy", g(&self.busy)),
        ]
    }

    /// All refusals together.
    pub fn total(&self) -> u64 {
        self.snapshot().iter().map(|(_, n)| n).sum()
    }
}

/// Parses an allowlist: one 64-hex public key per line; `#` starts a
/// comment; blank lines are ignored. Errors name the line.
pub fn parse_allowlist(text: &str, origin: &str) -> Result<Vec<PublicKey>, String> {
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
        Err(errors.join("\n"))
    }
}

/// Reads and parses an allowlist file (at most 4 MiB: ~60,000 keys).
pub fn read_allowlist(path: &Path) -> Result<Vec<PublicKey>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > 4 << 20 {
        return Err(format!("{}: allowlist larger than 4 MiB", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_allowlist(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn allowlist_file_with_comments() {
        let a = Keypair::from_seed(&[1; 32]).public();
        let b = Keypair::from_seed(&[2; 32]).public();
        let text = format!("# site keys\n{a}  # gateway 1\n\n   {b}\n");
        assert_eq!(parse_allowlist(&text, "f"), Ok(vec![a, b]));
        let err = parse_allowlist(&format!("{a}\nnot-a-key\n"), "allow.txt");
        assert!(err.is_err_and(|e| e.starts_with("allow.txt:2:")));
    }

    #[test]
    fn gate_admits_and_reloads() {
        let a = Keypair::from_seed(&[1; 32]).public();
        let b = Keypair::from_seed(&[2; 32]).public();
        assert!(Gate::public().admits(&a));
        let g = Gate::private([a]);
        assert!(g.admits(&a) && !g.admits(&b));
        let removed = g.replace_allowlist([b]);
        assert_eq!(removed, vec![a]);
        assert!(!g.admits(&a) && g.admits(&b));
    }
}
