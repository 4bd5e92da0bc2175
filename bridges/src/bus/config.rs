//! What every bus's table of a bridge file answers, so that `Bus` and
//! `BridgeFile` ask each bus the same questions instead of matching on
//! every variant in every method.

use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;

use super::io::BusIo;
use super::validate::Errors;

/// A bus's event loop, ready to spawn: it runs until its readings receiver
/// is dropped.
pub(crate) type BusTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One bus's table in a bridge file (`[modbus_rtu]`, `[i2c]`, ...): the
/// questions the agent and the bridge ask of any bus.
///
/// Every method takes `&self`, so the trait is object-safe and `Bus` picks
/// the `&dyn BusConfig` in one `match`. `path` arguments are the table's
/// key in the file (`modbus_rtu`), so that messages name the key.
pub(crate) trait BusConfig {
    /// Device names, in file order.
    fn device_names(&self) -> Vec<&str>;

    /// The writers allowed for a point: the point's own list if it has one,
    /// else its device's. Empty for read-only or unknown points.
    fn writers(&self, device: &str, point: &str) -> Vec<String>;

    /// The points `device` defines, named exactly as its readings' `point`
    /// field, so the agent can drop points a new version of the file
    /// removed or renamed. Empty for an unknown device.
    fn point_names(&self, device: &str) -> Vec<String>;

    /// Checks everything deserialization cannot, pushing every problem
    /// with its key path under `path`.
    fn validate(&self, path: &str, errs: &mut Errors);

    /// The device files the bus opens (a serial port, an I2C bus), which
    /// only the gateway can check exist. The bus starts without them (its
    /// devices show offline until the file appears); the list lets the
    /// gateway warn. None for network buses.
    fn device_paths(&self, path: &str) -> Vec<DevicePath> {
        let _ = path;
        Vec::new()
    }

    /// The bus's event loop on `io`. It keeps a copy of what it needs from
    /// `self` (the config is small, and `&self` keeps the trait
    /// object-safe).
    fn start(&self, io: BusIo) -> BusTask;
}

/// A device file a bus opens, for the gateway to check: the bridge file is
/// valid anywhere, the `/dev` entry exists only on the gateway it was
/// written for, and maybe not yet (an adapter unplugged at boot, i2c-dev
/// not loaded). An absent file is not an error in the file: the bus runs
/// without it, its devices offline as `<path> absent`, and comes online
/// when the file appears; the gateway may warn about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevicePath {
    /// Key path in the bridge file, e.g. `modbus_rtu.port`.
    pub key: String,
    /// What the file is, for messages: "serial device", "I2C bus".
    pub kind: &'static str,
    /// The path from the file, e.g. `/dev/ttyUSB0`.
    pub path: String,
}

/// Whether commands may write a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Access {
    /// Read only.
    #[default]
    #[serde(rename = "r")]
    Read,
    /// Read and write.
    #[serde(rename = "rw")]
    ReadWrite,
}

/// The writers of one point: its own list if it has one, else its
/// device's; none for a read-only point. The same rule on every bus.
pub(crate) fn point_writers(
    access: Access,
    point: Option<&Vec<String>>,
    device: &[String],
) -> Vec<String> {
    if access != Access::ReadWrite {
        return Vec::new();
    }
    point.cloned().unwrap_or_else(|| device.to_vec())
}
