//! The `Dht` state machine: routing table, record store, lookups and
//! timers behind one input/output interface.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand_core::RngCore;

use crate::identity::{NodeId, PublicKey};

use super::bucket::Seen;
use super::contact::{Addrs, Contact};
use super::message::{Message, MessageKind, StoreRefusal};
use super::output::{Action, Counters, Event, QueryId};
use super::record::{self, RecordVerifier};
use super::store::RecordStore;
use super::table::RoutingTable;
use super::timer::{Time, Timer, TimerTable};
use super::{Config, DhtError};

mod query;

use self::query::{Kind, Origin, Pending, Purpose, Query};

/// A Kademlia node without I/O.
///
/// # Calling contract
///
/// 1. Build with [`Dht::new`] (optionally [`Dht::restore_table`]), then
///    call [`Dht::bootstrap`] with seed contacts: a lookup of our own id.
/// 2. Feed every input as it happens, always with the current time:
///    - each DHT envelope that opened (signature, network, freshness and
///      replay checked by `wire`) goes to [`Dht::handle_payload`] with the
///      *verified* sender key; or decode it yourself and call
///      [`Dht::handle_message`];
///    - a send that failed goes to [`Dht::handle_unreachable`];
///    - when the clock reaches [`Dht::poll_timeout`], call
///      [`Dht::handle_timeout`].
/// 3. After **every** input or query start, drain: call
///    [`Dht::poll_action`] until it returns `None` (send each message),
///    [`Dht::poll_event`] until `None`, then re-arm one timer to
///    [`Dht::poll_timeout`]. Outputs are only produced by inputs, so a
///    drained core stays quiet until the next input or deadline.
///
/// Time and randomness are arguments; the core never reads a clock or a
/// global RNG, so a run is a function of its inputs.
#[derive(Clone, Debug)]
pub(crate) struct Dht {
    cfg: Config,
    local: Contact,
    table: RoutingTable,
    store: RecordStore,
    queries: BTreeMap<QueryId, Query>,
    requests: BTreeMap<u64, Pending>,
    deadlines: BTreeSet<(Time, u64)>,
    timers: TimerTable,
    /// Records we publish, by key.
    owned: BTreeMap<NodeId, Owned>,
    /// Seeds of the last bootstrap (at most k), for a rejoin.
    seeds: Vec<Contact>,
    /// When to bootstrap again (the last one found nobody, or missed a
    /// seed).
    rejoin_at: Option<Time>,
    /// Wait before the next retry of a seed that did not answer; doubles
    /// per retry up to `refresh_interval`, back to `rejoin_after` once
    /// every seed is known.
    seed_backoff: Duration,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    next_rid: u64,
    next_qid: u64,
    counters: Counters,
}

/// A record this node publishes.
#[derive(Clone, Debug)]
struct Owned {
    /// When to ask the node for a fresh one; `None` once asked.
    republish_at: Option<Time>,
    expires: Time,
    record: Vec<u8>,
}

impl Dht {
    /// A node for `key` reachable at `addrs`.
    pub(crate) fn new(cfg: Config, key: &PublicKey, addrs: Addrs, rng: &mut impl RngCore) -> Self {
        let local = Contact::from_verified(key, addrs);
        let seed_backoff = cfg.rejoin_after;
        Self {
            table: RoutingTable::new(*local.id(), cfg.k, cfg.replacement_cache, cfg.ping_after),
            store: RecordStore::new(cfg.store.clone()),
            cfg,
            local,
            queries: BTreeMap::new(),
            requests: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            timers: TimerTable::default(),
            owned: BTreeMap::new(),
            seeds: Vec::new(),
            rejoin_at: None,
            seed_backoff,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            // Unpredictable request ids: a reply must guess one to be taken.
            next_rid: rng.next_u64(),
            next_qid: 0,
            counters: Counters::default(),
        }
    }

    /// Our own contact.
    pub(crate) fn local(&self) -> &Contact {
        &self.local
    }

