//! The relay's forwarding table: which relayed sessions exist, between
//! which two UDP addresses, and how much each may send.
//!
//! A session is opened by the node's NAT service once both ends have proven
//! their keys to the relay over QUIC (the client asked to reach a target
//! holding a reservation). From then on the socket forwards every
//! `relay` frame of that session from one end to the other without looking
//! inside: the payload is a QUIC packet of the two ends' own end-to-end
//! connection, ciphertext to the relay.
//!
//! What a remote peer can make the relay store or send is bounded here:
//! sessions in all, sessions per key, bytes per second per session (a
//! token bucket), and an idle timeout. Every forwarded and every refused
//! datagram is counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::identity::PublicKey;

/// Limits of a relay.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Relayed sessions at once, all clients together.
    pub max_sessions: usize,
    /// Sessions one key may take part in at once (as client or target).
    pub max_sessions_per_peer: usize,
    /// Sustained bytes per second per session, both directions together.
    pub bytes_per_sec: u64,
    /// Burst allowance per session, in bytes.
    pub burst_bytes: u64,
    /// A session without a datagram *from each end* for this long is
    /// forgotten (frames from one side alone do not keep it alive).
    pub idle: Duration,
    /// A session whose target never sent anything is forgotten after this
    /// long: a real handshake answers in well under it.
    pub setup: Duration,
    /// Sessions one client may hold to one target at once.
    pub max_sessions_per_pair: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        // 64 sessions of 256 KiB/s keep a Pi-class relay's uplink and
        // table small; a relayed gateway's telemetry needs a few KiB/s.
        Self {
            max_sessions: 64,
            max_sessions_per_peer: 8,
            bytes_per_sec: 256 * 1024,
            burst_bytes: 256 * 1024,
            idle: Duration::from_secs(120),
            setup: Duration::from_secs(15),
            max_sessions_per_pair: 2,
        }
    }
}

/// Why a session could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRefusal {
    /// The relay holds `max_sessions` already.
    Full,
    /// One of the two keys holds `max_sessions_per_peer` already, or the
    /// client holds `max_sessions_per_pair` to this target.
    PeerLimit,
}

impl RelayRefusal {
    /// Metric label.
    pub fn reason(self) -> &'static str {
        match self {
            RelayRefusal::Full => "full",
            RelayRefusal::PeerLimit => "peer_limit",
        }
    }
}

struct Session {
    ends: [(PublicKey, SocketAddr); 2],
    tokens: f64,
    refilled: Instant,
    /// The last datagram from each end (both start at the opening).
    last_from: [Instant; 2],
    /// Whether the target (end 1) has sent anything yet.
    target_spoke: bool,
}

impl Session {
    /// Alive while both ends keep sending: junk from one end alone does
    /// not hold a session (and a target's slot) for ever.
    fn alive(&self, now: Instant, limits: &RelayLimits) -> bool {
        let quiet = |i: usize| now.saturating_duration_since(self.last_from[i]);
        let limit = if self.target_spoke {
            limits.idle
        } else {
            limits.setup
        };
        quiet(0) < limits.idle && quiet(1) < limit
    }
}

/// Counters of the relay (monotonic).
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Datagrams forwarded.
    pub packets: AtomicU64,
    /// Bytes forwarded (relay frames, header included).
    pub bytes: AtomicU64,
    /// Datagrams dropped: over the session's rate.
    pub dropped_rate: AtomicU64,
    /// Datagrams dropped: no such session.
    pub dropped_unknown: AtomicU64,
    /// Datagrams dropped: from an address that is neither end.
    pub dropped_wrong_source: AtomicU64,
    /// Sessions opened.
    pub opened: AtomicU64,
    /// Sessions refused: relay full.
    pub refused_full: AtomicU64,
    /// Sessions refused: per-key limit.
    pub refused_peer_limit: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The forwarding table of a node with `relay = true`.
pub struct Forwarder {
    limits: RelayLimits,
    sessions: Mutex<HashMap<u64, Session>>,
    counters: RelayCounters,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field(
                "sessions",
                &self.sessions.lock().map(|m| m.len()).unwrap_or(0),
            )
            .finish()
    }
}

