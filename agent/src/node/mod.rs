//! The node: the tokio shell that drives the sans-IO DHT core over the QUIC
//! transport.
//!
//! - `mod.rs`: [`Node`], its one loop (feed one input, drain every output,
//!   re-arm a single timer) and the calling contract.
//! - `connections.rs`: the bounded connection cache.
//! - `rpc.rs`: request/answer over streams (I/O tasks only move bytes).
//! - `queries.rs`: what the local API asks (status, peers, lookup, metrics).
//! - `persist.rs`: the routing table on disk.
//! - `hosting.rs`: hosted devices' TLS identities and device records.
//! - `nat/`: reachability, relays and hole punching; every dial goes
//!   through it.
//! - `metrics.rs`: counters in Prometheus text.
//!
//! Every envelope is opened and sealed here in the loop, which owns the
//! key, the sealer, the opener (replay window) and the core; the I/O tasks
//! never see a key.

mod connections;
mod hosting;
mod metrics;
pub mod nat;
pub mod persist;
mod queries;
mod rpc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon::control::{LookupAnswer, Query};
use crate::dht::{
    self, Action, Addrs, Contact, Dht, Event, Message, MessageKind, Outcome, PeerRecord, QueryId,
    Time, WireRecordVerifier,
};
use crate::identity::{Keypair, PublicKey};
use crate::transport::{Connection, Endpoint, VerifiedPeer};
use crate::wire::{Audience, Kind, NetworkId, Opened, Opener, Sealer, UnixMillis, WireConfig};

pub(crate) use connections::Connections;
pub use connections::{CLOSE_NOT_ALLOWED, CLOSE_SHUTDOWN};
use metrics::NodeCounters;
pub(crate) use nat::Nat;
use nat::{NatConfig, ReachMode};
use rpc::Input;
pub use rpc::{DeviceStream, BUSY};

/// Node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Network id (signed into every envelope).
    pub network: NetworkId,
    /// Where the routing table is persisted.
    pub state_dir: PathBuf,
    /// Addresses announced in our peer record.
    pub announce: Vec<SocketAddr>,
    /// Peers to join through.
    pub seeds: Vec<(PublicKey, SocketAddr)>,
    /// DHT tunables.
    pub dht: dht::Config,
    /// Envelope limits.
    pub wire: WireConfig,
    /// Connections kept open at most.
    pub max_connections: usize,
    /// Persist the routing table this often (and at shutdown).
    pub persist_every: Duration,
    /// Lifetime of our peer record.
    pub record_ttl: Duration,
    /// Reachability, relaying and hole punching.
    pub nat: NatConfig,
}

impl NodeConfig {
    /// Defaults for `network` with state in `state_dir`.
    pub fn new(network: NetworkId, state_dir: PathBuf) -> Self {
        Self {
            network,
            state_dir,
            announce: Vec::new(),
            seeds: Vec::new(),
            dht: dht::Config::default(),
            wire: WireConfig::default(),
            max_connections: 256,
            persist_every: Duration::from_secs(60),
            record_ttl: dht::DEFAULT_TTL,
            nat: NatConfig {
                mode: ReachMode::Auto,
                relay: None,
                max_relays: 2,
            },
        }
    }
}

/// Where a user lookup's answer goes.
type LookupReply = oneshot::Sender<Result<Option<LookupAnswer>, String>>;

/// What the node tells its owner (the daemon turns these into systemd
/// STATUS lines; tests await them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
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

/// The running node. Build with [`Node::new`], then [`Node::run`] until
/// shutdown.
pub struct Node {
    key: Arc<Keypair>,
    cfg: NodeConfig,
    dht: Dht,
    verifier: WireRecordVerifier,
    sealer: Sealer,
    opener: Opener,
    conns: Connections,
    nat: Arc<Nat>,
    inputs_tx: mpsc::Sender<Input>,
    inputs_rx: mpsc::Receiver<Input>,
    /// Streams of requests being handled, to answer on (empty between
    /// inputs: see `drain`).
    pending_replies: HashMap<(PublicKey, u64), quinn::SendStream>,
    /// User lookups in flight: the key, where to answer, when it started.
    lookups: HashMap<QueryId, (PublicKey, LookupReply, Instant)>,
    bootstrap: Option<QueryId>,
    publishing: Option<(QueryId, u64)>,
    record_seq: u64,
    /// Our latest sealed peer record.
    own_record: Option<Vec<u8>>,
    /// Devices this gateway hosts, by key.
    hosted: HashMap<PublicKey, hosting::Hosted>,
    /// Device records being stored, by query.
    device_publishing: HashMap<QueryId, PublicKey>,
    published_acks: u32,
    last_publish: Option<Instant>,
    events: mpsc::Sender<NodeEvent>,
    /// Where streams to hosted devices go (the devices layer).
    device_streams: Option<mpsc::Sender<DeviceStream>>,
    counters: NodeCounters,
    started: Instant,
}

