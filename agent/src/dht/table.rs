//! The routing table: 256 k-buckets indexed by the length of the prefix a
//! contact's id shares with ours.
//!
//! Bucket `i` holds ids that agree with the local id on exactly the first
//! `i` bits. Buckets are allocated lazily up to the deepest one in use
//! (about log2(N / k) + a few for N nodes), so an idle table costs a few
//! hundred bytes and a full one about k contacts per level. The local id
//! is never stored. The table serializes to CBOR so the node shell can
//! persist it for fast restarts.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

use super::bucket::{Bucket, Entry, Seen};
use super::contact::{Addrs, Bytes32, Contact};
use super::timer::Time;
use super::DhtError;

/// Version tag of [`RoutingTable::to_bytes`].
const TABLE_FORMAT: u8 = 1;

/// The shared-prefix length of `a` and `b` (256 if equal).
pub(crate) fn prefix_len(a: &NodeId, b: &NodeId) -> usize {
    for i in 0..32 {
        let x = a.0[i] ^ b.0[i];
        if x != 0 {
            return i * 8 + x.leading_zeros() as usize;
        }
    }
    256
}

/// Kademlia routing table.
#[derive(Clone, Debug)]
pub(crate) struct RoutingTable {
    local: NodeId,
    k: usize,
    cache: usize,
    fresh: std::time::Duration,
    buckets: Vec<Bucket>,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    v: u8,
    c: Vec<(Bytes32, Addrs)>,
}

impl RoutingTable {
    /// An empty table for `local` with `k` entries and `cache` replacements
    /// per bucket; a full bucket pings its least recently seen entry only
    /// if it was silent for `fresh`.
    pub(crate) fn new(local: NodeId, k: usize, cache: usize, fresh: std::time::Duration) -> Self {
        Self {
            local,
            k: k.max(1),
            cache,
            fresh,
            buckets: Vec::new(),
        }
    }

    #[cfg(test)]
    /// Our own id.
    pub(crate) fn local(&self) -> &NodeId {
        &self.local
    }

    /// The bucket index for `id`, or `None` for our own id.
    pub(crate) fn bucket_index(&self, id: &NodeId) -> Option<usize> {
        match prefix_len(&self.local, id) {
            256 => None,
            i => Some(i),
        }
    }

    fn bucket_mut(&mut self, i: usize, now: Time) -> &mut Bucket {
        while self.buckets.len() <= i {
            self.buckets.push(Bucket::new(now));
        }
        &mut self.buckets[i]
    }

    /// A message signed by `contact`'s key arrived. Inserts or refreshes it;
    /// for a full bucket returns the contact that must be pinged.
    pub(crate) fn on_verified(&mut self, contact: Contact, now: Time) -> Seen {
        let Some(i) = self.bucket_index(contact.id()) else {
            return Seen::Cached;
        };
        let (k, cache, fresh) = (self.k, self.cache, self.fresh);
        self.bucket_mut(i, now)
            .on_seen(contact, now, k, cache, fresh)
    }

    /// The eviction ping to `id` was answered or timed out.
    pub(crate) fn on_ping_result(&mut self, id: &NodeId, alive: bool) {
        if let Some(b) = self.bucket_index(id).and_then(|i| self.buckets.get_mut(i)) {
            b.on_ping_result(id, alive);
        }
    }

    /// A request to `id` went unanswered; true if it was evicted.
    pub(crate) fn on_failure(&mut self, id: &NodeId, max_failures: u8) -> bool {
        match self.bucket_index(id).and_then(|i| self.buckets.get_mut(i)) {
            Some(b) => b.on_failure(id, max_failures),
            None => false,
        }
    }

    /// Removes a contact. Returns whether it was in the table.
    pub(crate) fn remove(&mut self, id: &NodeId) -> bool {
        match self.bucket_index(id).and_then(|i| self.buckets.get_mut(i)) {
            Some(b) => b.remove(id),
            None => false,
        }
    }

    /// Whether `id` is in the table (not counting replacement caches).
    pub(crate) fn contains(&self, id: &NodeId) -> bool {
        self.bucket_index(id)
            .and_then(|i| self.buckets.get(i))
            .is_some_and(|b| b.entries().iter().any(|e| e.contact.id() == id))
    }

    /// Number of contacts (not counting replacement caches).
    pub(crate) fn len(&self) -> usize {
        self.buckets.iter().map(Bucket::len).sum()
    }

