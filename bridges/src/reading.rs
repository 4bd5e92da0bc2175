//! Readings (what a bridge yields) and commands (what it accepts).

use crate::error::PointError;
use crate::value::Value;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// How far a reading can be trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum Quality {
    /// The device answered and the value decoded within its type and range.
    Good,
    /// The device answered, but this point has no usable value.
    Bad(PointError),
}

/// One value of one point of one device, at one time.
///
/// Invariant: `value` is `Some` exactly when `quality` is [`Quality::Good`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Device name from the bridge file.
    pub device: String,
    /// Point name from the bridge file.
    pub point: String,
    /// The value, present when the quality is good.
    pub value: Option<Value>,
    /// Unit from the bridge file (e.g. "V", "°C"), if any.
    pub unit: Option<String>,
    /// Good, or the reason there is no value.
    pub quality: Quality,
    /// When the bridge received the value, ms since the Unix epoch.
    pub timestamp: UnixMillis,
}

impl Reading {
    /// A good reading.
    #[must_use]
    pub fn good(
        device: &str,
        point: &str,
        value: Value,
        unit: Option<&str>,
        timestamp: UnixMillis,
    ) -> Self {
        Reading {
            device: device.to_owned(),
            point: point.to_owned(),
            value: Some(value),
            unit: unit.map(str::to_owned),
            quality: Quality::Good,
            timestamp,
        }
    }

    /// A reading that carries a point error instead of a value.
    #[must_use]
    pub fn bad(
        device: &str,
        point: &str,
        error: PointError,
        unit: Option<&str>,
        timestamp: UnixMillis,
    ) -> Self {
        Reading {
            device: device.to_owned(),
            point: point.to_owned(),
            value: None,
            unit: unit.map(str::to_owned),
            quality: Quality::Bad(error),
            timestamp,
        }
    }

    /// From a decode result: good on `Ok`, bad on `Err`.
    #[must_use]
    pub fn from_result(
        device: &str,
        point: &str,
        result: Result<Value, PointError>,
        unit: Option<&str>,
        timestamp: UnixMillis,
    ) -> Self {
        match result {
            Ok(v) => Reading::good(device, point, v, unit, timestamp),
            Err(e) => Reading::bad(device, point, e, unit, timestamp),
        }
    }

    /// The point error, if this reading is bad.
    #[must_use]
    pub fn error(&self) -> Option<&PointError> {
        match &self.quality {
            Quality::Good => None,
            Quality::Bad(e) => Some(e),
        }
    }
}

/// A request to set one point of one device to a value.
///
/// The bridge does not check who sent it: the agent checks the point's
/// `writers` before it hands a command over.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Device name from the bridge file.
    pub device: String,
    /// Point name; the point must have `access = "rw"`.
    pub point: String,
    /// The value to write, in the point's engineering units (scale and
    /// offset are undone by the bridge).
    pub value: Value,
}
