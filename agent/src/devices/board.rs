//! The board: what every hosted device last said, as the API shows it.
//!
//! Collectors write one entry per reading; the API, the device service
//! and metrics read it. It holds each device's key (for TLS and records),
//! its latest view and sealed envelope per point, counts by quality, and a
//! watch on its bridge's status, so reading it never touches a running
//! bridge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use streembit_bridges::{DeviceState, StatusMap};
use tokio::sync::watch;

use crate::api::{DeviceInfo, ReadingView};
use crate::identity::{Keypair, PublicKey};
use crate::metrics::{Family, Kind};

/// A hosted device's identity, for the network side.
#[derive(Clone)]
pub(crate) struct HostedDevice {
    /// Name from the bridge file.
    pub name: String,
    /// Its key.
    pub key: Arc<Keypair>,
}

struct Entry {
    bridge: String,
    key: Arc<Keypair>,
    /// Latest view per point (its `cose` is filled from `sealed` when
    /// shown: hex-encoding every reading as it passes would be waste).
    points: BTreeMap<String, ReadingView>,
    /// The latest signed reading per point (raw envelope).
    sealed: BTreeMap<String, Arc<Vec<u8>>>,
    good: u64,
    bad: u64,
}

#[derive(Default)]
struct Inner {
    devices: BTreeMap<String, Entry>,
    /// Readings waiting in each bridge's channel, as last seen.
    queue_depth: BTreeMap<String, usize>,
    /// Each bridge's device status.
    status: BTreeMap<String, watch::Receiver<StatusMap>>,
}

/// Shared between the collectors and the readers; clones share one board.
#[derive(Clone, Default)]
pub(super) struct Board(Arc<Mutex<Inner>>);

impl Board {
    /// Puts `bridge`'s devices on the board (keeping what they said
    /// before a reload), with a watch on their status.
    pub(super) fn attach(
        &self,
        bridge: &str,
        devices: &[(String, Arc<Keypair>)],
        status: watch::Receiver<StatusMap>,
    ) {
        let Ok(mut b) = self.0.lock() else { return };
        for (name, key) in devices {
            let e = b.devices.entry(name.clone()).or_insert_with(|| Entry {
                bridge: bridge.to_owned(),
                key: key.clone(),
                points: BTreeMap::new(),
                sealed: BTreeMap::new(),
                good: 0,
                bad: 0,
            });
            e.bridge = bridge.to_owned();
            e.key = key.clone();
        }
        b.status.insert(bridge.to_owned(), status);
    }

    /// Keeps only the devices `defined` (each with the points its bridge
    /// file names now: a point removed or renamed disappears, with its
    /// last value) and the bridges in `bridges`. The device keys stay on
    /// disk: re-adding a device restores its identity.
    pub(super) fn retain(&self, defined: &BTreeMap<String, Vec<String>>, bridges: &[String]) {
        if let Ok(mut b) = self.0.lock() {
            b.devices.retain(|name, e| match defined.get(name) {
                Some(points) => {
                    e.points.retain(|p, _| points.contains(p));
                    e.sealed.retain(|p, _| points.contains(p));
                    true
                }
                None => false,
            });
            b.status.retain(|name, _| bridges.contains(name));
        }
    }

    /// Records one reading of `device` and, when it could be sealed, its
    /// envelope; `depth`: readings still waiting behind it.
    pub(super) fn record(
        &self,
        bridge: &str,
        view: ReadingView,
        good: bool,
        sealed: Option<Arc<Vec<u8>>>,
        depth: usize,
    ) {
        let Ok(mut b) = self.0.lock() else { return };
        b.queue_depth.insert(bridge.to_owned(), depth);
        let Some(dev) = b.devices.get_mut(&view.device) else {
            return;
        };
        if good {
            dev.good += 1;
        } else {
            dev.bad += 1;
        }
        if let Some(env) = sealed {
            dev.sealed.insert(view.point.clone(), env);
        }
        dev.points.insert(view.point.clone(), view);
    }

