//! Store-and-forward: one on-disk queue per (device, subscriber).
//!
//! Every signed reading of a device is appended to the journal of each of
//! its subscribers as it is made, whether the subscriber is connected or
//! not; a delivery task streams from the journal and the subscriber's
//! acknowledgements trim it. So a reading is never only in memory: a
//! SIGKILL loses nothing that `append` returned for, and a power cut at
//! most what arrived since the last sync (`SYNC_EVERY`). When a queue is
//! full its oldest readings are dropped and counted.
//!
//! A subscription that nobody acknowledges or follows for
//! `subscription_expiry` (30 days by default) expires: its queue is
//! deleted and its slot freed, so throwaway keys cannot hold a device's
//! subscriber slots for ever. Activity (a `subscribe` frame, an
//! acknowledgement, an open delivery stream) is kept in memory and written
//! to `<queue>/seen` at most hourly, so expiry survives restarts.
//!
//! Layout: `<state>/outbox/<device key>/<subscriber key>/*.seg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::protocol::ErrorCode;
use super::DevicesError;
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::journal::Journal;
use crate::metrics::{Family, Kind};
use crate::state_file::{write_atomic, write_error_hint};

/// How often queues are flushed to the disk: what a power cut can lose.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// One subscriber's queue for one device.
pub(super) struct Outbox {
    /// Who it is for.
    pub(super) subscriber: PublicKey,
    journal: Mutex<Journal>,
    /// Wakes the delivery task when a reading is appended.
    pub(super) wake: Notify,
    /// Bumped by each new delivery stream, so an older one stops.
    pub(super) generation: AtomicU64,
    /// Network time of the subscriber's last sign of life, in ms.
    seen_ms: AtomicU64,
    /// What `seen` on disk says.
    seen_written_ms: AtomicU64,
    dir: PathBuf,
    /// Readings this queue refused (the disk, a sequence not above its
    /// last).
    refused: AtomicU64,
}

impl Outbox {
    /// Up to `max` queued readings above `after`, stopping once past
    /// `max_bytes`.
    pub(super) fn read_after(
        &self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Vec<(u64, Vec<u8>)> {
        match self.journal.lock() {
            Ok(j) => j.read_after(after, max, max_bytes).unwrap_or_else(|e| {
                tracing::warn!(dir = %j.dir().display(), error = %e, "cannot read a queue");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        }
    }

    /// Reading `seq` cannot be sent in any frame: counted as refused and
    /// passed over (logged, so the operator sees which).
    pub(super) fn skip_oversize(&self, seq: u64) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(subscriber = %self.subscriber, seq, "a reading too large for any frame to a subscriber was skipped");
        self.ack(seq);
    }

    /// The subscriber showed it is alive at `now_ms` (network time).
    pub(super) fn touch(&self, now_ms: u64) {
        self.seen_ms.fetch_max(now_ms, Ordering::Relaxed);
        let written = self.seen_written_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(written) >= SEEN_WRITE_EVERY_MS {
            self.seen_written_ms.store(now_ms, Ordering::Relaxed);
            write_seen(&self.dir, now_ms);
        }
    }

    /// The subscriber has everything up to `seq`.
    pub(super) fn ack(&self, seq: u64) {
        if let Ok(mut j) = self.journal.lock() {
            if let Err(e) = j.trim_through(seq) {
                tracing::warn!(dir = %j.dir().display(), error = %e, "cannot trim a queue");
            }
        }
    }
}

/// The file a queue's last sign of life is kept in.
const SEEN_FILE: &str = "seen";
/// How often that file is rewritten at most.
const SEEN_WRITE_EVERY_MS: u64 = 3_600_000;

/// Every store-and-forward queue of this gateway.
pub struct Outboxes {
    root: PathBuf,
    max_bytes: u64,
    max_per_device: usize,
    expiry: Duration,
    clock: Clock,
    expired: AtomicU64,
    /// Subscriptions deleted because their subscriber left the membership.
    removed: AtomicU64,
    by_device: Mutex<BTreeMap<PublicKey, Vec<Arc<Outbox>>>>,
}

impl Outboxes {
    /// Opens the queues under `root`, each holding at most `max_bytes`, at
    /// most `max_per_device` subscribers per device, each expiring after
    /// `expiry` without a sign of life (by `clock`, the network's time).
    pub fn open(
        root: &Path,
        max_bytes: u64,
        max_per_device: usize,
        expiry: Duration,
        clock: Clock,
    ) -> Self {
        let now = clock.wall().0;
        let mut by_device: BTreeMap<PublicKey, Vec<Arc<Outbox>>> = BTreeMap::new();
        for (device, subscriber, dir) in subdirs(root) {
            match Journal::open(&dir, max_bytes) {
                Ok(journal) => by_device
                    .entry(device)
                    .or_default()
                    .push(Arc::new(new_outbox(subscriber, journal, &dir, now))),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "store-and-forward queue not opened")
                }
            }
        }
        Self {
            root: root.to_owned(),
            max_bytes,
            max_per_device,
            expiry,
            clock,
            expired: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            by_device: Mutex::new(by_device),
        }
    }