impl Forwarder {
    /// An empty table with `limits`.
    pub fn new(limits: RelayLimits) -> Self {
        Self {
            limits,
            sessions: Mutex::new(HashMap::new()),
            counters: RelayCounters::default(),
        }
    }

    /// Opens session `sid` between `client` and `target` (each a proven
    /// key and the address its QUIC connection to us comes from).
    pub fn open(
        &self,
        sid: u64,
        client: (PublicKey, SocketAddr),
        target: (PublicKey, SocketAddr),
        now: Instant,
    ) -> Result<(), RelayRefusal> {
        let Ok(mut map) = self.sessions.lock() else {
            return Err(RelayRefusal::Full);
        };
        let limits = &self.limits;
        map.retain(|_, s| s.alive(now, limits));
        let involved = |k: PublicKey| {
            map.values()
                .filter(|s| s.ends.iter().any(|e| e.0 == k))
                .count()
        };
        let pair = map
            .values()
            .filter(|s| s.ends[0].0 == client.0 && s.ends[1].0 == target.0)
            .count();
        let refusal = if map.len() >= self.limits.max_sessions {
            Some(RelayRefusal::Full)
        } else if involved(client.0) >= self.limits.max_sessions_per_peer
            || involved(target.0) >= self.limits.max_sessions_per_peer
            || pair >= self.limits.max_sessions_per_pair
        {
            Some(RelayRefusal::PeerLimit)
        } else {
            None
        };
        if let Some(r) = refusal {
            bump(match r {
                RelayRefusal::Full => &self.counters.refused_full,
                RelayRefusal::PeerLimit => &self.counters.refused_peer_limit,
            });
            return Err(r);
        }
        map.insert(
            sid,
            Session {
                ends: [client, target],
                tokens: self.limits.burst_bytes as f64,
                refilled: now,
                last_from: [now, now],
                target_spoke: false,
            },
        );
        bump(&self.counters.opened);
        Ok(())
    }

    /// Where a `len`-byte frame of session `sid` from `src` goes, or `None`
    /// when it is dropped (counted by reason).
    pub(crate) fn route(
        &self,
        src: SocketAddr,
        sid: u64,
        len: usize,
        now: Instant,
    ) -> Option<SocketAddr> {
        let mut map = self.sessions.lock().ok()?;
        let Some(s) = map.get_mut(&sid) else {
            bump(&self.counters.dropped_unknown);
            return None;
        };
        let (from, to) = if s.ends[0].1 == src {
            (0, s.ends[1].1)
        } else if s.ends[1].1 == src {
            (1, s.ends[0].1)
        } else {
            bump(&self.counters.dropped_wrong_source);
            return None;
        };
        if !s.alive(now, &self.limits) {
            map.remove(&sid);
            bump(&self.counters.dropped_unknown);
            return None;
        }
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.refilled = now;
        s.tokens = (s.tokens + elapsed * self.limits.bytes_per_sec as f64)
            .min(self.limits.burst_bytes as f64);
        if s.tokens < len as f64 {
            bump(&self.counters.dropped_rate);
            return None;
        }
        s.tokens -= len as f64;
        s.last_from[from] = now;
        s.target_spoke |= from == 1;
        bump(&self.counters.packets);
        self.counters.bytes.fetch_add(len as u64, Ordering::Relaxed);
        Some(to)
    }

    /// Forgets every session `key` takes part in (its connection to the
    /// relay closed, or it left the allowlist).
    pub fn close_peer(&self, key: &PublicKey) {
        if let Ok(mut map) = self.sessions.lock() {
            map.retain(|_, s| s.ends.iter().all(|e| e.0 != *key));
        }
    }

