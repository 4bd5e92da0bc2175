//! A hostile peer built from the agent's own library parts: a real QUIC
//! endpoint with a real Ed25519 key that seals real envelopes, then
//! misuses them (replays, flipped bits, wrong network or key, stale
//! stamps, STORE floods) against a running `streembit run` process.
//!
//! Shared by `tests/tests/hostile.rs` (counts that keep `cargo test` short)
//! and `benches/hostile.rs` (the full counts, with RSS figures).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::dht::{Addrs, Contact, Message, MessageKind, PeerRecord};
use streembit_agent::internals::node::{
    decode as nat_decode, encode as nat_encode, NatAnswer, NatRequest,
};
use streembit_agent::internals::transport::{read_frame, request, write_frame};
use streembit_agent::internals::transport::{
    Connection, Endpoint, Membership, TransportConfig, TransportError,
};
use streembit_agent::wire::{
    self, Audience, Kind, NetworkId, Opener, Sealer, UnixMillis, WireConfig,
};

use crate::harness::agent_process::AgentProcess;
use crate::harness::cli::binary;

/// How long one request may wait for its answer.
pub const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// Largest answer accepted (a NODES reply with 20 contacts fits easily).
const MAX_ANSWER: usize = 64 * 1024;

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The agent answered (envelope bytes).
    Answered(Vec<u8>),
    /// The agent closed the stream without answering: refused.
    Refused,
    /// The stream or connection failed.
    Failed(String),
}

/// A peer with its own key and endpoint, driving its own tokio runtime so
/// tests stay synchronous.
pub struct HostilePeer {
    rt: tokio::runtime::Runtime,
    /// Its key pair.
    pub key: Arc<Keypair>,
    network: NetworkId,
    endpoint: Endpoint,
    sealer: Sealer,
    opener: Opener,
}

impl HostilePeer {
    /// A peer on `network` with a fresh key; `trust` limits whom it will
    /// talk to (the agents it attacks), like any agent's allowlist.
    pub fn new(network: &str, trust: &[PublicKey]) -> Self {
        Self::with_key(Arc::new(Keypair::generate()), network, trust)
    }

