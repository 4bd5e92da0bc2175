//! [`Nat`]: this node's side of every NAT-traversal exchange, as the one
//! asking and as the one answering (observer, dial-back tester, relay,
//! relayed target).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};

use super::protocol::{decode, encode, NatAnswer, NatRequest};
use super::{NatConfig, Reachability};
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::node::connections::Connections;
use crate::node::dial_budget::DialBudget;
use crate::node::revocation_sync::RevocationSync;
use crate::node::rpc::{self, Input};
use crate::node::time_sync::TimeSync;
use crate::node::NodeError;
use crate::transport::framing::request;
use crate::transport::socket::{is_virtual, Path};
use crate::transport::{Connection, Endpoint};
use crate::wire::{Kind, Session};

/// A dial-back's own handshake may take this long.
const DIAL_BACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Dial-backs this node runs for others at once, and dial-back tests it
/// arranges at once (each asks a third peer and waits for it).
const MAX_DIALS: usize = 4;
const MAX_ARRANGING: usize = 8;
/// Hole-punching probes the target of a relayed session sends, and their
/// spacing: they cover the dialer's first handshake attempts.
const PUNCHES: u32 = 12;
const PUNCH_SPACING: Duration = Duration::from_millis(250);
/// After this node has had A dial C for C's test, C dialing A does not
/// count for A's test for this long: A's packets to C opened A's NAT
/// towards C (unreplied UDP mappings live 30 s on Linux), and a dial
/// riding on that mapping proves nothing.
const REVERSE_DIAL_QUARANTINE: Duration = Duration::from_secs(40);
/// Reservations a relay holds for peers at one IP address.
const RESERVATIONS_PER_IP: usize = 4;
/// Application close code: a dial-back test is done.
pub(crate) const CLOSE_DIAL_BACK: u32 = 5;

