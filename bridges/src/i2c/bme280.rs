//! Bosch BME280 / BMP280 driver: forced-mode measurement with the
//! datasheet's double-precision compensation (BME280 datasheet §8.1; the
//! temperature and pressure formulas are the BMP280's, §8.1 there).
//!
//! Written here rather than taken from the `bme280` crate: that crate pulls
//! a proc-macro stack (maybe-async-cfg, syn 1, pulldown-cmark) into a
//! gateway build for ~200 lines of register access.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::addr::I2cAddr;
use super::sensor::{bus_error, finite, Sample, HUMIDITY, PRESSURE, TEMPERATURE};
use crate::error::{BridgeError, PointError};

const REG_CALIB_TP: u8 = 0x88; // 0x88..=0xA1: T1..P9, reserved, H1
const REG_CALIB_H: u8 = 0xE1; // 0xE1..=0xE7: H2..H6
const REG_ID: u8 = 0xD0;
const REG_CTRL_HUM: u8 = 0xF2;
const REG_CTRL_MEAS: u8 = 0xF4;
const REG_DATA: u8 = 0xF7; // press[3], temp[3], hum[2]
const CHIP_ID_BME280: u8 = 0x60;
const CHIP_ID_BMP280: u8 = 0x58;
/// osrs_t = ×1 (bits 7:5 = 001), osrs_p = ×1 (bits 4:2 = 001), mode = forced (01).
const CTRL_MEAS_FORCED: u8 = 0b0010_0101;
/// Worst-case measurement time at ×1 oversampling is 9.3 ms (datasheet §9.1).
const MEASURE_MS: u32 = 10;

/// Trimming parameters from the sensor's NVM (datasheet §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Calibration {
    pub t1: u16,
    pub t2: i16,
    pub t3: i16,
    pub p1: u16,
    pub p2: i16,
    pub p3: i16,
    pub p4: i16,
    pub p5: i16,
    pub p6: i16,
    pub p7: i16,
    pub p8: i16,
    pub p9: i16,
    pub h1: u8,
    pub h2: i16,
    pub h3: u8,
    pub h4: i16,
    pub h5: i16,
    pub h6: i8,
}

impl Calibration {
    /// Parses registers 0x88..=0xA1 (26 bytes) and 0xE1..=0xE7 (7 bytes).
    #[must_use]
    pub fn parse(tp: &[u8; 26], h: &[u8; 7]) -> Self {
        let u = |i: usize| u16::from_le_bytes([tp[i], tp[i + 1]]);
        let s = |i: usize| i16::from_le_bytes([tp[i], tp[i + 1]]);
        Calibration {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: tp[25],
            h2: i16::from_le_bytes([h[0], h[1]]),
            h3: h[2],
            h4: (i16::from(h[3] as i8) << 4) | i16::from(h[4] & 0x0F),
            h5: (i16::from(h[5] as i8) << 4) | i16::from(h[4] >> 4),
            h6: h[6] as i8,
        }
    }

    /// Temperature in °C and `t_fine` (datasheet `BME280_compensate_T_double`).
    #[must_use]
    pub fn temperature(&self, adc_t: i32) -> (f64, i32) {
        let (adc, t1) = (f64::from(adc_t), f64::from(self.t1));
        let var1 = (adc / 16384.0 - t1 / 1024.0) * f64::from(self.t2);
        let d = adc / 131072.0 - t1 / 8192.0;
        let var2 = d * d * f64::from(self.t3);
        ((var1 + var2) / 5120.0, (var1 + var2) as i32)
    }