fn now() -> Time {
    Time::from(UnixMillis::now())
}

impl Node {
    /// A node for `key` on `endpoint`. Restores the persisted routing table
    /// if there is one.
    pub fn new(
        key: Arc<Keypair>,
        endpoint: Arc<Endpoint>,
        cfg: NodeConfig,
        events: mpsc::Sender<NodeEvent>,
    ) -> Self {
        let announce: Vec<String> = cfg.announce.iter().map(|a| a.to_string()).collect();
        let addrs = Addrs::new(&announce).unwrap_or_else(|_| Addrs::empty());
        let mut rng = rand_core::OsRng;
        let mut dht = Dht::new(cfg.dht.clone(), &key.public(), addrs, &mut rng);
        let started_ms = UnixMillis::now();
        if let Some(bytes) = persist::read(&persist::table_path(&cfg.state_dir)) {
            match dht.restore_table(&bytes, Time::from(started_ms)) {
                Ok(n) => {
                    tracing::info!(contacts = n, "routing table restored");
                    let _ = events.try_send(NodeEvent::Restored { contacts: n });
                }
                Err(e) => tracing::warn!(error = %e, "persisted routing table ignored"),
            }
        }
        let (inputs_tx, inputs_rx) = mpsc::channel(1024);
        let conns = Connections::new(endpoint, cfg.max_connections);
        let nat = Arc::new(Nat::new(
            key.clone(),
            cfg.network.clone(),
            cfg.wire.clone(),
            cfg.nat.clone(),
            conns.clone(),
            inputs_tx.clone(),
        ));
        Self {
            verifier: WireRecordVerifier::new(cfg.network.clone()),
            sealer: Sealer::new(cfg.network.clone()),
            opener: Opener::new(
                cfg.network.clone(),
                key.node_id(),
                cfg.wire.clone(),
                started_ms,
            ),
            conns,
            nat,
            key,
            dht,
            cfg,
            inputs_tx,
            inputs_rx,
            pending_replies: HashMap::new(),
            lookups: HashMap::new(),
            bootstrap: None,
            publishing: None,
            record_seq: 0,
            own_record: None,
            hosted: HashMap::new(),
            device_publishing: HashMap::new(),
            published_acks: 0,
            last_publish: None,
            events,
            device_streams: None,
            counters: NodeCounters::default(),
            started: Instant::now(),
        }
    }

    /// Hands every stream a peer opens to a hosted device to `streams`
    /// (without it, such connections are closed).
    pub fn serve_devices(&mut self, streams: mpsc::Sender<DeviceStream>) {
        self.device_streams = Some(streams);
    }

    /// The dialer (over the connection cache), shared with the devices
    /// layer so that reads and subscriptions to remote devices reuse
    /// connections and reach gateways behind NAT.
    pub(crate) fn dialer(&self) -> Arc<Nat> {
        self.nat.clone()
    }

