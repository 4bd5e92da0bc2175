//! [`Session`]: one identity's point-to-point exchanges with its peers —
//! the sealer that signs what it sends and the opener that checks what it
//! receives — and [`FromPeer`], the proof that an envelope opened and was
//! signed by the peer the connection proved.
//!
//! Every request/answer protocol of the agent (the DHT, NAT traversal,
//! the device protocol on both sides) needs the same three steps: seal
//! for a peer's node id, open under the replay window, and refuse what is
//! not signed by the key the TLS handshake proved. They are written here
//! once, so a protocol cannot forget the last step: code past this point
//! takes a [`FromPeer`], which only [`Session::open_from`] makes.
//!
//! A session reads the time through a [`TimeSource`] (the agent's clock):
//! it stamps with the network's time, checks freshness against it, and
//! keeps its start floor (what it refuses as older than itself, across
//! restarts) in the network's time too, moving it when the node learns
//! its clock was off.
//!
//! What this module does not do: move bytes, or decide what a payload
//! means.

use std::sync::{Arc, Mutex};

use super::{Audience, Kind, NetworkId, Opened, Opener, Sealer, UnixMillis, WireConfig, WireError};
use crate::identity::{Keypair, NodeId, PublicKey};

/// Why an exchange failed in this layer, and whose fault it is.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer's envelope was refused (signature, network, freshness,
    /// replay, size, format): see [`WireError::reason`].
    #[error(transparent)]
    Refused(WireError),
    /// A valid envelope signed by someone other than the peer the
    /// connection proved: a relay of another node's message.
    #[error("signed by {got}, not by {expected}")]
    SenderMismatch {
        /// The key the connection proved.
        expected: Box<PublicKey>,
        /// The key that signed.
        got: Box<PublicKey>,
    },
    /// The peer sent another kind of message than the exchange expects.
    #[error("expected {expected}, got {got}")]
    UnexpectedKind {
        /// What the exchange expects.
        expected: Kind,
        /// What came.
        got: Kind,
    },
    /// Sealing failed on our side.
    #[error("cannot seal: {0}")]
    Seal(WireError),
    /// A lock was poisoned by a panic elsewhere (a bug here).
    #[error("session state unavailable")]
    Poisoned,
}

impl SessionError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Refused(e) => e.reason(),
            SessionError::SenderMismatch { .. } => "sender_mismatch",
            SessionError::UnexpectedKind { .. } => "unexpected_kind",
            SessionError::Seal(_) => "seal",
            SessionError::Poisoned => "poisoned",
        }
    }

    /// Our fault rather than the peer's.
    pub fn is_local(&self) -> bool {
        matches!(self, SessionError::Seal(_) | SessionError::Poisoned)
    }
}

/// An envelope that opened (signature, network, freshness, replay) and
/// was signed by the peer it was expected from. Only
/// [`Session::open_from`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromPeer(Opened);

impl FromPeer {
    /// The opened envelope.
    pub fn opened(&self) -> &Opened {
        &self.0
    }
    /// What it is.
    pub fn kind(&self) -> Kind {
        self.0.kind()
    }
    /// Its payload: one CBOR item.
    pub fn payload(&self) -> &[u8] {
        self.0.payload()
    }
    /// This envelope, if it is a `kind`.
    pub fn expect(self, kind: Kind) -> Result<Self, SessionError> {
        if self.0.kind() == kind {
            Ok(self)
        } else {
            Err(SessionError::UnexpectedKind {
                expected: kind,
                got: self.0.kind(),
            })
        }
    }
}

/// Where a session reads the time.
pub trait TimeSource: Send + Sync {
    /// The network's time: what envelopes are stamped with and checked
    /// against.
    fn network_now(&self) -> UnixMillis;
    /// How far the network's time is from the local clock, in ms.
    fn offset_ms(&self) -> i64;
}

