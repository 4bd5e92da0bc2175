//! `Net`: many DHT cores on one virtual clock.
//!
//! One priority queue of deliveries and wake-ups ordered by (time, sequence
//! number) drives every node; `step` takes the earliest. Per-link latency
//! is a fixed function of the two node indices, loss and every other choice
//! come from one seeded [`SimRng`], and no map is ever iterated, so a seed
//! fixes the whole run.
//!
//! Messages travel as decoded [`Message`] values: sealing and opening is
//! the shell's work and costs nothing the DHT decides. The receiving core
//! gets the sender's real public key, as the shell would hand it after
//! verifying the envelope.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use crate::dht::{Action, Addrs, Config, Contact, Dht, Event, Message, QueryId, Time};
use crate::identity::{Keypair, NodeId, PublicKey};

use super::records::{sign_record, SimVerifier};
use super::rng::{splitmix64, SimRng};

/// Network knobs.
#[derive(Clone, Debug)]
pub(crate) struct NetConfig {
    /// The cores' configuration.
    pub(crate) dht: Config,
    /// Smallest one-way latency.
    pub(crate) latency_min: Duration,
    /// Largest one-way latency.
    pub(crate) latency_max: Duration,
    /// Probability that a message is lost.
    pub(crate) loss: f64,
    /// Padding bytes added to simulated records.
    pub(crate) record_padding: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            dht: Config::default(),
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(150),
            loss: 0.0,
            record_padding: 32,
        }
    }
}

/// Traffic counters of the whole network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetStats {
    /// Messages handed to a live node.
    pub(crate) delivered: u64,
    /// Messages dropped by the loss knob.
    pub(crate) lost: u64,
    /// Messages sent to nodes that had left.
    pub(crate) to_dead: u64,
}

/// A simulated node.
#[derive(Clone, Debug)]
pub(crate) struct SimNode {
    /// Seed of its key pair.
    pub(crate) seed: [u8; 32],
    /// Its public key.
    pub(crate) key: PublicKey,
    /// Its core.
    pub(crate) dht: Dht,
    /// False once killed.
    pub(crate) alive: bool,
    wake: Option<Time>,
    /// Sequence of its latest record, and its TTL.
    record: Option<(u64, Duration)>,
}

#[derive(Clone)]
enum Ev {
    Deliver { from: u32, to: u32, msg: Message },
    Wake { node: u32 },
}

#[derive(Clone)]
struct Item {
    at: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The simulated network.
#[derive(Clone)]
pub(crate) struct Net {
    cfg: NetConfig,
    now: Time,
    seed: u64,
    /// The network's RNG (loss, choices of scenarios, cores' randomness).
    pub(crate) rng: SimRng,
    nodes: Vec<SimNode>,
    index: HashMap<[u8; 32], u32>,
    queue: BinaryHeap<Reverse<Item>>,
    seq: u64,
    /// The record verifier every core shares.
    pub(crate) verifier: SimVerifier,
    results: HashMap<(u32, QueryId), Event>,
    /// Republish events answered with a fresh record when true.
    pub(crate) auto_republish: bool,
    /// Traffic counters.
    pub(crate) stats: NetStats,
    /// Nodes that lie in lookups (see [`Net::set_liar`]), by id, so the
    /// colluding liars can name those of them closest to any target.
    liars: BTreeMap<NodeId, u32>,
    /// The same nodes by index, for the check on every delivery.
    liar_index: HashSet<u32>,
}

impl Net {
    /// An empty network.
    pub(crate) fn new(cfg: NetConfig, seed: u64) -> Self {
        Self {
            cfg,
            now: Time(0),
            seed,
            rng: SimRng::new(seed),
            nodes: Vec::new(),
            index: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            verifier: SimVerifier::default(),
            results: HashMap::new(),
            auto_republish: false,
            stats: NetStats::default(),
            liars: BTreeMap::new(),
            liar_index: HashSet::new(),
        }
    }

    /// Virtual now.
    pub(crate) fn now(&self) -> Time {
        self.now
    }

    /// All nodes ever added, dead ones included.
    pub(crate) fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// One node.
    pub(crate) fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// Indices of live nodes.
    pub(crate) fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect()
    }

    /// Adds a node (not yet joined); its key comes from the seed and its
    /// index.
    pub(crate) fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let mut seed = [0u8; 32];
        for (j, chunk) in seed.chunks_mut(8).enumerate() {
            let v = splitmix64(self.seed ^ splitmix64((i as u64) << 2 | j as u64));
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let key = Keypair::from_seed(&seed).public();
        let dht = Dht::new(self.cfg.dht.clone(), &key, Addrs::empty(), &mut self.rng);
        self.index.insert(*key.as_bytes(), i as u32);
        self.nodes.push(SimNode {
            seed,
            key,
            dht,
            alive: true,
            wake: None,
            record: None,
        });
        i
    }

