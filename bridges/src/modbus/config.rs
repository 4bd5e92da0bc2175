//! `[modbus_rtu]` and `[modbus_tcp]` tables: the types and their checks.

use serde::Deserialize;

use crate::bus::{check_named_list, check_writers, Access, Errors};

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit (most meters default to this with 1 stop bit).
    #[default]
    None,
    /// Even parity (the Modbus specification's default, 8E1).
    Even,
    /// Odd parity.
    Odd,
}

/// A Modbus RTU serial line: one task polls all its devices in turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuBus {
    /// Serial device, e.g. `/dev/ttyUSB0` or `/dev/ttyAMA0`.
    pub port: String,
    /// Baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Parity: "none", "even" or "odd".
    #[serde(default)]
    pub parity: Parity,
    /// Data bits, 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// How long to wait for a response, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts after a timeout before a poll counts as failed.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Failed polls in a row before a device is marked offline.
    #[serde(default = "default_offline_after")]
    pub offline_after: u32,
    /// Longest wait between polls of an offline device, ms.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Devices (slaves) on the line.
    pub devices: Vec<ModbusDevice>,
}

/// A Modbus TCP host (or gateway): one connection, requests in turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpBus {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    #[serde(default = "default_tcp_port")]
    pub port: u16,
    /// How long to wait for a response (and for connecting), ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts after a timeout before a poll counts as failed.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Failed polls in a row before a device is marked offline.
    #[serde(default = "default_offline_after")]
    pub offline_after: u32,
    /// Longest wait between polls of an offline device, ms.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Devices (unit ids) behind this host.
    pub devices: Vec<ModbusDevice>,
}

/// One Modbus slave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// Device name, unique in the file; the agent derives its key from it.
    pub name: String,
    /// Slave address (unit id), 1..=247 on a serial line.
    pub unit_id: u8,
    /// Poll interval, ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Public keys allowed to write this device's `rw` points.
    #[serde(default)]
    pub writers: Vec<String>,
    /// Registers of this device that become points.
    pub points: Vec<ModbusPoint>,
}

/// Which of the four Modbus tables a point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Read with function 1, written with 5 (or 15).
    Coil,
    /// Read with function 2; read-only.
    DiscreteInput,
    /// Read with function 4; read-only.
    InputRegister,
    /// Read with function 3, written with 6 (or 16).
    HoldingRegister,
}

impl Table {
    /// True for coils and discrete inputs.
    #[must_use]
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }
}

/// How a point's registers decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// One bit (coil/discrete input), or a register that is zero or not.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Four registers, unsigned.
    U64,
    /// Two registers, IEEE 754 single.
    F32,
    /// Four registers, IEEE 754 double.
    F64,
    /// `length` registers of text, two bytes each, NULs trimmed.
    String,
}

impl DataType {
    /// Registers the type takes; `None` for strings (their `length`).
    #[must_use]
    pub fn registers(self) -> Option<u16> {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => Some(1),
            DataType::U32 | DataType::I32 | DataType::F32 => Some(2),
            DataType::U64 | DataType::F64 => Some(4),
            DataType::String => None,
        }
    }
}

/// Order of the 16-bit words of a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordOrder {
    /// Most significant word first (the Modbus convention; "ABCD").
    #[default]
    Big,
    /// Least significant word first ("CDAB", common on PLCs).
    Little,
}

/// Order of the two bytes inside each register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// High byte first (the Modbus convention).
    #[default]
    Big,
    /// Low byte first ("BADC" with big word order).
    Little,
}

/// One point: a value made of one or more registers (or one bit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusPoint {
    /// Point name, unique in its device.
    pub name: String,
    /// Which table.
    pub table: Table,
    /// 0-based protocol address (register 30001 in "Modicon" numbering is
    /// input register address 0).
    pub address: u16,
    /// Data type; defaults to `bool` for bit tables and `u16` otherwise.
    #[serde(rename = "type")]
    pub data_type: Option<DataType>,
    /// Registers of a `string` point.
    pub length: Option<u16>,
    /// Word order of multi-register values.
    #[serde(default)]
    pub word_order: WordOrder,
    /// Byte order inside each register.
    #[serde(default)]
    pub byte_order: ByteOrder,
    /// Engineering value = raw × scale + offset (makes the value a float).
    pub scale: Option<f64>,
    /// See `scale`.
    pub offset: Option<f64>,
    /// Unit of the engineering value, e.g. "V".
    pub unit: Option<String>,
    /// "r" (default) or "rw".
    #[serde(default)]
    pub access: Access,
    /// Always write with function 16 (or 15), even a single register:
    /// some devices (e.g. Eastron meters) accept nothing else.
    #[serde(default)]
    pub write_multiple: bool,
    /// Writers for this point only, replacing the device's list.
    pub writers: Option<Vec<String>>,
}

impl ModbusPoint {
    /// The effective data type.
    #[must_use]
    pub fn data_type(&self) -> DataType {
        self.data_type.unwrap_or(if self.table.is_bits() {
            DataType::Bool
        } else {
            DataType::U16
        })
    }