    /// Pressure in Pa (`BME280_compensate_P_double`); `None` where the
    /// datasheet returns 0 to avoid a division by zero.
    #[must_use]
    pub fn pressure(&self, adc_p: i32, t_fine: i32) -> Option<f64> {
        let mut var1 = f64::from(t_fine) / 2.0 - 64000.0;
        let mut var2 = var1 * var1 * f64::from(self.p6) / 32768.0;
        var2 += var1 * f64::from(self.p5) * 2.0;
        var2 = var2 / 4.0 + f64::from(self.p4) * 65536.0;
        var1 = (f64::from(self.p3) * var1 * var1 / 524288.0 + f64::from(self.p2) * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * f64::from(self.p1);
        if var1 == 0.0 {
            return None;
        }
        let mut p = 1048576.0 - f64::from(adc_p);
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        let var1 = f64::from(self.p9) * p * p / 2147483648.0;
        let var2 = p * f64::from(self.p8) / 32768.0;
        Some(p + (var1 + var2 + f64::from(self.p7)) / 16.0)
    }

    /// Relative humidity in %, clamped to 0..=100 (`BME280_compensate_H_double`).
    #[must_use]
    pub fn humidity(&self, adc_h: i32, t_fine: i32) -> f64 {
        let var_h = f64::from(t_fine) - 76800.0;
        let var_h = (f64::from(adc_h)
            - (f64::from(self.h4) * 64.0 + f64::from(self.h5) / 16384.0 * var_h))
            * (f64::from(self.h2) / 65536.0
                * (1.0
                    + f64::from(self.h6) / 67108864.0
                        * var_h
                        * (1.0 + f64::from(self.h3) / 67108864.0 * var_h)));
        let var_h = var_h * (1.0 - f64::from(self.h1) * var_h / 524288.0);
        var_h.clamp(0.0, 100.0)
    }
}

/// A BME280 (or BMP280: no humidity) at one address.
#[derive(Debug, Clone)]
pub struct Bme280 {
    addr: I2cAddr,
    humidity: bool,
    calib: Option<Calibration>,
}

/// The points a BME280 (`humidity`) or a BMP280 measures, in the order
/// [`Bme280::measure`] returns them.
pub(crate) fn point_names(humidity: bool) -> &'static [&'static str] {
    const ALL: &[&str] = &[TEMPERATURE, PRESSURE, HUMIDITY];
    if humidity {
        ALL
    } else {
        &ALL[..2]
    }
}

impl Bme280 {
    /// A driver; it reads the chip id and calibration on first use.
    #[must_use]
    pub fn new(addr: I2cAddr, humidity: bool) -> Self {
        Bme280 {
            addr,
            humidity,
            calib: None,
        }
    }

    fn init<I: I2c>(
        &mut self,
        i2c: &mut I,
    ) -> Result<Result<Calibration, PointError>, BridgeError> {
        if let Some(c) = self.calib {
            return Ok(Ok(c));
        }
        let a = self.addr.get();
        let mut id = [0u8; 1];
        i2c.write_read(a, &[REG_ID], &mut id).map_err(bus_error)?;
        let want = if self.humidity {
            CHIP_ID_BME280
        } else {
            CHIP_ID_BMP280
        };
        if id[0] != want {
            return Ok(Err(PointError::Sensor(format!(
                "chip id {:#04x} at {}, expected {want:#04x}",
                id[0], self.addr
            ))));
        }
        let mut tp = [0u8; 26];
        i2c.write_read(a, &[REG_CALIB_TP], &mut tp)
            .map_err(bus_error)?;
        let mut h = [0u8; 7];
        if self.humidity {
            i2c.write_read(a, &[REG_CALIB_H], &mut h)
                .map_err(bus_error)?;
        }
        let c = Calibration::parse(&tp, &h);
        self.calib = Some(c);
        Ok(Ok(c))
    }