    /// The contact others use for node `i`.
    pub(crate) fn contact(&self, i: usize) -> Contact {
        Contact::from_verified(&self.nodes[i].key, Addrs::empty())
    }

    /// Node `i` bootstraps through node `via`.
    pub(crate) fn join(&mut self, i: usize, via: usize) -> QueryId {
        let c = self.contact(via);
        let now = self.now;
        let q = self.nodes[i].dht.bootstrap(vec![c], now);
        self.drain(i);
        q
    }

    /// Changes the message loss probability from now on.
    pub(crate) fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    /// Changes node `i`'s store limits (as a config reload would).
    pub(crate) fn set_store_config(&mut self, i: usize, cfg: crate::dht::StoreConfig) {
        self.nodes[i].dht.set_store_config(cfg);
    }

    /// Node `i` turns hostile in lookups: it answers every FIND_NODE and
    /// FIND_VALUE at once (so it looks live and useful) with the k liars
    /// whose ids are closest to the target — never an honest node, never a
    /// record. Liars collude and know each other: the classic eclipse
    /// attack S/Kademlia's disjoint paths are meant to survive. PINGs and
    /// STOREs still go to its core, so it stays in routing tables.
    pub(crate) fn set_liar(&mut self, i: usize) {
        self.liars.insert(*self.contact(i).id(), i as u32);
        self.liar_index.insert(i as u32);
    }

    /// Whether node `i` lies.
    pub(crate) fn is_liar(&self, i: usize) -> bool {
        self.liar_index.contains(&(i as u32))
    }

    /// Every node's lookups from now on use `paths` disjoint paths.
    pub(crate) fn set_lookup_paths(&mut self, paths: usize) {
        for n in &mut self.nodes {
            n.dht.set_lookup_paths(paths);
        }
    }

    /// The lie node `liar` tells `asker` in reply to `msg`, if it is a
    /// lookup request: the liars closest to the target. Ids close to a
    /// target in XOR distance share its prefix, so they sit around it in
    /// id order: 2k neighbours on each side, sorted by distance, cover the
    /// closest k.
    fn lie(&self, liar: u32, asker: u32, msg: &Message) -> Option<Message> {
        if !self.liar_index.contains(&liar) {
            return None;
        }
        let (rid, target, value) = match msg {
            Message::FindNode { rid, target } => (*rid, *target, false),
            Message::FindValue { rid, key } => (*rid, *key, true),
            _ => return None,
        };
        let k = self.cfg.dht.k;
        let mut near: Vec<(NodeId, u32)> = self
            .liars
            .range(..target)
            .rev()
            .take(2 * k)
            .chain(self.liars.range(target..).take(2 * k))
            .map(|(id, &i)| (*id, i))
            .filter(|&(_, i)| i != liar && i != asker && self.nodes[i as usize].alive)
            .collect();
        near.sort_by_key(|(id, _)| id.distance(&target));
        let nodes: Vec<Contact> = near
            .into_iter()
            .take(k)
            .map(|(_, i)| self.contact(i as usize))
            .collect();
        Some(if value {
            Message::Value {
                rid,
                record: None,
                nodes,
            }
        } else {
            Message::Nodes { rid, nodes }
        })
    }

    /// Node `i` leaves without warning.
    pub(crate) fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// Node `i` looks up `target`.
    pub(crate) fn find_node(&mut self, i: usize, target: NodeId) -> QueryId {
        let now = self.now;
        let q = self.nodes[i].dht.find_node(target, now);
        self.drain(i);
        q
    }

    /// Node `i` looks up the record under `key`.
    pub(crate) fn find_value(&mut self, i: usize, key: NodeId) -> QueryId {
        let now = self.now;
        let q = self.nodes[i].dht.find_value(key, now);
        self.drain(i);
        q
    }

    /// Node `i` signs a record for its own key (next sequence, lifetime
    /// `ttl` from now) and publishes it.
    pub(crate) fn publish(&mut self, i: usize, ttl: Duration) -> Option<QueryId> {
        let seq = self.nodes[i].record.map_or(1, |(s, _)| s + 1);
        self.nodes[i].record = Some((seq, ttl));
        let kp = Keypair::from_seed(&self.nodes[i].seed);
        let rec = sign_record(&kp, seq, self.now, self.now + ttl, self.cfg.record_padding);
        let now = self.now;
        let q = self.nodes[i].dht.publish(rec, now, &mut self.verifier).ok();
        self.drain(i);
        q
    }

