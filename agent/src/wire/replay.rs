//! The replay window: which `(sender, nonce)` pairs were seen recently.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use sha2::{Digest, Sha256};

/// Remembers every accepted `(sender, nonce)` whose timestamp is still
/// inside the freshness window, in memory bounded at construction.
///
/// Memory bound: an entry is a 16-byte key (truncated SHA-256 of sender and
/// nonce; a collision needs ~2^64 entries), held in a hash set, plus the
/// key, a 16-byte sender key, the 8-byte timestamp and nonce in a min-heap ordered
/// by timestamp. The set is sized for twice `capacity` so that removals
/// never force it to grow (hashbrown rehashes in place while at most half
/// full), per-sender floors (below) are at most `capacity / 8`, and the
/// count of entries per sender at most `capacity`.
/// [`ReplayWindow::memory_bytes`] reports the allocation: at most
/// `capacity × 217` bytes (6.8 MiB for the default 32,768; allocated,
/// and touched only as entries arrive), whatever
/// senders do — 10^6 distinct senders cost the same as ten.
///
/// When the window is full an entry is evicted — of the 64 oldest, the one
/// whose sender holds the most entries — and its `(timestamp, nonce)`
/// becomes *its sender's* floor: from then on anything of that sender at
/// or below it is refused as a possible replay, since it can no longer be
/// told apart from one. The floor is the sender's alone, so a flood (of
/// envelopes stamped at the edge of the freshness window, say) costs the
/// flooder, never honest senders: their floors only rise to `(timestamp,
/// nonce)` pairs of their own, older than what they send next. Floors
/// fall away once the freshness window has passed them. Should more
/// senders be evicted within one window than floors are kept, the
/// window-wide floor takes the excess (the old behaviour: bounded memory
/// first).
#[derive(Debug)]
pub struct ReplayWindow {
    seen: HashSet<[u8; 16]>,
    order: BinaryHeap<Reverse<Remembered>>,
    capacity: usize,
    /// Usable slots of `seen` as allocated; `HashSet::capacity` later
    /// reports less while removed entries leave tombstones.
    set_slots: usize,
    /// Refuse everything stamped at or before this (the start floor).
    floor: u64,
    /// Per-sender floors raised by evictions: `(timestamp, nonce)` of the
    /// last of its entries evicted.
    sender_floors: HashMap<[u8; 16], (u64, u64)>,
    max_sender_floors: usize,
    /// Entries remembered per sender (at most `capacity` senders).
    held: HashMap<[u8; 16], u32>,
    /// Reused by each eviction, never grown past [`EVICTION_SCAN`].
    scratch: Vec<Reverse<Remembered>>,
}

/// How many of the oldest entries an eviction looks at to find the one of
/// the sender holding the most: a flooder's, not an honest peer's few.
const EVICTION_SCAN: usize = 64;