    /// Changes the addresses our records announce (the shell found out it
    /// sits behind NAT, or its relays changed).
    pub(crate) fn set_local_addrs(&mut self, addrs: Addrs) {
        self.local = Contact::from_claimed(*self.local.key_bytes(), addrs);
    }

    /// The routing table.
    pub(crate) fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Drops a contact from the routing table at once, and the record kept
    /// under its id (a peer removed from a private network's allowlist, or
    /// revoked). Returns whether either was there.
    pub(crate) fn forget(&mut self, id: &NodeId) -> bool {
        let record = self.store.remove(id);
        self.table.remove(id) || record
    }

    /// The records kept for others.
    pub(crate) fn store(&self) -> &RecordStore {
        &self.store
    }

    #[cfg(any(test, feature = "sim"))]
    /// Replaces the store limits (a config reload). Records already held
    /// stay; the new limits apply to the next STORE.
    pub(crate) fn set_store_config(&mut self, cfg: super::StoreConfig) {
        self.store.set_config(cfg);
    }

    #[cfg(any(test, feature = "sim"))]
    /// Sets the number of disjoint lookup paths (1 to 8) for lookups
    /// started from now on; running ones keep theirs.
    pub(crate) fn set_lookup_paths(&mut self, paths: usize) {
        self.cfg.paths = paths.clamp(1, super::lookup::MAX_PATHS);
    }

    /// Rejection and refusal counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    #[cfg(test)]
    /// Queries still running.
    pub(crate) fn active_queries(&self) -> usize {
        self.queries.len()
    }

    /// The routing table as bytes to persist.
    pub(crate) fn save_table(&self) -> Vec<u8> {
        self.table.to_bytes()
    }

    /// Restores a table saved by [`Dht::save_table`].
    pub(crate) fn restore_table(&mut self, bytes: &[u8], now: Time) -> Result<usize, DhtError> {
        let n = self.table.restore(bytes, now)?;
        self.rearm();
        Ok(n)
    }

    /// Joins the network: a lookup of our own id through `seeds` (contacts
    /// with keys and addresses, e.g. from config) and whatever the table
    /// already holds. Seeds enter the table only once they answer.
    ///
    /// If nobody answers, the core bootstraps again through the same seeds
    /// every `Config::rejoin_after` until somebody does; each attempt ends
    /// with its own [`Event::QueryFinished`].
    pub(crate) fn bootstrap(&mut self, mut seeds: Vec<Contact>, now: Time) -> QueryId {
        seeds.truncate(self.cfg.k);
        self.seeds = seeds.clone();
        self.rejoin_at = None;
        let target = *self.local.id();
        self.start(target, Kind::FindNode, Origin::Bootstrap, seeds, now)
    }

    /// Joins through one more contact heard of outside the DHT (a LAN
    /// announcement, a DNS seed): a lookup of our own id through it and
    /// the table, as a bootstrap does, while the configured seeds stay the
    /// ones a rejoin retries. The contact enters the table only if it
    /// answers.
    pub(crate) fn introduce(&mut self, contact: Contact, now: Time) -> QueryId {
        let target = *self.local.id();
        self.start(target, Kind::FindNode, Origin::User, vec![contact], now)
    }

    #[cfg(any(test, feature = "sim"))]
    /// Looks up the k nodes closest to `target`.
    pub(crate) fn find_node(&mut self, target: NodeId, now: Time) -> QueryId {
        self.start(target, Kind::FindNode, Origin::User, Vec::new(), now)
    }

    /// Looks up the record under `key`; stops at the first valid one.
    pub(crate) fn find_value(&mut self, key: NodeId, now: Time) -> QueryId {
        self.start(key, Kind::FindValue, Origin::User, Vec::new(), now)
    }