    /// [`HostilePeer::new`] with a given key.
    pub fn with_key(key: Arc<Keypair>, network: &str, trust: &[PublicKey]) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let network: NetworkId = network.parse().expect("network id");
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let gate = if trust.is_empty() {
            Membership::public()
        } else {
            Membership::private(&network, trust.iter().copied(), None)
        };
        let endpoint = {
            let _guard = rt.enter();
            Endpoint::bind(
                key.clone(),
                gate,
                &TransportConfig::new(loopback, network.clone()),
            )
            .expect("bind hostile endpoint")
        };
        let opener = Opener::new(
            network.clone(),
            key.node_id(),
            WireConfig::default(),
            UnixMillis(0),
        );
        Self {
            rt,
            sealer: Sealer::new(network.clone()),
            key,
            network,
            endpoint,
            opener,
        }
    }

    /// Dials `to` at `addr` (a full TLS handshake).
    pub fn dial(&self, to: &PublicKey, addr: SocketAddr) -> Result<Connection, TransportError> {
        self.rt.block_on(self.endpoint.dial(to, addr))
    }

    /// Seals a DHT message for `to`, signed by this peer, stamped `now`.
    pub fn seal(&mut self, to: &PublicKey, msg: &Message) -> Vec<u8> {
        self.seal_at(to, msg, streembit_agent::clock::Clock::system().wall())
    }

    /// [`HostilePeer::seal`] with a chosen timestamp.
    pub fn seal_at(&mut self, to: &PublicKey, msg: &Message, at: UnixMillis) -> Vec<u8> {
        let kind: Kind = msg.kind().name().parse().expect("DHT kinds are wire kinds");
        self.sealer
            .seal(
                &self.key,
                kind,
                Audience::Node(to.node_id()),
                &msg.encode(),
                at,
            )
            .expect("seal")
    }

    /// Seals `msg` for `to` as another network or another key would: the
    /// envelope is valid, just not for this agent or not from this peer.
    pub fn seal_foreign(
        &mut self,
        signer: &Keypair,
        network: &NetworkId,
        to: &PublicKey,
        msg: &Message,
        nonce: u64,
    ) -> Vec<u8> {
        let kind: Kind = msg.kind().name().parse().expect("DHT kinds are wire kinds");
        wire::seal(
            signer,
            network,
            kind,
            Audience::Node(to.node_id()),
            &msg.encode(),
            streembit_agent::clock::Clock::system().wall(),
            nonce,
        )
        .expect("seal")
    }

    /// Sends each envelope on its own stream, `parallel` at a time, and
    /// returns what became of each, in order.
    pub fn send_all(
        &self,
        conn: &Connection,
        envelopes: Vec<Vec<u8>>,
        parallel: usize,
    ) -> Vec<Answer> {
        self.rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
            let mut tasks = Vec::with_capacity(envelopes.len());
            for env in envelopes {
                let conn = conn.clone();
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                tasks.push(tokio::spawn(async move {
                    let _permit = permit;
                    match request(&conn, &env, MAX_ANSWER, REQUEST_WAIT).await {
                        Ok(Some(bytes)) => Answer::Answered(bytes),
                        Ok(None) => Answer::Refused,
                        Err(e) => Answer::Failed(e.to_string()),
                    }
                }));
            }
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| Answer::Failed(e.to_string())));
            }
            out
        })
    }

    /// Seals a NAT-traversal request for `audience` (the agent it is sent
    /// to, or the peer a token is meant for), signed by this peer.
    pub fn seal_nat(&mut self, audience: &PublicKey, req: &NatRequest) -> Vec<u8> {
        self.sealer
            .seal(
                &self.key,
                Kind::Nat,
                Audience::Node(audience.node_id()),
                &nat_encode(req),
                streembit_agent::clock::Clock::system().wall(),
            )
            .expect("seal")
    }

    /// Opens the agent's answer to a NAT-traversal request.
    pub fn open_nat_answer(&mut self, bytes: &[u8]) -> Option<NatAnswer> {
        let opened = self
            .opener
            .open(bytes, streembit_agent::clock::Clock::system().wall())
            .ok()?;
        nat_decode(opened.payload()).ok()
    }

    /// Answers, in the background, every DHT request `agent` sends on
    /// `conn` with `nodes`: a lying peer steering lookups at made-up
    /// contacts. Runs until the connection closes.
    pub fn answer_lookups_with(&self, conn: &Connection, agent: PublicKey, nodes: Vec<Contact>) {
        let conn = conn.clone();
        let key = self.key.clone();
        let network = self.network.clone();
        self.rt.spawn(async move {
            let mut sealer = Sealer::new(network.clone());
            let mut opener =
                Opener::new(network, key.node_id(), WireConfig::default(), UnixMillis(0));
            while let Ok((mut send, mut recv)) = conn.quic().accept_bi().await {
                let Ok(Some(bytes)) = read_frame(&mut recv, MAX_ANSWER).await else {
                    continue;
                };
                let now = streembit_agent::clock::Clock::system().wall();
                let Ok(opened) = opener.open(&bytes, now) else {
                    continue;
                };
                let asked = MessageKind::from_name(opened.kind().name())
                    .and_then(|k| Message::decode(k, opened.payload()).ok());
                let reply = match asked {
                    Some(Message::FindNode { rid, .. }) => Message::Nodes {
                        rid,
                        nodes: nodes.clone(),
                    },
                    Some(Message::FindValue { rid, .. }) => Message::Value {
                        rid,
                        record: None,
                        nodes: nodes.clone(),
                    },
                    Some(Message::Ping { rid }) => Message::Pong { rid },
                    _ => continue,
                };
                let kind: Kind = reply
                    .kind()
                    .name()
                    .parse()
                    .expect("DHT kinds are wire kinds");
                let audience = Audience::Node(agent.node_id());
                if let Ok(env) = sealer.seal(&key, kind, audience, &reply.encode(), now) {
                    let _ = write_frame(&mut send, &env).await;
                    let _ = send.finish();
                }
            }
        });
    }

    /// Where this peer's endpoint is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().expect("bound")
    }

    /// Opens an answer from the agent and decodes its DHT message.
    pub fn open_answer(&mut self, bytes: &[u8]) -> Option<Message> {
        let opened = self
            .opener
            .open(bytes, streembit_agent::clock::Clock::system().wall())
            .ok()?;
        let kind = MessageKind::from_name(opened.kind().name())?;
        Message::decode(kind, opened.payload()).ok()
    }

    /// Captures `n` QUIC Initial datagrams of dials to `to`, each a fresh
    /// ClientHello under its own connection id, by dialing a UDP socket
    /// that never answers. Replayed from many source ports, each one is a
    /// new handshake for the server to start, at no cost to the sender.
    pub fn capture_initials(&self, to: &PublicKey, n: usize) -> Vec<Vec<u8>> {
        self.rt.block_on(async {
            let sink = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind sink");
            let addr = sink.local_addr().expect("sink addr");
            let mut out = Vec::with_capacity(n);
            let mut buf = vec![0u8; 4096];
            // Every dial stays pending until the end: a dropped one would
            // send a CONNECTION_CLOSE to the sink, which is no attempt.
            let mut pending = Vec::with_capacity(n);
            let mut seen = std::collections::HashSet::new();
            while out.len() < n {
                let mut dial = Box::pin(self.endpoint.dial(to, addr));
                tokio::select! {
                    r = sink.recv(&mut buf) => {
                        // Skip a retransmission of an earlier dial's Initial.
                        if let Ok(len) = r {
                            if seen.insert(buf[..len].to_vec()) {
                                out.push(buf[..len].to_vec());
                            }
                        }
                    }
                    _ = &mut dial => {}
                }
                pending.push(dial);
            }
            drop(pending);
            out
        })
    }

    /// The network this peer speaks.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Closes the endpoint.
    pub fn close(&self) {
        self.endpoint.close(0, "done");
    }
}