    /// One forced-mode measurement: `temperature` (°C), `pressure` (hPa)
    /// and, on a BME280, `humidity` (%RH). A failed transfer is a link
    /// error; a wrong chip or a skipped channel are point errors.
    pub fn measure<I: I2c, D: DelayNs>(
        &mut self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Vec<Sample>, BridgeError> {
        let c = match self.init(i2c) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Ok(self.all_bad(&e)),
            Err(e) => {
                self.calib = None;
                return Err(e);
            }
        };
        let a = self.addr.get();
        let r = (|| {
            if self.humidity {
                i2c.write(a, &[REG_CTRL_HUM, 0b001])?;
            }
            i2c.write(a, &[REG_CTRL_MEAS, CTRL_MEAS_FORCED])?;
            delay.delay_ms(MEASURE_MS);
            let mut d = [0u8; 8];
            i2c.write_read(a, &[REG_DATA], &mut d)?;
            Ok(d)
        })();
        let d = match r {
            Ok(d) => d,
            Err(e) => {
                // Re-read the calibration after a bus fault: the sensor may
                // have been swapped or reset.
                self.calib = None;
                return Err(bus_error::<I::Error>(e));
            }
        };
        let adc_p = (i32::from(d[0]) << 12) | (i32::from(d[1]) << 4) | (i32::from(d[2]) >> 4);
        let adc_t = (i32::from(d[3]) << 12) | (i32::from(d[4]) << 4) | (i32::from(d[5]) >> 4);
        let adc_h = (i32::from(d[6]) << 8) | i32::from(d[7]);
        // 0x80000 / 0x8000 are what the chip reports for a skipped channel.
        let skipped = || PointError::Sensor("measurement skipped (reset value)".into());
        let mut out = Vec::new();
        if adc_t == 0x80000 {
            return Ok(self.all_bad(&skipped()));
        }
        let (t, t_fine) = c.temperature(adc_t);
        out.push(Sample::new(TEMPERATURE, finite(t), "°C"));
        let p = if adc_p == 0x80000 {
            Err(skipped())
        } else {
            c.pressure(adc_p, t_fine)
                .ok_or_else(|| PointError::Sensor("pressure calibration divides by zero".into()))
                .and_then(|p| finite(p / 100.0))
        };
        out.push(Sample::new(PRESSURE, p, "hPa"));
        if self.humidity {
            let h = if adc_h == 0x8000 {
                Err(skipped())
            } else {
                finite(c.humidity(adc_h, t_fine))
            };
            out.push(Sample::new(HUMIDITY, h, "%RH"));
        }
        Ok(out)
    }

