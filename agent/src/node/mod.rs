//! The node: the tokio shell that drives the sans-IO DHT core over the QUIC
//! transport.
//!
//! - `mod.rs`: [`Node`], its one loop (feed one input, drain every output,
//!   re-arm a single timer) and the calling contract.
//! - `config.rs`: [`NodeConfig`], the settings the daemon hands over.
//! - `accept.rs`: the accept loop (a device's name to the devices layer,
//!   anything else into the node).
//! - `handle.rs`: [`NodeHandle`], how the layers above ask the node.
//! - `error.rs`: [`NodeError`], what goes wrong, and whose fault it is.
//! - `in_flight.rs`: the one map of DHT queries in flight, tagged with
//!   what each is for, and what the node does when one finishes.
//! - `connections.rs`: the bounded connection cache.
//! - `dial_budget.rs`: how many unproven keys the node dials per address
//!   (the DHT must not be an amplifier aimed at a third party).
//! - `rpc.rs`: request/answer over streams (I/O tasks only move bytes).
//! - `queries.rs`: answering the handle (status, peers, lookup, metrics).
//! - `persist.rs`: the routing table on disk.
//! - `learned.rs`: how each peer was learned (seed, DNS, mDNS, DHT), and
//!   joining through a peer introduced from outside the DHT.
//! - `hosting.rs`: hosted devices' TLS identities and device records.
//! - `nat/`: reachability, relays and hole punching; [`Dialer`], through
//!   which every dial goes.
//! - `revocation_sync.rs`, `revocation_record.rs`: passing the revocation
//!   list on, by offers on every connection and as a record in the DHT.
//! - `time_sync.rs`: the network's time: this node's clock offset from its
//!   peers', measured and applied to the node's clock.
//! - `metrics.rs`: counters in Prometheus text.
//!
//! Every envelope is opened here in the loop, which owns the [`Session`]
//! (sealer and replay window) and the core, and every answer is sealed
//! here; a request is sealed by the task that sends it, right after its
//! connection is up, so that it bears the network's time learned on that
//! connection (see `time_sync.rs`).
//!
//! What this module does not do: decide who may join (the transport's
//! [`crate::transport::Membership`] does; the node asks it), or know what
//! a device is beyond its key (the devices layer above does).

mod accept;
mod config;
mod connections;
mod dial_budget;
mod error;
mod handle;
mod hosting;
mod in_flight;
mod learned;
mod metrics;
mod nat;
mod persist;
mod queries;
mod revocation_record;
mod revocation_sync;
mod rpc;
mod time_sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::dht::{Action, Addrs, Contact, Dht, Message, MessageKind, Time, WireRecordVerifier};
use crate::identity::{Keypair, PublicKey};
use crate::transport::{Connection, Endpoint, PeerRefusal, VerifiedPeer};
use crate::wire::{FromPeer, Kind, Session, SessionError, TimeSource};

pub(crate) use config::NodeConfig;
pub(crate) use connections::Connections;
pub(crate) use connections::{CLOSE_NOT_ALLOWED, CLOSE_SHUTDOWN};
pub(crate) use error::NodeError;
pub(crate) use handle::NodeHandle;
use handle::Query;
use in_flight::{InFlight, Purpose};
pub(crate) use learned::Source;
use metrics::NodeCounters;
pub(crate) use nat::parse_addrs;
pub use nat::{decode as nat_decode, encode as nat_encode, NatAnswer, NatRequest, PeerAddr};
pub(crate) use nat::{Dialer, Nat};
pub(crate) use nat::{NatConfig, ReachMode};
use rpc::Input;
pub(crate) use rpc::{DeviceStream, BUSY};

