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

mod i2c;
mod modbus;
mod mqtt;
mod validate;

use std::collections::HashSet;

use serde::Deserialize;

pub use i2c::{AdcChannel, AdcInput, I2cBus, I2cDevice, SensorKind};
pub use modbus::{
    Access, ByteOrder, DataType, ModbusDevice, ModbusPoint, Parity, RtuBus, Table, TcpBus,
    WordOrder,
};
pub use mqtt::{
    Availability, CommandFormat, MqttBus, MqttCommand, MqttDevice, MqttPoint, MqttTls, PayloadType,
};

use validate::Errors;

/// One problem in a bridge file: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// Key path, e.g. `modbus_rtu.devices[0].points[2].address`.
    pub path: String,
    /// What is wrong and, where it helps, how to fix it.
    pub reason: String,
}

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

    /// Checks everything deserialization cannot: exactly one bus, names
    /// unique and non-empty, addresses and lengths in range, writers well
    /// formed, commands possible. Returns all problems.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errs = Errors::default();
        let count = [
            self.modbus_rtu.is_some(),
            self.modbus_tcp.is_some(),
            self.i2c.is_some(),
            self.mqtt.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count != 1 {
            errs.push(
                "(file)",
                format!(
                    "a bridge file describes exactly one bus: one of [modbus_rtu], [modbus_tcp], [i2c], [mqtt] (found {count})"
                ),
            );
        }
        if let Some(b) = &self.modbus_rtu {
            b.validate("modbus_rtu", &mut errs);
        }
        if let Some(b) = &self.modbus_tcp {
            b.validate("modbus_tcp", &mut errs);
        }
        if let Some(b) = &self.i2c {
            b.validate("i2c", &mut errs);
        }
        if let Some(b) = &self.mqtt {
            b.validate("mqtt", &mut errs);
        }
        errs.finish()
    }

    /// The bus of a file that passed [`validate`](Self::validate).
    pub fn into_bus(self) -> Result<Bus, Vec<ConfigError>> {
        self.validate()?;
        let bus = match (self.modbus_rtu, self.modbus_tcp, self.i2c, self.mqtt) {
            (Some(b), _, _, _) => Bus::ModbusRtu(b),
            (_, Some(b), _, _) => Bus::ModbusTcp(b),
            (_, _, Some(b), _) => Bus::I2c(b),
            (_, _, _, Some(b)) => Bus::Mqtt(b),
            _ => {
                return Err(vec![ConfigError {
                    path: "(file)".to_owned(),
                    reason: "no bus".to_owned(),
                }])
            }
        };
        Ok(bus)
    }
}

impl Bus {
    /// Device names, in file order.
    #[must_use]
    pub fn device_names(&self) -> Vec<&str> {
        match self {
            Bus::ModbusRtu(b) => b.devices.iter().map(|d| d.name.as_str()).collect(),
            Bus::ModbusTcp(b) => b.devices.iter().map(|d| d.name.as_str()).collect(),
            Bus::I2c(b) => b.devices.iter().map(|d| d.name.as_str()).collect(),
            Bus::Mqtt(b) => b.devices.iter().map(|d| d.name.as_str()).collect(),
        }
    }

    /// The writers allowed for a point: the point's own list if it has one,
    /// else its device's. Empty for read-only or unknown points. The agent
    /// checks a command's signer against this before calling the bridge.
    #[must_use]
    pub fn writers(&self, device: &str, point: &str) -> Vec<String> {
        fn pick(dev: &[String], pt: Option<&Vec<String>>, rw: bool) -> Vec<String> {
            if !rw {
                return Vec::new();
            }
            pt.cloned().unwrap_or_else(|| dev.to_vec())
        }
        match self {
            Bus::ModbusRtu(b) => modbus_writers(&b.devices, device, point),
            Bus::ModbusTcp(b) => modbus_writers(&b.devices, device, point),
            Bus::I2c(_) => Vec::new(),
            Bus::Mqtt(b) => b
                .devices
                .iter()
                .find(|d| d.name == device)
                .and_then(|d| {
                    d.points.iter().find(|p| p.name == point).map(|p| {
                        pick(
                            &d.writers,
                            p.writers.as_ref(),
                            p.access == Access::ReadWrite,
                        )
                    })
                })
                .unwrap_or_default(),
        }
    }
}

fn modbus_writers(devices: &[ModbusDevice], device: &str, point: &str) -> Vec<String> {
    devices
        .iter()
        .find(|d| d.name == device)
        .and_then(|d| {
            d.points.iter().find(|p| p.name == point).map(|p| {
                if p.access == Access::ReadWrite {
                    p.writers.clone().unwrap_or_else(|| d.writers.clone())
                } else {
                    Vec::new()
                }
            })
        })
        .unwrap_or_default()
}

/// A list of named items (a bus's devices, a device's points) at
/// `list_path`: at least one `noun`, names valid and unique.
fn check_named_list<'a>(
    errs: &mut Errors,
    list_path: &str,
    noun: &str,
    names: impl ExactSizeIterator<Item = &'a str>,
) {
    errs.check(
        names.len() > 0,
        list_path,
        format!("needs at least one {noun}"),
    );
    check_names(
        errs,
        names
            .enumerate()
            .map(|(i, name)| (format!("{list_path}[{i}].name"), name)),
    );
}

/// Checks names are non-empty, printable identifiers and unique in `names`.
fn check_names<'a>(errs: &mut Errors, items: impl IntoIterator<Item = (String, &'a str)>) {
    let mut seen = HashSet::new();
    for (path, name) in items {
        if name.is_empty() {
            errs.push(&path, "must not be empty");
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errs.push(
                &path,
                format!("{name:?} may only contain letters, digits, '-', '_' and '.'"),
            );
        } else if !seen.insert(name) {
            errs.push(&path, format!("{name:?} is used twice"));
        }
    }
}

/// Writers are Ed25519 public keys in their text form: 64 lowercase hex.
fn check_writers(errs: &mut Errors, path: &str, writers: &[String]) {
    for (i, w) in writers.iter().enumerate() {
        let ok = w.len() == 64 && w.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            errs.push(
                &format!("{path}[{i}]"),
                "a writer is a public key: exactly 64 lowercase hex characters",
            );
        }
    }
}

#[cfg(test)]
mod tests;