    /// Stores `record` at the k nodes closest to its key and remembers to
    /// ask for a republish ([`Event::RepublishDue`]) at half its TTL. Call
    /// it for records this node owns or hosts.
    pub(crate) fn publish<V: RecordVerifier + ?Sized>(
        &mut self,
        record: Vec<u8>,
        now: Time,
        verifier: &mut V,
    ) -> Result<QueryId, DhtError> {
        let v = record::check(verifier, &record, None, now)?;
        let key = v.key();
        let owned = Owned {
            republish_at: Some((v.issued + v.ttl() / 2).max(now)),
            expires: v.issued + v.ttl(),
            record: record.clone(),
        };
        self.owned.insert(key, owned);
        Ok(self.start(key, Kind::Put(record), Origin::User, Vec::new(), now))
    }

    /// Forget a record published here: no more republish events.
    pub(crate) fn unpublish(&mut self, key: &NodeId) {
        self.owned.remove(key);
        self.rearm();
    }

    /// Decodes a DHT payload from an opened envelope and handles it.
    /// `from` must be the envelope's verified sender; `kind` its kind name.
    /// Unknown kinds and malformed payloads are counted and returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_payload<V: RecordVerifier + ?Sized>(
        &mut self,
        now: Time,
        from: &PublicKey,
        addrs: Addrs,
        kind: &str,
        payload: &[u8],
        verifier: &mut V,
    ) -> Result<(), DhtError> {
        let Some(kind) = MessageKind::from_name(kind) else {
            self.counters.rejected_unknown_kind += 1;
            return Err(DhtError::UnknownKind(kind.chars().take(32).collect()));
        };
        match Message::decode(kind, payload) {
            Ok(msg) => {
                self.handle_message(now, from, addrs, msg, verifier);
                Ok(())
            }
            Err(e) => {
                match e {
                    DhtError::Oversize { .. } => self.counters.rejected_oversize += 1,
                    _ => self.counters.rejected_malformed += 1,
                }
                Err(e)
            }
        }
    }

    /// Handles a decoded message whose sender key `from` was verified.
    pub(crate) fn handle_message<V: RecordVerifier + ?Sized>(
        &mut self,
        now: Time,
        from: &PublicKey,
        addrs: Addrs,
        msg: Message,
        verifier: &mut V,
    ) {
        let peer = Contact::from_verified(from, addrs);
        if peer.id() == self.local.id() {
            return;
        }
        if let Seen::PingNeeded(lrs) = self.table.on_verified(peer.clone(), now) {
            self.request(now, lrs, Purpose::Evict, Message::Ping { rid: 0 }, 0);
        }
        match msg {
            Message::Ping { rid } => self.send(peer, Message::Pong { rid }),
            Message::FindNode { rid, target } => {
                let nodes = self.closest_for(&target, peer.id());
                self.send(peer, Message::Nodes { rid, nodes });
            }
            Message::FindValue { rid, key } => {
                let reply = match self
                    .store
                    .get(&key, now)
                    .or_else(|| self.own_record(&key, now))
                {
                    Some(r) => Message::Value {
                        rid,
                        record: Some(r.to_vec()),
                        nodes: Vec::new(),
                    },
                    None => Message::Value {
                        rid,
                        record: None,
                        nodes: self.closest_for(&key, peer.id()),
                    },
                };
                self.send(peer, reply);
            }
            Message::Store { rid, record } => {
                let result = self.accept_store(peer.id(), &record, now, verifier);
                match result {
                    Ok(()) => self.counters.store_accepted += 1,
                    Err(r) => *self.counters.store_refused.entry(r).or_default() += 1,
                }
                self.send(peer, Message::Stored { rid, result });
            }
            reply => self.on_reply(now, &peer, reply, verifier),
        }
        self.rearm();
    }

    /// The send of request `rid` failed (no route, dial refused, wrong key):
    /// handled now as if it had timed out.
    pub(crate) fn handle_unreachable(&mut self, now: Time, rid: u64) {
        if let Some(p) = self.requests.remove(&rid) {
            self.deadlines.remove(&(p.deadline, rid));
            self.on_failed(now, p, false);
        }
        self.rearm();
    }

    /// The clock reached (or passed) [`Dht::poll_timeout`].
    pub(crate) fn handle_timeout(&mut self, now: Time, rng: &mut impl RngCore) {
        if self.timers.is_due(Timer::Request, now) {
            while let Some(&(t, rid)) = self.deadlines.first() {
                if t > now {
                    break;
                }
                self.deadlines.remove(&(t, rid));
                if let Some(p) = self.requests.remove(&rid) {
                    self.counters.timeouts += 1;
                    self.on_failed(now, p, true);
                }
            }
        }
        if self.timers.is_due(Timer::Refresh, now) {
            for i in self.table.take_stale(now, self.cfg.refresh_interval) {
                let target = self.table.random_id_in_bucket(i, rng);
                self.start(target, Kind::FindNode, Origin::Refresh, Vec::new(), now);
            }
        }
        if self.timers.is_due(Timer::Republish, now) {
            for (key, owned) in &mut self.owned {
                if owned.republish_at.is_some_and(|t| t <= now) {
                    // Still answered from until the new one replaces it.
                    owned.republish_at = None;
                    self.events.push_back(Event::RepublishDue { key: *key });
                }
            }
        }
        if self.timers.is_due(Timer::Rejoin, now) {
            self.rejoin_at = None;
            if self.table.is_empty() || self.seed_missing() {
                let _ = self.bootstrap(self.seeds.clone(), now);
            }
        }
        if self.timers.is_due(Timer::Expire, now) {
            let _expired = self.store.expire(now);
        }
        if self.timers.is_due(Timer::Settle, now) {
            let settled: Vec<QueryId> = self
                .queries
                .iter()
                .filter(|(_, q)| q.settle_by.is_some_and(|t| t <= now))
                .map(|(id, _)| *id)
                .collect();
            for qid in settled {
                self.finish(qid, now);
            }
        }
        self.rearm();
    }

    /// The next message to send. Drain until `None`.
    #[must_use]
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application. Drain until `None`.
    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] must be called next.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    #[cfg(any(test, feature = "sim"))]
    /// Estimated heap bytes held by this node's state (table, store,
    /// queries, requests), for memory budgets. Computed from lengths and
    /// the containers' growth policies, so it depends on the state only
    /// (not on allocation history) and is reproducible; output queues are
    /// not counted (a drained core holds none).
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_request =
            std::mem::size_of::<Pending>() + 2 * std::mem::size_of::<(Time, u64)>() + 16;
        self.table.heap_bytes()
            + self.store.heap_bytes()
            + self
                .queries
                .values()
                .map(|q| q.lookup.heap_bytes() + std::mem::size_of::<Query>())
                .sum::<usize>()
            + self.requests.len() * per_request
            + self
                .owned
                .values()
                .map(|o| o.record.capacity() + std::mem::size_of::<(NodeId, Owned)>())
                .sum::<usize>()
            + self.seeds.len() * std::mem::size_of::<Contact>()
    }

    // ----- internals -----

    /// One of our own records, while it has not expired: the publisher
    /// answers for what it publishes, so a record stays findable when its
    /// only other holder restarts with an empty store (a two-agent site),
    /// until the next republish puts it back there.
    fn own_record(&self, key: &NodeId, now: Time) -> Option<&[u8]> {
        self.owned
            .get(key)
            .filter(|o| now < o.expires)
            .map(|o| o.record.as_slice())
    }

    fn closest_for(&self, target: &NodeId, requester: &NodeId) -> Vec<Contact> {
        let mut nodes = self.table.closest(target, self.cfg.k + 1);
        nodes.retain(|c| c.id() != requester);
        nodes.truncate(self.cfg.k.min(super::MAX_CONTACTS));
        nodes
    }

    fn accept_store<V: RecordVerifier + ?Sized>(
        &mut self,
        publisher: &NodeId,
        bytes: &[u8],
        now: Time,
        verifier: &mut V,
    ) -> Result<(), StoreRefusal> {
        if bytes.len() > self.store.config().max_record_bytes {
            return Err(StoreRefusal::TooLarge);
        }
        let v = record::check(verifier, bytes, None, now).map_err(|_| StoreRefusal::Invalid)?;
        if self.store.config().closest_only && !self.is_among_closest(&v.key()) {
            return Err(StoreRefusal::NotClosest);
        }
        self.store.insert(&v, bytes, *publisher).map(|_| ())
    }

    /// Whether this node may be among the k closest to `key`: false once the
    /// table knows k nodes strictly closer to it than we are. A young node
    /// with a small table accepts (it cannot tell yet), which is what
    /// Kademlia's publishers expect while the network forms; a publisher that
    /// ran a lookup sends its STOREs to the k closest it found, so a correct
    /// node refuses only keys that lookups would never bring to it.
    ///
    /// The record's owner does not count: its node id *is* the key (the
    /// closest node of all), yet it publishes its record rather than
    /// storing it, so its publisher's k STOREs go to the k closest others.
    fn is_among_closest(&self, key: &NodeId) -> bool {
        let k = self.cfg.k;
        let ours = self.local.id().distance(key);
        let closer = self
            .table
            .closest(key, k + 1)
            .iter()
            .filter(|c| c.id() != key && c.id().distance(key) < ours)
            .count();
        closer < k
    }

    /// Whether a seed is neither in the table nor kept out by a full bucket:
    /// it did not answer (down, or cut off by a partition).
    fn seed_missing(&self) -> bool {
        let sizes = self.table.bucket_sizes();
        self.seeds.iter().any(|s| {
            !self.table.contains(s.id())
                && self
                    .table
                    .bucket_index(s.id())
                    .is_some_and(|i| sizes.get(i).copied().unwrap_or(0) < self.cfg.k)
        })
    }

    /// After a bootstrap that reached somebody: if a seed is missing, try
    /// the seeds again later, backing off. Without this, the two halves of
    /// a network that formed while partitioned would never merge: each
    /// half's tables know only that half, and nothing asks across.
    pub(super) fn schedule_seed_retry(&mut self, now: Time) {
        if self.seed_missing() {
            self.rejoin_at = Some(now + self.seed_backoff);
            self.seed_backoff = (self.seed_backoff * 2).min(self.cfg.refresh_interval);
        } else {
            self.seed_backoff = self.cfg.rejoin_after;
        }
    }

    fn send(&mut self, to: Contact, message: Message) {
        self.actions.push_back(Action::Send { to, message });
    }

    fn request(&mut self, now: Time, to: Contact, purpose: Purpose, mut msg: Message, attempt: u8) {
        let rid = self.next_rid;
        self.next_rid = self.next_rid.wrapping_add(1);
        set_rid(&mut msg, rid);
        let deadline = now + self.cfg.request_timeout;
        self.deadlines.insert((deadline, rid));
        self.requests.insert(
            rid,
            Pending {
                to: to.clone(),
                deadline,
                purpose,
                attempt,
            },
        );
        self.send(to, msg);
    }

    fn rearm(&mut self) {
        let t = &mut self.timers;
        t.set(Timer::Request, self.deadlines.first().map(|(t, _)| *t));
        t.set(
            Timer::Refresh,
            self.table.next_refresh(self.cfg.refresh_interval),
        );
        t.set(
            Timer::Republish,
            self.owned.values().filter_map(|o| o.republish_at).min(),
        );
        t.set(Timer::Expire, self.store.next_expiry());
        t.set(Timer::Rejoin, self.rejoin_at);
        t.set(
            Timer::Settle,
            self.queries.values().filter_map(|q| q.settle_by).min(),
        );
    }
}

fn set_rid(msg: &mut Message, new: u64) {
    match msg {
        Message::Ping { rid }
        | Message::Pong { rid }
        | Message::FindNode { rid, .. }
        | Message::Nodes { rid, .. }
        | Message::FindValue { rid, .. }
        | Message::Value { rid, .. }
        | Message::Store { rid, .. }
        | Message::Stored { rid, .. } => *rid = new,
    }
}
