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
//!   (`crate::poll`), and opening it on Linux (again after a failed
//!   transfer; an absent bus is its state, `/dev/i2c-1 absent`, until it
//!   appears); blocking bus I/O runs on tokio's blocking pool.
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
use config::{I2cBus, SensorKind};

impl BusConfig for I2cBus {
    fn device_names(&self) -> Vec<&str> {
        self.devices.iter().map(|d| d.name.as_str()).collect()
    }

    /// Sensors are read-only: nobody may write them.
    fn writers(&self, _device: &str, _point: &str) -> Vec<String> {
        Vec::new()
    }

    /// A sensor's points are fixed by its kind (the drivers name them from
    /// the same constants) or, for an ADS1115, its channels.
    fn point_names(&self, device: &str) -> Vec<String> {
        let Some(d) = self.devices.iter().find(|d| d.name == device) else {
            return Vec::new();
        };
        let fixed: &[&str] = match d.sensor {
            SensorKind::Bme280 => bme280::point_names(true),
            SensorKind::Bmp280 => bme280::point_names(false),
            SensorKind::Sht3x => &sht3x::POINTS,
            SensorKind::Ads1115 => {
                return d.channels.iter().map(|c| c.name.clone()).collect();
            }
        };
        fixed.iter().map(|&p| p.to_owned()).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sensor kind's points, as its driver names its samples (the
    /// driver tests check the samples against the same lists).
    #[test]
    fn point_names_follow_the_sensor_kind() {
        let bus: I2cBus = crate::bus::parse_table(
            r#"
[i2c]
bus = "/dev/i2c-1"
[[i2c.devices]]
name = "bme"
sensor = "bme280"
address = 0x76
[[i2c.devices]]
name = "bmp"
sensor = "bmp280"
address = 0x77
[[i2c.devices]]
name = "sht"
sensor = "sht3x"
address = 0x44
[[i2c.devices]]
name = "adc"
sensor = "ads1115"
address = 0x48
channels = [ { name = "supply", input = "a0" }, { name = "level", input = "a2-a3" } ]
"#,
        );
        let names = |d: &str| bus.point_names(d);
        assert_eq!(names("bme"), ["temperature", "pressure", "humidity"]);
        assert_eq!(names("bmp"), ["temperature", "pressure"]);
        assert_eq!(names("sht"), ["temperature", "humidity"]);
        assert_eq!(names("adc"), ["supply", "level"]);
        assert!(names("nope").is_empty());
    }
}
