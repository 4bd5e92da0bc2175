//! [`Devices`]: the running bridges, started, replaced and stopped as
//! their files come and go, and the operator's own writes to them.
//!
//! Design: each bridge runs with a [`Collector`] that drains its readings
//! onto the shared [`Board`]; the API reads the board. Reloads replace only
//! the bridges whose file changed, and a broken file never stops the bridge
//! that was running from its previous version.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use streembit_bridges::{BridgeHandle, BridgeOptions, Bus, Command, Value};
use tokio::task::JoinHandle;

use super::board::{Board, HostedDevice};
use super::collector::{Collector, Marks};
use super::feed::Feed;
use super::files::{Loaded, LoadedBridge};
use super::outbox::Outboxes;
use super::sequence::SeqMarks;
use super::DevicesError;
use crate::api::DeviceInfo;
use crate::clock::Clock;
use crate::identity::{DeviceName, IdentityError, Keypair, Keystore, PublicKey};
use crate::metrics::{Family, Kind};
use crate::wire::NetworkId;

struct Running {
    fingerprint: u64,
    bus: Bus,
    handle: BridgeHandle,
    collector: JoinHandle<()>,
}

/// The devices hosted by this agent.
#[derive(Clone)]
pub(crate) struct Devices {
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    board: Board,
    keystore: Keystore,
    network: NetworkId,
    outboxes: Arc<Outboxes>,
    feed: Feed,
    clock: Clock,
    reload_errors: Arc<AtomicU64>,
    marks: Marks,
}

impl Devices {
    /// No bridges yet; device keys come from `keystore`, readings are
    /// sealed for `network` at `clock`'s time and queued in `outboxes` for
    /// subscribers; each device's sequence reservation is kept in
    /// `seq_dir`.
    pub(crate) fn new(
        keystore: Keystore,
        network: NetworkId,
        outboxes: Arc<Outboxes>,
        clock: Clock,
        seq_dir: &std::path::Path,
    ) -> Self {
        Self {
            running: Arc::default(),
            board: Board::default(),
            keystore,
            network,
            outboxes,
            feed: Feed::default(),
            clock,
            reload_errors: Arc::default(),
            marks: Marks {
                marks: SeqMarks::new(seq_dir),
                errors: Arc::default(),
            },
        }
    }

    /// Every signed reading as it is made (and, through
    /// [`crate::devices::Subscriptions`], as it is received).
    pub(crate) fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The store-and-forward queues.
    pub(crate) fn outboxes(&self) -> &Arc<Outboxes> {
        &self.outboxes
    }

    /// Applies a loaded `bridges.d/`: starts new and changed bridges, stops
    /// removed ones, keeps the running version of every broken file.
    /// Returns the problems found (empty when all files were good). Needs a
    /// tokio runtime.
    pub(crate) async fn apply(&self, loaded: Loaded) -> Vec<String> {
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let mut errors = loaded.errors();
        if !loaded.broken.is_empty() {
            self.reload_errors
                .fetch_add(loaded.broken.len() as u64, Ordering::Relaxed);
        }
        let to_stop: Vec<Running> = {
            let Ok(mut running) = self.running.lock() else {
                return errors;
            };
            let gone: Vec<String> = running
                .iter()
                .filter(|(name, r)| {
                    !loaded.broken.contains_key(*name)
                        && !loaded
                            .good
                            .iter()
                            .any(|g| &g.name == *name && g.fingerprint == r.fingerprint)
                })
                .map(|(name, _)| name.clone())
                .collect();
            gone.iter().filter_map(|n| running.remove(n)).collect()
        };
        for r in to_stop {
            r.collector.abort();
            r.handle.stop().await;
        }
        for bridge in loaded.good {
            let already = self
                .running
                .lock()
                .map(|r| r.contains_key(&bridge.name))
                .unwrap_or(true);
            if already {
                continue;
            }
            if let Err(e) = self.start(bridge) {
                errors.push(e.to_string());
            }
        }
        self.prune_board();
        errors
    }

    fn start(&self, bridge: LoadedBridge) -> Result<(), DevicesError> {
        let mut keys = Vec::new();
        for device in bridge.bus.device_names() {
            let identity = |source: IdentityError| DevicesError::Identity {
                bridge: bridge.name.clone(),
                device: device.to_owned(),
                source,
            };
            let name = DeviceName::new(device).map_err(identity)?;
            let key = self.keystore.device(&name).map_err(identity)?;
            keys.push((device.to_owned(), Arc::new(key)));
        }
        let options = BridgeOptions {
            clock: self.clock.source(),
            ..BridgeOptions::default()
        };
        let (handle, readings) = BridgeHandle::start(
            bridge.bus.clone(),
            &tokio::runtime::Handle::current(),
            options,
        );
        self.board
            .attach(&bridge.name, &keys, handle.watch_status());
        let collector = Collector::new(
            &bridge.name,
            &keys,
            self.network.clone(),
            self.outboxes.clone(),
            self.feed.clone(),
            self.board.clone(),
            self.marks.clone(),
        );
        let collector = tokio::spawn(collector.run(readings, self.clock.clone()));
        let mut running = self.running.lock().map_err(|_| DevicesError::Poisoned)?;
        running.insert(
            bridge.name,
            Running {
                fingerprint: bridge.fingerprint,
                bus: bridge.bus,
                handle,
                collector,
            },
        );
        Ok(())
    }

