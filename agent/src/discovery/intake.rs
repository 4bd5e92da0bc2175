//! What the agent does with announcements heard on the LAN: which peers
//! to dial, how many, and what to remember, all bounded.
//!
//! Anyone on the LAN can announce anything, a thousand fake keys a second
//! if they like. So:
//! - an announcement of our own key, of another network, or of a key the
//!   config names as a seed is never dialed (a configured seed's address
//!   is the operator's word, and an announcement never overrides it);
//! - new peers (or a known one at new addresses) are let through a token
//!   bucket of [`IntakeLimits::per_minute`]; the rest wait in a queue of
//!   [`MAX_DEFERRED`] and are let through as tokens come back, the oldest
//!   dropped when it is full: a burst of real gateways booting at once is
//!   dialed within minutes, a flood costs a bounded number of dials;
//! - what is remembered for `streembit discover` is at most [`MAX_SEEN`]
//!   peers, the least recently heard forgotten first.
//!
//! Every announcement is counted by outcome. Pure logic over an injected
//! `Instant`: the mDNS task feeds it.
//!
//! What this module does not do: decide admission (a dial proves the key
//! in the handshake, and membership admits or refuses it as any other).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::announcement::{Announcement, Malformed, NetworkTag};
use crate::identity::PublicKey;

/// Peers remembered for `streembit discover` at most.
pub(crate) const MAX_SEEN: usize = 256;
/// Announcements waiting for the rate limit at most.
pub(crate) const MAX_DEFERRED: usize = 64;

/// How fast new LAN peers are dialed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntakeLimits {
    /// New peers dialed per minute at most (and at once, as a burst).
    pub per_minute: u32,
}

/// A peer heard on the LAN.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Its network.
    pub network: NetworkTag,
    /// Its addresses, as last announced.
    pub addrs: Vec<SocketAddr>,
    /// When it was last heard.
    pub last: Instant,
}

/// A peer to dial at these addresses: what an announcement may lead to
/// (`None`: nothing now, as it is known, ours, of another network, a
/// seed, or deferred).
pub(crate) type Dial = (PublicKey, Vec<SocketAddr>);

/// The bounded intake of LAN announcements.
#[derive(Debug)]
pub(crate) struct Intake {
    own: PublicKey,
    network: NetworkTag,
    seeds: HashSet<PublicKey>,
    limits: IntakeLimits,
    tokens: f64,
    refilled: Instant,
    deferred: VecDeque<Announcement>,
    seen: HashMap<PublicKey, Seen>,
    outcomes: BTreeMap<&'static str, u64>,
    browser_restarts: u64,
}

/// Outcome labels, each counted from 0 so dashboards see them all.
const OUTCOMES: &[&str] = &[
    "dialed",
    "known",
    "own",
    "other_network",
    "configured_seed",
    "deferred",
    "dropped_rate_limited",
    "malformed_version",
    "malformed_key",
    "malformed_network",
    "malformed_address",
    "dial_dropped",
];

impl Intake {
    /// An intake for the agent `own` on `network`, which never dials
    /// `seeds` from an announcement.
    pub(crate) fn new(
        own: PublicKey,
        network: NetworkTag,
        seeds: impl IntoIterator<Item = PublicKey>,
        limits: IntakeLimits,
        now: Instant,
    ) -> Self {
        Self {
            own,
            network,
            seeds: seeds.into_iter().collect(),
            limits,
            tokens: f64::from(limits.per_minute),
            refilled: now,
            deferred: VecDeque::new(),
            seen: HashMap::new(),
            outcomes: OUTCOMES.iter().map(|o| (*o, 0)).collect(),
            browser_restarts: 0,
        }
    }

    fn count(&mut self, outcome: &'static str) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    /// An announcement that could not be read.
    pub(crate) fn malformed(&mut self, why: Malformed) {
        self.count(why.label());
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let per_sec = f64::from(self.limits.per_minute) / 60.0;
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * per_sec).min(f64::from(self.limits.per_minute));
        self.refilled = now;
    }

    /// One announcement heard.
    pub(crate) fn offer(&mut self, a: Announcement, now: Instant) -> Option<Dial> {
        if a.key == self.own {
            self.count("own");
            return None;
        }
        let changed = self
            .seen
            .get(&a.key)
            .is_none_or(|s| s.addrs != a.addrs || s.network != a.network);
        if !changed {
            if let Some(s) = self.seen.get_mut(&a.key) {
                s.last = now;
            }
            self.count("known");
            return None;
        }
        if a.network != self.network {
            self.remember(&a, now);
            self.count("other_network");
            return None;
        }
        if self.seeds.contains(&a.key) {
            self.remember(&a, now);
            self.count("configured_seed");
            return None;
        }
        self.refill(now);
        if self.tokens >= 1.0 && self.deferred.is_empty() {
            return self.admit(a, now);
        }
        // Waiting already? Its newest announcement replaces the old one.
        self.deferred.retain(|d| d.key != a.key);
        if self.deferred.len() >= MAX_DEFERRED {
            self.deferred.pop_front();
            self.count("dropped_rate_limited");
        }
        self.deferred.push_back(a);
        self.count("deferred");
        None
    }