/// What the node tells its owner (the daemon logs them; tests await them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum NodeEvent {
    /// The routing table was restored from disk with this many contacts.
    Restored {
        /// Contacts restored.
        contacts: usize,
    },
    /// A bootstrap lookup finished.
    Joined {
        /// Contacts in the table.
        contacts: usize,
    },
    /// A hosted device's record was stored at `acks` nodes.
    DevicePublished {
        /// The device.
        device: PublicKey,
        /// Nodes that kept it.
        acks: u32,
    },
    /// Our records announce these addresses from now on (reachability or
    /// relays changed).
    Announcing {
        /// The addresses (`relay:<key>@<ip:port>` for a relay).
        addrs: Vec<String>,
    },
    /// Our peer record was stored at `acks` nodes.
    Published {
        /// Record sequence.
        seq: u64,
        /// Nodes that kept it.
        acks: u32,
    },
}

/// User lookups in flight at once.
const MAX_USER_LOOKUPS: usize = 64;
/// Wait at least this long between re-publishes of an under-replicated record.
const REPUBLISH_SPACING: Duration = Duration::from_secs(2);

/// The running node.
///
/// Calling contract: build it with [`Node::new`], take as many
/// [`NodeHandle`]s as needed with [`Node::handle`] (and, on a gateway,
/// route device streams with [`Node::serve_devices`]), then move it into
/// [`Node::run`], which returns after `shutdown` turns true. Inside `run`,
/// every input (a stream's bytes, a question, a timer) is fed to the core
/// and then everything the core wants done is drained before the next
/// input: between inputs no action, event or parked reply is pending.
pub(crate) struct Node {
    key: Arc<Keypair>,
    cfg: NodeConfig,
    clock: Clock,
    dht: Dht,
    verifier: WireRecordVerifier,
    session: Arc<Session>,
    conns: Connections,
    nat: Arc<Nat>,
    inputs_tx: mpsc::Sender<Input>,
    inputs_rx: mpsc::Receiver<Input>,
    handle: NodeHandle,
    queries: mpsc::Receiver<Query>,
    /// Streams of requests being handled, to answer on (empty between
    /// inputs: see `drain`).
    pending_replies: HashMap<(PublicKey, u64), quinn::SendStream>,
    /// DHT queries in flight and what each is for.
    in_flight: InFlight,
    record_seq: u64,
    /// Our latest sealed peer record.
    own_record: Option<Vec<u8>>,
    /// Devices this gateway hosts, by key.
    hosted: HashMap<PublicKey, hosting::HostedIdentity>,
    /// Hosted devices whose record is due to go out (paced).
    publish_queue: hosting::PublishQueue,
    published_acks: u32,
    last_publish: Option<Instant>,
    republish: in_flight::Republish,
    events: mpsc::Sender<NodeEvent>,
    /// Where streams to hosted devices go (the devices layer).
    device_streams: Option<mpsc::Sender<DeviceStream>>,
    counters: NodeCounters,
    started: Instant,
    dial_budget: dial_budget::DialBudget,
    /// Peers whose refusal of our handshake was said at WARN (bounded).
    warned_refusals: HashSet<PublicKey>,
    /// How peers were learned, when not through the DHT.
    learned: learned::Learned,
    revocation_record: revocation_record::RecordCounters,
    /// The last refusal of our handshake by a peer, and when: a lookup
    /// that found nothing while peers refused us says so.
    last_refusal: Option<(Instant, String)>,
}