    /// Forgets session `sid`.
    pub fn close(&self, sid: u64) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(&sid);
        }
    }

    /// Sessions open now (idle ones are forgotten first: a relay is not
    /// told when the connection inside a session ends).
    pub fn sessions(&self, now: Instant) -> usize {
        self.sessions
            .lock()
            .map(|mut m| {
                m.retain(|_, s| s.alive(now, &self.limits));
                m.len()
            })
            .unwrap_or(0)
    }

    /// The counters.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// The limits.
    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn end(seed: u8, port: u16) -> (PublicKey, SocketAddr) {
        (
            Keypair::from_seed(&[seed; 32]).public(),
            SocketAddr::from(([192, 0, 2, seed], port)),
        )
    }

    #[test]
    fn frames_go_to_the_other_end_only() {
        let f = Forwarder::new(RelayLimits::default());
        let (a, b, stranger) = (end(1, 1000), end(2, 2000), end(3, 3000));
        let now = Instant::now();
        f.open(7, a, b, now).expect("open");
        assert_eq!(f.route(a.1, 7, 100, now), Some(b.1));
        assert_eq!(f.route(b.1, 7, 100, now), Some(a.1));
        assert_eq!(f.route(stranger.1, 7, 100, now), None);
        assert_eq!(f.route(a.1, 8, 100, now), None);
        let c = f.counters();
        assert_eq!(c.packets.load(Ordering::Relaxed), 2);
        assert_eq!(c.bytes.load(Ordering::Relaxed), 200);
        assert_eq!(c.dropped_wrong_source.load(Ordering::Relaxed), 1);
        assert_eq!(c.dropped_unknown.load(Ordering::Relaxed), 1);
        f.close_peer(&b.0);
        assert_eq!(f.sessions(now), 0);
        assert_eq!(f.route(a.1, 7, 100, now), None);
    }

    #[test]
    fn a_session_is_held_to_its_rate() {
        let limits = RelayLimits {
            bytes_per_sec: 1,
            burst_bytes: 3_000,
            ..RelayLimits::default()
        };
        let f = Forwarder::new(limits);
        let (a, b) = (end(1, 1000), end(2, 2000));
        let now = Instant::now();
        f.open(1, a, b, now).expect("open");
        let passed = (0..10)
            .filter(|_| f.route(a.1, 1, 1_000, now).is_some())
            .count();
        assert_eq!(passed, 3, "the burst, then nothing at 1 B/s");
        assert_eq!(f.counters().dropped_rate.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn sessions_are_capped_in_all_and_per_key() {
        let limits = RelayLimits {
            max_sessions: 3,
            max_sessions_per_peer: 2,
            ..RelayLimits::default()
        };
        let f = Forwarder::new(limits);
        let now = Instant::now();
        let target = end(9, 9000);
        assert!(f.open(1, end(1, 1), target, now).is_ok());
        assert!(f.open(2, end(2, 2), target, now).is_ok());
        assert_eq!(
            f.open(3, end(3, 3), target, now),
            Err(RelayRefusal::PeerLimit)
        );
        assert!(f.open(4, end(4, 4), end(5, 5), now).is_ok());
        assert_eq!(
            f.open(5, end(6, 6), end(7, 7), now),
            Err(RelayRefusal::Full)
        );
        // Idle sessions make room.
        let later = now + RelayLimits::default().idle + Duration::from_secs(1);
        assert!(f.open(6, end(6, 6), end(7, 7), later).is_ok());
        assert_eq!(f.sessions(later), 1);
    }

    /// A client flooding junk into sessions whose target never answers
    /// holds them only for `setup`, and at most two to one target: it
    /// cannot lock a target out of the relay.
    #[test]
    fn junk_from_one_end_does_not_hold_a_session() {
        let f = Forwarder::new(RelayLimits::default());
        let (squatter, target, honest) = (end(1, 1000), end(2, 2000), end(3, 3000));
        let now = Instant::now();
        assert!(f.open(1, squatter, target, now).is_ok());
        assert!(f.open(2, squatter, target, now).is_ok());
        assert_eq!(
            f.open(3, squatter, target, now),
            Err(RelayRefusal::PeerLimit),
            "two sessions per client and target"
        );
        // Junk every second from the squatter alone...
        let mut t = now;
        while t < now + RelayLimits::default().setup {
            let _ = f.route(squatter.1, 1, 100, t);
            t += Duration::from_secs(1);
        }
        // ...and past the setup time the sessions are gone.
        assert_eq!(f.sessions(t), 0);
        assert!(f.open(4, honest, target, t).is_ok());
        // A session both ends speak in lives on.
        let later = t + Duration::from_secs(30);
        assert!(f
            .route(honest.1, 4, 100, t + Duration::from_secs(1))
            .is_some());
        assert!(f
            .route(target.1, 4, 100, t + Duration::from_secs(2))
            .is_some());
        assert_eq!(f.sessions(later), 1);
    }
}
