//! Per-device status, as the agent and `streembit devices` see it.

use std::collections::BTreeMap;

use tokio::sync::watch;

use crate::reading::UnixMillis;

/// Whether a device is answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Not polled yet (or, for MQTT, no broker connection yet).
    Starting,
    /// The last exchange with the device worked.
    Online,
    /// The device stopped answering, or its link is down.
    Offline {
        /// Why, in words an operator can act on.
        reason: String,
        /// When it went offline, ms since the Unix epoch.
        since: UnixMillis,
    },
}

/// Status of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Online, offline (with reason) or not yet known.
    pub state: DeviceState,
    /// The last time the device answered, ms since the Unix epoch.
    pub last_success: Option<UnixMillis>,
    /// Failed exchanges since the last success.
    pub consecutive_failures: u32,
}

impl DeviceStatus {
    /// The status of a device nobody has talked to yet.
    #[must_use]
    pub fn starting() -> Self {
        DeviceStatus {
            state: DeviceState::Starting,
            last_success: None,
            consecutive_failures: 0,
        }
    }

    /// True when the device is online.
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.state == DeviceState::Online
    }
}

/// Status of every device of one bridge, by device name.
pub type StatusMap = BTreeMap<String, DeviceStatus>;

/// The writer side of the status map; only event loops hold one.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    tx: watch::Sender<StatusMap>,
}

impl StatusBoard {
    /// A board with every device `Starting`.
    pub(crate) fn new<'a>(devices: impl IntoIterator<Item = &'a str>) -> Self {
        let map = devices
            .into_iter()
            .map(|d| (d.to_owned(), DeviceStatus::starting()))
            .collect();
        StatusBoard {
            tx: watch::Sender::new(map),
        }
    }

    /// A receiver for the handle.
    pub(crate) fn subscribe(&self) -> watch::Receiver<StatusMap> {
        self.tx.subscribe()
    }

    /// Replaces one device's status; watchers are woken only on a change.
    pub(crate) fn set(&self, device: &str, status: DeviceStatus) {
        self.tx.send_if_modified(|map| match map.get_mut(device) {
            Some(old) if *old != status => {
                *old = status;
                true
            }
            Some(_) => false,
            None => {
                map.insert(device.to_owned(), status);
                true
            }
        });
    }
}
