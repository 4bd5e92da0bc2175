//! How many keys the node dials at one address it only heard of.
//!
//! A lookup learns contacts from other nodes' NODES replies: key bytes and
//! addresses that nobody has proven yet. A lying node can list a victim's
//! address under any number of made-up keys, and every dial sends QUIC
//! Initials (1,200 bytes and more, with retries) to it: the DHT as an
//! amplifier aimed at a third party. An honest address serves one node key
//! (devices are dialed through their verified records, not through this
//! path), so the node dials at most [`KEYS_PER_ADDRESS`] distinct unproven
//! keys, and at most [`DIALS_PER_ADDRESS`] times in all (a lookup retries a
//! silent contact, and several lookups may ask the same one), per address
//! within [`WINDOW`]; past that the request fails at once, and is counted.
//! Contacts in the routing table (proven by a handshake), connected, or
//! configured as seeds are never limited, so an honest newcomer costs one
//! dial and a seed across a partition is retried for as long as it lasts.
//!
//! What this module does not do: limit lookups (the DHT core caps the
//! unverified contacts one lookup asks), or dials the devices layer makes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::identity::PublicKey;

/// Distinct unproven keys dialed at one address within [`WINDOW`].
pub(super) const KEYS_PER_ADDRESS: usize = 3;
/// Dials at one unproven address within [`WINDOW`], whatever the key.
pub(super) const DIALS_PER_ADDRESS: u32 = 6;
/// How long an address remembers the keys dialed there.
pub(super) const WINDOW: Duration = Duration::from_secs(600);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 4096;

struct Entry {
    keys: Vec<PublicKey>,
    dials: u32,
    since: Instant,
}

/// The per-address budget.
#[derive(Default)]
pub(super) struct DialBudget {
    by_addr: HashMap<SocketAddr, Entry>,
    refused: u64,
}

impl DialBudget {
    /// Whether `key` may be dialed at `addr` at `now`; counts it if so.
    pub(super) fn allow(&mut self, addr: SocketAddr, key: &PublicKey, now: Instant) -> bool {
        if self.by_addr.len() >= MAX_ADDRESSES && !self.by_addr.contains_key(&addr) {
            self.by_addr
                .retain(|_, e| now.saturating_duration_since(e.since) < WINDOW);
            if self.by_addr.len() >= MAX_ADDRESSES {
                let oldest = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, e)| e.since)
                    .map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.by_addr.remove(&a);
                }
            }
        }
        let entry = self.by_addr.entry(addr).or_insert(Entry {
            keys: Vec::new(),
            dials: 0,
            since: now,
        });
        if now.saturating_duration_since(entry.since) >= WINDOW {
            entry.keys.clear();
            entry.dials = 0;
            entry.since = now;
        }
        let known = entry.keys.contains(key);
        if entry.dials >= DIALS_PER_ADDRESS || (!known && entry.keys.len() >= KEYS_PER_ADDRESS) {
            self.refused += 1;
            return false;
        }
        if !known {
            entry.keys.push(*key);
        }
        entry.dials += 1;
        true
    }

    /// Dials refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.refused
    }
}

impl super::Node {
    /// Whether a request to `to` may dial: always for a contact the table
    /// holds (proven), one we are connected to, or a seed from the config
    /// or the operator's DNS (the operator's, not a peer's word: retried
    /// while a partition lasts); for
    /// one we only heard of, within the per-address budget (see
    /// `dial_budget.rs`).
    pub(super) fn within_dial_budget(
        &mut self,
        to: &crate::dht::Contact,
        key: &PublicKey,
        addrs: &[super::PeerAddr],
    ) -> bool {
        if self.dht.table().contains(to.id())
            || self.conns.cached(key).is_some()
            || self.learned.trusted(key)
        {
            return true;
        }
        // Only direct addresses: a relayed one is reached through the
        // relay, a peer we have proven, and aims nothing at anyone else.
        let Some(super::PeerAddr::Direct(addr)) = addrs.first().copied() else {
            return true;
        };
        let now = self.clock.instant();
        self.dial_budget.allow(addr, key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn an_address_gets_a_few_keys_per_window() {
        let mut b = DialBudget::default();
        let victim: SocketAddr = "192.0.2.9:7470".parse().expect("addr");
        let other: SocketAddr = "192.0.2.10:7470".parse().expect("addr");
        let now = Instant::now();
        let keys: Vec<PublicKey> = (0..20u8)
            .map(|i| Keypair::from_seed(&[i; 32]).public())
            .collect();
        let allowed = keys.iter().filter(|k| b.allow(victim, k, now)).count();
        assert_eq!(allowed, KEYS_PER_ADDRESS);
        assert_eq!(b.refused(), (20 - KEYS_PER_ADDRESS) as u64);
        // A key already dialed there may be dialed again (retries), up to
        // DIALS_PER_ADDRESS dials in all.
        let retries = DIALS_PER_ADDRESS as usize - KEYS_PER_ADDRESS;
        for _ in 0..retries {
            assert!(b.allow(victim, &keys[0], now));
        }
        assert!(!b.allow(victim, &keys[0], now));
        // Another address has its own budget; the window renews it.
        assert!(b.allow(other, &keys[19], now));
        assert!(b.allow(victim, &keys[19], now + WINDOW));
    }
}