    /// Registers (or bits) the point spans.
    #[must_use]
    pub fn span(&self) -> u16 {
        if self.table.is_bits() {
            return 1;
        }
        self.data_type()
            .registers()
            .unwrap_or(self.length.unwrap_or(1))
    }
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> u32 {
    1
}
fn default_offline_after() -> u32 {
    3
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_tcp_port() -> u16 {
    502
}
fn default_poll_ms() -> u64 {
    1000
}

impl RtuBus {
    /// See [`BusConfig::validate`](crate::bus::BusConfig::validate).
    pub(super) fn check(&self, path: &str, errs: &mut Errors) {
        errs.check(
            !self.port.is_empty(),
            &format!("{path}.port"),
            "must name a serial device",
        );
        errs.check(self.baud > 0, &format!("{path}.baud"), "must be positive");
        errs.check(
            matches!(self.data_bits, 7 | 8),
            &format!("{path}.data_bits"),
            "must be 7 or 8",
        );
        errs.check(
            matches!(self.stop_bits, 1 | 2),
            &format!("{path}.stop_bits"),
            "must be 1 or 2",
        );
        validate_timing(path, self.timeout_ms, self.offline_after, errs);
        validate_devices(path, &self.devices, true, errs);
    }
}

impl TcpBus {
    /// See [`BusConfig::validate`](crate::bus::BusConfig::validate).
    pub(super) fn check(&self, path: &str, errs: &mut Errors) {
        errs.check(
            !self.host.is_empty(),
            &format!("{path}.host"),
            "must not be empty",
        );
        errs.check(self.port > 0, &format!("{path}.port"), "must not be 0");
        validate_timing(path, self.timeout_ms, self.offline_after, errs);
        validate_devices(path, &self.devices, false, errs);
    }
}

fn validate_timing(path: &str, timeout_ms: u64, offline_after: u32, errs: &mut Errors) {
    errs.check(
        (1..=60_000).contains(&timeout_ms),
        &format!("{path}.timeout_ms"),
        "must be between 1 and 60000",
    );
    errs.check(
        offline_after >= 1,
        &format!("{path}.offline_after"),
        "must be at least 1",
    );
}

fn validate_devices(path: &str, devices: &[ModbusDevice], serial: bool, errs: &mut Errors) {
    check_named_list(
        errs,
        &format!("{path}.devices"),
        "device",
        devices.iter().map(|d| d.name.as_str()),
    );
    let mut units = std::collections::HashSet::new();
    for (i, d) in devices.iter().enumerate() {
        let dp = format!("{path}.devices[{i}]");
        if serial && !(1..=247).contains(&d.unit_id) {
            errs.push(
                &format!("{dp}.unit_id"),
                "a slave address on a serial line is 1..=247",
            );
        }
        if !units.insert(d.unit_id) {
            errs.push(
                &format!("{dp}.unit_id"),
                format!("unit id {} is used twice", d.unit_id),
            );
        }
        errs.check(
            d.poll_ms >= 1,
            &format!("{dp}.poll_ms"),
            "must be at least 1",
        );
        check_writers(errs, &format!("{dp}.writers"), &d.writers);
        check_named_list(
            errs,
            &format!("{dp}.points"),
            "point",
            d.points.iter().map(|p| p.name.as_str()),
        );
        for (j, p) in d.points.iter().enumerate() {
            validate_point(&format!("{dp}.points[{j}]"), p, !d.writers.is_empty(), errs);
        }
    }
}

fn validate_point(pp: &str, p: &ModbusPoint, device_writers: bool, errs: &mut Errors) {
    let ty = p.data_type();
    if p.table.is_bits() && ty != DataType::Bool {
        errs.push(&format!("{pp}.type"), "coils and discrete inputs are bool");
    }
    if ty == DataType::String {
        match p.length {
            Some(1..=125) => {}
            _ => errs.push(
                &format!("{pp}.length"),
                "a string point needs length = 1..=125 registers",
            ),
        }
    } else if p.length.is_some() {
        errs.push(&format!("{pp}.length"), "only string points have a length");
    }
    if u32::from(p.address) + u32::from(p.span()) > 0x1_0000 {
        errs.push(
            &format!("{pp}.address"),
            "the point runs past register 65535",
        );
    }
    let numeric = !matches!(ty, DataType::Bool | DataType::String);
    errs.scaling(pp, p.scale, p.offset, numeric, "numeric types");
    if p.access == Access::ReadWrite {
        if matches!(p.table, Table::DiscreteInput | Table::InputRegister) {
            errs.push(
                &format!("{pp}.access"),
                "discrete inputs and input registers are read-only",
            );
        }
        let has_writers = p.writers.as_ref().map_or(device_writers, |w| !w.is_empty());
        errs.check(
            has_writers,
            &format!("{pp}.writers"),
            "an rw point needs writers (here or on its device): nobody could write it",
        );
    } else if p.writers.is_some() {
        errs.push(
            &format!("{pp}.writers"),
            "writers on a read-only point; set access = \"rw\"",
        );
    }
    if let Some(w) = &p.writers {
        check_writers(errs, &format!("{pp}.writers"), w);
    }
}
