//! The collector: one task per running bridge that takes each reading off
//! the bus, seals it with its device's key, queues it for every
//! subscriber, offers it to local consumers and puts it on the board.
//!
//! Sealing happens here, behind the bridge's bounded channel: the bus
//! loop never waits for a signature, and a reading is on disk (in every
//! subscriber's queue) before anyone is told about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use streembit_bridges::{Quality, Reading, Readings};

use super::board::Board;
use super::feed::{Feed, SignedReading};
use super::outbox::Outboxes;
use super::reading::{next_seq, seal_reading, view_of};
use crate::clock::Clock;
use crate::identity::Keypair;
use crate::wire::{NetworkId, Sealer, UnixMillis};

/// Everything one bridge's readings go through.
pub(super) struct Collector {
    bridge: String,
    /// Each device's key and the sequence of its last reading.
    signers: BTreeMap<String, (Arc<Keypair>, u64)>,
    sealer: Sealer,
    outboxes: Arc<Outboxes>,
    feed: Feed,
    board: Board,
}

impl Collector {
    /// A collector for `bridge`'s devices (`keys`); each device's sequence
    /// resumes above what its queues hold.
    pub(super) fn new(
        bridge: &str,
        keys: &[(String, Arc<Keypair>)],
        network: NetworkId,
        outboxes: Arc<Outboxes>,
        feed: Feed,
        board: Board,
    ) -> Self {
        let signers = keys
            .iter()
            .map(|(name, key)| {
                let last = outboxes.last_seq(&key.public());
                (name.clone(), (key.clone(), last))
            })
            .collect();
        Self {
            bridge: bridge.to_owned(),
            signers,
            sealer: Sealer::new(network),
            outboxes,
            feed,
            board,
        }
    }

    /// Takes readings until the bridge stops.
    pub(super) async fn run(mut self, mut readings: Readings, clock: Clock) {
        while let Some(r) = readings.recv().await {
            let depth = readings.len();
            self.collect(&r, clock.wall(), depth);
        }
    }

    /// Signs, queues, feeds and shows one reading, sealed at `now`;
    /// `depth`: readings still waiting behind it.
    pub(super) fn collect(&mut self, r: &Reading, now: UnixMillis, depth: usize) {
        let sealed = self.signers.get_mut(&r.device).and_then(|(key, last)| {
            let seq = next_seq(*last, now);
            let env = seal_reading(&mut self.sealer, key, r, seq, now)
                .map_err(
                    |e| tracing::warn!(device = %r.device, error = %e, "cannot seal a reading"),
                )
                .ok()?;
            *last = seq;
            self.outboxes.append(&key.public(), seq, &env);
            let env = Arc::new(env);
            self.feed.send(SignedReading {
                device: key.public(),
                point: r.point.clone(),
                envelope: env.clone(),
            });
            Some((seq, env))
        });
        let view = view_of(r, sealed.as_ref().map(|(seq, _)| *seq));
        let good = matches!(r.quality, Quality::Good);
        self.board
            .record(&self.bridge, view, good, sealed.map(|(_, e)| e), depth);
    }
}