    /// Forgets board entries of devices and points no running bridge
    /// defines any more.
    fn prune_board(&self) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        let defined: BTreeMap<String, Vec<String>> = running
            .values()
            .flat_map(|r| {
                r.bus
                    .device_names()
                    .into_iter()
                    .map(|d| (d.to_owned(), r.bus.point_names(d)))
            })
            .collect();
        let bridges: Vec<String> = running.keys().cloned().collect();
        self.board.retain(&defined, &bridges);
    }

    /// Every hosted device.
    pub(crate) fn list(&self) -> Vec<DeviceInfo> {
        self.board.list()
    }

    /// One device by name or by its public key (64 hex).
    pub(crate) fn get(&self, name_or_key: &str) -> Option<DeviceInfo> {
        self.list()
            .into_iter()
            .find(|d| d.name == name_or_key || d.key == name_or_key)
    }

    /// The identities of every hosted device (for TLS and device records).
    pub(crate) fn keypairs(&self) -> Vec<Arc<Keypair>> {
        self.board.keypairs()
    }

    /// The hosted device with this key.
    pub(crate) fn by_key(&self, key: &PublicKey) -> Option<HostedDevice> {
        self.board.by_key(key)
    }

    /// The latest signed reading envelopes of `device` (one point's, or
    /// every point's).
    pub(crate) fn latest_sealed(&self, device: &str, point: Option<&str>) -> Vec<Arc<Vec<u8>>> {
        self.board.latest_sealed(device, point)
    }

    /// The keys allowed to write `point` of `device` (empty: nobody on the
    /// network may).
    pub(crate) fn writers(&self, device: &str, point: &str) -> Vec<String> {
        let Some(bridge) = self.board.bridge_of(device) else {
            return Vec::new();
        };
        self.running
            .lock()
            .ok()
            .and_then(|r| r.get(&bridge).map(|r| r.bus.writers(device, point)))
            .unwrap_or_default()
    }

    /// Number of hosted devices.
    pub(crate) fn count(&self) -> usize {
        self.board.count()
    }

    /// Applies a command from the local operator (the API socket is the
    /// gateway's own admin channel; remote writers are checked against the
    /// bridge file's `writers` by the network path).
    pub(crate) async fn write(
        &self,
        device: &str,
        point: &str,
        value: &serde_json::Value,
    ) -> Result<(), DevicesError> {
        let value = to_bridge_value(value)?;
        let bridge = self
            .board
            .bridge_of(device)
            .ok_or_else(|| DevicesError::NoDevice(device.to_owned()))?;
        let rx = {
            let running = self.running.lock().map_err(|_| DevicesError::Poisoned)?;
            let running = running
                .get(&bridge)
                .ok_or(DevicesError::BridgeNotRunning(bridge))?;
            running.handle.submit(Command {
                device: device.to_owned(),
                point: point.to_owned(),
                value,
            })?
        };
        match rx.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DevicesError::NoAnswer),
        }
    }

    /// Device metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let mut families = self.board.families();
        families.push(Family::single(
            "streembit_bridge_reload_errors",
            "Bridge files refused at start or reload.",
            Kind::Counter,
            self.reload_errors.load(Ordering::Relaxed),
        ));
        families.push(Family::single(
            "streembit_sequence_mark_errors",
            "Reading sequence reservations that could not be written to the state directory.",
            Kind::Counter,
            self.marks.errors.load(Ordering::Relaxed),
        ));
        families
    }

    /// Stops every bridge (shutdown).
    pub(crate) async fn stop_all(&self) {
        let all: Vec<Running> = self
            .running
            .lock()
            .map(|mut r| std::mem::take(&mut *r).into_values().collect())
            .unwrap_or_default();
        for r in all {
            r.collector.abort();
            r.handle.stop().await;
        }
    }
}

/// JSON from the operator to a typed bridge value.
fn to_bridge_value(v: &serde_json::Value) -> Result<Value, DevicesError> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::from_u64))
            .or_else(|| n.as_f64().map(Value::Float))
            .ok_or_else(|| DevicesError::BadValue(format!("unsupported number {n}"))),
        serde_json::Value::String(s) => Ok(Value::String(s.clone())),
        other => Err(DevicesError::BadValue(format!(
            "a value must be a bool, number or string, not {other}"
        ))),
    }
}