    /// Whether the table has no contacts.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every contact, bucket by bucket, least recently seen first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Contact> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries().iter().map(|e| &e.contact))
    }

    /// The sizes of the buckets in use, by index.
    pub(crate) fn bucket_sizes(&self) -> Vec<usize> {
        self.buckets.iter().map(Bucket::len).collect()
    }

    /// Up to `n` contacts closest to `target` by XOR distance, closest first.
    ///
    /// Walks buckets in the order their ranges are close to `target`: the
    /// target's own bucket `t` first (ids sharing t bits with us and
    /// differing at bit t, like the target), then all deeper buckets as one
    /// level (they differ from the target first at bit t), then shallower
    /// ones from t-1 down.
    /// Each step's ids are all closer than the next step's, so the walk
    /// stops as soon as it has `n` contacts and sorts only what it took.
    pub(crate) fn closest(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        let len = self.buckets.len();
        let t = prefix_len(&self.local, target).min(len);
        // Distance levels, closest first; every id of a level is closer to
        // the target than every id of the next.
        let mut levels: Vec<std::ops::Range<usize>> = Vec::with_capacity(t + 2);
        if t < len {
            levels.push(t..t + 1);
            levels.push(t + 1..len);
        }
        levels.extend((0..t).rev().map(|i| i..i + 1));
        let mut found: Vec<([u8; 32], &Entry)> = Vec::with_capacity(n + self.k);
        for level in levels {
            if found.len() >= n {
                break;
            }
            for b in &self.buckets[level] {
                found.extend(
                    b.entries()
                        .iter()
                        .map(|e| (e.contact.id().distance(target), e)),
                );
            }
        }
        found.sort_unstable_by_key(|a| a.0);
        found
            .into_iter()
            .take(n)
            .map(|(_, e)| e.contact.clone())
            .collect()
    }

    /// Marks a lookup into `target`'s bucket range at `now` (postpones
    /// that bucket's refresh).
    pub(crate) fn touch(&mut self, target: &NodeId, now: Time) {
        if let Some(b) = self
            .bucket_index(target)
            .and_then(|i| self.buckets.get_mut(i))
        {
            b.last_lookup = now;
        }
    }

    /// When the first non-empty bucket falls idle for `idle`.
    pub(crate) fn next_refresh(&self, idle: std::time::Duration) -> Option<Time> {
        self.buckets
            .iter()
            .filter_map(|b| match (b.refresh_due, b.len()) {
                (true, _) => Some(Time(0)),
                (false, 0) => None,
                (false, _) => Some(b.last_lookup + idle),
            })
            .min()
    }

    /// After joining, Kademlia refreshes every bucket farther away than the
    /// closest neighbour, so the new node learns (and is learned by) every
    /// region of the keyspace, not just its own. Marks those buckets due.
    pub(crate) fn mark_join_refresh(&mut self, now: Time) {
        let deepest = self.buckets.iter().rposition(|b| b.len() > 0);
        if let Some(c) = deepest {
            for i in 0..c {
                self.bucket_mut(i, now).refresh_due = true;
            }
        }
    }

    /// Indices of non-empty buckets idle since `now - idle`; marks them
    /// touched.
    pub(crate) fn take_stale(&mut self, now: Time, idle: std::time::Duration) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if b.refresh_due || (b.len() > 0 && b.last_lookup + idle <= now) {
                b.last_lookup = now;
                b.refresh_due = false;
                out.push(i);
            }
        }
        out
    }

    /// A random id that falls into bucket `i`.
    pub(crate) fn random_id_in_bucket(&self, i: usize, rng: &mut impl RngCore) -> NodeId {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let byte = i / 8;
        let bit = 7 - (i % 8);
        for (j, b) in id.iter_mut().enumerate().take(byte) {
            *b = self.local.0[j];
        }
        if byte < 32 {
            let keep_mask: u8 = !((1u16 << (bit + 1)) - 1) as u8;
            let flip = 1u8 << bit;
            let local = self.local.0[byte];
            id[byte] = (local & keep_mask) | (!local & flip) | (id[byte] & (flip - 1));
        }
        NodeId(id)
    }

    /// The table as bytes (CBOR: version and `[key, addrs]` per contact),
    /// least recently seen first, for the shell to persist.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let p = Persisted {
            v: TABLE_FORMAT,
            c: self
                .iter()
                .map(|c| (Bytes32(*c.key_bytes()), c.addrs().clone()))
                .collect(),
        };
        let mut out = Vec::new();
        let r = ciborium::into_writer(&p, &mut out);
        debug_assert!(r.is_ok());
        out
    }

    /// Restores contacts saved by [`RoutingTable::to_bytes`] into this
    /// table (ours, from our own disk: they were verified when saved).
    /// Returns how many were inserted.
    pub(crate) fn restore(&mut self, bytes: &[u8], now: Time) -> Result<usize, DhtError> {
        let p: Persisted =
            ciborium::from_reader(bytes).map_err(|e| DhtError::BadTable(e.to_string()))?;
        if p.v != TABLE_FORMAT {
            return Err(DhtError::BadTable(format!("unknown table format {}", p.v)));
        }
        let mut n = 0;
        for (key, addrs) in p.c {
            let c = Contact::from_claimed(key.0, addrs);
            if self.on_verified(c, now) == Seen::Inserted {
                n += 1;
            }
        }
        // Restored buckets are not fresh knowledge: refresh them soon.
        for b in &mut self.buckets {
            b.last_lookup = Time(0);
        }
        Ok(n)
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.len().next_power_of_two() * std::mem::size_of::<Bucket>()
            + self
                .buckets
                .iter()
                .map(|b| b.heap_bytes(self.k, self.cache))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_id_lands_in_its_bucket() {
        let t = RoutingTable::new(NodeId([0xa5; 32]), 20, 4, std::time::Duration::ZERO);
        let mut rng = crate::dht::sim::SimRng::new(1);
        for i in 0..256 {
            let id = t.random_id_in_bucket(i, &mut rng);
            assert_eq!(t.bucket_index(&id), Some(i), "bucket {i}");
        }
    }
}
