//! I2C sensors on a Linux bus (`linux-embedded-hal` `I2cdev`), through the
//! embedded-hal 1.0 traits, so every driver also runs against
//! `embedded-hal-mock` in tests.
//!
//! - `config`: the `[i2c]` table and its checks (re-exported from
//!   [`crate::config`]).
//! - [`Bme280`]: BME280/BMP280, our driver (datasheet compensation).
//! - [`Sht3x`]: SHT30/31/35, our driver (datasheet CRC-8).
//! - [`Ads1115`]: TI ADS1115, through the `ads1x1x` crate.
//! - `bus`: the bus as a `Poller` for the shared polling loop
//!   (`crate::poll`), and opening it on Linux; blocking bus I/O runs on
//!   tokio's blocking pool.
//! - [`I2cAddr`]: the 7-bit address newtype.
//!
//! This file only ties the table to the bus contract (`BusConfig`).
//! What the folder does not do: write to sensors (they are read-only:
//! commands are refused), or schedule, keep health or status (the shared
//! loop does).

mod addr;
mod ads1115;
mod bme280;
mod bus;
pub(crate) mod config;
mod sensor;
mod sht3x;

pub use addr::I2cAddr;
pub use ads1115::{volts, Ads1115};
pub use bme280::{Bme280, Calibration};
pub use sensor::Sample;
pub use sht3x::{crc8, Sht3x};

use crate::bus::{BusConfig, BusIo, BusTask, DevicePath, Errors};
use config::I2cBus;

impl BusConfig for I2cBus {
    fn device_names(&self) -> Vec<&str> {
        self.devices.iter().map(|d| d.name.as_str()).collect()
    }

    /// Sensors are read-only: nobody may write them.
    fn writers(&self, _device: &str, _point: &str) -> Vec<String> {
        Vec::new()
    }

    fn validate(&self, path: &str, errs: &mut Errors) {
        self.check(path, errs);
    }

    fn device_paths(&self, path: &str) -> Vec<DevicePath> {
        vec![DevicePath {
            key: format!("{path}.bus"),
            kind: "I2C bus",
            path: self.bus.clone(),
        }]
    }

    fn start(&self, io: BusIo) -> BusTask {
        Box::pin(bus::run_linux(self.clone(), io))
    }
}