    /// Every hosted device.
    pub(super) fn list(&self) -> Vec<DeviceInfo> {
        let Ok(b) = self.0.lock() else {
            return Vec::new();
        };
        b.devices
            .iter()
            .map(|(name, e)| {
                let status = b
                    .status
                    .get(&e.bridge)
                    .and_then(|s| s.borrow().get(name).cloned());
                DeviceInfo {
                    name: name.clone(),
                    bridge: e.bridge.clone(),
                    key: e.key.public().to_string(),
                    state: match status.as_ref().map(|s| &s.state) {
                        Some(DeviceState::Online) => "online".to_owned(),
                        Some(DeviceState::Offline { reason, .. }) => format!("offline: {reason}"),
                        _ => "starting".to_owned(),
                    },
                    last_success_ms: status.and_then(|s| s.last_success),
                    points: e
                        .points
                        .iter()
                        .map(|(p, r)| {
                            let mut r = r.clone();
                            r.cose = e.sealed.get(p).map(|env| hex::encode(env.as_slice()));
                            (p.clone(), r)
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The identities of every hosted device.
    pub(super) fn keypairs(&self) -> Vec<Arc<Keypair>> {
        self.0
            .lock()
            .map(|b| b.devices.values().map(|e| e.key.clone()).collect())
            .unwrap_or_default()
    }

    /// The hosted device with this key.
    pub(super) fn by_key(&self, key: &PublicKey) -> Option<HostedDevice> {
        let b = self.0.lock().ok()?;
        b.devices
            .iter()
            .find(|(_, e)| e.key.public() == *key)
            .map(|(name, e)| HostedDevice {
                name: name.clone(),
                key: e.key.clone(),
            })
    }

    /// The bridge `device` is defined in.
    pub(super) fn bridge_of(&self, device: &str) -> Option<String> {
        self.0
            .lock()
            .ok()?
            .devices
            .get(device)
            .map(|e| e.bridge.clone())
    }

    /// The latest signed reading envelopes of `device` (one point's, or
    /// every point's).
    pub(super) fn latest_sealed(&self, device: &str, point: Option<&str>) -> Vec<Arc<Vec<u8>>> {
        let Ok(b) = self.0.lock() else {
            return Vec::new();
        };
        let Some(e) = b.devices.get(device) else {
            return Vec::new();
        };
        match point {
            Some(p) => e.sealed.get(p).cloned().into_iter().collect(),
            None => e.sealed.values().cloned().collect(),
        }
    }

    /// Number of hosted devices.
    pub(super) fn count(&self) -> usize {
        self.0.lock().map(|b| b.devices.len()).unwrap_or(0)
    }

    /// Readings by quality, online state, and queue depths.
    pub(super) fn families(&self) -> Vec<Family> {
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
        let Ok(b) = self.0.lock() else {
            return Vec::new();
        };
        for (name, e) in &b.devices {
            readings.push(&[("device", name), ("quality", "good")], e.good);
            readings.push(&[("device", name), ("quality", "bad")], e.bad);
            let is_online = b
                .status
                .get(&e.bridge)
                .and_then(|s| s.borrow().get(name).map(|st| st.is_online()))
                .unwrap_or(false);
            online.push(&[("device", name)], u64::from(is_online));
        }
        for (bridge, d) in &b.queue_depth {
            depth.push(&[("bridge", bridge)], *d as u64);
        }
        vec![readings, online, depth]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(device: &str, point: &str) -> ReadingView {
        ReadingView {
            device: device.into(),
            point: point.into(),
            value: Some(serde_json::json!(1)),
            unit: None,
            quality: "good".into(),
            timestamp_ms: 1,
            seq: 1,
            cose: None,
        }
    }

    /// A point renamed in its bridge file disappears with its last value;
    /// a device removed disappears whole.
    #[test]
    fn removed_points_and_devices_leave_the_board() {
        let board = Board::default();
        let key = Arc::new(Keypair::from_seed(&[3; 32]));
        let other = Arc::new(Keypair::from_seed(&[4; 32]));
        let (_tx, status) = watch::channel(StatusMap::default());
        board.attach(
            "a.toml",
            &[("meter".into(), key), ("old".into(), other)],
            status,
        );
        for p in ["volts", "amps"] {
            board.record("a.toml", view("meter", p), true, Some(Arc::new(vec![1])), 0);
        }
        let defined = BTreeMap::from([("meter".to_owned(), vec!["volts".to_owned()])]);
        board.retain(&defined, &["a.toml".to_owned()]);
        let list = board.list();
        assert_eq!(list.len(), 1, "the removed device is gone");
        let points: Vec<&String> = list[0].points.keys().collect();
        assert_eq!(points, ["volts"]);
        assert_eq!(board.latest_sealed("meter", None).len(), 1);
    }
}
