//! One k-bucket: up to k verified contacts ordered from least to most
//! recently seen, a small replacement cache, and the ping-before-evict
//! state.
//!
//! Kademlia prefers old contacts (a node that has been up for an hour is
//! likely to stay up), so a full bucket never drops its least recently seen
//! entry on sight of a newcomer: it pings it first and evicts it only when
//! the ping times out. Newcomers wait in the replacement cache meanwhile.

use std::time::Duration;

use crate::identity::NodeId;

use super::contact::Contact;
use super::timer::Time;

/// A table entry.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) contact: Contact,
    pub(crate) last_seen: Time,
    /// Consecutive requests to it that went unanswered.
    pub(crate) failures: u8,
}

/// What [`Bucket::on_seen`] did.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Seen {
    /// The contact was there and moved to the most recent end.
    Refreshed,
    /// The contact was added.
    Inserted,
    /// The bucket is full: the contact waits in the replacement cache and
    /// the caller must PING this least recently seen entry, then call
    /// [`Bucket::on_ping_result`].
    PingNeeded(Contact),
    /// The bucket is full and a ping is already outstanding; the contact
    /// waits in the replacement cache.
    Cached,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Bucket {
    /// Least recently seen first.
    entries: Vec<Entry>,
    /// Verified contacts waiting for a slot, most recent last.
    replacements: Vec<Contact>,
    /// The entry we pinged because the bucket is full.
    pinging: Option<NodeId>,
    /// Last time a lookup targeted this bucket's range (or it was created).
    pub(crate) last_lookup: Time,
    /// Refresh this bucket even though it is empty (set after joining).
    pub(crate) refresh_due: bool,
}

impl Bucket {
    pub(crate) fn new(now: Time) -> Self {
        Self {
            last_lookup: now,
            ..Self::default()
        }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn replacements(&self) -> &[Contact] {
        &self.replacements
    }

    fn position(&self, id: &NodeId) -> Option<usize> {
        self.entries.iter().position(|e| e.contact.id() == id)
    }

    /// A verified message arrived from `contact`.
    ///
    /// A full bucket pings its least recently seen entry only if that entry
    /// has been silent for `fresh`; one heard from more recently is alive
    /// as far as anyone can tell, and pinging it would only cost traffic.
    pub(crate) fn on_seen(
        &mut self,
        contact: Contact,
        now: Time,
        k: usize,
        cache: usize,
        fresh: Duration,
    ) -> Seen {
        if let Some(i) = self.position(contact.id()) {
            let mut e = self.entries.remove(i);
            e.last_seen = now;
            e.failures = 0;
            // Addresses may change (a restarted peer): keep the newest.
            e.contact = contact;
            self.entries.push(e);
            if self.pinging.as_ref() == Some(self.entries[self.entries.len() - 1].contact.id()) {
                self.pinging = None;
            }
            return Seen::Refreshed;
        }
        if self.entries.len() < k {
            self.replacements.retain(|c| c.id() != contact.id());
            if self.entries.len() == self.entries.capacity() {
                // Grow by doubling but never past k: no slack in full buckets.
                let want = (self.entries.len() * 2).max(2).min(k);
                self.entries.reserve_exact(want - self.entries.len());
            }
            self.entries.push(Entry {
                contact,
                last_seen: now,
                failures: 0,
            });
            return Seen::Inserted;
        }
        self.cache(contact, cache);
        if self.pinging.is_some() || self.entries[0].last_seen + fresh > now {
            return Seen::Cached;
        }
        let lrs = self.entries[0].contact.clone();
        self.pinging = Some(*lrs.id());
        Seen::PingNeeded(lrs)
    }

    fn cache(&mut self, contact: Contact, cap: usize) {
        self.replacements.retain(|c| c.id() != contact.id());
        if cap == 0 {
            return;
        }
        if self.replacements.len() >= cap {
            self.replacements.remove(0);
        } else if self.replacements.len() == self.replacements.capacity() {
            self.replacements
                .reserve_exact(cap - self.replacements.len());
        }
        self.replacements.push(contact);
    }

    /// The eviction ping to `id` ended: answered (`alive`) or timed out.
    /// An answer arrives through [`Bucket::on_seen`] too; this only clears
    /// the state, or evicts on timeout and promotes the newest replacement.
    pub(crate) fn on_ping_result(&mut self, id: &NodeId, alive: bool) {
        if self.pinging.as_ref() == Some(id) {
            self.pinging = None;
        }
        if !alive {
            self.evict(id);
        }
    }

    /// A request to `id` went unanswered. After `max_failures` in a row the
    /// entry is dropped and the newest replacement takes its slot.
    pub(crate) fn on_failure(&mut self, id: &NodeId, max_failures: u8) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        self.entries[i].failures = self.entries[i].failures.saturating_add(1);
        if self.entries[i].failures >= max_failures {
            self.evict(id);
            return true;
        }
        false
    }

