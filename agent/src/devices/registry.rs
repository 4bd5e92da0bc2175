//! The running bridges and what their devices last said.
//!
//! Design: one collector task per bridge drains its readings into a shared
//! board (latest value per point, counts per device); the API reads the
//! board. Reloads replace only the bridges whose file changed, and a broken
//! file never stops the bridge that was running from its previous version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use streembit_bridges::{BridgeHandle, BridgeOptions, Bus, Command, DeviceState, Quality, Value};
use tokio::task::JoinHandle;

use super::feed::{Feed, SignedReading};
use super::files::{Loaded, LoadedBridge};
use super::outbox::Outboxes;
use super::signing::{next_seq, quality_text, seal_reading};
use crate::identity::{DeviceName, Keypair, Keystore, PublicKey};
use crate::metrics::{Family, Kind};
use crate::wire::{NetworkId, Sealer, UnixMillis};

/// One point's latest reading, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PointReading {
    /// The value (absent when the reading carries an error).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<serde_json::Value>,
    /// Unit from the bridge file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// `good`, or the point error.
    pub quality: String,
    /// When it was read, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The reading as a COSE_Sign1 envelope signed by the device's own key
    /// (hex), verifiable with the device key alone.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cose: Option<String>,
}

/// A hosted device, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    /// Name from the bridge file.
    pub name: String,
    /// The bridge file it is defined in.
    pub bridge: String,
    /// The device's own public key.
    pub key: String,
    /// `starting`, `online` or `offline: <reason>`.
    pub state: String,
    /// Last successful exchange, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_success_ms: Option<u64>,
    /// Latest reading per point.
    pub points: BTreeMap<String, PointReading>,
}

#[derive(Default)]
struct DeviceBoard {
    bridge: String,
    key: Option<Arc<Keypair>>,
    points: BTreeMap<String, PointReading>,
    /// The latest signed reading per point (raw envelope).
    sealed: BTreeMap<String, Arc<Vec<u8>>>,
    good: u64,
    bad: u64,
}

struct Running {
    fingerprint: u64,
    bus: Bus,
    handle: BridgeHandle,
    collector: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    running: BTreeMap<String, Running>,
    board: BTreeMap<String, DeviceBoard>,
    reload_errors: u64,
    queue_depth: BTreeMap<String, usize>,
}

/// The devices hosted by this agent.
#[derive(Clone)]
pub struct Devices {
    state: Arc<Mutex<State>>,
    keystore: Keystore,
    network: NetworkId,
    outboxes: Arc<Outboxes>,
    feed: Feed,
}

/// A hosted device's identity, for the network side.
#[derive(Clone)]
pub struct Hosted {
    /// Name from the bridge file.
    pub name: String,
    /// Its key.
    pub key: Arc<Keypair>,
}

impl Devices {
    /// No bridges yet; device keys come from `keystore`, readings are
    /// sealed for `network` and queued in `outboxes` for subscribers.
    pub fn new(keystore: Keystore, network: NetworkId, outboxes: Arc<Outboxes>) -> Self {
        Self {
            state: Arc::default(),
            keystore,
            network,
            outboxes,
            feed: Feed::default(),
        }
    }

    /// Every signed reading as it is made (and, through
    /// [`crate::devices::Subscriptions`], as it is received).
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The store-and-forward queues.
    pub fn outboxes(&self) -> &Arc<Outboxes> {
        &self.outboxes
    }

    /// The network readings are sealed for.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Applies a loaded `bridges.d/`: starts new and changed bridges, stops
    /// removed ones, keeps the running version of every broken file.
    /// Returns the problems found (empty when all files were good). Needs a
    /// tokio runtime.
    pub async fn apply(&self, loaded: Loaded) -> Vec<String> {
        let mut errors = loaded.errors();
        let mut to_stop = Vec::new();
        {
            let Ok(mut st) = self.state.lock() else {
                return errors;
            };
            if !loaded.broken.is_empty() {
                st.reload_errors += loaded.broken.len() as u64;
            }
            let keep: Vec<String> = st
                .running
                .keys()
                .filter(|name| {
                    loaded.broken.contains_key(*name)
                        || loaded.good.iter().any(|g| {
                            &g.name == *name
                                && Some(g.fingerprint)
                                    == st.running.get(*name).map(|r| r.fingerprint)
                        })
                })
                .cloned()
                .collect();
            let names: Vec<String> = st.running.keys().cloned().collect();
            for name in names {
                if !keep.contains(&name) {
                    if let Some(r) = st.running.remove(&name) {
                        to_stop.push(r);
                    }
                }
            }
        }
        for r in to_stop {
            r.collector.abort();
            r.handle.stop().await;
        }
        for bridge in loaded.good {
            let already = self
                .state
                .lock()
                .map(|st| st.running.contains_key(&bridge.name))
                .unwrap_or(true);
            if already {
                continue;
            }
            if let Err(e) = self.start(bridge) {
                errors.push(e);
            }
        }
        self.prune_board();
        errors
    }