/// A valid peer record for `owner`, sequence `seq`, one address.
pub fn peer_record(owner: &Keypair, network: &NetworkId, seq: u64) -> Vec<u8> {
    PeerRecord {
        seq,
        ttl_secs: 3600,
        addrs: Addrs::new(&["127.0.0.1:9"]).expect("addr"),
    }
    .seal(
        owner,
        network,
        streembit_agent::clock::Clock::system().wall(),
        seq,
    )
    .expect("seal record")
}

/// A signed `peer_record` envelope padded past the store's 1,024-byte
/// limit (the payload is a byte string: it would not verify as a record
/// either, but size is checked first).
pub fn oversize_record(owner: &Keypair, network: &NetworkId) -> Vec<u8> {
    let mut payload = Vec::new();
    ciborium::into_writer(&ciborium::Value::Bytes(vec![0x55; 2000]), &mut payload).expect("cbor");
    wire::seal(
        owner,
        network,
        Kind::PeerRecord,
        Audience::Anyone,
        &payload,
        streembit_agent::clock::Clock::system().wall(),
        1,
    )
    .expect("seal")
}

/// Sends `initials` to `target` from `sockets` UDP sockets until `stop`
/// is set, at most `per_sec` datagrams a second; returns how many were
/// sent. Datagram t is initial t mod I from socket (t / I) mod S. A QUIC
/// server knows an attempt by its destination connection id, so the first
/// I datagrams are I distinct connection attempts; after that they repeat
/// (retransmissions, as far as the server can tell). `warm` is told once
/// `warmup` were sent.
pub fn flood(
    target: SocketAddr,
    initials: &[Vec<u8>],
    sockets: usize,
    per_sec: u64,
    stop: &std::sync::atomic::AtomicBool,
    warmup: u64,
    warm: std::sync::mpsc::Sender<()>,
) -> u64 {
    let socks: Vec<std::net::UdpSocket> = (0..sockets.max(1))
        .filter_map(|_| std::net::UdpSocket::bind("127.0.0.1:0").ok())
        .collect();
    if socks.is_empty() || initials.is_empty() {
        return 0;
    }
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = sent as usize;
        let pkt = &initials[t % initials.len()];
        let sock = &socks[(t / initials.len()) % socks.len()];
        if sock.send_to(pkt, target).is_ok() {
            sent += 1;
            if sent == warmup {
                let _ = warm.send(());
            }
        }
        // Pacing, not synchronisation: hold the rate at `per_sec`.
        let due = Duration::from_secs_f64(sent as f64 / per_sec.max(1) as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    sent
}

/// The agent under attack: in `dir`, on the private network `acme` whose
/// allowlist is `allow` plus the agent's own key (made first, so the
/// config can name it), logging at `warn` (what is measured comes from its
/// metrics and the peer's answers, not from its log).
pub fn private_agent(dir: &Path, allow: &[String]) -> AgentProcess {
    std::fs::create_dir_all(dir).expect("dir");
    let out = std::process::Command::new(binary())
        .arg("keygen")
        .current_dir(dir)
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("keygen");
    let me = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut keys: Vec<String> = allow.iter().map(|k| format!("\"{k}\"")).collect();
    keys.push(format!("\"{me}\""));
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nnetwork = \"acme\"\nallowlist = [{}]\n",
        keys.join(", ")
    );
    AgentProcess::builder(dir, &cfg).log("warn").spawn()
}
