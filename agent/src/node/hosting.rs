//! Devices hosted by this node: each answers TLS under its own key (the
//! endpoint picks the certificate by server name) and has its own device
//! record in the DHT, counter-signed by this gateway.
//!
//! Records go out at most [`PUBLISHES_IN_FLIGHT`] at a time: a gateway of
//! 1,000 devices joining (or moving address) would otherwise start 1,000
//! queries at once, each with its RPC tasks and buffers towards every
//! close peer: a burst that costs memory the allocator keeps (about 4 MiB
//! per peer with 1,000 devices, measured) and a packet storm on a Pi's link.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::dht::DeviceRecord;
use crate::identity::{Keypair, PublicKey};

use super::in_flight::Purpose;
use super::Node;

/// What the node holds for one hosted device: the key its TLS identity
/// and records are made with, and its latest record.
pub(super) struct HostedIdentity {
    pub(super) key: Arc<Keypair>,
    /// Its latest sealed device record.
    pub(super) record: Option<Vec<u8>>,
    seq: u64,
}

/// Device record publications running at once, at most.
const PUBLISHES_IN_FLIGHT: usize = 32;

/// Devices whose record is due to go out, each once, oldest first.
#[derive(Default)]
pub(super) struct PublishQueue {
    order: VecDeque<PublicKey>,
    queued: HashSet<PublicKey>,
}

impl PublishQueue {
    fn push(&mut self, device: PublicKey) {
        if self.queued.insert(device) {
            self.order.push_back(device);
        }
    }

    fn pop(&mut self) -> Option<PublicKey> {
        let device = self.order.pop_front()?;
        self.queued.remove(&device);
        Some(device)
    }
}

impl Node {
    /// Replaces the set of hosted devices: new ones get a TLS identity and
    /// a record; removed ones stop being republished (their records expire).
    pub(super) fn host(&mut self, devices: Vec<Arc<Keypair>>) {
        let keep: Vec<PublicKey> = devices.iter().map(|k| k.public()).collect();
        let gone: Vec<PublicKey> = self
            .hosted
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for k in gone {
            self.hosted.remove(&k);
            self.dht.unpublish(&k.node_id());
            self.conns.endpoint().remove_identity(&k);
        }
        for key in devices {
            let public = key.public();
            if self.hosted.contains_key(&public) {
                continue;
            }
            if let Err(e) = self.conns.endpoint().add_identity(key.clone()) {
                tracing::warn!(device = %public, error = %e, "cannot serve a device identity");
                continue;
            }
            self.hosted.insert(
                public,
                HostedIdentity {
                    key,
                    record: None,
                    seq: 0,
                },
            );
            if !self.in_flight.joining() {
                self.publish_device(&public);
            }
        }
    }

    /// Queues `device`'s record to be sealed and published anew (once, if
    /// it is queued already), and starts what the pace allows.
    pub(super) fn publish_device(&mut self, device: &PublicKey) {
        self.publish_queue.push(*device);
        self.pump_device_publishes();
    }

    /// Starts queued device publications while fewer than
    /// [`PUBLISHES_IN_FLIGHT`] run; called again as each one finishes.
    pub(super) fn pump_device_publishes(&mut self) {
        while self.in_flight.device_publishes() < PUBLISHES_IN_FLIGHT {
            let Some(device) = self.publish_queue.pop() else {
                return;
            };
            self.seal_and_publish_device(&device);
        }
    }

    /// Seals and publishes `device`'s record with a higher sequence (a
    /// device no longer hosted is skipped).
    fn seal_and_publish_device(&mut self, device: &PublicKey) {
        let now_ms = self.clock.wall();
        let addrs = self.dht.local().addrs().clone();
        let ttl_secs = self.cfg.record_ttl.as_secs();
        let Some(h) = self.hosted.get_mut(device) else {
            return;
        };
        h.seq = h.seq.saturating_add(1).max(now_ms.0);
        let record = DeviceRecord {
            seq: h.seq,
            ttl_secs,
            gateway: self.key.public(),
            addrs,
        };
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        match record.seal(
            &h.key,
            &self.key,
            &self.cfg.network,
            now_ms,
            u64::from_le_bytes(nonce),
        ) {
            Ok(bytes) => {
                h.record = Some(bytes.clone());
                match self.dht.publish(bytes, now_ms.into(), &mut self.verifier) {
                    Ok(q) => self.in_flight.insert(q, Purpose::DevicePublish(*device)),
                    Err(e) => {
                        tracing::warn!(device = %device, error = %e, "cannot publish a device record")
                    }
                }
            }
            Err(e) => tracing::warn!(device = %device, error = %e, "cannot seal a device record"),
        }
    }

    /// Publishes every hosted device's record again.
    pub(super) fn publish_all_devices(&mut self) {
        let keys: Vec<PublicKey> = self.hosted.keys().copied().collect();
        for k in keys {
            self.publish_device(&k);
        }
    }

    /// A hosted device's current record, for lookups answered locally.
    pub(super) fn hosted_record(&self, key: &PublicKey) -> Option<Vec<u8>> {
        self.hosted.get(key).and_then(|h| h.record.clone())
    }
}
