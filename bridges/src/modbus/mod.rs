//! Modbus RTU and TCP: one task per serial line or TCP host.
//!
//! - `config`: the `[modbus_rtu]` and `[modbus_tcp]` tables and their
//!   checks (re-exported from [`crate::config`]).
//! - `codec`: registers ⇄ values (types, word/byte order, scale), and
//!   exception codes → point errors.
//! - `plan`: contiguous points coalesced into requests of ≤ 125 registers.
//! - `line`: the port or connection, as a `Poller` for the shared polling
//!   loop (`crate::poll`): reads, writes, timeouts, retries, reopening; a
//!   serial port that cannot be opened (`/dev/ttyUSB0 absent`) is the
//!   line's state, reported for every device until the port appears.
//! - [`UnitId`]: the slave address newtype.
//!
//! This file only ties the tables to the bus contract (`BusConfig`).
//! What the folder does not do: scheduling, health and status (the shared
//! loop does), and RTU and TCP differ only in how `line` opens the link.

pub(crate) mod codec;
pub(crate) mod config;
pub(crate) mod line;
pub(crate) mod plan;
mod unit_id;

pub use unit_id::UnitId;

use crate::bus::{point_writers, BusConfig, BusIo, BusTask, DevicePath, Errors};
use config::{ModbusDevice, RtuBus, TcpBus};
use line::Line;

impl BusConfig for RtuBus {
    fn device_names(&self) -> Vec<&str> {
        names(&self.devices)
    }

    fn writers(&self, device: &str, point: &str) -> Vec<String> {
        writers(&self.devices, device, point)
    }

    fn point_names(&self, device: &str) -> Vec<String> {
        point_names(&self.devices, device)
    }

    fn validate(&self, path: &str, errs: &mut Errors) {
        self.check(path, errs);
    }

    fn device_paths(&self, path: &str) -> Vec<DevicePath> {
        vec![DevicePath {
            key: format!("{path}.port"),
            kind: "serial device",
            path: self.port.clone(),
        }]
    }

    fn start(&self, io: BusIo) -> BusTask {
        Box::pin(crate::poll::run(Line::rtu(self.clone()), io))
    }
}

impl BusConfig for TcpBus {
    fn device_names(&self) -> Vec<&str> {
        names(&self.devices)
    }

    fn writers(&self, device: &str, point: &str) -> Vec<String> {
        writers(&self.devices, device, point)
    }

    fn point_names(&self, device: &str) -> Vec<String> {
        point_names(&self.devices, device)
    }

    fn validate(&self, path: &str, errs: &mut Errors) {
        self.check(path, errs);
    }

    fn start(&self, io: BusIo) -> BusTask {
        Box::pin(crate::poll::run(Line::tcp(self.clone()), io))
    }
}

fn names(devices: &[ModbusDevice]) -> Vec<&str> {
    devices.iter().map(|d| d.name.as_str()).collect()
}

fn point_names(devices: &[ModbusDevice], device: &str) -> Vec<String> {
    devices
        .iter()
        .find(|d| d.name == device)
        .map(|d| d.points.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default()
}

fn writers(devices: &[ModbusDevice], device: &str, point: &str) -> Vec<String> {
    devices
        .iter()
        .find(|d| d.name == device)
        .and_then(|d| {
            d.points
                .iter()
                .find(|p| p.name == point)
                .map(|p| point_writers(p.access, p.writers.as_ref(), &d.writers))
        })
        .unwrap_or_default()
}