    fn start(&self, bridge: LoadedBridge) -> Result<(), String> {
        let mut keys = Vec::new();
        for device in bridge.bus.device_names() {
            let name = DeviceName::new(device).map_err(|e| format!("{}: {e}", bridge.name))?;
            let key = self
                .keystore
                .device(&name)
                .map_err(|e| format!("{}: device {device}: {e}", bridge.name))?;
            keys.push((device.to_owned(), Arc::new(key)));
        }
        let (handle, mut readings) = BridgeHandle::start(
            bridge.bus.clone(),
            &tokio::runtime::Handle::current(),
            BridgeOptions::default(),
        );
        let state = self.state.clone();
        let bridge_name = bridge.name.clone();
        let outboxes = self.outboxes.clone();
        let feed = self.feed.clone();
        // Each device's sequence resumes above what its queues hold.
        let mut signers: BTreeMap<String, (Arc<Keypair>, u64)> = keys
            .iter()
            .map(|(name, key)| {
                let last = outboxes.last_seq(&key.public());
                (name.clone(), (key.clone(), last))
            })
            .collect();
        let mut sealer = Sealer::new(self.network.clone());
        let collector = tokio::spawn(async move {
            while let Some(r) = readings.recv().await {
                let depth = readings.len();
                // Sign and queue before taking the lock: the board is
                // shared with the API.
                let sealed = signers.get_mut(&r.device).and_then(|(key, last)| {
                    let now = UnixMillis::now();
                    let seq = next_seq(*last, now);
                    let env = seal_reading(&mut sealer, key, &r, seq, now)
                        .map_err(|e| tracing::warn!(device = %r.device, error = %e, "cannot seal a reading"))
                        .ok()?;
                    *last = seq;
                    outboxes.append(&key.public(), seq, &env);
                    let env = Arc::new(env);
                    feed.send(SignedReading {
                        device: key.public(),
                        point: r.point.clone(),
                        envelope: env.clone(),
                    });
                    Some(env)
                });
                let Ok(mut st) = state.lock() else { break };
                st.queue_depth.insert(bridge_name.clone(), depth);
                let dev = st.board.entry(r.device.clone()).or_default();
                match &r.quality {
                    Quality::Good => dev.good += 1,
                    _ => dev.bad += 1,
                }
                if let Some(env) = sealed {
                    dev.sealed.insert(r.point.clone(), env);
                }
                dev.points.insert(
                    r.point.clone(),
                    PointReading {
                        value: r.value.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                        unit: r.unit.clone(),
                        quality: quality_text(&r.quality),
                        timestamp_ms: r.timestamp,
                        cose: None,
                    },
                );
            }
        });
        let mut st = self
            .state
            .lock()
            .map_err(|_| "device state poisoned".to_owned())?;
        for (device, key) in keys {
            let b = st.board.entry(device).or_default();
            b.bridge = bridge.name.clone();
            b.key = Some(key.clone());
        }
        st.running.insert(
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

    /// Forgets board entries of devices no running bridge defines (their
    /// keys stay on disk: re-adding a device restores its identity).
    fn prune_board(&self) {
        if let Ok(mut st) = self.state.lock() {
            let defined: Vec<String> = st
                .running
                .values()
                .flat_map(|r| {
                    r.bus
                        .device_names()
                        .into_iter()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            st.board.retain(|name, _| defined.contains(name));
        }
    }

    /// Every hosted device.
    pub fn list(&self) -> Vec<DeviceInfo> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        st.board
            .iter()
            .map(|(name, b)| {
                let status = st
                    .running
                    .get(&b.bridge)
                    .and_then(|r| r.handle.device_status(name));
                DeviceInfo {
                    name: name.clone(),
                    bridge: b.bridge.clone(),
                    key: b
                        .key
                        .as_ref()
                        .map(|k| k.public().to_string())
                        .unwrap_or_default(),
                    state: match status.as_ref().map(|s| &s.state) {
                        Some(DeviceState::Online) => "online".to_owned(),
                        Some(DeviceState::Offline { reason, .. }) => format!("offline: {reason}"),
                        _ => "starting".to_owned(),
                    },
                    last_success_ms: status.and_then(|s| s.last_success),
                    points: b
                        .points
                        .iter()
                        .map(|(p, r)| {
                            let mut r = r.clone();
                            r.cose = b.sealed.get(p).map(|e| hex::encode(e.as_slice()));
                            (p.clone(), r)
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// One device by name or by its public key (64 hex).
    pub fn get(&self, name_or_key: &str) -> Option<DeviceInfo> {
        self.list()
            .into_iter()
            .find(|d| d.name == name_or_key || d.key == name_or_key)
    }

    /// The identities of every hosted device (for TLS and device records).
    pub fn keypairs(&self) -> Vec<Arc<Keypair>> {
        self.state
            .lock()
            .map(|st| st.board.values().filter_map(|b| b.key.clone()).collect())
            .unwrap_or_default()
    }

    /// The hosted device with this key.
    pub fn by_key(&self, key: &PublicKey) -> Option<Hosted> {
        let st = self.state.lock().ok()?;
        st.board.iter().find_map(|(name, b)| {
            b.key
                .as_ref()
                .filter(|k| k.public() == *key)
                .map(|k| Hosted {
                    name: name.clone(),
                    key: k.clone(),
                })
        })
    }

    /// The latest signed reading envelopes of `device` (one point's, or
    /// every point's).
    pub fn latest_sealed(&self, device: &str, point: Option<&str>) -> Vec<Arc<Vec<u8>>> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        st.board
            .get(device)
            .map(|b| {
                b.sealed
                    .iter()
                    .filter(|(p, _)| point.is_none_or(|want| want == p.as_str()))
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The keys allowed to write `point` of `device` (empty: nobody on the
    /// network may).
    pub fn writers(&self, device: &str, point: &str) -> Vec<String> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        st.board
            .get(device)
            .and_then(|b| st.running.get(&b.bridge))
            .map(|r| r.bus.writers(device, point))
            .unwrap_or_default()
    }

    /// Number of hosted devices.
    pub fn count(&self) -> usize {
        self.state.lock().map(|s| s.board.len()).unwrap_or(0)
    }

    /// Applies a command from the local operator (the API socket is the
    /// gateway's own admin channel; remote writers are checked against the
    /// bridge file's `writers` by the network path).
    pub async fn write(
        &self,
        device: &str,
        point: &str,
        value: &serde_json::Value,
    ) -> Result<(), String> {
        let value = to_bridge_value(value)?;
        let rx = {
            let st = self
                .state
                .lock()
                .map_err(|_| "device state poisoned".to_owned())?;
            let bridge = st
                .board
                .get(device)
                .map(|b| b.bridge.clone())
                .ok_or_else(|| format!("no device {device:?}"))?;
            let running = st
                .running
                .get(&bridge)
                .ok_or_else(|| format!("bridge {bridge} is not running"))?;
            running
                .handle
                .submit(Command {
                    device: device.to_owned(),
                    point: point.to_owned(),
                    value,
                })
                .map_err(|e| e.to_string())?
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the bridge stopped before answering".to_owned()),
        }
    }

    /// Device metric families.
    pub fn families(&self) -> Vec<Family> {
        let mut readings = Family::new(
            "streembit_bridge_readings",
            "Readings from devices, by quality.",
            Kind::Counter,
        );
        let mut online = Family::new(
            "streembit_device_online",
            "Whether a device answers (1) or not (0).",
            Kind::Gauge,
        );
        let mut depth = Family::new(
            "streembit_bridge_queue_depth",
            "Readings waiting to be taken from a bridge.",
            Kind::Gauge,
        );
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        for (name, b) in &st.board {
            readings.push(&[("device", name), ("quality", "good")], b.good);
            readings.push(&[("device", name), ("quality", "bad")], b.bad);
            let is_online = st
                .running
                .get(&b.bridge)
                .and_then(|r| r.handle.device_status(name))
                .is_some_and(|s| s.is_online());
            online.push(&[("device", name)], u64::from(is_online));
        }
        for (bridge, d) in &st.queue_depth {
            depth.push(&[("bridge", bridge)], *d as u64);
        }
        vec![
            readings,
            online,
            depth,
            Family::single(
                "streembit_bridge_reload_errors",
                "Bridge files refused at start or reload.",
                Kind::Counter,
                st.reload_errors,
            ),
        ]
    }

    /// Stops every bridge (shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<Running> = self
            .state
            .lock()
            .map(|mut st| std::mem::take(&mut st.running).into_values().collect())
            .unwrap_or_default();
        for r in all {
            r.collector.abort();
            r.handle.stop().await;
        }
    }
}

/// JSON from the operator to a typed bridge value.
fn to_bridge_value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::from_u64))
            .or_else(|| n.as_f64().map(Value::Float))
            .ok_or_else(|| format!("unsupported number {n}")),
        serde_json::Value::String(s) => Ok(Value::String(s.clone())),
        other => Err(format!(
            "a value must be a bool, number or string, not {other}"
        )),
    }
}
