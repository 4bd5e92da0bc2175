//! Errors, in the two layers the crate keeps apart, and the problems of a
//! bridge file.
//!
//! Like tokio-modbus's `Result<Result<T, ExceptionCode>, Error>`, "the link
//! failed" ([`BridgeError`]) and "the device said no / sent nonsense"
//! ([`PointError`]) are different types: a point error travels inside a
//! [`Reading`](crate::Reading) and never tears the bridge down, a link error
//! changes a device's [`DeviceStatus`](crate::DeviceStatus).
//! [`ConfigError`] is neither: a bridge file that cannot run at all.

use thiserror::Error;

/// A failure of the bridge or of the link to a device (not of one point).
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The device or broker did not answer within the configured timeout.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// Opening or using the port, socket or bus failed (local I/O).
    #[error("i/o: {0}")]
    Io(String),
    /// The bus's device file (a serial port, an I2C bus) cannot be opened:
    /// it is absent (`/dev/ttyUSB0 absent`), not permitted or busy. The
    /// text names the path, the cause and, where there is one, the fix.
    /// A state of the gateway, not of any device on the bus: the bridge
    /// keeps trying to open it.
    #[error("{0}")]
    CannotOpen(String),
    /// The peer broke the protocol: bad frame, mismatched response, bad packet.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(String),
    /// The caller asked for something the configuration does not allow.
    #[error("misuse: {0}")]
    Misuse(String),
    /// The bridge task has stopped; nothing more can be sent to it.
    #[error("bridge stopped")]
    Stopped,
    /// The bridge's command queue is full; try again later.
    #[error("command queue full")]
    Busy,
}

/// Why one point has no good value: the device answered, but not with a
/// usable value, or a command for it could not be applied.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PointError {
    /// A Modbus exception response (e.g. 2, illegal data address).
    #[error("device exception {code:#04x} ({name})")]
    Exception {
        /// The exception code from the response.
        code: u8,
        /// Its name in the Modbus specification.
        name: &'static str,
    },
    /// The value decoded but is NaN or infinite.
    #[error("value is not a finite number")]
    NotFinite,
    /// The value does not fit the point's type or range.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The payload could not be decoded as the point's type.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Configured maximum.
        limit: usize,
    },
    /// The JSON pointer of the point matches nothing in the payload.
    #[error("no value at JSON pointer {0}")]
    Missing(String),
    /// The command names a device or point this bridge does not have.
    #[error("unknown device or point: {0}")]
    Unknown(String),
    /// The point is read-only.
    #[error("point is read-only")]
    ReadOnly,
    /// The command's value has the wrong type for the point.
    #[error("type mismatch: {0}")]
    Type(String),
    /// The sensor reported a fault (bad CRC, not ready, wrong chip id).
    #[error("sensor fault: {0}")]
    Sensor(String),
}

/// What a command came to: `Ok` once the device (or broker, for MQTT QoS 1)
/// acknowledged it; a link failure or a point-level refusal otherwise.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The link failed while applying the command.
    #[error(transparent)]
    Link(#[from] BridgeError),
    /// The device (or the bridge's own checks) refused the value.
    #[error(transparent)]
    Point(#[from] PointError),
}

/// One problem in a bridge file: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// Key path, e.g. `modbus_rtu.devices[0].points[2].address`.
    pub path: String,
    /// What is wrong and, where it helps, how to fix it.
    pub reason: String,
}