    /// Deletes the subscriptions without a sign of life for longer than
    /// the expiry; how many.
    pub(crate) fn expire(&self) -> usize {
        let now = self.clock.wall().0;
        let limit = u64::try_from(self.expiry.as_millis()).unwrap_or(u64::MAX);
        let stale: Vec<(PublicKey, PublicKey)> = self
            .by_device
            .lock()
            .map(|map| {
                map.iter()
                    .flat_map(|(d, list)| list.iter().map(move |o| (d, o)))
                    .filter(|(_, o)| now.saturating_sub(o.seen_ms.load(Ordering::Relaxed)) > limit)
                    .map(|(d, o)| (*d, o.subscriber))
                    .collect()
            })
            .unwrap_or_default();
        for (device, subscriber) in &stale {
            tracing::info!(device = %device, subscriber = %subscriber, days = self.expiry.as_secs() / 86_400, "subscription expired: no sign of the subscriber for that long; its queue is deleted");
            self.cancel(device, subscriber);
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
        stale.len()
    }

    /// Queues `envelope` (sequence `seq`) for every subscriber of `device`.
    pub fn append(&self, device: &PublicKey, seq: u64, envelope: &[u8]) {
        let Ok(map) = self.by_device.lock() else {
            return;
        };
        for outbox in map.get(device).into_iter().flatten() {
            if let Ok(mut j) = outbox.journal.lock() {
                if let Err(e) = j.append(seq, envelope) {
                    // That subscriber will not get this reading: counted.
                    outbox.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(dir = %j.dir().display(), error = %e, "cannot queue a reading");
                }
            }
            outbox.wake.notify_one();
        }
    }

    /// The highest sequence queued for `device` (0 if none).
    pub fn last_seq(&self, device: &PublicKey) -> u64 {
        self.by_device
            .lock()
            .ok()
            .and_then(|m| {
                m.get(device).map(|list| {
                    list.iter()
                        .filter_map(|o| o.journal.lock().ok().map(|j| j.last_seq()))
                        .max()
                        .unwrap_or(0)
                })
            })
            .unwrap_or(0)
    }

    /// The queue of `subscriber` for `device`, created if new.
    pub(super) fn subscribe(
        &self,
        device: &PublicKey,
        subscriber: &PublicKey,
    ) -> Result<Arc<Outbox>, (ErrorCode, String)> {
        let mut map = self
            .by_device
            .lock()
            .map_err(|_| (ErrorCode::Busy, "queues unavailable".to_owned()))?;
        let list = map.entry(*device).or_default();
        if let Some(o) = list.iter().find(|o| o.subscriber == *subscriber) {
            o.touch(self.clock.wall().0);
            return Ok(o.clone());
        }
        if list.len() >= self.max_per_device {
            return Err((
                ErrorCode::Busy,
                format!("this device has {} subscribers already", list.len()),
            ));
        }
        let dir = self
            .root
            .join(device.to_string())
            .join(subscriber.to_string());
        let journal = Journal::open(&dir, self.max_bytes).map_err(|e| {
            (
                ErrorCode::DeviceError,
                format!("cannot create the queue: {e}"),
            )
        })?;
        let now = self.clock.wall().0;
        let outbox = Arc::new(new_outbox(*subscriber, journal, &dir, now));
        outbox.touch(now);
        list.push(outbox.clone());
        Ok(outbox)
    }

    /// Makes sure `subscriber` has a queue for `device` (what a first
    /// `subscribe` does; also for benchmarks and tools).
    pub fn ensure_queue(
        &self,
        device: &PublicKey,
        subscriber: &PublicKey,
    ) -> Result<(), DevicesError> {
        self.subscribe(device, subscriber)
            .map(drop)
            .map_err(|(_, message)| DevicesError::Queue(message))
    }

    /// Forgets every subscription of `subscriber` and their queues: it left
    /// the membership. Its delivery streams end and its slots are free at
    /// once. Returns how many it held.
    pub(crate) fn forget_subscriber(&self, subscriber: &PublicKey) -> usize {
        let devices: Vec<PublicKey> = self
            .by_device
            .lock()
            .map(|map| {
                map.iter()
                    .filter(|(_, list)| list.iter().any(|o| o.subscriber == *subscriber))
                    .map(|(device, _)| *device)
                    .collect()
            })
            .unwrap_or_default();
        for device in &devices {
            self.cancel(device, subscriber);
        }
        self.removed
            .fetch_add(devices.len() as u64, Ordering::Relaxed);
        devices.len()
    }

    /// Forgets `subscriber`'s subscription to `device` and its queue; a
    /// stream delivering it ends.
    pub(super) fn cancel(&self, device: &PublicKey, subscriber: &PublicKey) {
        if let Ok(mut map) = self.by_device.lock() {
            if let Some(list) = map.get_mut(device) {
                for o in list.iter().filter(|o| o.subscriber == *subscriber) {
                    o.generation.fetch_add(1, Ordering::SeqCst);
                    o.wake.notify_waiters();
                }
                list.retain(|o| o.subscriber != *subscriber);
            }
        }
        let dir = self
            .root
            .join(device.to_string())
            .join(subscriber.to_string());
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a queue");
            }
        }
    }

    /// Flushes every queue to the disk.
    pub fn sync_all(&self) {
        let Ok(map) = self.by_device.lock() else {
            return;
        };
        for o in map.values().flatten() {
            if let Ok(mut j) = o.journal.lock() {
                if let Err(e) = j.sync() {
                    tracing::warn!(dir = %j.dir().display(), error = %e, "cannot sync a queue");
                }
            }
        }
    }

    /// Queue metric families.
    pub fn families(&self) -> Vec<Family> {
        let mut pending = Family::new(
            "streembit_outbox_readings",
            "Readings queued for a subscriber and not yet acknowledged.",
            Kind::Gauge,
        );
        let mut refused = Family::new(
            "streembit_outbox_refused",
            "Readings a subscriber's queue refused (disk error, a sequence not above its last) since start: that subscriber did not get them.",
            Kind::Counter,
        );
        let mut dropped = Family::new(
            "streembit_outbox_dropped",
            "Readings dropped from a full store-and-forward queue since start.",
            Kind::Counter,
        );
        if let Ok(map) = self.by_device.lock() {
            for (device, list) in map.iter() {
                for o in list {
                    if let Ok(j) = o.journal.lock() {
                        let labels = [
                            ("device", device.to_string()),
                            ("subscriber", o.subscriber.to_string()),
                        ];
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        pending.push(&labels, j.len());
                        dropped.push(&labels, j.dropped());
                        refused.push(&labels, o.refused.load(Ordering::Relaxed));
                    }
                }
            }
        }
        vec![
            pending,
            dropped,
            refused,
            Family::single(
                "streembit_subscriptions_expired",
                "Subscriptions deleted after no sign of their subscriber for the expiry time.",
                Kind::Counter,
                self.expired.load(Ordering::Relaxed),
            ),
            Family::single(
                "streembit_subscriptions_removed",
                "Subscriptions deleted because their subscriber left the membership.",
                Kind::Counter,
                self.removed.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// A queue at `dir`; its last sign of life from its `seen` file, or `now`
/// for a queue without one (a new queue, or one made before expiry
/// existed), written at once: otherwise a queue abandoned within its first
/// hour would start from "now" again at every restart and never expire.
fn new_outbox(subscriber: PublicKey, journal: Journal, dir: &Path, now: u64) -> Outbox {
    let on_disk = std::fs::read(dir.join(SEEN_FILE))
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes);
    let seen = on_disk.unwrap_or_else(|| {
        write_seen(dir, now);
        now
    });
    Outbox {
        subscriber,
        journal: Mutex::new(journal),
        wake: Notify::new(),
        generation: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        seen_ms: AtomicU64::new(seen),
        seen_written_ms: AtomicU64::new(seen),
        dir: dir.to_owned(),
    }
}

/// Notes on disk that the subscriber of the queue at `dir` was last seen at
/// `ms`; a failure is logged (expiry then counts from an older sign).
fn write_seen(dir: &Path, ms: u64) {
    if let Err(e) = write_atomic(&dir.join(SEEN_FILE), &ms.to_be_bytes()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot note a subscriber's activity: {}", write_error_hint(&e));
    }
}

/// `(device, subscriber, dir)` of every queue directory under `root`.
fn subdirs(root: &Path) -> Vec<(PublicKey, PublicKey, PathBuf)> {
    let keyed = |dir: &Path| -> Vec<(PublicKey, PathBuf)> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let key = p.file_name()?.to_str()?.parse::<PublicKey>().ok()?;
                Some((key, p))
            })
            .collect()
    };
    keyed(root)
        .into_iter()
        .flat_map(|(device, dir)| {
            keyed(&dir)
                .into_iter()
                .map(move |(sub, path)| (device, sub, path))
        })
        .collect()
}