impl Node {
    /// A node for `key` on `endpoint`. Restores the persisted routing table
    /// if there is one.
    pub(crate) fn new(
        key: Arc<Keypair>,
        endpoint: Arc<Endpoint>,
        cfg: NodeConfig,
        events: mpsc::Sender<NodeEvent>,
    ) -> Self {
        let clock = cfg.clock.clone();
        let announce: Vec<String> = cfg.announce.iter().map(|a| a.to_string()).collect();
        let addrs = Addrs::new(&announce).unwrap_or_else(|_| Addrs::empty());
        let mut rng = rand_core::OsRng;
        let mut dht = Dht::new(cfg.dht.clone(), &key.public(), addrs, &mut rng);
        let started_ms = clock.wall();
        if let Some(bytes) = persist::read(&persist::table_path(&cfg.state_dir)) {
            match dht.restore_table(&bytes, Time::from(started_ms)) {
                Ok(n) => {
                    tracing::info!(contacts = n, "routing table restored");
                    let _ = events.try_send(NodeEvent::Restored { contacts: n });
                }
                Err(e) => tracing::warn!(error = %e, "persisted routing table ignored"),
            }
        }
        let mut learned = learned::Learned::default();
        for (seed, _) in &cfg.seeds {
            learned.note(*seed, Source::Seed);
        }
        let (inputs_tx, inputs_rx) = mpsc::channel(1024);
        let (handle, queries) = NodeHandle::channel();
        let verifier = revocation_record::verifier(&cfg.network, endpoint.membership());
        let conns = Connections::new(endpoint, cfg.max_connections);
        let time: Arc<dyn TimeSource> = Arc::new(clock.clone());
        let session = || {
            Session::new(
                key.clone(),
                cfg.network.clone(),
                cfg.wire.clone(),
                time.clone(),
            )
        };
        let time = Arc::new(time_sync::TimeSync::new(
            session(),
            clock.clone(),
            cfg.wire.skew_ms,
        ));
        let revocations = revocation_sync::RevocationSync::new(session(), conns.clone());
        let nat = Arc::new(Nat::new(
            session(),
            cfg.nat.clone(),
            conns.clone(),
            inputs_tx.clone(),
            clock.clone(),
            time,
            revocations,
        ));
        Self {
            verifier,
            session: Arc::new(session()),
            conns,
            nat,
            key,
            dht,
            inputs_tx,
            inputs_rx,
            handle,
            queries,
            pending_replies: HashMap::new(),
            in_flight: InFlight::default(),
            record_seq: 0,
            own_record: None,
            hosted: HashMap::new(),
            publish_queue: hosting::PublishQueue::default(),
            published_acks: 0,
            last_publish: None,
            republish: in_flight::Republish::default(),
            events,
            device_streams: None,
            counters: NodeCounters::default(),
            started: clock.instant(),
            dial_budget: dial_budget::DialBudget::default(),
            warned_refusals: HashSet::new(),
            learned,
            revocation_record: Default::default(),
            last_refusal: None,
            clock,
            cfg,
        }
    }

    /// A handle to ask this node (status, lookups, hosting) once it runs.
    pub(crate) fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Hands every stream a peer opens to a hosted device to `streams`
    /// (without it, such connections are closed).
    pub(crate) fn serve_devices(&mut self, streams: mpsc::Sender<DeviceStream>) {
        self.device_streams = Some(streams);
    }

    /// The dialer (over the connection cache), shared with the devices
    /// layer so that reads and subscriptions to remote devices reuse
    /// connections and reach gateways behind NAT.
    pub(crate) fn dialer(&self) -> Dialer {
        Dialer::new(self.nat.clone())
    }

    fn now(&self) -> Time {
        Time::from(self.clock.wall())
    }

    /// Runs until `shutdown` turns true, answering the handles' questions.
    /// On shutdown the table is persisted and every connection closed
    /// with [`CLOSE_SHUTDOWN`].
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.spawn_accept_loop(shutdown.clone());
        self.spawn_time_resync(shutdown.clone());
        self.nat.revocations().spawn_flood();
        let seeds: Vec<Contact> = self
            .cfg
            .seeds
            .iter()
            .map(|(k, a)| {
                Contact::from_claimed(
                    *k.as_bytes(),
                    Addrs::new(&[a.to_string()]).unwrap_or_else(|_| Addrs::empty()),
                )
            })
            .collect();
        let bootstrap = self.dht.bootstrap(seeds, self.now());
        self.in_flight.insert(bootstrap, Purpose::Bootstrap);
        nat::spawn_reachability(
            self.nat.clone(),
            self.cfg.announce.clone(),
            self.cfg.seeds.clone(),
            shutdown.clone(),
        );
        self.drain();
        let mut persist_tick = tokio::time::interval(self.cfg.persist_every);
        persist_tick.tick().await;
        let mut republish_check = tokio::time::interval(REPUBLISH_SPACING);
        let mut revocations = self.conns.endpoint().membership().revocation_updates();
        self.publish_revocations();

