//! The receive path for live messages.

use super::envelope::{check_network, check_signature, decode};
use super::replay::{ReplayCheck, ReplayWindow};
use super::{Audience, NetworkId, Opened, UnixMillis, WireError};
use super::{DEFAULT_MAX_ENVELOPE_BYTES, HARD_MAX_ENVELOPE_BYTES};
use crate::identity::NodeId;

/// Receive-side limits.
#[derive(Debug, Clone)]
pub struct WireConfig {
    /// Envelopes longer than this are refused before decoding (capped at
    /// [`HARD_MAX_ENVELOPE_BYTES`]).
    pub max_envelope_bytes: usize,
    /// Accepted clock difference either way, in ms (default ±60 s).
    pub skew_ms: u64,
    /// Entries of the replay window (see [`ReplayWindow`] for its memory).
    pub replay_capacity: usize,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            max_envelope_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
            skew_ms: 60_000,
            replay_capacity: ReplayWindow::DEFAULT_CAPACITY,
        }
    }
}

/// Opens live envelopes addressed to one node on one network.
///
/// Checks run cheapest first, so garbage costs little: size cap, CBOR and
/// headers, network, signature (the only expensive step), freshness, and
/// last the replay window — which only ever remembers envelopes whose
/// signature was valid, so forgeries cannot fill it.
#[derive(Debug)]
pub struct Opener {
    network: NetworkId,
    me: NodeId,
    config: WireConfig,
    replay: ReplayWindow,
}

impl Opener {
    /// An opener for node `me` on `network`. `started`: the receiver's
    /// start time; envelopes stamped at or before it are refused, so that a
    /// restart (which empties the replay window) cannot open a replay gap.
    pub fn new(network: NetworkId, me: NodeId, config: WireConfig, started: UnixMillis) -> Self {
        let config = WireConfig {
            max_envelope_bytes: config.max_envelope_bytes.min(HARD_MAX_ENVELOPE_BYTES),
            ..config
        };
        let replay = ReplayWindow::new(config.replay_capacity, started.0);
        Self {
            network,
            me,
            config,
            replay,
        }
    }

    /// Opens one envelope received at `now`.
    pub fn open(&mut self, bytes: &[u8], now: UnixMillis) -> Result<Opened, WireError> {
        self.open_to(bytes, now, self.me)
    }

    /// Opens one envelope addressed to `me` rather than this opener's own
    /// node: a gateway answers for each device it hosts, and one replay
    /// window serves all of them (nonces are per sender, not per audience).
    pub fn open_to(
        &mut self,
        bytes: &[u8],
        now: UnixMillis,
        me: NodeId,
    ) -> Result<Opened, WireError> {
        let (envelope, opened) = decode(bytes, self.config.max_envelope_bytes)?;
        check_network(&opened, &self.network)?;
        let audience = if opened.kind().is_broadcast() {
            Audience::Anyone
        } else {
            Audience::Node(me)
        };
        check_signature(&envelope, &opened.sender(), &audience)?;
        if !opened.kind().freshness_checked() {
            // The time exchange: fresh by its challenge, not by its stamp
            // (docs/wire.md, "Time").
            return Ok(opened);
        }

        let ts = opened.timestamp().0;
        if ts.abs_diff(now.0) > self.config.skew_ms {
            return Err(WireError::Stale {
                timestamp: ts,
                now: now.0,
                skew_ms: self.config.skew_ms,
            });
        }
        let expire_before = now.0.saturating_sub(self.config.skew_ms);
        match self.replay.check_and_insert(
            opened.sender().as_bytes(),
            opened.nonce(),
            ts,
            expire_before,
        ) {
            ReplayCheck::Fresh => Ok(opened),
            ReplayCheck::Replayed => Err(WireError::Replayed),
        }
    }

    /// Moves the start floor: envelopes stamped at or before `floor` are
    /// refused. A node that learns its clock was off moves its start time
    /// with it, into the network's time.
    pub fn set_floor(&mut self, floor: UnixMillis) {
        self.replay.set_floor(floor.0);
    }

    /// The replay window, for metrics.
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// The network this opener accepts.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }
}
