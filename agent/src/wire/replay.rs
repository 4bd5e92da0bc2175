//! The replay window: which `(sender, nonce)` pairs were seen recently.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use sha2::{Digest, Sha256};

/// Remembers every accepted `(sender, nonce)` whose timestamp is still
/// inside the freshness window, in memory fixed at construction.
///
/// Memory bound: both tables are allocated once and never grow. An entry is
/// a 16-byte key (truncated SHA-256 of sender and nonce; a collision needs
/// ~2^64 entries), held in a hash set, plus the key and its 8-byte
/// timestamp in a min-heap ordered by timestamp. The set is sized for twice
/// `capacity` so that removals never force it to grow (hashbrown rehashes
/// in place while at most half full). [`ReplayWindow::memory_bytes`]
/// reports the allocation: at most `capacity × 92 + 16` bytes (2.9 MiB for the
/// default 32,768), whatever senders do — 10^6 distinct senders cost the
/// same as ten.
///
/// When the window is full the oldest entry is evicted and its timestamp
/// becomes the *floor*: from then on anything at or below the floor is
/// refused as a possible replay, since it can no longer be told apart from
/// one. A flood of fresh senders thus costs honest senders at most a few
/// refusals of their oldest messages, never a replay accepted.
#[derive(Debug)]
pub struct ReplayWindow {
    seen: HashSet<[u8; 16]>,
    order: BinaryHeap<Reverse<(u64, [u8; 16])>>,
    capacity: usize,
    /// Usable slots of `seen` as allocated; `HashSet::capacity` later
    /// reports less while removed entries leave tombstones.
    set_slots: usize,
    floor: u64,
}

/// Outcome of [`ReplayWindow::check_and_insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ReplayCheck {
    /// First sight: remembered.
    Fresh,
    /// Seen before, or at or below the floor.
    Replayed,
}

impl ReplayWindow {
    /// Default number of remembered envelopes.
    pub const DEFAULT_CAPACITY: usize = 32_768;

    /// A window remembering at most `capacity` envelopes (at least 1).
    /// `floor_ms`: refuse anything stamped at or before it — a restarted
    /// receiver passes its start time so that what it accepted before the
    /// restart cannot be replayed to it.
    pub fn new(capacity: usize, floor_ms: u64) -> Self {
        let capacity = capacity.max(1);
        let seen = HashSet::with_capacity(2 * capacity + 2);
        Self {
            set_slots: seen.capacity(),
            seen,
            order: BinaryHeap::with_capacity(capacity),
            capacity,
            floor: floor_ms,
        }
    }

    /// Checks `(sender, nonce)` and remembers it if new. `expire_before_ms`:
    /// entries stamped earlier are forgotten first (the freshness check
    /// already refuses anything that old).
    pub fn check_and_insert(
        &mut self,
        sender: &[u8; 32],
        nonce: u64,
        timestamp_ms: u64,
        expire_before_ms: u64,
    ) -> ReplayCheck {
        while let Some(Reverse((ts, key))) = self.order.peek().copied() {
            if ts >= expire_before_ms {
                break;
            }
            self.order.pop();
            self.seen.remove(&key);
        }
        let key = entry_key(sender, nonce);
        if self.seen.contains(&key) {
            return ReplayCheck::Replayed;
        }
        if self.seen.len() >= self.capacity {
            if let Some(Reverse((ts, old))) = self.order.pop() {
                self.seen.remove(&old);
                self.floor = self.floor.max(ts);
            }
        }
        if timestamp_ms <= self.floor {
            return ReplayCheck::Replayed;
        }
        self.seen.insert(key);
        self.order.push(Reverse((timestamp_ms, key)));
        ReplayCheck::Fresh
    }

    /// Entries currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The most entries it will ever hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Timestamps at or below this are refused.
    pub fn floor_ms(&self) -> u64 {
        self.floor
    }

    /// Bytes allocated by the window's tables (hash map buckets with their
    /// control bytes, and the heap's buffer). Constant after construction.
    pub fn memory_bytes(&self) -> usize {
        // hashbrown keeps 1/8 of its buckets free and rounds to a power of
        // two; one control byte per bucket (plus a group's worth).
        let buckets = (self.set_slots * 8 / 7).next_power_of_two();
        let map = buckets * (std::mem::size_of::<[u8; 16]>() + 1) + 16;
        let heap = self.order.capacity() * std::mem::size_of::<Reverse<(u64, [u8; 16])>>();
        map + heap
    }

    /// Whether both tables still fit in what was allocated at
    /// construction (tests check that nothing ever grows).
    #[doc(hidden)]
    pub fn within_allocation(&self) -> bool {
        self.seen.capacity() <= self.set_slots && self.order.capacity() <= self.capacity
    }
}

fn entry_key(sender: &[u8; 32], nonce: u64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(sender);
    h.update(nonce.to_le_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pair_is_a_replay_other_nonce_is_not() {
        let k = [1u8; 32];
        let mut w = ReplayWindow::new(8, 0);
        assert_eq!(w.check_and_insert(&k, 1, 100, 0), ReplayCheck::Fresh);
        assert_eq!(w.check_and_insert(&k, 1, 100, 0), ReplayCheck::Replayed);
        assert_eq!(w.check_and_insert(&k, 1, 999, 0), ReplayCheck::Replayed);
        assert_eq!(w.check_and_insert(&k, 2, 100, 0), ReplayCheck::Fresh);
    }

    #[test]
    fn full_window_raises_the_floor_instead_of_forgetting() {
        let k = [2u8; 32];
        let mut w = ReplayWindow::new(4, 0);
        for n in 0..4 {
            assert_eq!(w.check_and_insert(&k, n, 10 + n, 0), ReplayCheck::Fresh);
        }
        // A fifth evicts nonce 0 (ts 10); replaying nonce 0 must still fail.
        assert_eq!(w.check_and_insert(&k, 4, 20, 0), ReplayCheck::Fresh);
        assert_eq!(w.len(), 4);
        assert_eq!(w.floor_ms(), 10);
        assert_eq!(w.check_and_insert(&k, 0, 10, 0), ReplayCheck::Replayed);
    }

    #[test]
    fn expiry_forgets_only_what_freshness_refuses() {
        let k = [3u8; 32];
        let mut w = ReplayWindow::new(8, 0);
        assert_eq!(w.check_and_insert(&k, 1, 100, 0), ReplayCheck::Fresh);
        assert_eq!(w.check_and_insert(&k, 2, 200, 150), ReplayCheck::Fresh);
        assert_eq!(
            w.len(),
            1,
            "entry at 100 expired once the window passed 150"
        );
    }

    #[test]
    fn restart_floor_refuses_old_timestamps() {
        let k = [4u8; 32];
        let mut w = ReplayWindow::new(8, 1_000);
        assert_eq!(w.check_and_insert(&k, 1, 1_000, 0), ReplayCheck::Replayed);
        assert_eq!(w.check_and_insert(&k, 1, 1_001, 0), ReplayCheck::Fresh);
    }
}