    /// Deferred announcements whose turn has come.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<Dial> {
        self.refill(now);
        let mut out = Vec::new();
        while self.tokens >= 1.0 {
            let Some(a) = self.deferred.pop_front() else {
                break;
            };
            out.extend(self.admit(a, now));
        }
        out
    }

    fn admit(&mut self, a: Announcement, now: Instant) -> Option<Dial> {
        self.tokens -= 1.0;
        self.remember(&a, now);
        self.count("dialed");
        Some((a.key, a.addrs))
    }

    fn remember(&mut self, a: &Announcement, now: Instant) {
        if !self.seen.contains_key(&a.key) && self.seen.len() >= MAX_SEEN {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
        self.seen.insert(
            a.key,
            Seen {
                network: a.network.clone(),
                addrs: a.addrs.clone(),
                last: now,
            },
        );
    }

    /// A peer that left the LAN (its announcement was withdrawn).
    pub(crate) fn forget(&mut self, key: &PublicKey) {
        self.seen.remove(key);
        self.deferred.retain(|d| d.key != *key);
    }

    /// Peers heard, most recently heard first.
    pub(crate) fn seen(&self) -> Vec<(PublicKey, Seen)> {
        let mut all: Vec<(PublicKey, Seen)> =
            self.seen.iter().map(|(k, s)| (*k, s.clone())).collect();
        all.sort_by_key(|(_, s)| std::cmp::Reverse(s.last));
        all
    }

    /// Announcements by outcome.
    pub(crate) fn outcomes(&self) -> &BTreeMap<&'static str, u64> {
        &self.outcomes
    }

    /// A peer let through whose dial could not be queued (the node is
    /// not answering).
    pub(crate) fn dial_dropped(&mut self) {
        self.count("dial_dropped");
    }

    /// The mDNS browser was dropped and started again.
    pub(crate) fn browser_restarted(&mut self) {
        self.browser_restarts += 1;
    }

    /// Times the mDNS browser was started again.
    pub(crate) fn browser_restarts(&self) -> u64 {
        self.browser_restarts
    }

    /// Announcements waiting for the rate limit.
    pub(crate) fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Whether `network` is ours.
    pub(crate) fn is_ours(&self, network: &NetworkTag) -> bool {
        *network == self.network
    }
}

/// How often the mDNS task lets deferred announcements through.
pub(crate) const RELEASE_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::wire::NetworkId;

    fn key(i: u32) -> PublicKey {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        Keypair::from_seed(&seed).public()
    }

    fn ann(i: u32, network: &str) -> Announcement {
        Announcement {
            key: key(i),
            network: NetworkTag::of(&network.parse::<NetworkId>().expect("network")),
            addrs: vec![SocketAddr::from(([10, 0, 0, (i % 250) as u8 + 1], 7470))],
        }
    }

    fn intake(now: Instant) -> Intake {
        Intake::new(
            key(0),
            NetworkTag::of(&NetworkId::public()),
            [key(1)],
            IntakeLimits { per_minute: 10 },
            now,
        )
    }

    #[test]
    fn own_other_networks_and_seeds_are_never_dialed() {
        let now = Instant::now();
        let mut i = intake(now);
        assert_eq!(i.offer(ann(0, "public"), now), None);
        assert_eq!(i.offer(ann(1, "public"), now), None);
        assert_eq!(i.offer(ann(2, "building-7"), now), None);
        assert!(matches!(i.offer(ann(3, "public"), now), Some((k, _)) if k == key(3)));
        // Heard again, unchanged: nothing more.
        assert_eq!(i.offer(ann(3, "public"), now), None);
        let o = i.outcomes();
        assert_eq!(
            (
                o["own"],
                o["configured_seed"],
                o["other_network"],
                o["dialed"],
                o["known"]
            ),
            (1, 1, 1, 1, 1)
        );
        // The seed and the other network's peer are listed, never dialed.
        assert_eq!(i.seen().len(), 3);
    }

    #[test]
    fn a_flood_costs_a_bounded_number_of_dials_and_memory() {
        let start = Instant::now();
        let mut i = intake(start);
        let mut dials = 0;
        for n in 10..1010 {
            if i.offer(ann(n, "public"), start).is_some() {
                dials += 1;
            }
        }
        assert_eq!(dials, 10, "the bucket's burst");
        assert_eq!(i.deferred(), MAX_DEFERRED);
        assert_eq!(
            i.outcomes()["dropped_rate_limited"],
            (1000 - 10 - MAX_DEFERRED) as u64
        );
        // A minute later, another minute's worth, no more.
        let later = start + Duration::from_secs(60);
        let released = i.release(later);
        assert_eq!(released.len(), 10);
        assert!(i.seen().len() <= MAX_SEEN);
        // Long after, the queue drains and memory stays bounded.
        for m in 2..200 {
            i.release(start + Duration::from_secs(60 * m));
        }
        assert_eq!(i.deferred(), 0);
        // Remembered: the burst and the queue, never the dropped.
        assert_eq!(i.seen().len(), 10 + MAX_DEFERRED);
        // And never more than MAX_SEEN, however many are let through.
        for n in 2000..2000 + 2 * MAX_SEEN as u32 {
            i.offer(ann(n, "building-7"), start + Duration::from_secs(20_000));
        }
        assert_eq!(i.seen().len(), MAX_SEEN);
    }

    #[test]
    fn a_peer_at_a_new_address_is_dialed_again() {
        let now = Instant::now();
        let mut i = intake(now);
        assert!(i.offer(ann(5, "public"), now).is_some());
        let mut moved = ann(5, "public");
        moved.addrs = vec![SocketAddr::from(([10, 0, 0, 99], 7470))];
        assert_eq!(
            i.offer(moved.clone(), now),
            Some((key(5), moved.addrs.clone()))
        );
        i.forget(&key(5));
        assert!(i.seen().is_empty());
    }
}
