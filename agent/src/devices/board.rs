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

// Design: a device has one point or a few, so its points are a Vec kept
// in name order, not a map. A BTreeMap allocates a whole node (room for 11
// entries, ~2 KiB with a `ReadingView`) for the first one: with 1,000
// one-point devices, two maps per device came to ~2.4 MiB of a gateway's
// heap, the Vec to ~0.2 MiB.
struct Entry {
    bridge: String,
    key: Arc<Keypair>,
    /// Latest reading per point, by point name.
    points: Vec<Point>,
    good: u64,
    bad: u64,
}

/// One point's latest reading.
struct Point {
    /// As the API shows it (its `cose` is filled from `sealed` when shown:
    /// hex-encoding every reading as it passes would be waste).
    view: ReadingView,
    /// The latest signed reading of the point (raw envelope), if any was
    /// sealed.
    sealed: Option<Arc<Vec<u8>>>,
}

impl Entry {
    fn point(&self, name: &str) -> Option<&Point> {
        self.points
            .binary_search_by(|p| p.view.point.as_str().cmp(name))
            .ok()
            .map(|i| &self.points[i])
    }
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
                points: Vec::new(),
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
                    e.points.retain(|p| points.contains(&p.view.point));
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
        match dev
            .points
            .binary_search_by(|p| p.view.point.cmp(&view.point))
        {
            Ok(i) => {
                let p = &mut dev.points[i];
                p.view = view;
                // A reading that could not be sealed leaves the last
                // signed one in place.
                if sealed.is_some() {
                    p.sealed = sealed;
                }
            }
            Err(i) => {
                // Exactly one more: a Vec's first allocation would
                // otherwise make room for four.
                dev.points.reserve_exact(1);
                dev.points.insert(i, Point { view, sealed });
            }
        }
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
                        .map(|p| {
                            let mut r = p.view.clone();
                            r.cose = p.sealed.as_ref().map(|env| hex::encode(env.as_slice()));
                            (r.point.clone(), r)
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
            Some(p) => e
                .point(p)
                .and_then(|p| p.sealed.clone())
                .into_iter()
                .collect(),
            None => e.points.iter().filter_map(|p| p.sealed.clone()).collect(),
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

    /// Points come out in name order whatever order they arrive in; a
    /// reading that could not be sealed updates the view and leaves the
    /// last signed envelope in place.
    #[test]
    fn latest_reading_per_point_and_its_last_envelope() {
        let board = Board::default();
        let key = Arc::new(Keypair::from_seed(&[5; 32]));
        let (_tx, status) = watch::channel(StatusMap::default());
        board.attach("a.toml", &[("meter".into(), key)], status);
        for (p, env) in [("volts", 1), ("amps", 2), ("watts", 3), ("amps", 4)] {
            board.record(
                "a.toml",
                view("meter", p),
                true,
                Some(Arc::new(vec![env])),
                0,
            );
        }
        let mut unsealed = view("meter", "volts");
        unsealed.value = Some(serde_json::json!(7));
        board.record("a.toml", unsealed, false, None, 0);

        let list = board.list();
        let points: Vec<&String> = list[0].points.keys().collect();
        assert_eq!(points, ["amps", "volts", "watts"]);
        assert_eq!(list[0].points["volts"].value, Some(serde_json::json!(7)));
        assert_eq!(list[0].points["volts"].cose.as_deref(), Some("01"));
        assert_eq!(list[0].points["amps"].cose.as_deref(), Some("04"));
        let envelope = |p| board.latest_sealed("meter", Some(p));
        assert_eq!(envelope("amps"), [Arc::new(vec![4])]);
        assert_eq!(envelope("volts"), [Arc::new(vec![1])]);
        assert!(envelope("none").is_empty());
        let all: Vec<u8> = board
            .latest_sealed("meter", None)
            .iter()
            .map(|e| e[0])
            .collect();
        assert_eq!(all, [4, 1, 3]);
    }
}