    /// Delivers `msg` from `from` to `to` after the link latency, as if
    /// `from`'s shell had sent it (for hostile peers in scenarios).
    pub(crate) fn inject(&mut self, from: usize, to: usize, msg: Message) {
        let at = self.now + self.latency(from as u32, to as u32);
        self.push(
            at,
            Ev::Deliver {
                from: from as u32,
                to: to as u32,
                msg,
            },
        );
    }

    /// The finished event of query `q` at node `i`, if it finished.
    pub(crate) fn take_result(&mut self, i: usize, q: QueryId) -> Option<Event> {
        self.results.remove(&(i as u32, q))
    }

    /// Whether query `q` at node `i` has finished (result not yet taken).
    pub(crate) fn is_finished(&self, i: usize, q: QueryId) -> bool {
        self.results.contains_key(&(i as u32, q))
    }

    /// Runs every event up to and including time `t`, then sets now to `t`.
    pub(crate) fn run_until(&mut self, t: Time) {
        while self.queue.peek().is_some_and(|Reverse(it)| it.at <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs until `done(self)` or virtual time passes `limit`.
    pub(crate) fn run_while(&mut self, limit: Time, mut busy: impl FnMut(&Net) -> bool) {
        while busy(self) && self.queue.peek().is_some_and(|Reverse(it)| it.at <= limit) {
            self.step();
        }
    }

    /// Delivers the earliest message or fires the earliest wake-up.
    pub(crate) fn step(&mut self) -> bool {
        let Some(Reverse(item)) = self.queue.pop() else {
            return false;
        };
        self.now = item.at;
        match item.ev {
            Ev::Deliver { from, to, msg } => {
                let (f, t) = (from as usize, to as usize);
                if !self.nodes[t].alive {
                    self.stats.to_dead += 1;
                    return true;
                }
                self.stats.delivered += 1;
                if let Some(lie) = self.lie(to, from, &msg) {
                    if !self.rng.chance(self.cfg.loss) {
                        let at = self.now + self.latency(to, from);
                        self.push(
                            at,
                            Ev::Deliver {
                                from: to,
                                to: from,
                                msg: lie,
                            },
                        );
                    }
                    return true;
                }
                let key = self.nodes[f].key;
                let now = self.now;
                self.nodes[t].dht.handle_message(
                    now,
                    &key,
                    Addrs::empty(),
                    msg,
                    &mut self.verifier,
                );
                self.drain(t);
            }
            Ev::Wake { node } => {
                let i = node as usize;
                if self.nodes[i].wake == Some(item.at) {
                    self.nodes[i].wake = None;
                }
                if !self.nodes[i].alive {
                    return true;
                }
                let now = self.now;
                if self.nodes[i].dht.poll_timeout().is_some_and(|d| d <= now) {
                    self.nodes[i].dht.handle_timeout(now, &mut self.rng);
                }
                self.drain(i);
            }
        }
        true
    }

    fn latency(&self, a: u32, b: u32) -> Duration {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let min = self.cfg.latency_min.as_millis() as u64;
        let span = (self.cfg.latency_max.as_millis() as u64).saturating_sub(min) + 1;
        Duration::from_millis(min + splitmix64(self.seed ^ (lo << 32 | hi)) % span)
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Item {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// Routes node `i`'s actions, collects its events, re-arms its wake-up.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(action) = self.nodes[i].dht.poll_action() {
            let Action::Send { to, message } = action;
            let Some(&j) = self.index.get(to.key_bytes()) else {
                self.nodes[i].dht.handle_unreachable(now, message.rid());
                continue;
            };
            if self.rng.chance(self.cfg.loss) {
                self.stats.lost += 1;
                continue;
            }
            let at = now + self.latency(i as u32, j);
            self.push(
                at,
                Ev::Deliver {
                    from: i as u32,
                    to: j,
                    msg: message,
                },
            );
        }
        let mut republish = Vec::new();
        while let Some(ev) = self.nodes[i].dht.poll_event() {
            match ev {
                Event::QueryFinished { id, .. } => {
                    self.results.insert((i as u32, id), ev);
                }
                Event::RepublishDue { .. } => republish.push(()),
            }
        }
        if self.auto_republish && !republish.is_empty() {
            if let Some((_, ttl)) = self.nodes[i].record {
                let _ = self.publish(i, ttl);
            }
        }
        if let Some(t) = self.nodes[i].dht.poll_timeout() {
            // A deadline in the past means "now".
            let t = t.max(now);
            if self.nodes[i].wake.is_none_or(|w| t < w) {
                self.nodes[i].wake = Some(t);
                self.push(t, Ev::Wake { node: i as u32 });
            }
        }
    }
}
