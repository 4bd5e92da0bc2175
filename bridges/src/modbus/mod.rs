//! Modbus RTU and TCP: one task per serial line or TCP host.
//!
//! - `codec`: registers ⇄ values (types, word/byte order, scale).
//! - `plan`: contiguous points coalesced into requests of ≤ 125 registers.
//! - `line`: the event loop that owns the port or connection.
//! - [`UnitId`]: the slave address newtype.

pub(crate) mod codec;
pub(crate) mod line;
pub(crate) mod plan;
mod unit_id;

pub use unit_id::UnitId;

use tokio_modbus::ExceptionCode;

use crate::error::PointError;

/// A Modbus exception response as a point error.
pub(crate) fn exception(code: ExceptionCode) -> PointError {
    let name = match code {
        ExceptionCode::IllegalFunction => "illegal function",
        ExceptionCode::IllegalDataAddress => "illegal data address",
        ExceptionCode::IllegalDataValue => "illegal data value",
        ExceptionCode::ServerDeviceFailure => "server device failure",
        ExceptionCode::Acknowledge => "acknowledge",
        ExceptionCode::ServerDeviceBusy => "server device busy",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond",
        _ => "unknown exception",
    };
    PointError::Exception {
        code: u8::from(code),
        name,
    }
}
