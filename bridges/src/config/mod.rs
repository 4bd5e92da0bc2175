//! Bridge files: `bridges.d/*.toml`, one bus per file.
//!
//! The types here are plain `serde::Deserialize` with `deny_unknown_fields`,
//! so the agent can load them with figment as well as with
//! [`BridgeFile::from_toml_str`]. Deserializing checks shapes and types;
//! [`BridgeFile::validate`] then checks everything else and returns **all**
//! problems at once, each naming its key path (`modbus_rtu.devices[0].points[2].address`)
//! and the reason.
//!
//! A file holds exactly one of the tables `[modbus_rtu]`, `[modbus_tcp]`,
//! `[i2c]` or `[mqtt]`. See `bridges/README.md` for the full reference and
//! `examples/bridges.d/` for real devices.
//!
//! - This file: [`BridgeFile`] and [`Bus`], the one place that lists the
//!   buses and names their tables. Each method of `Bus` asks the bus's
//!   table through one `match` (`Bus::config`); `BridgeFile` lists its
//!   tables once (`BridgeFile::tables`).
//! - The tables themselves live with their buses (`modbus/config.rs`,
//!   `i2c/config.rs`, `mqtt/config.rs`) and are re-exported here, so their
//!   paths stay `config::RtuBus` and so on.
//! - `tests`: parsing, every error with its key path, the shipped examples.
//!
//! What it does not do: read files (the agent does), or check that a serial
//! port or I2C bus exists on this machine ([`Bus::device_paths`] names them
//! for the agent; an absent one is a state of the running bus, not an
//! error in the file).

use serde::Deserialize;

pub use crate::bus::{Access, DevicePath};
pub use crate::error::ConfigError;
pub use crate::i2c::config::{AdcChannel, AdcInput, I2cBus, I2cDevice, SensorKind};
pub use crate::modbus::config::{
    ByteOrder, DataType, ModbusDevice, ModbusPoint, Parity, RtuBus, Table, TcpBus, WordOrder,
};
pub use crate::mqtt::config::{
    Availability, CommandFormat, MqttBus, MqttCommand, MqttDevice, MqttPoint, MqttTls, PayloadType,
};

use crate::bus::{BusConfig, BusIo, BusTask, Errors};

/// The contents of one bridge file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeFile {
    /// A Modbus RTU serial line.
    pub modbus_rtu: Option<RtuBus>,
    /// A Modbus TCP host.
    pub modbus_tcp: Option<TcpBus>,
    /// An I2C bus.
    pub i2c: Option<I2cBus>,
    /// An MQTT broker.
    pub mqtt: Option<MqttBus>,
}

/// The one bus a valid bridge file describes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Bus {
    /// A Modbus RTU serial line.
    ModbusRtu(RtuBus),
    /// A Modbus TCP host.
    ModbusTcp(TcpBus),
    /// An I2C bus.
    I2c(I2cBus),
    /// An MQTT broker.
    Mqtt(MqttBus),
}

impl BridgeFile {
    /// Parses TOML text and validates it. On failure returns every problem
    /// found (a syntax error stops at the first one).
    pub fn from_toml_str(text: &str) -> Result<Self, Vec<ConfigError>> {
        let file: BridgeFile = toml::from_str(text).map_err(|e| {
            vec![ConfigError {
                path: "(file)".to_owned(),
                reason: e.to_string().trim_end().to_owned(),
            }]
        })?;
        file.validate()?;
        Ok(file)
    }

    /// Every table a file may hold, by its key, with its bus if present, in
    /// the order problems are reported. Destructured without `..`, so a new
    /// field cannot be left out of this list.
    fn tables(&self) -> Vec<(&'static str, Option<&dyn BusConfig>)> {
        fn table<T: BusConfig>(t: &Option<T>) -> Option<&dyn BusConfig> {
            t.as_ref().map(|t| t as &dyn BusConfig)
        }
        let BridgeFile {
            modbus_rtu,
            modbus_tcp,
            i2c,
            mqtt,
        } = self;
        vec![
            ("modbus_rtu", table(modbus_rtu)),
            ("modbus_tcp", table(modbus_tcp)),
            ("i2c", table(i2c)),
            ("mqtt", table(mqtt)),
        ]
    }