    /// Runs until `shutdown` turns true, answering `queries` from the
    /// local API. On shutdown the table is persisted and every connection
    /// closed with [`CLOSE_SHUTDOWN`].
    pub async fn run(
        mut self,
        mut queries: mpsc::Receiver<Query>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.spawn_accept_loop(shutdown.clone());
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
        self.bootstrap = Some(self.dht.bootstrap(seeds, now()));
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

        loop {
            let deadline = self.dht.poll_timeout().map(|t| {
                let wait = t.as_millis().saturating_sub(now().as_millis());
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                Some(input) = self.inputs_rx.recv() => self.handle_input(input),
                Some(query) = queries.recv() => self.handle_query(query),
                _ = sleep_until(deadline) => self.dht.handle_timeout(now(), &mut rand_core::OsRng),
                _ = republish_check.tick() => self.maybe_republish(),
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

    fn spawn_accept_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let conns = self.conns.clone();
        let inputs = self.inputs_tx.clone();
        let device_streams = self.device_streams.clone();
        tokio::spawn(async move {
            loop {
                let incoming = tokio::select! {
                    i = conns.endpoint().incoming() => i,
                    _ = shutdown.changed() => None,
                };
                let Some(incoming) = incoming else { break };
                let conns = conns.clone();
                let inputs = inputs.clone();
                let device_streams = device_streams.clone();
                tokio::spawn(async move {
                    let Ok(conn) = conns.endpoint().handshake(incoming).await else {
                        return;
                    };
                    match conn.served_as() {
                        Some(device) if device != conns.endpoint().key() => {
                            let gate = conns.endpoint().gate().clone();
                            rpc::serve_device_connection(conn, device, gate, device_streams).await;
                        }
                        _ => {
                            conns.insert(conn.clone());
                            let _ = inputs.send(Input::Connected(conn)).await;
                        }
                    }
                });
            }
        });
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Connected(conn) => self.on_connected(conn),
            Input::SetAddrs(addrs) => self.set_addrs(&addrs),
            Input::Unreachable { rid } => self.dht.handle_unreachable(now(), rid),
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
        let max = self.cfg.wire.max_envelope_bytes;
        tokio::spawn(rpc::serve_connection(
            self.conns.clone(),
            conn,
            max,
            self.inputs_tx.clone(),
            self.device_streams.clone(),
            self.nat.clone(),
        ));
    }

    /// Opens an envelope from `peer`: `None` when refused (and counted).
    fn open_from(&mut self, peer: VerifiedPeer, bytes: &[u8], t: Time) -> Option<Opened> {
        if !self.conns.endpoint().gate().admits(&peer.key()) {
            // Admitted at its handshake, since removed from the allowlist:
            // nothing more from it, whatever connection it still holds.
            *self
                .counters
                .envelopes_rejected
                .entry("not_allowlisted")
                .or_default() += 1;
            return None;
        }
        let opened = match self.opener.open(bytes, UnixMillis::from(t)) {
            Ok(o) => o,
            Err(e) => {
                *self
                    .counters
                    .envelopes_rejected
                    .entry(e.reason())
                    .or_default() += 1;
                tracing::debug!(peer = %peer.key(), reason = e.reason(), "envelope refused");
                return None;
            }
        };
        if opened.sender() != peer.key() {
            // Signed by someone other than the TLS-proven peer: a relay of
            // another node's message, not accepted on a DHT connection.
            self.counters.sender_mismatch += 1;
            return None;
        }
        self.counters.envelopes_accepted += 1;
        Some(opened)
    }

    fn on_request(&mut self, peer: VerifiedPeer, bytes: &[u8], reply: quinn::SendStream) {
        let t = now();
        let Some(opened) = self.open_from(peer, bytes, t) else {
            return;
        };
        let addrs = seen_at(&peer);
        let decoded = MessageKind::from_name(opened.kind().name())
            .and_then(|k| Message::decode(k, opened.payload()).ok());
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
                    .handle_opened(t, &opened, addrs, &mut self.verifier);
            }
        }
    }

    fn on_answer(&mut self, peer: VerifiedPeer, rid: u64, bytes: &[u8]) {
        let t = now();
        let handled = self.open_from(peer, bytes, t).is_some_and(|opened| {
            self.dht
                .handle_opened(t, &opened, seen_at(&peer), &mut self.verifier)
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
            self.dht.handle_unreachable(now(), rid);
            return;
        };
        let Ok(kind) = message.kind().name().parse::<Kind>() else {
            return;
        };
        let payload = message.encode();
        let env = match self.sealer.seal(
            &self.key,
            kind,
            Audience::Node(*to.id()),
            &payload,
            UnixMillis::now(),
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot seal a DHT message");
                self.dht.handle_unreachable(now(), rid);
                return;
            }
        };
        if is_answer(message.kind()) {
            if let Some(stream) = self.pending_replies.remove(&(key, rid)) {
                tokio::spawn(rpc::answer(stream, env));
            }
            return;
        }
        let addrs = nat::parse_addrs(to.addrs().iter());
        let timeout = self.cfg.dht.request_timeout + Duration::from_millis(500);
        tokio::spawn(rpc::send_request(
            self.nat.clone(),
            key,
            addrs,
            rid,
            env,
            self.cfg.wire.max_envelope_bytes,
            timeout,
        ));
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::QueryFinished {
                id, outcome, stats, ..
            } => {
                if self.bootstrap == Some(id) {
                    self.bootstrap = None;
                    let contacts = self.dht.table().len();
                    tracing::info!(contacts, "joined");
                    // Persist right away: a crash before the first periodic
                    // save would otherwise lose what joining taught us.
                    self.persist();
                    let _ = self.events.try_send(NodeEvent::Joined { contacts });
                    self.publish_record();
                    self.publish_all_devices();
                } else if self.publishing.map(|(q, _)| q) == Some(id) {
                    if let (Outcome::Stored { acks, .. }, Some((_, seq))) =
                        (&outcome, self.publishing.take())
                    {
                        self.published_acks = *acks;
                        tracing::info!(seq, acks, "peer record published");
                        let _ = self
                            .events
                            .try_send(NodeEvent::Published { seq, acks: *acks });
                    }
                } else if let Some(device) = self.device_publishing.remove(&id) {
                    if let Outcome::Stored { acks, .. } = &outcome {
                        tracing::debug!(device = %device, acks, "device record published");
                        let _ = self.events.try_send(NodeEvent::DevicePublished {
                            device,
                            acks: *acks,
                        });
                    }
                } else if let Some((key, reply, started)) = self.lookups.remove(&id) {
                    let answer = queries::lookup_answer(
                        &key,
                        &outcome,
                        &stats,
                        started.elapsed(),
                        &self.cfg.network,
                    );
                    let label = match &answer {
                        Ok(Some(_)) => "found",
                        Ok(None) => "not_found",
                        Err(_) => "invalid",
                    };
                    *self.counters.lookups.entry(label).or_default() += 1;
                    let _ = reply.send(answer);
                }
            }
            Event::RepublishDue { key } if key == self.key.node_id() => self.publish_record(),
            Event::RepublishDue { key } => {
                let device = self.hosted.keys().find(|k| k.node_id() == key).copied();
                if let Some(device) = device {
                    self.publish_device(&device);
                }
            }
        }
    }