/// Counters of NAT traversal (monotonic unless noted).
#[derive(Debug, Default)]
pub(crate) struct NatCounters {
    /// Dial-back outcomes of our own tests: reachable.
    pub dial_back_reachable: AtomicU64,
    /// … unreachable.
    pub dial_back_unreachable: AtomicU64,
    /// Dial-backs we ran for others.
    pub dials_for_others: AtomicU64,
    /// Relayed connections we dialed.
    pub relayed_dials: AtomicU64,
    /// Relayed dials that failed.
    pub relayed_dial_failures: AtomicU64,
    /// Relayed connections upgraded to a hole-punched direct one.
    pub holepunch_direct: AtomicU64,
    /// Hole-punching attempts that failed (the connection stays relayed).
    pub holepunch_failed: AtomicU64,
    /// Relayed sessions announced to us as a target.
    pub incoming_sessions: AtomicU64,
    /// Requests refused, as a relay or otherwise, by the error code
    /// answered (`undecodable` when none could be): a fixed set.
    pub refused: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl NatCounters {
    fn refuse(&self, code: &str) {
        if let Ok(mut by_code) = self.refused.lock() {
            *by_code.entry(code.to_owned()).or_default() += 1;
        }
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// This node's NAT traversal: shared by the node loop (serving `nat`
/// streams), the dialer and the reachability task.
pub(crate) struct Nat {
    session: Session,
    pub(super) cfg: NatConfig,
    pub(super) endpoint: Arc<Endpoint>,
    pub(crate) conns: Connections,
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(super) clock: Clock,
    time: Arc<TimeSync>,
    revocations: Arc<RevocationSync>,
    /// As a relay: who holds a reservation, on which connection.
    reservations: Mutex<HashMap<PublicKey, Connection>>,
    /// Behind NAT: the relays holding a reservation for us.
    pub(super) relays: Mutex<Vec<(PublicKey, SocketAddr)>>,
    pub(super) state: Mutex<Reachability>,
    dials: Arc<Semaphore>,
    arranging: Arc<Semaphore>,
    /// Dial-backs this node arranged: (dialer, dialed) and when.
    arranged: Mutex<HashMap<(PublicKey, PublicKey), Instant>>,
    /// Dials made for others, per address: a requester can sign a token
    /// for any address in its own name, so this bounds what it can aim.
    dialed_for_others: Mutex<DialBudget>,
    pub(super) counters: NatCounters,
}

impl Nat {
    /// NAT traversal for the node whose exchanges `session` signs and
    /// opens.
    pub(crate) fn new(
        session: Session,
        cfg: NatConfig,
        conns: Connections,
        inputs: mpsc::Sender<Input>,
        clock: Clock,
        time: Arc<TimeSync>,
        revocations: Arc<RevocationSync>,
    ) -> Self {
        Self {
            session,
            clock,
            time,
            revocations,
            cfg,
            endpoint: conns.endpoint().clone(),
            conns,
            inputs,
            reservations: Mutex::new(HashMap::new()),
            relays: Mutex::new(Vec::new()),
            state: Mutex::new(Reachability::Unknown),
            dials: Arc::new(Semaphore::new(MAX_DIALS)),
            arranging: Arc::new(Semaphore::new(MAX_ARRANGING)),
            arranged: Mutex::new(HashMap::new()),
            dialed_for_others: Mutex::new(DialBudget::default()),
            counters: NatCounters::default(),
        }
    }

    /// The node's time exchange (every connection is a peer to ask).
    pub(crate) fn time(&self) -> &Arc<TimeSync> {
        &self.time
    }

    /// The revocation exchange (served on the same connections).
    pub(crate) fn revocations(&self) -> &Arc<RevocationSync> {
        &self.revocations
    }

    /// What this node found out about itself.
    pub(crate) fn reachability(&self) -> Reachability {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The relays holding a reservation for us.
    pub(crate) fn relays(&self) -> Vec<(PublicKey, SocketAddr)> {
        self.relays.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The live connection `key` holds its reservation here on.
    pub(super) fn reservation(&self, key: &PublicKey) -> Option<Connection> {
        self.reservations.lock().ok().and_then(|held| {
            held.get(key)
                .filter(|c| c.quic().close_reason().is_none())
                .cloned()
        })
    }

    /// Peers holding a reservation here (as a relay).
    pub(crate) fn reservations(&self) -> usize {
        self.reservations.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Sends `req` to the peer of `conn` and waits for its answer, which
    /// the peer must have signed.
    pub(crate) async fn ask(
        &self,
        conn: &Connection,
        req: &NatRequest,
        timeout: Duration,
    ) -> Result<NatAnswer, NodeError> {
        let peer = conn.peer().key();
        let env = self.session.seal(Kind::Nat, &peer, &encode(req))?;
        let bytes = request(conn, &env, self.session.max_frame(), timeout)
            .await?
            .ok_or_else(|| {
                NodeError::Transport(format!("{peer} closed the stream without answering"))
            })?;
        let answer = self
            .session
            .open_from(&peer, &bytes)?
            .expect(Kind::NatAnswer)?;
        decode(answer.payload())
    }

    /// Answers one `nat` stream a peer opened on `conn`.
    pub(crate) async fn serve(
        self: Arc<Self>,
        conn: Connection,
        first: Vec<u8>,
        reply: quinn::SendStream,
    ) {
        let peer = conn.peer().key();
        let opened = self
            .session
            .open_from(&peer, &first)
            .and_then(|f| f.expect(Kind::Nat))
            .map_err(NodeError::from);
        let req = match opened.and_then(|f| decode::<NatRequest>(f.payload())) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "nat request refused");
                self.counters.refuse("undecodable");
                return;
            }
        };
        let answer = self.handle(&conn, req).await;
        if let NatAnswer::Error { code, .. } = &answer {
            self.counters.refuse(code);
        }
        match self.session.seal(Kind::NatAnswer, &peer, &encode(&answer)) {
            Ok(env) => rpc::answer(reply, env).await,
            Err(e) => tracing::warn!(error = %e, "cannot seal a nat answer"),
        }
    }

    async fn handle(self: &Arc<Self>, conn: &Connection, req: NatRequest) -> NatAnswer {
        let seen = conn.peer().addr();
        let relayed = is_virtual(&seen);
        match req {
            NatRequest::Observe if relayed => NatAnswer::error("bad_request", "relayed peer"),
            NatRequest::Observe => NatAnswer::Observed {
                addr: seen.to_string(),
            },
            NatRequest::DialBack {
                addr,
                exclude,
                token,
            } => self.dial_back(conn, &addr, &exclude, token).await,
            NatRequest::Dial { peer, addr, token } => {
                self.dial_for(conn, &peer, &addr, &token).await
            }
            NatRequest::Reserve => self.reserve(conn),
            NatRequest::Connect { target } => self.connect(conn, &target).await,
            NatRequest::Incoming { sid, peer, addr } => self.incoming(conn, sid, &peer, &addr),
        }
    }

    /// A third peer dials the requester at `addr`: only a dial that did
    /// not ride on an existing NAT mapping proves reachability.
    async fn dial_back(
        &self,
        conn: &Connection,
        addr: &str,
        exclude: &[String],
        token: String,
    ) -> NatAnswer {
        let requester = conn.peer();
        let Ok(target) = addr.parse::<SocketAddr>() else {
            return NatAnswer::error("bad_request", "not an ip:port address");
        };
        if target.ip() != requester.addr().ip() || is_virtual(&target) {
            // Otherwise anyone could have our peers dial a victim.
            return NatAnswer::error("bad_request", "the address must have the IP we see you at");
        }
        let Ok(_permit) = self.arranging.clone().try_acquire_owned() else {
            return NatAnswer::error("busy", "too many dial-back tests at once");
        };
        let thirds = self.conns.live().into_iter().filter(|c| {
            let key = c.peer().key();
            key != requester.key()
                && self.endpoint.path_of(c) == Path::Direct
                && !exclude.iter().take(64).any(|e| *e == key.to_string())
        });
        let req = NatRequest::Dial {
            peer: requester.key().to_string(),
            addr: target.to_string(),
            token,
        };
        for third in thirds.take(2) {
            if !self.arrange(third.peer().key(), requester.key()) {
                continue;
            }
            if let Ok(NatAnswer::Dialed { reachable }) =
                self.ask(&third, &req, DIAL_BACK_TIMEOUT * 2).await
            {
                return NatAnswer::DialBack {
                    reachable: Some(reachable),
                    by: Some(third.peer().addr().to_string()),
                };
            }
        }
        NatAnswer::DialBack {
            reachable: None,
            by: None,
        }
    }

    /// Records that `dialer` will dial `dialed`, unless `dialed` dialed
    /// `dialer` too recently for the test to mean anything.
    fn arrange(&self, dialer: PublicKey, dialed: PublicKey) -> bool {
        let Ok(mut arranged) = self.arranged.lock() else {
            return false;
        };
        let now = self.clock.instant();
        arranged.retain(|_, t| now.saturating_duration_since(*t) < REVERSE_DIAL_QUARANTINE);
        if arranged.contains_key(&(dialed, dialer)) {
            return false;
        }
        arranged.insert((dialer, dialed), now);
        true
    }

    /// The token a `dial_back` carries (see `NatRequest::Dial`): the
    /// `dial` the third peer will be sent, sealed by us for `helper`.
    pub(super) fn dial_token(&self, helper: &PublicKey, addr: SocketAddr) -> String {
        let dial = NatRequest::Dial {
            peer: self.endpoint.key().to_string(),
            addr: addr.to_string(),
            token: String::new(),
        };
        // A seal that fails leaves the token empty: the test then finds no
        // dialer, as with an old peer.
        self.session
            .seal(Kind::Nat, helper, &encode(&dial))
            .map(hex::encode)
            .unwrap_or_default()
    }

    /// Dials `peer` at `addr` with a fresh handshake, for a dial-back that
    /// the peer of `conn` arranged; only with `peer`'s own token for it.
    async fn dial_for(&self, conn: &Connection, peer: &str, addr: &str, token: &str) -> NatAnswer {
        let (Ok(peer), Ok(addr)) = (peer.parse::<PublicKey>(), addr.parse::<SocketAddr>()) else {
            return NatAnswer::error("bad_request", "bad key or address");
        };
        let signed = hex::decode(token)
            .ok()
            .and_then(|bytes| {
                self.session
                    .open_from_to(&peer, conn.peer().key().node_id(), &bytes)
                    .ok()
            })
            .and_then(|f| f.expect(Kind::Nat).ok())
            .and_then(|f| decode::<NatRequest>(f.payload()).ok());
        let asked = matches!(signed, Some(NatRequest::Dial { peer: p, addr: a, .. })
            if p == peer.to_string() && a.parse::<SocketAddr>() == Ok(addr));
        if !asked {
            return NatAnswer::error(
                "forbidden",
                "a dial needs the target's own signed request for that address",
            );
        }
        // A token in one's own name can name any address: at most a few
        // keys and dials per address, as for contacts a lookup heard of.
        let now = self.clock.instant();
        let within = self
            .dialed_for_others
            .lock()
            .is_ok_and(|mut b| b.allow(addr, &peer, now));
        if !within {
            return NatAnswer::error("busy", "enough dials to that address for now");
        }
        let Ok(_permit) = self.dials.clone().try_acquire_owned() else {
            return NatAnswer::error("busy", "too many dial-backs at once");
        };
        bump(&self.counters.dials_for_others);
        let dialed = tokio::time::timeout(DIAL_BACK_TIMEOUT, self.endpoint.dial(&peer, addr)).await;
        let reachable = match dialed {
            Ok(Ok(c)) => {
                c.close(CLOSE_DIAL_BACK, "dial-back done");
                true
            }
            _ => false,
        };
        NatAnswer::Dialed { reachable }
    }

    /// As a relay: holds a reservation for the requester while `conn` lasts.
    fn reserve(self: &Arc<Self>, conn: &Connection) -> NatAnswer {
        let Some(limits) = &self.cfg.relay else {
            return NatAnswer::error("relay_disabled", "this node does not relay");
        };
        let peer = conn.peer();
        if is_virtual(&peer.addr()) {
            return NatAnswer::error("bad_request", "no reservations over a relay");
        }
        {
            let Ok(mut held) = self.reservations.lock() else {
                return NatAnswer::error("busy", "relay state unavailable");
            };
            held.retain(|_, c| c.quic().close_reason().is_none());
            if !held.contains_key(&peer.key()) && held.len() >= limits.max_sessions {
                return NatAnswer::error("busy", "this relay holds as many reservations as it may");
            }
            // Keys cost nothing: a few reservations per address, so one
            // machine cannot take them all.
            let from_there = held
                .iter()
                .filter(|(k, c)| {
                    **k != peer.key() && c.quic().remote_address().ip() == peer.addr().ip()
                })
                .count();
            if from_there >= RESERVATIONS_PER_IP {
                return NatAnswer::error(
                    "busy",
                    "as many reservations from this address as it may hold",
                );
            }
            held.insert(peer.key(), conn.clone());
        }
        let me = self.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.quic().closed().await;
            let key = conn.peer().key();
            if let Ok(mut held) = me.reservations.lock() {
                if held
                    .get(&key)
                    .is_some_and(|c| c.quic().stable_id() == conn.quic().stable_id())
                {
                    held.remove(&key);
                }
            }
            if let Some(f) = me.endpoint.paths().forwarder() {
                f.close_peer(&key);
            }
            tracing::debug!(peer = %key, "relay reservation ended");
        });
        tracing::info!(peer = %peer.key(), seen = %peer.addr(), "relay reservation held");
        NatAnswer::Reserved {
            addr: peer.addr().to_string(),
        }
    }

    /// As a relay: opens a session from the requester to `target`.
    async fn connect(&self, conn: &Connection, target: &str) -> NatAnswer {
        let Some(forwarder) = self.endpoint.paths().forwarder() else {
            return NatAnswer::error("relay_disabled", "this node does not relay");
        };
        let client = conn.peer();
        let Ok(target) = target.parse::<PublicKey>() else {
            return NatAnswer::error("bad_request", "bad target key");
        };
        if is_virtual(&client.addr()) {
            return NatAnswer::error("bad_request", "no relaying over a relay");
        }
        let Some(reservation) = self.reservation(&target) else {
            return NatAnswer::error(
                "no_reservation",
                format!("{target} holds no reservation here"),
            );
        };
        let target_addr = reservation.quic().remote_address();
        let sid = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        if let Err(r) = forwarder.open(
            sid,
            (client.key(), client.addr()),
            (target, target_addr),
            self.clock.instant(),
        ) {
            return NatAnswer::error("busy", format!("relay limit reached ({})", r.reason()));
        }
        let announce = NatRequest::Incoming {
            sid,
            peer: client.key().to_string(),
            addr: client.addr().to_string(),
        };
        match self.ask(&reservation, &announce, DIAL_BACK_TIMEOUT).await {
            Ok(NatAnswer::Ok) => NatAnswer::Session {
                sid,
                addr: target_addr.to_string(),
            },
            other => {
                forwarder.close(sid);
                let why = match other {
                    Ok(NatAnswer::Error { code, .. }) => code,
                    Ok(_) => "unexpected answer".to_owned(),
                    Err(e) => e.to_string(),
                };
                NatAnswer::error(
                    "unreachable",
                    format!("{target} did not take the session: {why}"),
                )
            }
        }
    }

    /// As the target of a relayed session: accept its frames, and punch
    /// our NAT towards the dialer so that its direct dial can get in.
    fn incoming(&self, conn: &Connection, sid: u64, peer: &str, addr: &str) -> NatAnswer {
        let relay = conn.peer().key();
        let ours = self
            .relays
            .lock()
            .is_ok_and(|r| r.iter().any(|(k, _)| *k == relay));
        if !ours {
            return NatAnswer::error("not_my_relay", "no reservation of ours at this peer");
        }
        match peer.parse::<PublicKey>() {
            Ok(k)
                if self
                    .endpoint
                    .membership()
                    .admits(&k, self.clock.wall())
                    .is_admitted() => {}
            Ok(_) => return NatAnswer::error("not_allowed", "not a member of our network"),
            Err(_) => return NatAnswer::error("bad_request", "bad peer key"),
        }
        let paths = self.endpoint.paths().clone();
        paths.add_session(conn.quic().remote_address(), sid);
        bump(&self.counters.incoming_sessions);
        if let Ok(to) = addr.parse::<SocketAddr>() {
            if !is_virtual(&to) {
                tokio::spawn(async move { paths.punch(to, PUNCHES, PUNCH_SPACING).await });
            }
        }
        NatAnswer::Ok
    }
}
