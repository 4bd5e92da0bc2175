//! What every sensor driver returns, in the crate's two layers.

use crate::error::{BridgeError, PointError};
use crate::value::Value;

/// Point name of a temperature in °C (BME280, BMP280, SHT3x).
pub(crate) const TEMPERATURE: &str = "temperature";
/// Point name of a pressure in hPa (BME280, BMP280).
pub(crate) const PRESSURE: &str = "pressure";
/// Point name of a relative humidity in %RH (BME280, SHT3x).
pub(crate) const HUMIDITY: &str = "humidity";

/// One point of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Point name.
    pub point: String,
    /// The value or why there is none.
    pub value: Result<Value, PointError>,
    /// Unit.
    pub unit: String,
}

impl Sample {
    pub(crate) fn new(point: &str, value: Result<Value, PointError>, unit: &str) -> Self {
        Sample {
            point: point.to_owned(),
            value,
            unit: unit.to_owned(),
        }
    }
}

/// A failed bus transfer (NACK, arbitration loss, I/O): the link layer.
pub(crate) fn bus_error<E: embedded_hal::i2c::Error>(e: E) -> BridgeError {
    BridgeError::Io(format!("i2c: {:?}", e.kind()))
}

/// A finite value as a float sample, or `NotFinite`.
pub(crate) fn finite(v: f64) -> Result<Value, PointError> {
    if v.is_finite() {
        Ok(Value::Float(v))
    } else {
        Err(PointError::NotFinite)
    }
}