/// One identity's sealer and opener on one network, shared by the tasks
/// of one protocol (its locks are held only for a seal or an open).
pub struct Session {
    key: Arc<Keypair>,
    sealer: Mutex<Sealer>,
    opener: Mutex<Opener>,
    max_frame: usize,
    time: Arc<dyn TimeSource>,
    /// The local clock when the session started: with the offset, the
    /// start floor in the network's time.
    started_local: i128,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key.public())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `key` on `network` with the receive limits of
    /// `wire`, starting now by `time`: envelopes stamped before now are
    /// refused (see [`Opener::new`]).
    pub fn new(
        key: Arc<Keypair>,
        network: NetworkId,
        wire: WireConfig,
        time: Arc<dyn TimeSource>,
    ) -> Self {
        let started = time.network_now();
        Self {
            max_frame: wire.max_envelope_bytes,
            opener: Mutex::new(Opener::new(network.clone(), key.node_id(), wire, started)),
            sealer: Mutex::new(Sealer::new(network)),
            started_local: i128::from(started.0) - i128::from(time.offset_ms()),
            time,
            key,
        }
    }

    /// The network's time, as this session stamps and checks it.
    pub fn now(&self) -> UnixMillis {
        self.time.network_now()
    }

    /// The identity this session signs with.
    pub fn key(&self) -> &Arc<Keypair> {
        &self.key
    }

    /// The cap on one envelope, also the cap on one frame of our protocols.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Seals `payload` as `kind` from our key for `to` alone.
    pub fn seal(
        &self,
        kind: Kind,
        to: &PublicKey,
        payload: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        self.seal_as(&self.key, kind, to, payload)
    }

    /// Seals with `signer` instead of our key: a gateway answers for the
    /// devices it hosts, under one nonce sequence.
    pub fn seal_as(
        &self,
        signer: &Keypair,
        kind: Kind,
        to: &PublicKey,
        payload: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        let now = self.now();
        self.sealer
            .lock()
            .map_err(|_| SessionError::Poisoned)?
            .seal(signer, kind, Audience::Node(to.node_id()), payload, now)
            .map_err(SessionError::Seal)
    }

    /// Opens an envelope addressed to us that `expected` (the peer the
    /// connection proved) must have signed.
    pub fn open_from(&self, expected: &PublicKey, bytes: &[u8]) -> Result<FromPeer, SessionError> {
        self.open_from_to(expected, self.key.node_id(), bytes)
    }

    /// [`Session::open_from`] for an envelope addressed to `to` rather
    /// than to us: a gateway opens requests to each device it hosts, with
    /// one replay window (nonces are per sender, not per audience).
    pub fn open_from_to(
        &self,
        expected: &PublicKey,
        to: NodeId,
        bytes: &[u8],
    ) -> Result<FromPeer, SessionError> {
        let now = self.now();
        let floor = self.started_local + i128::from(self.time.offset_ms());
        let floor = UnixMillis(u64::try_from(floor.max(0)).unwrap_or(u64::MAX));
        let opened = {
            let mut opener = self.opener.lock().map_err(|_| SessionError::Poisoned)?;
            opener.set_floor(floor);
            opener.open_to(bytes, now, to)
        }
        .map_err(SessionError::Refused)?;
        if opened.sender() != *expected {
            return Err(SessionError::SenderMismatch {
                expected: Box::new(*expected),
                got: Box::new(opened.sender()),
            });
        }
        Ok(FromPeer(opened))
    }

    /// Entries in the replay window, for metrics.
    pub fn replay_entries(&self) -> usize {
        self.opener
            .lock()
            .map(|o| o.replay_window().len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use super::*;

    /// A settable clock for sessions under test.
    #[derive(Default)]
    struct Manual {
        local: AtomicU64,
        offset: AtomicI64,
    }

    impl TimeSource for Manual {
        fn network_now(&self) -> UnixMillis {
            let local = self.local.load(Ordering::Relaxed) as i64;
            UnixMillis((local + self.offset.load(Ordering::Relaxed)).max(0) as u64)
        }
        fn offset_ms(&self) -> i64 {
            self.offset.load(Ordering::Relaxed)
        }
    }

    fn manual(local: u64) -> Arc<Manual> {
        let m = Arc::new(Manual::default());
        m.local.store(local, Ordering::Relaxed);
        m
    }

    fn session(seed: u8, time: Arc<Manual>) -> Session {
        Session::new(
            Arc::new(Keypair::from_seed(&[seed; 32])),
            NetworkId::public(),
            WireConfig::default(),
            time,
        )
    }

    #[test]
    fn only_the_expected_peer_opens_and_a_replay_is_refused() {
        let time = manual(2_000_000);
        let (a, b, c) = (
            session(1, time.clone()),
            session(2, time.clone()),
            session(3, time.clone()),
        );
        time.local.store(2_000_100, Ordering::Relaxed);
        let b_key = b.key().public();
        let env = a.seal(Kind::Ping, &b_key, b"\xa0").expect("seal");
        let from_a = b.open_from(&a.key().public(), &env).expect("from a");
        assert_eq!(from_a.kind(), Kind::Ping);
        assert_eq!(
            from_a.clone().expect(Kind::Pong),
            Err(SessionError::UnexpectedKind {
                expected: Kind::Pong,
                got: Kind::Ping
            })
        );
        // The same bytes again: a replay.
        let again = b.open_from(&a.key().public(), &env);
        assert_eq!(again.map_err(|e| e.reason()), Err("replayed"));
        // Signed by a, presented as c's: refused, and not a local fault.
        let env = a.seal(Kind::Ping, &b_key, b"\xa0").expect("seal");
        let err = b.open_from(&c.key().public(), &env).expect_err("not c's");
        assert_eq!(err.reason(), "sender_mismatch");
        assert!(!err.is_local());
        // Sealed for b, opened by c: the audience differs.
        let env = a.seal(Kind::Ping, &b_key, b"\xa0").expect("seal");
        let err = c.open_from(&a.key().public(), &env).expect_err("for b");
        assert_eq!(err.reason(), "bad_signature");
        assert_eq!(b.replay_entries(), 2);
    }

    /// A node whose clock is two hours slow: its own start floor is two
    /// hours in the past of the network's time. Once it learns the offset,
    /// the floor moves with it, so a peer's envelopes are judged in the
    /// network's time: fresh ones open, ones stamped before the node's
    /// start (in the network's time) are refused.
    #[test]
    fn the_start_floor_moves_into_the_network_time_with_the_offset() {
        let net_time = 10_000_000_000u64;
        let slow = manual(net_time - 7_200_000);
        let me = session(1, slow.clone());
        let peer = session(2, manual(net_time + 1_000));
        let to_me = me.key().public();
        let from = peer.key().public();
        // Before the offset is known the peer's envelopes are stale.
        let env = peer.seal(Kind::Ping, &to_me, b"\xa0").expect("seal");
        assert_eq!(
            me.open_from(&from, &env).map_err(|e| e.reason()),
            Err("stale")
        );
        // The time sync sets the offset: the same kind of envelope opens.
        slow.offset.store(7_200_000, Ordering::Relaxed);
        let env = peer.seal(Kind::Ping, &to_me, b"\xa0").expect("seal");
        assert!(me.open_from(&from, &env).is_ok());
        // One stamped before the node's start, in the network's time: refused.
        let mut old = Sealer::with_nonce(NetworkId::public(), 99);
        let before = old
            .seal(
                peer.key(),
                Kind::Ping,
                Audience::Node(to_me.node_id()),
                b"\xa0",
                UnixMillis(net_time - 10),
            )
            .expect("seal");
        assert_eq!(
            me.open_from(&from, &before).map_err(|e| e.reason()),
            Err("replayed")
        );
    }

    /// The time exchange opens whatever the receiver's clock says.
    #[test]
    fn a_time_request_opens_on_a_wrong_clock() {
        let me = session(1, manual(5_000_000_000));
        let peer = session(2, manual(9_000_000_000));
        let env = peer
            .seal(Kind::Time, &me.key().public(), b"\xa0")
            .expect("seal");
        assert!(me.open_from(&peer.key().public(), &env).is_ok());
    }
}
