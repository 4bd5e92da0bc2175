//! The collector: one task per running bridge that takes each reading off
//! the bus, seals it with its device's key, queues it for every
//! subscriber, offers it to local consumers and puts it on the board.
//!
//! Sealing happens here, behind the bridge's bounded channel: the bus
//! loop never waits for a signature, and a reading is on disk (in every
//! subscriber's queue) before anyone is told about it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streembit_bridges::{Quality, Reading, Readings};

use super::board::Board;
use super::feed::{Feed, SignedReading};
use super::outbox::Outboxes;
use super::reading::{next_seq, seal_reading, view_of};
use super::sequence::{SeqMarks, RESERVE};
use crate::clock::Clock;
use crate::identity::Keypair;
use crate::wire::{NetworkId, Sealer, UnixMillis};

/// One device's signing state.
struct Signer {
    key: Arc<Keypair>,
    /// The sequence of its last reading.
    last: u64,
    /// Every sequence below this is reserved on disk.
    reserved: u64,
}

/// Where a collector keeps sequence marks, and counts failing to.
#[derive(Clone)]
pub(super) struct Marks {
    pub(super) marks: SeqMarks,
    pub(super) errors: Arc<AtomicU64>,
}

/// Everything one bridge's readings go through.
pub(super) struct Collector {
    bridge: String,
    signers: BTreeMap<String, Signer>,
    sealer: Sealer,
    outboxes: Arc<Outboxes>,
    feed: Feed,
    board: Board,
    marks: Marks,
}

impl Collector {
    /// A collector for `bridge`'s devices (`keys`); each device's sequence
    /// resumes above what its queues hold and above its reservation on
    /// disk, whatever the clock says.
    pub(super) fn new(
        bridge: &str,
        keys: &[(String, Arc<Keypair>)],
        network: NetworkId,
        outboxes: Arc<Outboxes>,
        feed: Feed,
        board: Board,
        marks: Marks,
    ) -> Self {
        let signers = keys
            .iter()
            .map(|(name, key)| {
                let reserved = marks.marks.reserved(&key.public());
                let last = outboxes.last_seq(&key.public()).max(reserved);
                let signer = Signer {
                    key: key.clone(),
                    last,
                    reserved,
                };
                (name.clone(), signer)
            })
            .collect();
        Self {
            bridge: bridge.to_owned(),
            signers,
            sealer: Sealer::new(network),
            outboxes,
            feed,
            board,
            marks,
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
        let marks = &self.marks;
        let sealed = self.signers.get_mut(&r.device).and_then(|s| {
            let seq = next_seq(s.last, now);
            if seq >= s.reserved {
                // Reserve ahead before the sequence is used. A failed write
                // is counted and not retried before the next reservation
                // is due (a broken disk must not cost a write per reading).
                let upto = seq.saturating_add(RESERVE);
                if marks.marks.reserve(&s.key.public(), upto).is_err() {
                    marks.errors.fetch_add(1, Ordering::Relaxed);
                }
                s.reserved = upto;
            }
            let env = seal_reading(&mut self.sealer, &s.key, r, seq, now)
                .map_err(
                    |e| tracing::warn!(device = %r.device, error = %e, "cannot seal a reading"),
                )
                .ok()?;
            s.last = seq;
            self.outboxes.append(&s.key.public(), seq, &env);
            let env = Arc::new(env);
            self.feed.send(SignedReading {
                device: s.key.public(),
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