    fn evict(&mut self, id: &NodeId) {
        if let Some(i) = self.position(id) {
            self.entries.remove(i);
            if let Some(c) = self.replacements.pop() {
                // Verified when it was cached; seen just now as far as we know.
                let last_seen = self.entries.last().map_or(Time(0), |e| e.last_seen);
                self.entries.push(Entry {
                    contact: c,
                    last_seen,
                    failures: 0,
                });
            }
        }
    }

    /// Removes `id` outright (no promotion). Returns whether it was there.
    pub(crate) fn remove(&mut self, id: &NodeId) -> bool {
        self.replacements.retain(|c| c.id() != id);
        match self.position(id) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    #[cfg(any(test, feature = "sim"))]
    /// Heap bytes under the growth policy of [`Bucket::on_seen`] (doubling
    /// up to k entries, `cache` replacements), computed from lengths so
    /// that it is a function of the state, not of allocation history.
    pub(crate) fn heap_bytes(&self, k: usize, cache: usize) -> usize {
        let n = self.entries.len();
        let slots = if n == 0 {
            0
        } else {
            n.next_power_of_two().max(2).min(k.max(n))
        };
        let repl = if self.replacements.is_empty() {
            0
        } else {
            cache.max(self.replacements.len())
        };
        slots * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| e.contact.heap_bytes())
                .sum::<usize>()
            + repl * std::mem::size_of::<Contact>()
            + self
                .replacements
                .iter()
                .map(Contact::heap_bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::contact::Addrs;

    fn c(i: u8) -> Contact {
        Contact::from_claimed([i; 32], Addrs::empty())
    }

    #[test]
    fn full_bucket_pings_lrs_and_evicts_only_on_timeout() {
        let mut b = Bucket::new(Time(0));
        for i in 0..3 {
            assert_eq!(
                b.on_seen(c(i), Time(i.into()), 3, 2, Duration::ZERO),
                Seen::Inserted
            );
        }
        assert_eq!(
            b.on_seen(c(1), Time(5), 3, 2, Duration::ZERO),
            Seen::Refreshed
        );
        // Order now 0, 2, 1: 0 is least recently seen.
        assert_eq!(
            b.on_seen(c(9), Time(6), 3, 2, Duration::ZERO),
            Seen::PingNeeded(c(0))
        );
        assert_eq!(b.on_seen(c(8), Time(7), 3, 2, Duration::ZERO), Seen::Cached);
        // 0 answers: it stays, moves to the end; newcomers stay cached.
        assert_eq!(
            b.on_seen(c(0), Time(8), 3, 2, Duration::ZERO),
            Seen::Refreshed
        );
        b.on_ping_result(c(0).id(), true);
        assert_eq!(b.len(), 3);
        assert_eq!(b.replacements().len(), 2);
        // Next newcomer: ping 2; it times out; the newest replacement (8) moves in.
        assert_eq!(
            b.on_seen(c(7), Time(9), 3, 2, Duration::ZERO),
            Seen::PingNeeded(c(2))
        );
        b.on_ping_result(c(2).id(), false);
        let ids: Vec<_> = b.entries().iter().map(|e| *e.contact.id()).collect();
        assert_eq!(ids, vec![*c(1).id(), *c(0).id(), *c(7).id()]);
    }
}
