//! `[i2c]` table: one Linux I2C bus and the sensors on it.

use serde::Deserialize;

use crate::bus::{check_named_list, check_names, Errors};

/// One I2C bus (`/dev/i2c-N`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cBus {
    /// Bus device, e.g. `/dev/i2c-1` on a Raspberry Pi.
    pub bus: String,
    /// Failed polls in a row before a sensor is marked offline.
    #[serde(default = "default_offline_after")]
    pub offline_after: u32,
    /// Longest wait between polls of an offline sensor, ms.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Sensors on the bus.
    pub devices: Vec<I2cDevice>,
}

/// Supported sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    /// Bosch BME280: temperature (°C), pressure (hPa), humidity (%RH).
    Bme280,
    /// Bosch BMP280: temperature (°C), pressure (hPa).
    Bmp280,
    /// Sensirion SHT3x (SHT30/31/35): temperature (°C), humidity (%RH).
    Sht3x,
    /// TI ADS1115 16-bit ADC: one point per configured channel (V, scaled).
    Ads1115,
}

/// One sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cDevice {
    /// Device name, unique in the file.
    pub name: String,
    /// Sensor type.
    pub sensor: SensorKind,
    /// 7-bit address (0x76/0x77 BME280, 0x44/0x45 SHT3x, 0x48..=0x4B ADS1115).
    pub address: u8,
    /// Poll interval, ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// ADS1115 only: the channels to read.
    #[serde(default)]
    pub channels: Vec<AdcChannel>,
}

/// ADS1115 multiplexer input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdcInput {
    /// AIN0 against GND.
    A0,
    /// AIN1 against GND.
    A1,
    /// AIN2 against GND.
    A2,
    /// AIN3 against GND.
    A3,
    /// AIN0 − AIN1.
    #[serde(rename = "a0-a1")]
    A0A1,
    /// AIN2 − AIN3.
    #[serde(rename = "a2-a3")]
    A2A3,
}

/// One ADS1115 channel point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdcChannel {
    /// Point name.
    pub name: String,
    /// Input.
    pub input: AdcInput,
    /// Full-scale range in mV: 6144, 4096, 2048, 1024, 512 or 256.
    #[serde(default = "default_fsr")]
    pub range_mv: u16,
    /// Engineering value = volts × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    /// See `scale`.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the engineering value (default "V").
    pub unit: Option<String>,
}

fn default_offline_after() -> u32 {
    3
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_poll_ms() -> u64 {
    5000
}
fn default_fsr() -> u16 {
    4096
}
fn one() -> f64 {
    1.0
}

impl I2cBus {
    /// See [`BusConfig::validate`](crate::bus::BusConfig::validate).
    pub(super) fn check(&self, path: &str, errs: &mut Errors) {
        errs.check(
            !self.bus.is_empty(),
            &format!("{path}.bus"),
            "must name an I2C device",
        );
        errs.check(
            self.offline_after >= 1,
            &format!("{path}.offline_after"),
            "must be at least 1",
        );
        check_named_list(
            errs,
            &format!("{path}.devices"),
            "device",
            self.devices.iter().map(|d| d.name.as_str()),
        );
        let mut addrs = std::collections::HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let dp = format!("{path}.devices[{i}]");
            let ok: &[u8] = match d.sensor {
                SensorKind::Bme280 | SensorKind::Bmp280 => &[0x76, 0x77],
                SensorKind::Sht3x => &[0x44, 0x45],
                SensorKind::Ads1115 => &[0x48, 0x49, 0x4A, 0x4B],
            };
            if !ok.contains(&d.address) {
                errs.push(
                    &format!("{dp}.address"),
                    format!("a {:?} answers only at {ok:#04x?}", d.sensor),
                );
            }
            if !addrs.insert(d.address) {
                errs.push(
                    &format!("{dp}.address"),
                    format!("address {:#04x} is used twice", d.address),
                );
            }
            errs.check(
                d.poll_ms >= 1,
                &format!("{dp}.poll_ms"),
                "must be at least 1",
            );
            if d.sensor == SensorKind::Ads1115 {
                errs.check(
                    !d.channels.is_empty(),
                    &format!("{dp}.channels"),
                    "an ads1115 needs channels",
                );
            } else if !d.channels.is_empty() {
                errs.push(&format!("{dp}.channels"), "only an ads1115 has channels");
            }
            check_names(
                errs,
                d.channels
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (format!("{dp}.channels[{j}].name"), c.name.as_str())),
            );
            for (j, c) in d.channels.iter().enumerate() {
                let cp = format!("{dp}.channels[{j}]");
                errs.check(
                    matches!(c.range_mv, 6144 | 4096 | 2048 | 1024 | 512 | 256),
                    &format!("{cp}.range_mv"),
                    "must be one of 6144, 4096, 2048, 1024, 512, 256",
                );
                errs.check(
                    c.scale.is_finite() && c.scale != 0.0,
                    &format!("{cp}.scale"),
                    "must be finite and non-zero",
                );
                errs.check(
                    c.offset.is_finite(),
                    &format!("{cp}.offset"),
                    "must be finite",
                );
            }
        }
    }
}