/// One remembered envelope in eviction order: its timestamp and nonce,
/// its entry key, its sender's key. Ordering by nonce after the timestamp
/// makes one sender's entries leave in the order it sent them (a sealer's
/// nonces count up), so a sender's floor can be `(timestamp, nonce)`: an
/// honest sender's envelopes stamped in the same millisecond as an evicted
/// one still open.
type Remembered = (u64, u64, [u8; 16], [u8; 16]);

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
        let max_sender_floors = (capacity / 8).max(1);
        Self {
            set_slots: seen.capacity(),
            seen,
            order: BinaryHeap::with_capacity(capacity),
            capacity,
            floor: floor_ms,
            sender_floors: HashMap::with_capacity(2 * max_sender_floors + 2),
            max_sender_floors,
            held: HashMap::with_capacity(2 * capacity + 2),
            scratch: Vec::with_capacity(EVICTION_SCAN),
        }
    }

    /// Moves the start floor (a node whose clock was corrected moves its
    /// start time with it).
    pub fn set_floor(&mut self, floor_ms: u64) {
        self.floor = floor_ms;
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
        while let Some(Reverse((ts, _, key, owner))) = self.order.peek().copied() {
            if ts >= expire_before_ms {
                break;
            }
            self.order.pop();
            self.seen.remove(&key);
            self.release(owner);
        }
        let key = entry_key(sender, nonce);
        if self.seen.contains(&key) {
            return ReplayCheck::Replayed;
        }
        let who = sender_key(sender);
        if self.seen.len() >= self.capacity {
            self.evict(expire_before_ms);
        }
        let sender_floor = self.sender_floors.get(&who).copied();
        if timestamp_ms <= self.floor || sender_floor.is_some_and(|f| (timestamp_ms, nonce) <= f) {
            return ReplayCheck::Replayed;
        }
        self.seen.insert(key);
        self.order.push(Reverse((timestamp_ms, nonce, key, who)));
        *self.held.entry(who).or_insert(0) += 1;
        ReplayCheck::Fresh
    }

    fn release(&mut self, owner: [u8; 16]) {
        if let Some(n) = self.held.get_mut(&owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&owner);
            }
        }
    }

    /// Makes room: of the [`EVICTION_SCAN`] oldest entries, forgets the
    /// one whose sender holds the most (the oldest among equals), and
    /// raises that sender's floor to it. A flood is what holds the most, so
    /// it is the flooder's entries that go; an honest peer with a few
    /// entries keeps them, even when they are the oldest.
    fn evict(&mut self, expire_before_ms: u64) {
        self.scratch.clear();
        while self.scratch.len() < EVICTION_SCAN {
            match self.order.pop() {
                Some(e) => self.scratch.push(e),
                None => break,
            }
        }
        let load = |e: &Reverse<Remembered>| self.held.get(&e.0 .3).copied().unwrap_or(0);
        let victim = (0..self.scratch.len()).fold(None, |best: Option<usize>, i| match best {
            Some(b) if load(&self.scratch[b]) >= load(&self.scratch[i]) => Some(b),
            _ => Some(i),
        });
        let victim = victim.map(|i| self.scratch.swap_remove(i));
        for e in self.scratch.drain(..) {
            self.order.push(e);
        }
        if let Some(Reverse((ts, n, old, owner))) = victim {
            self.seen.remove(&old);
            self.release(owner);
            self.raise_sender_floor(owner, (ts, n), expire_before_ms);
        }
    }

    fn raise_sender_floor(&mut self, owner: [u8; 16], at: (u64, u64), expire_before_ms: u64) {
        if !self.sender_floors.contains_key(&owner)
            && self.sender_floors.len() >= self.max_sender_floors
        {
            // Floors the freshness window has passed refuse nothing more.
            self.sender_floors.retain(|_, f| f.0 >= expire_before_ms);
            if self.sender_floors.len() >= self.max_sender_floors {
                // Still full: the window-wide floor takes them all.
                let highest = self.sender_floors.values().map(|f| f.0).max().unwrap_or(0);
                self.floor = self.floor.max(highest).max(at.0);
                self.sender_floors.clear();
                return;
            }
        }
        let f = self.sender_floors.entry(owner).or_insert(at);
        *f = (*f).max(at);
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

    /// Timestamps at or below this are refused, whoever sent them.
    pub fn floor_ms(&self) -> u64 {
        self.floor
    }

    /// The timestamp of `sender`'s own floor (0: none).
    pub fn sender_floor_ms(&self, sender: &[u8; 32]) -> u64 {
        self.sender_floors
            .get(&sender_key(sender))
            .map_or(0, |f| f.0)
    }

    /// The most [`memory_bytes`](Self::memory_bytes) can be for a window of
    /// `capacity` entries, whatever senders do (see the type's doc).
    pub const fn memory_bound(capacity: usize) -> usize {
        capacity * 217 + 64
    }

    /// Bytes allocated by the window's tables (hash map buckets with their
    /// control bytes, and the heap's buffer). Constant after construction.
    pub fn memory_bytes(&self) -> usize {
        // hashbrown keeps 1/8 of its buckets free and rounds to a power of
        // two; one control byte per bucket (plus a group's worth).
        let buckets = (self.set_slots * 8 / 7).next_power_of_two();
        let map = buckets * (std::mem::size_of::<[u8; 16]>() + 1) + 16;
        let heap =
            self.order.capacity() * std::mem::size_of::<Reverse<(u64, [u8; 16], [u8; 16])>>();
        let floor_buckets = (self.sender_floors.capacity() * 8 / 7).next_power_of_two();
        let floors = floor_buckets * (std::mem::size_of::<([u8; 16], (u64, u64))>() + 1) + 16;
        let held_buckets = (self.held.capacity() * 8 / 7).next_power_of_two();
        let held = held_buckets * (std::mem::size_of::<([u8; 16], u32)>() + 1) + 16;
        let scratch = self.scratch.capacity() * std::mem::size_of::<Reverse<Remembered>>();
        map + heap + floors + held + scratch
    }

    /// Whether every table still fits in what was allocated at
    /// construction (tests check that nothing ever grows).
    #[doc(hidden)]
    pub fn within_allocation(&self) -> bool {
        self.seen.capacity() <= self.set_slots
            && self.order.capacity() <= self.capacity
            && self.sender_floors.len() <= self.max_sender_floors
            && self.held.len() <= self.capacity
            && self.scratch.capacity() <= EVICTION_SCAN
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

/// The sender as the window keeps it: 16 bytes of SHA-256 of its key.
fn sender_key(sender: &[u8; 32]) -> [u8; 16] {
    let digest = Sha256::digest(sender);
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
        assert_eq!(w.sender_floor_ms(&k), 10);
        assert_eq!(w.check_and_insert(&k, 0, 10, 0), ReplayCheck::Replayed);
    }

    /// A flood stamped at the edge of the freshness window fills the window
    /// and raises only the flooder's floor; an honest sender's envelopes,
    /// stamped now, keep opening (issue 17's proof of concept had 59 of 65
    /// refused).
    #[test]
    fn a_future_dated_flood_raises_only_the_flooders_floor() {
        let (flooder, honest) = ([5u8; 32], [6u8; 32]);
        let mut w = ReplayWindow::new(64, 0);
        let now = 1_000_000;
        let skew = 60_000;
        let mut refused = 0;
        for n in 0..10_000u64 {
            let _ = w.check_and_insert(&flooder, n, now + skew - 100, now - skew);
            if n % 100 == 0 {
                let t = now + n / 100;
                if w.check_and_insert(&honest, n, t, t - skew) == ReplayCheck::Replayed {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 0, "honest envelopes refused during the flood");
        assert!(w.sender_floor_ms(&flooder) >= now + skew - 100);
        assert_eq!(w.floor_ms(), 0, "no window-wide floor raised");
        assert!(w.within_allocation());
        // The honest sender's evicted entries leave it a floor below what it
        // sends next: a replay of its old nonce is still refused.
        assert_eq!(
            w.check_and_insert(&honest, 0, now, now - skew),
            ReplayCheck::Replayed
        );
    }

    #[test]
    fn too_many_evicted_senders_fall_back_to_the_window_wide_floor() {
        let mut w = ReplayWindow::new(8, 0);
        for s in 0..200u8 {
            let _ = w.check_and_insert(&[s; 32], 1, 1_000 + u64::from(s), 0);
        }
        assert!(w.within_allocation());
        assert!(w.floor_ms() > 0, "the excess went to the shared floor");
        // Nothing evicted may come back.
        assert_eq!(
            w.check_and_insert(&[0; 32], 1, 1_000, 0),
            ReplayCheck::Replayed
        );
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