    /// Seals a fresh peer record (higher sequence) and publishes it.
    fn publish_record(&mut self) {
        if self.publishing.is_some() {
            return;
        }
        let now_ms = UnixMillis::now();
        self.record_seq = self.record_seq.saturating_add(1).max(now_ms.0);
        let record = PeerRecord {
            seq: self.record_seq,
            ttl_secs: self.cfg.record_ttl.as_secs(),
            addrs: self.dht.local().addrs().clone(),
        };
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let sealed = record.seal(
            &self.key,
            &self.cfg.network,
            now_ms,
            u64::from_le_bytes(nonce),
        );
        match sealed.map_err(|e| e.to_string()).and_then(|bytes| {
            self.own_record = Some(bytes.clone());
            self.dht
                .publish(bytes, Time::from(now_ms), &mut self.verifier)
                .map_err(|e| e.to_string())
        }) {
            Ok(q) => {
                self.publishing = Some((q, self.record_seq));
                self.last_publish = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "cannot publish our peer record"),
        }
    }

    /// Our addresses changed (found behind NAT, relays changed): records
    /// with the new ones replace the old at once.
    fn set_addrs(&mut self, addrs: &[String]) {
        let Ok(addrs) = Addrs::new(addrs) else {
            tracing::warn!(?addrs, "addresses over the record's limits ignored");
            return;
        };
        if addrs == *self.dht.local().addrs() {
            return;
        }
        tracing::info!(?addrs, "announcing new addresses");
        let text = addrs.iter().map(str::to_owned).collect();
        let _ = self.events.try_send(NodeEvent::Announcing { addrs: text });
        self.dht.set_local_addrs(addrs);
        // A publish in flight carries the old addresses: start over.
        self.publishing = None;
        self.publish_record();
        self.publish_all_devices();
    }

    /// Until our record is held by as many nodes as we know (up to k),
    /// publish again as the table grows.
    fn maybe_republish(&mut self) {
        if self.bootstrap.is_some() || self.publishing.is_some() {
            return;
        }
        let want = self.dht.table().len().min(self.cfg.dht.k) as u32;
        let spaced = self
            .last_publish
            .is_none_or(|t| t.elapsed() >= REPUBLISH_SPACING);
        if self.published_acks < want && spaced {
            self.publish_record();
            // Device records went out with the same (smaller) view.
            self.publish_all_devices();
        }
    }

    /// Saves the routing table. A failure (disk full, read-only) is logged
    /// with its cause and counted, and the node goes on: the previous file
    /// stays intact (atomic write), only the newer view is not saved.
    fn persist(&mut self) {
        let path = persist::table_path(&self.cfg.state_dir);
        if let Err(e) = persist::write_atomic(&path, &self.dht.save_table()) {
            self.counters.state_write_errors += 1;
            let hint = persist::write_error_hint(&e);
            tracing::warn!(path = %path.display(), error = %e, "cannot persist the routing table: {hint}");
        }
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
