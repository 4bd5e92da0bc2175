//! I2C sensors on a Linux bus (`linux-embedded-hal` `I2cdev`), through the
//! embedded-hal 1.0 traits, so every driver also runs against
//! `embedded-hal-mock` in tests.
//!
//! - [`Bme280`]: BME280/BMP280, our driver (datasheet compensation).
//! - [`Sht3x`]: SHT30/31/35, our driver (datasheet CRC-8).
//! - [`Ads1115`]: TI ADS1115, through the `ads1x1x` crate.
//! - `bus`: the event loop; blocking bus I/O runs on tokio's blocking pool.
//! - [`I2cAddr`]: the 7-bit address newtype.
//!
//! Sensors are read-only: commands for them are refused.

mod addr;
mod ads1115;
mod bme280;
mod bus;
mod sensor;
mod sht3x;

pub use addr::I2cAddr;
pub use ads1115::{volts, Ads1115};
pub use bme280::{Bme280, Calibration};
pub use sensor::Sample;
pub use sht3x::{crc8, Sht3x};

pub(crate) use bus::run_linux;
