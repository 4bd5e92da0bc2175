//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs and free to change).
//!
//! The register codec and the MQTT payload mapper are crate-private because
//! the agent only ever sees [`Reading`](crate::Reading)s; the fuzzers need to
//! call them directly, like rustls exposes its deframer to `fuzz/fuzzers/`.
//! These are one-line forwards, so what is fuzzed is exactly what runs.

use crate::config::{ModbusPoint, MqttCommand, MqttPoint};
use crate::error::PointError;
use crate::value::Value;

/// Decodes a point's registers ([`modbus::codec`](crate::modbus)).
pub fn modbus_decode(p: &ModbusPoint, regs: &[u16]) -> Result<Value, PointError> {
    crate::modbus::codec::decode_registers(p, regs)
}

/// Encodes a command value into a point's registers.
pub fn modbus_encode(p: &ModbusPoint, v: &Value) -> Result<Vec<u16>, PointError> {
    crate::modbus::codec::encode_registers(p, v)
}

/// The value of one MQTT point from a message payload, parsed as the bridge
/// parses it (as JSON only when the point has a pointer).
pub fn mqtt_value(p: &MqttPoint, payload: &[u8]) -> Result<Value, PointError> {
    let (text, json) = crate::mqtt::payload::parse(payload, p.pointer.is_some());
    crate::mqtt::payload::point_value(p, &text, json.as_ref())
}

/// The payload the bridge publishes for a command.
pub fn mqtt_command_payload(
    p: &MqttPoint,
    c: &MqttCommand,
    v: &Value,
) -> Result<Vec<u8>, PointError> {
    crate::mqtt::payload::command_payload(p, c, v)
}
