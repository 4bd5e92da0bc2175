//! Sensirion SHT3x (SHT30/31/35) driver: single-shot, high repeatability,
//! no clock stretching, with the datasheet CRC-8 on every word.
//!
//! Written here: the `sht3x` crate targets embedded-hal 0.2.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::addr::I2cAddr;
use super::sensor::{bus_error, finite, Sample, HUMIDITY, TEMPERATURE};
use crate::error::{BridgeError, PointError};

/// Single shot, high repeatability, clock stretching disabled (datasheet §4.3).
const CMD_MEASURE_HIGH: [u8; 2] = [0x24, 0x00];
/// Maximum measurement duration at high repeatability is 15.5 ms (§2.2).
const MEASURE_MS: u32 = 16;

/// CRC-8 of the datasheet (§4.12): polynomial 0x31, init 0xFF, no reflection.
#[must_use]
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0xFFu8;
    for b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// °C from a raw word (§4.13): T = −45 + 175 · S / (2¹⁶ − 1).
#[must_use]
fn temperature(raw: u16) -> f64 {
    -45.0 + 175.0 * f64::from(raw) / 65535.0
}

/// %RH from a raw word (§4.13): RH = 100 · S / (2¹⁶ − 1).
#[must_use]
fn humidity(raw: u16) -> f64 {
    100.0 * f64::from(raw) / 65535.0
}

/// The points an SHT3x measures, in the order [`Sht3x::measure`] returns
/// them.
pub(crate) const POINTS: [&str; 2] = [TEMPERATURE, HUMIDITY];

/// An SHT3x at one address.
#[derive(Debug, Clone)]
pub struct Sht3x {
    addr: I2cAddr,
}

impl Sht3x {
    /// A driver for the sensor at `addr` (0x44 or 0x45).
    #[must_use]
    pub fn new(addr: I2cAddr) -> Self {
        Sht3x { addr }
    }

    /// One measurement: `temperature` (°C) and `humidity` (%RH). A word
    /// whose CRC does not match is a point error for that point only.
    pub fn measure<I: I2c, D: DelayNs>(
        &mut self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Vec<Sample>, BridgeError> {
        let a = self.addr.get();
        i2c.write(a, &CMD_MEASURE_HIGH).map_err(bus_error)?;
        delay.delay_ms(MEASURE_MS);
        let mut d = [0u8; 6];
        i2c.read(a, &mut d).map_err(bus_error)?;
        let word = |i: usize| -> Result<u16, PointError> {
            let (w, crc) = ([d[i], d[i + 1]], d[i + 2]);
            if crc8(&w) == crc {
                Ok(u16::from_be_bytes(w))
            } else {
                Err(PointError::Sensor(format!(
                    "CRC {crc:#04x} does not match data {:02x}{:02x}",
                    w[0], w[1]
                )))
            }
        };
        Ok(vec![
            Sample::new(
                TEMPERATURE,
                word(0).and_then(|r| finite(temperature(r))),
                "°C",
            ),
            Sample::new(HUMIDITY, word(3).and_then(|r| finite(humidity(r))), "%RH"),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    #[test]
    fn crc_matches_the_datasheet_example() {
        // Datasheet §4.12, Table 19: CRC of 0xBEEF is 0x92.
        assert_eq!(crc8(&[0xBE, 0xEF]), 0x92);
    }

    #[test]
    fn conversion_endpoints_follow_the_datasheet() {
        assert_eq!(temperature(0), -45.0);
        assert_eq!(temperature(0xFFFF), 130.0);
        assert_eq!(humidity(0xFFFF), 100.0);
        assert_eq!(humidity(0), 0.0);
    }

    #[test]
    fn measurement_and_a_corrupt_word() {
        let a = 0x44;
        // 0x6666 = 0.4 · 65535 → 25.0 °C; 0x8000 → 50.00076 %RH.
        let good = vec![
            0x66,
            0x66,
            crc8(&[0x66, 0x66]),
            0x80,
            0x00,
            crc8(&[0x80, 0x00]),
        ];
        let mut bad = good.clone();
        bad[5] ^= 0xFF;
        let expect = [
            T::write(a, CMD_MEASURE_HIGH.to_vec()),
            T::read(a, good),
            T::write(a, CMD_MEASURE_HIGH.to_vec()),
            T::read(a, bad),
        ];
        let mut i2c = Mock::new(&expect);
        let mut dev = Sht3x::new(I2cAddr::new(a).expect("addr"));
        let s = dev
            .measure(&mut i2c, &mut NoopDelay::new())
            .expect("measure");
        let names: Vec<&str> = s.iter().map(|s| s.point.as_str()).collect();
        assert_eq!(names, POINTS);
        assert!(
            matches!(s[0].value, Ok(Value::Float(t)) if (t - 25.0).abs() < 1e-9),
            "{s:?}"
        );
        assert!(
            matches!(s[1].value, Ok(Value::Float(h)) if (h - 50.00076).abs() < 1e-5),
            "{s:?}"
        );
        let s = dev
            .measure(&mut i2c, &mut NoopDelay::new())
            .expect("measure");
        assert!(s[0].value.is_ok());
        assert!(matches!(s[1].value, Err(PointError::Sensor(_))), "{s:?}");
        i2c.done();
    }
}