        loop {
            let deadline = self.dht.poll_timeout().map(|t| {
                let wait = t.as_millis().saturating_sub(self.now().as_millis());
                tokio::time::Instant::from_std(self.clock.instant()) + Duration::from_millis(wait)
            });
            tokio::select! {
                Some(input) = self.inputs_rx.recv() => self.handle_input(input),
                Some(query) = self.queries.recv() => self.handle_query(query),
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.dht.handle_timeout(now, &mut rand_core::OsRng);
                }
                _ = republish_check.tick() => self.maybe_republish(),
                Ok(()) = revocations.changed() => self.publish_revocations(),
                _ = persist_tick.tick() => self.persist(),
                _ = shutdown.changed() => break,
            }
            self.drain();
        }
        self.persist();
        self.conns.close_all(CLOSE_SHUTDOWN, "agent shutting down");
        let endpoint = self.conns.endpoint().clone();
        endpoint.close(CLOSE_SHUTDOWN, "agent shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }

    /// Every [`time_sync::RESYNC`], asks a few connected peers for their
    /// time again, so the offset follows a clock that drifts or is fixed.
    fn spawn_time_resync(&self, mut shutdown: watch::Receiver<bool>) {
        let nat = self.nat.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(time_sync::RESYNC);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let peers = nat.conns.live();
                for conn in peers.iter().take(time_sync::WANTED_PEERS) {
                    nat.time().sync_with(conn).await;
                }
            }
        });
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Connected(conn) => self.on_connected(conn),
            Input::SetAddrs(addrs) => self.set_addrs(&addrs),
            Input::Unreachable { rid, refused } => {
                if let Some((peer, why)) = refused {
                    self.refused_by_peer(peer, why);
                }
                let now = self.now();
                self.dht.handle_unreachable(now, rid)
            }
            Input::Request { peer, bytes, reply } => {
                self.counters.app_bytes_received += bytes.len() as u64;
                self.on_request(peer, &bytes, reply)
            }
            Input::Answer { peer, rid, bytes } => {
                self.counters.app_bytes_received += bytes.len() as u64;
                self.on_answer(peer, rid, &bytes)
            }
        }
    }

    fn on_connected(&mut self, conn: Connection) {
        self.counters.connections_opened += 1;
        // Whoever holds the newer revocation list hands it over: offered
        // here on connections a node dialed as us (dialed ones are offered
        // by the dialer, which knows a node from a device's name).
        if conn.served_as() == Some(self.conns.endpoint().key()) {
            tokio::spawn(self.nat.revocations().clone().offer(conn.clone()));
        }
        tokio::spawn(rpc::serve_connection(
            self.conns.clone(),
            conn,
            self.session.max_frame(),
            self.inputs_tx.clone(),
            self.device_streams.clone(),
            self.nat.clone(),
            self.clock.clone(),
        ));
    }

    /// Opens an envelope from `peer`: `None` when refused (and counted).
    fn open_from(&mut self, peer: VerifiedPeer, bytes: &[u8], t: Time) -> Option<FromPeer> {
        let membership = self.conns.endpoint().membership();
        if let Err(refusal) = membership.still_admits(&peer.key(), t.into()) {
            // Admitted at its handshake, no longer since: nothing more
            // from it, whatever connection it still holds.
            *self
                .counters
                .envelopes_rejected
                .entry(refusal.as_str())
                .or_default() += 1;
            return None;
        }
        match self.session.open_from(&peer.key(), bytes) {
            Ok(from) => {
                self.counters.envelopes_accepted += 1;
                Some(from)
            }
            // Signed by someone other than the TLS-proven peer: a relay of
            // another node's message, not accepted on a DHT connection.
            Err(SessionError::SenderMismatch { .. }) => {
                self.counters.sender_mismatch += 1;
                None
            }
            Err(e) => {
                *self
                    .counters
                    .envelopes_rejected
                    .entry(e.reason())
                    .or_default() += 1;
                tracing::debug!(peer = %peer.key(), reason = e.reason(), "envelope refused");
                None
            }
        }
    }

    fn on_request(&mut self, peer: VerifiedPeer, bytes: &[u8], reply: quinn::SendStream) {
        let t = self.now();
        let Some(from) = self.open_from(peer, bytes, t) else {
            return;
        };
        let addrs = seen_at(&peer);
        let decoded = MessageKind::from_name(from.kind().name())
            .and_then(|k| Message::decode(k, from.payload()).ok());
        match decoded {
            Some(msg) => {
                // The core answers synchronously: park the stream under the
                // request id for `dispatch` to find in the next drain.
                self.pending_replies.insert((peer.key(), msg.rid()), reply);
                self.dht
                    .handle_message(t, &peer.key(), addrs, msg, &mut self.verifier);
            }
            // Let the core count the refusal by its own reasons.
            None => {
                let _ = self
                    .dht
                    .handle_opened(t, from.opened(), addrs, &mut self.verifier);
            }
        }
    }

    fn on_answer(&mut self, peer: VerifiedPeer, rid: u64, bytes: &[u8]) {
        let t = self.now();
        let handled = self.open_from(peer, bytes, t).is_some_and(|from| {
            self.dht
                .handle_opened(t, from.opened(), seen_at(&peer), &mut self.verifier)
                .is_ok()
        });
        if !handled {
            self.dht.handle_unreachable(t, rid);
        }
    }

    /// Drains the core: sends, events, until both are empty.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.dht.poll_action() {
                progressed = true;
                let Action::Send { to, message } = action;
                self.dispatch(to, message);
            }
            while let Some(event) = self.dht.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            if !progressed {
                break;
            }
        }
        // The core answers every request while handling it, so a stream
        // still parked now will never be answered: dropping it tells the
        // peer at once instead of leaving it to time out.
        self.pending_replies.clear();
    }

    fn dispatch(&mut self, to: Contact, message: Message) {
        let rid = message.rid();
        let Some(key) = to.public_key() else {
            let now = self.now();
            self.dht.handle_unreachable(now, rid);
            return;
        };
        let Ok(kind) = message.kind().name().parse::<Kind>() else {
            return;
        };
        let payload = message.encode();
        if is_answer(message.kind()) {
            if let Some(stream) = self.pending_replies.remove(&(key, rid)) {
                match self.session.seal(kind, &key, &payload) {
                    Ok(env) => {
                        tokio::spawn(rpc::answer(stream, env));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot seal a DHT answer"),
                }
            }
            return;
        }
        let addrs = nat::parse_addrs(to.addrs().iter());
        if !self.within_dial_budget(&to, &key, &addrs) {
            let now = self.now();
            self.dht.handle_unreachable(now, rid);
            return;
        }
        let timeout = self.cfg.dht.request_timeout + Duration::from_millis(500);
        tokio::spawn(rpc::send_request(
            self.nat.clone(),
            self.session.clone(),
            key,
            addrs,
            rid,
            rpc::Outgoing { kind, payload },
            timeout,
        ));
    }

    /// A peer refused our handshake and said why: counted, and said once
    /// per peer at WARN (a node left out of a private network would
    /// otherwise only see lookups that find nothing).
    fn refused_by_peer(&mut self, peer: PublicKey, why: PeerRefusal) {
        *self
            .counters
            .refused_by_peers
            .entry(why.label())
            .or_default() += 1;
        if self.warned_refusals.len() < 256 && self.warned_refusals.insert(peer) {
            tracing::warn!(peer = %peer, own_key = %self.key.public(), "refused by a peer: {}", why.explain());
        }
        self.last_refusal = Some((self.clock.instant(), why.explain().to_owned()));
    }
}

fn is_answer(kind: MessageKind) -> bool {
    matches!(
        kind,
        MessageKind::Pong | MessageKind::Nodes | MessageKind::Value | MessageKind::Stored
    )
}

/// Where the shell saw a peer: one UDP socket serves both directions, so
/// this is also where the peer listens (unless it sits behind NAT). A peer
/// reached through a relay has no address of its own to tell others.
fn seen_at(peer: &VerifiedPeer) -> Addrs {
    if crate::transport::socket::is_virtual(&peer.addr()) {
        return Addrs::empty();
    }
    Addrs::new(&[peer.addr().to_string()]).unwrap_or_else(|_| Addrs::empty())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
