//! TI ADS1115 16-bit ADC, through the `ads1x1x` driver crate, one-shot.
//!
//! The crate's driver owns its bus, so a short-lived driver borrows ours
//! for each conversion (embedded-hal 1.0 implements `I2c` for `&mut I`),
//! which lets sensors share one `/dev/i2c-N`.

use ads1x1x::{channel, Ads1x1x, FullScaleRange, TargetAddr};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::addr::I2cAddr;
use super::config::{AdcChannel, AdcInput};
use super::sensor::{bus_error, finite, Sample};
use crate::error::BridgeError;

/// Conversions take 1/128 s at the default 128 SPS; give up after 100 ms.
const POLL_MS: u32 = 1;
const MAX_POLLS: u32 = 100;

fn target(addr: I2cAddr) -> TargetAddr {
    match addr.get() {
        0x49 => TargetAddr::Vdd,
        0x4A => TargetAddr::Sda,
        0x4B => TargetAddr::Scl,
        _ => TargetAddr::Gnd,
    }
}

fn range(mv: u16) -> (FullScaleRange, f64) {
    match mv {
        6144 => (FullScaleRange::Within6_144V, 6.144),
        2048 => (FullScaleRange::Within2_048V, 2.048),
        1024 => (FullScaleRange::Within1_024V, 1.024),
        512 => (FullScaleRange::Within0_512V, 0.512),
        256 => (FullScaleRange::Within0_256V, 0.256),
        _ => (FullScaleRange::Within4_096V, 4.096),
    }
}

/// Volts from a conversion result: code × FSR / 2¹⁵ (datasheet §9.3.3).
#[must_use]
pub fn volts(code: i16, fsr_volts: f64) -> f64 {
    f64::from(code) * fsr_volts / 32768.0
}

/// An ADS1115 with its configured channels.
#[derive(Debug, Clone)]
pub struct Ads1115 {
    addr: I2cAddr,
    channels: Vec<AdcChannel>,
}

impl Ads1115 {
    /// A driver for the ADC at `addr` reading `channels`.
    #[must_use]
    pub fn new(addr: I2cAddr, channels: Vec<AdcChannel>) -> Self {
        Ads1115 { addr, channels }
    }

    /// The configured channel points (names and units).
    #[must_use]
    pub fn channels(&self) -> &[AdcChannel] {
        &self.channels
    }

    fn convert<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
        ch: &AdcChannel,
    ) -> Result<i16, BridgeError> {
        let mut adc = Ads1x1x::new_ads1115(i2c, target(self.addr));
        let result = (|| {
            adc.set_full_scale_range(range(ch.range_mv).0)
                .map_err(ads_error)?;
            for _ in 0..MAX_POLLS {
                let r = match ch.input {
                    AdcInput::A0 => adc.read(channel::SingleA0),
                    AdcInput::A1 => adc.read(channel::SingleA1),
                    AdcInput::A2 => adc.read(channel::SingleA2),
                    AdcInput::A3 => adc.read(channel::SingleA3),
                    AdcInput::A0A1 => adc.read(channel::DifferentialA0A1),
                    AdcInput::A2A3 => adc.read(channel::DifferentialA2A3),
                };
                match r {
                    Ok(v) => return Ok(v),
                    Err(nb::Error::WouldBlock) => delay.delay_ms(POLL_MS),
                    Err(nb::Error::Other(e)) => return Err(ads_error(e)),
                }
            }
            Err(BridgeError::Timeout(u64::from(MAX_POLLS * POLL_MS)))
        })();
        let _ = adc.destroy_ads1115();
        result
    }

    /// One conversion per channel. Engineering value = volts × scale + offset.
    pub fn measure<I: I2c, D: DelayNs>(
        &mut self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Vec<Sample>, BridgeError> {
        let mut out = Vec::with_capacity(self.channels.len());
        for ch in &self.channels {
            let code = self.convert(i2c, delay, ch)?;
            let v = volts(code, range(ch.range_mv).1) * ch.scale + ch.offset;
            out.push(Sample::new(
                &ch.name,
                finite(v),
                ch.unit.as_deref().unwrap_or("V"),
            ));
        }
        Ok(out)
    }
}

fn ads_error<E: embedded_hal::i2c::Error>(e: ads1x1x::Error<E>) -> BridgeError {
    match e {
        ads1x1x::Error::I2C(e) => bus_error(e),
        other => BridgeError::Misuse(format!("ads1115: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    #[test]
    fn lsb_sizes_follow_the_datasheet() {
        // Datasheet Table 3: LSB = 125 µV at ±4.096 V, 187.5 µV at ±6.144 V.
        assert!((volts(1, 4.096) - 125e-6).abs() < 1e-12);
        assert!((volts(1, 6.144) - 187.5e-6).abs() < 1e-12);
        assert!((volts(i16::MAX, 4.096) - (4.096 - 125e-6)).abs() < 1e-12);
        assert_eq!(volts(i16::MIN, 2.048), -2.048);
    }

    #[test]
    fn one_shot_conversion_on_a0_over_a_mock_bus() {
        let a = 0x48;
        // Config register: reset value 0x8583; PGA=001 (±4.096 V) → 0x8383;
        // MUX=100 (AIN0/GND) with OS=1 starts a conversion → 0xC383.
        let expect = [
            T::write(a, vec![0x01, 0x83, 0x83]),
            T::write_read(a, vec![0x01], vec![0x83, 0x83]),
            T::write(a, vec![0x01, 0xC3, 0x83]),
            T::write_read(a, vec![0x01], vec![0x43, 0x83]), // OS=0: busy
            T::write_read(a, vec![0x01], vec![0xC3, 0x83]), // OS=1: done
            T::write_read(a, vec![0x00], vec![0x40, 0x00]), // 16384 codes
        ];
        let mut i2c = Mock::new(&expect);
        let ch = AdcChannel {
            name: "supply".into(),
            input: AdcInput::A0,
            range_mv: 4096,
            scale: 11.0,
            offset: 0.0,
            unit: Some("V".into()),
        };
        let mut dev = Ads1115::new(I2cAddr::new(a).expect("addr"), vec![ch]);
        let s = dev
            .measure(&mut i2c, &mut NoopDelay::new())
            .expect("measure");
        // 16384 × 4.096 / 32768 = 2.048 V, × 11 (a 10k/1k divider) = 22.528 V.
        assert!(
            matches!(s[0].value, Ok(Value::Float(v)) if (v - 22.528).abs() < 1e-9),
            "{s:?}"
        );
        i2c.done();
    }
}