    fn all_bad(&self, e: &PointError) -> Vec<Sample> {
        let mut v = vec![
            Sample::new(TEMPERATURE, Err(e.clone()), "°C"),
            Sample::new(PRESSURE, Err(e.clone()), "hPa"),
        ];
        if self.humidity {
            v.push(Sample::new(HUMIDITY, Err(e.clone()), "%RH"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    /// The worked example of the Bosch BMP280 datasheet (§3.12, "Table:
    /// compensation formula example"); the BME280 uses the same temperature
    /// and pressure compensation and trimming layout.
    fn datasheet() -> Calibration {
        Calibration {
            t1: 27504,
            t2: 26435,
            t3: -1000,
            p1: 36477,
            p2: -10685,
            p3: 3024,
            p4: 2855,
            p5: 140,
            p6: -7,
            p7: 15500,
            p8: -14600,
            p9: 6000,
            ..Calibration::default()
        }
    }

    #[test]
    fn datasheet_example_reproduces_published_results() {
        let c = datasheet();
        let (t, t_fine) = c.temperature(519888);
        // Published: t_fine = 128422, T = 25.08 °C.
        assert_eq!(t_fine, 128422);
        assert_eq!((t * 100.0).round() / 100.0, 25.08);
        // Published: p = 100653.27 Pa; the double formula gives 100653.258,
        // the same to within the table's last digit.
        let p = c.pressure(415148, t_fine).expect("pressure");
        assert!((p - 100653.27).abs() < 0.02, "{p}");
    }

    /// Register bytes (little-endian words) of the datasheet calibration.
    fn calib_bytes(c: &Calibration, h1: u8) -> [u8; 26] {
        let words: [u16; 12] = [
            c.t1,
            c.t2 as u16,
            c.t3 as u16,
            c.p1,
            c.p2 as u16,
            c.p3 as u16,
            c.p4 as u16,
            c.p5 as u16,
            c.p6 as u16,
            c.p7 as u16,
            c.p8 as u16,
            c.p9 as u16,
        ];
        let mut b = [0u8; 26];
        for (i, w) in words.iter().enumerate() {
            b[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        }
        b[25] = h1;
        b
    }

    #[test]
    fn forced_measurement_over_a_mock_bus() {
        let a = 0x76;
        let c = datasheet();
        // Humidity trimming of a real part (H2=0x016A, H3=0, H4=0x13A, H5=0x32, H6=0x1E), H1=0x4B.
        let h = [0x6A, 0x01, 0x00, 0x13, 0x2A, 0x03, 0x1E];
        // adc_P = 415148 = 0x655AC, adc_T = 519888 = 0x7EED0, adc_H = 0x6E00.
        let data = vec![0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6E, 0x00];
        let expect = [
            T::write_read(a, vec![REG_ID], vec![CHIP_ID_BME280]),
            T::write_read(a, vec![REG_CALIB_TP], calib_bytes(&c, 0x4B).to_vec()),
            T::write_read(a, vec![REG_CALIB_H], h.to_vec()),
            T::write(a, vec![REG_CTRL_HUM, 0b001]),
            T::write(a, vec![REG_CTRL_MEAS, CTRL_MEAS_FORCED]),
            T::write_read(a, vec![REG_DATA], data.clone()),
            // Second measurement reuses the calibration.
            T::write(a, vec![REG_CTRL_HUM, 0b001]),
            T::write(a, vec![REG_CTRL_MEAS, CTRL_MEAS_FORCED]),
            T::write_read(a, vec![REG_DATA], data),
        ];
        let mut i2c = Mock::new(&expect);
        let mut dev = Bme280::new(I2cAddr::new(a).expect("addr"), true);
        for _ in 0..2 {
            let s = dev
                .measure(&mut i2c, &mut NoopDelay::new())
                .expect("measure");
            let names: Vec<&str> = s.iter().map(|s| s.point.as_str()).collect();
            assert_eq!(names, point_names(true));
            assert!(matches!(s[0].value, Ok(Value::Float(t)) if (t - 25.08).abs() < 0.005));
            assert!(matches!(s[1].value, Ok(Value::Float(p)) if (p - 1006.5327).abs() < 0.0002));
            let Ok(Value::Float(rh)) = s[2].value else {
                panic!("{:?}", s[2])
            };
            let want = Calibration::parse(&calib_bytes(&c, 0x4B), &h).humidity(0x6E00, 128422);
            assert!(
                (rh - want).abs() < 1e-9 && (0.0..=100.0).contains(&rh),
                "{rh}"
            );
        }
        i2c.done();
    }

    #[test]
    fn wrong_chip_is_a_point_error_and_nack_a_link_error() {
        let a = 0x77;
        let expect = [
            T::write_read(a, vec![REG_ID], vec![0x55]),
            T::write_read(a, vec![REG_ID], vec![0]).with_error(
                embedded_hal::i2c::ErrorKind::NoAcknowledge(
                    embedded_hal::i2c::NoAcknowledgeSource::Address,
                ),
            ),
        ];
        let mut i2c = Mock::new(&expect);
        let mut dev = Bme280::new(I2cAddr::new(a).expect("addr"), true);
        let s = dev
            .measure(&mut i2c, &mut NoopDelay::new())
            .expect("answered");
        assert_eq!(s.len(), 3);
        assert!(s
            .iter()
            .all(|s| matches!(s.value, Err(PointError::Sensor(_)))));
        assert!(matches!(
            dev.measure(&mut i2c, &mut NoopDelay::new()),
            Err(BridgeError::Io(_))
        ));
        i2c.done();
    }

    /// A BMP280 measures no humidity: its points (here all errors, the
    /// chip id being a BME280's) are the two its `point_names` gives.
    #[test]
    fn a_bmp280_has_no_humidity_point() {
        let a = 0x76;
        let mut i2c = Mock::new(&[T::write_read(a, vec![REG_ID], vec![CHIP_ID_BME280])]);
        let mut dev = Bme280::new(I2cAddr::new(a).expect("addr"), false);
        let s = dev
            .measure(&mut i2c, &mut NoopDelay::new())
            .expect("answered");
        let names: Vec<&str> = s.iter().map(|s| s.point.as_str()).collect();
        assert_eq!(names, point_names(false));
        assert_eq!(names, ["temperature", "pressure"]);
        i2c.done();
    }
}