    /// Checks everything deserialization cannot: exactly one bus, names
    /// unique and non-empty, addresses and lengths in range, writers well
    /// formed, commands possible. Returns all problems.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errs = Errors::default();
        let tables = self.tables();
        let count = tables.iter().filter(|(_, bus)| bus.is_some()).count();
        if count != 1 {
            let names: Vec<String> = tables.iter().map(|(key, _)| format!("[{key}]")).collect();
            errs.push(
                "(file)",
                format!(
                    "a bridge file describes exactly one bus: one of {} (found {count})",
                    names.join(", ")
                ),
            );
        }
        for (key, bus) in tables {
            if let Some(bus) = bus {
                bus.validate(key, &mut errs);
            }
        }
        errs.finish()
    }

    /// The bus of a file that passed [`validate`](Self::validate).
    pub fn into_bus(self) -> Result<Bus, Vec<ConfigError>> {
        self.validate()?;
        let BridgeFile {
            modbus_rtu,
            modbus_tcp,
            i2c,
            mqtt,
        } = self;
        modbus_rtu
            .map(Bus::ModbusRtu)
            .or(modbus_tcp.map(Bus::ModbusTcp))
            .or(i2c.map(Bus::I2c))
            .or(mqtt.map(Bus::Mqtt))
            .ok_or_else(|| {
                vec![ConfigError {
                    path: "(file)".to_owned(),
                    reason: "no bus".to_owned(),
                }]
            })
    }
}

impl Bus {
    /// The bus's table and its key in the file: the one `match` over the
    /// buses; every method below asks the table.
    fn config(&self) -> (&'static str, &dyn BusConfig) {
        match self {
            Bus::ModbusRtu(b) => ("modbus_rtu", b),
            Bus::ModbusTcp(b) => ("modbus_tcp", b),
            Bus::I2c(b) => ("i2c", b),
            Bus::Mqtt(b) => ("mqtt", b),
        }
    }

    /// Device names, in file order.
    #[must_use]
    pub fn device_names(&self) -> Vec<&str> {
        self.config().1.device_names()
    }

    /// The points `device` defines, named exactly as its readings' `point`
    /// field: a Modbus or MQTT device's `points` in file order, an I2C
    /// sensor's fixed points (`temperature`, `pressure`, `humidity` for a
    /// BME280; no `humidity` on a BMP280; `temperature`, `humidity` for an
    /// SHT3x) or an ADS1115's `channels`. Empty for an unknown device.
    ///
    /// The bridge never sends a reading of a point outside this list, so
    /// the agent can drop points that a new version of the file removed or
    /// renamed from what it shows.
    #[must_use]
    pub fn point_names(&self, device: &str) -> Vec<String> {
        self.config().1.point_names(device)
    }

    /// The writers allowed for a point: the point's own list if it has one,
    /// else its device's. Empty for read-only or unknown points. The agent
    /// checks a command's signer against this before calling the bridge.
    #[must_use]
    pub fn writers(&self, device: &str, point: &str) -> Vec<String> {
        self.config().1.writers(device, point)
    }

    /// The device files the bus opens (the serial port of `[modbus_rtu]`,
    /// the I2C bus of `[i2c]`), each with its key path and what it is, so
    /// the gateway can warn about one that is absent. It need not refuse
    /// the file: the bus starts anyway, shows its devices offline with the
    /// reason `<path> absent`, and brings them online when the file
    /// appears. Empty for network buses.
    #[must_use]
    pub fn device_paths(&self) -> Vec<DevicePath> {
        let (key, bus) = self.config();
        bus.device_paths(key)
    }

    /// The bus's event loop on `io`, for `BridgeHandle::start` to spawn.
    pub(crate) fn start(&self, io: BusIo) -> BusTask {
        self.config().1.start(io)
    }
}

#[cfg(test)]
mod tests;
