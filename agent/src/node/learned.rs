//! How the node learned of each peer, and peers introduced from outside
//! the DHT (a LAN announcement, a DNS seed).
//!
//! An operator asking "why is this gateway talking to that one?" wants
//! the answer in `status`: a configured seed, a DNS seed record, a LAN
//! announcement, or the DHT itself (another peer named it). The first
//! source wins: a seed that later also announces itself on the LAN stays
//! a seed.
//!
//! What this module does not do: decide whether an announcement is worth
//! dialing (the discovery layer above filters and rate-limits them), or
//! admit anyone (membership decides, in the handshake, as for any dial).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

use super::in_flight::Purpose;
use super::Node;
use crate::dht::{Addrs, Contact};
use crate::identity::PublicKey;

/// Where the node first heard of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// `seeds` in the config.
    Seed,
    /// A TXT record of `seeds_dns`.
    Dns,
    /// A DNS-SD announcement on the LAN (mDNS).
    Mdns,
    /// Another peer named it (a DHT lookup's answer, or it dialed us).
    Dht,
}

impl Source {
    /// The label in `status` and metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Seed => "seed",
            Source::Dns => "dns",
            Source::Mdns => "mdns",
            Source::Dht => "dht",
        }
    }

    /// Every source, for metrics that list each one even at 0.
    pub(crate) const ALL: [Source; 4] = [Source::Seed, Source::Dns, Source::Mdns, Source::Dht];

    /// Whether a dial to such a peer bypasses the per-address dial budget:
    /// the operator's word (config, the operator's DNS zone) does; anyone
    /// on the LAN can announce anything, so an announcement does not.
    fn trusted(self) -> bool {
        matches!(self, Source::Seed | Source::Dns)
    }
}

/// Keys remembered with a source other than the DHT at most; past it,
/// those no longer in the table or connected are forgotten. Introductions
/// are rate-limited above, so this is only reached over a long time.
const MAX_LEARNED: usize = 4096;

/// Sources of the peers heard of outside the DHT.
#[derive(Debug, Default)]
pub(super) struct Learned {
    by_key: HashMap<PublicKey, Source>,
}

impl Learned {
    /// Remembers `key`'s source unless one is known already.
    pub(super) fn note(&mut self, key: PublicKey, source: Source) {
        self.by_key.entry(key).or_insert(source);
    }

    /// Where `key` was learned ([`Source::Dht`] unless noted).
    pub(super) fn source(&self, key: &PublicKey) -> Source {
        self.by_key.get(key).copied().unwrap_or(Source::Dht)
    }

    /// Whether a dial to `key` bypasses the per-address budget.
    pub(super) fn trusted(&self, key: &PublicKey) -> bool {
        self.by_key.get(key).is_some_and(|s| s.trusted())
    }

    fn prune(&mut self, keep: impl Fn(&PublicKey) -> bool) {
        if self.by_key.len() >= MAX_LEARNED {
            self.by_key.retain(|k, s| s.trusted() || keep(k));
        }
    }
}

impl Node {
    /// A peer heard of outside the DHT: remember how, and join through it
    /// (a lookup of our own id via it, like a bootstrap) unless we are
    /// connected to it already. Whether a lookup started.
    pub(super) fn introduce(
        &mut self,
        key: PublicKey,
        addrs: &[SocketAddr],
        source: Source,
    ) -> bool {
        if key == self.key.public() || addrs.is_empty() {
            return false;
        }
        let table = self.dht.table();
        let conns = &self.conns;
        self.learned
            .prune(|k| table.contains(&k.node_id()) || conns.cached(k).is_some());
        self.learned.note(key, source);
        if self.conns.cached(&key).is_some() {
            return false;
        }
        let written: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let Ok(addrs) = Addrs::new(&written) else {
            return false;
        };
        let was_alone = self.dht.table().is_empty();
        let contact = Contact::from_claimed(*key.as_bytes(), addrs);
        let q = self.dht.introduce(contact, self.now());
        self.in_flight.insert(q, Purpose::Introduced { was_alone });
        true
    }

    /// Routing-table contacts by how they were learned (every source
    /// listed, 0 included).
    pub(super) fn table_by_source(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = Source::ALL
            .iter()
            .map(|s| (s.label().to_owned(), 0))
            .collect();
        let mut seen = HashSet::new();
        for c in self.dht.table().iter() {
            let Ok(key) = PublicKey::from_bytes(c.key_bytes()) else {
                continue;
            };
            if seen.insert(key) {
                *counts
                    .entry(self.learned.source(&key).label().to_owned())
                    .or_default() += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn the_first_source_wins_and_only_the_operators_word_is_trusted() {
        let seed = Keypair::from_seed(&[1; 32]).public();
        let lan = Keypair::from_seed(&[2; 32]).public();
        let dns = Keypair::from_seed(&[3; 32]).public();
        let mut l = Learned::default();
        l.note(seed, Source::Seed);
        l.note(seed, Source::Mdns);
        l.note(lan, Source::Mdns);
        l.note(dns, Source::Dns);
        assert_eq!(l.source(&seed), Source::Seed);
        assert_eq!(l.source(&lan), Source::Mdns);
        assert_eq!(
            l.source(&Keypair::from_seed(&[4; 32]).public()),
            Source::Dht
        );
        assert!(l.trusted(&seed) && l.trusted(&dns));
        assert!(!l.trusted(&lan));
    }

    #[test]
    fn pruning_keeps_trusted_and_live_keys() {
        let mut l = Learned::default();
        for i in 0..MAX_LEARNED as u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            l.note(Keypair::from_seed(&seed).public(), Source::Mdns);
        }
        let dns = Keypair::from_seed(&[9; 32]).public();
        l.note(dns, Source::Dns);
        l.prune(|_| false);
        assert_eq!(l.by_key.len(), 1);
        assert!(l.trusted(&dns));
    }
}
