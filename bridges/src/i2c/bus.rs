//! One I2C bus: the I/O half of its polled bus, and opening it on Linux.
//!
//! [`SensorBus`] is a [`Poller`]: the shared loop in `crate::poll` decides
//! which sensor is due and keeps its health. Bus transfers block, so each
//! poll moves the bus into tokio's blocking pool and takes it back; one
//! task per bus means one transfer at a time.

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use tokio::time::sleep_until;

use super::addr::I2cAddr;
use super::ads1115::Ads1115;
use super::bme280::Bme280;
use super::config::{I2cBus, I2cDevice, SensorKind};
use super::sensor::Sample;
use super::sht3x::Sht3x;
use crate::bus::BusIo;
use crate::clock::Clock;
use crate::error::{BridgeError, PointError};
use crate::poll::{Applied, Contact, Health, HealthPolicy, Polled, PolledDevice, Poller};
use crate::reading::{Command, Reading};

enum Driver {
    Bme280(Bme280),
    Sht3x(Sht3x),
    Ads1115(Ads1115),
}

struct Sensor {
    cfg: I2cDevice,
    /// Lent to the blocking pool during a poll.
    driver: Option<Driver>,
    policy: HealthPolicy,
}

impl Driver {
    fn new(d: &I2cDevice) -> Result<Driver, BridgeError> {
        let addr = I2cAddr::new(d.address)
            .ok_or_else(|| BridgeError::Misuse(format!("address {:#04x}", d.address)))?;
        Ok(match d.sensor {
            SensorKind::Bme280 => Driver::Bme280(Bme280::new(addr, true)),
            SensorKind::Bmp280 => Driver::Bme280(Bme280::new(addr, false)),
            SensorKind::Sht3x => Driver::Sht3x(Sht3x::new(addr)),
            SensorKind::Ads1115 => Driver::Ads1115(Ads1115::new(addr, d.channels.clone())),
        })
    }

    fn measure<I: I2c, D: DelayNs>(
        &mut self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Vec<Sample>, BridgeError> {
        match self {
            Driver::Bme280(d) => d.measure(i2c, delay),
            Driver::Sht3x(d) => d.measure(i2c, delay),
            Driver::Ads1115(d) => d.measure(i2c, delay),
        }
    }
}

/// Opens the Linux bus and runs the loop; if the bus cannot be opened,
/// every sensor is offline with the reason and the open is retried.
pub(crate) async fn run_linux(bus: I2cBus, mut io: BusIo) {
    let mut retry = Duration::from_secs(1);
    loop {
        match linux_embedded_hal::I2cdev::new(&bus.bus) {
            Ok(dev) => {
                return run_with(bus, dev, linux_embedded_hal::Delay, io).await;
            }
            Err(e) => {
                let now = io.clock.now();
                for d in &bus.devices {
                    let mut h = Health::new(policy(&bus, d));
                    let _ = h.on_failure(&format!("{}: {e}", bus.bus), now);
                    for _ in 1..bus.offline_after {
                        let _ = h.on_failure(&format!("{}: {e}", bus.bus), now);
                    }
                    io.status.set(&d.name, h.status().clone());
                }
                let until = now.instant + retry;
                retry = (retry * 2).min(Duration::from_millis(bus.backoff_max_ms.max(1000)));
                loop {
                    tokio::select! {
                        () = sleep_until(until) => break,
                        () = io.readings.closed() => return,
                        req = io.commands.recv() => match req {
                            Some((_, reply)) => { let _ = reply.send(Err(PointError::ReadOnly.into())); }
                            None => return,
                        },
                    }
                }
            }
        }
    }
}

fn policy(bus: &I2cBus, d: &I2cDevice) -> HealthPolicy {
    HealthPolicy {
        offline_after: bus.offline_after,
        interval: Duration::from_millis(d.poll_ms),
        backoff_max: Duration::from_millis(bus.backoff_max_ms),
    }
}

/// Runs the shared polling loop over any embedded-hal 1.0 bus and delay (a
/// mock in tests, another HAL elsewhere) until the readings receiver is
/// dropped.
pub(crate) async fn run_with<I, D>(bus: I2cBus, i2c: I, delay: D, io: BusIo)
where
    I: I2c + Send + 'static,
    D: DelayNs + Send + 'static,
{
    crate::poll::run(SensorBus::new(&bus, i2c, delay), io).await;
}

/// The sensors of one bus, and the bus itself while no poll has it.
struct SensorBus<I, D> {
    sensors: Vec<Sensor>,
    /// Lent to the blocking pool during a poll.
    hw: Option<(I, D)>,
}

impl<I, D> SensorBus<I, D> {
    /// Every sensor with a driver; one whose address no driver takes is
    /// skipped (validation rules that out) and stays `Starting`.
    fn new(bus: &I2cBus, i2c: I, delay: D) -> Self {
        let mut sensors = Vec::new();
        for d in &bus.devices {
            match Driver::new(d) {
                Ok(driver) => sensors.push(Sensor {
                    cfg: d.clone(),
                    driver: Some(driver),
                    policy: policy(bus, d),
                }),
                Err(e) => tracing::warn!(device = %d.name, "skipped: {e}"),
            }
        }
        SensorBus {
            sensors,
            hw: Some((i2c, delay)),
        }
    }
}

impl<I, D> Poller for SensorBus<I, D>
where
    I: I2c + Send + 'static,
    D: DelayNs + Send + 'static,
{
    fn devices(&self) -> Vec<PolledDevice> {
        self.sensors
            .iter()
            .map(|s| PolledDevice {
                name: s.cfg.name.clone(),
                policy: s.policy,
            })
            .collect()
    }

    async fn poll(&mut self, device: usize, clock: &dyn Clock) -> Option<Polled> {
        let (mut i2c, mut delay) = self.hw.take()?;
        let mut driver = self.sensors.get_mut(device)?.driver.take()?;
        let joined = tokio::task::spawn_blocking(move || {
            let r = driver.measure(&mut i2c, &mut delay);
            (i2c, delay, driver, r)
        })
        .await;
        let Ok((i2c, delay, driver, result)) = joined else {
            tracing::error!("i2c poll task panicked; stopping the bus");
            return None;
        };
        self.hw = Some((i2c, delay));
        let now = clock.now();
        let s = self.sensors.get_mut(device)?;
        s.driver = Some(driver);
        Some(match result {
            Ok(samples) => Polled {
                readings: samples
                    .into_iter()
                    .map(|smp| {
                        Reading::from_result(
                            &s.cfg.name,
                            &smp.point,
                            smp.value,
                            Some(&smp.unit),
                            now.unix_ms,
                        )
                    })
                    .collect(),
                contact: Contact::answered(now),
            },
            Err(e) => Polled {
                readings: Vec::new(),
                contact: Contact::failed(format!("{:#04x}: {e}", s.cfg.address), now),
            },
        })
    }

    /// Sensors are read-only: every command is refused.
    async fn apply(&mut self, cmd: &Command, _clock: &dyn Clock) -> Applied {
        let known = self.sensors.iter().any(|s| s.cfg.name == cmd.device);
        Applied::refused(if known {
            PointError::ReadOnly
        } else {
            PointError::Unknown(cmd.device.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::status::DeviceState;
    use crate::status::StatusBoard;
    use crate::value::Value;
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn good() -> Vec<T> {
        let w = [0x66, 0x66];
        vec![
            T::write(0x44, vec![0x24, 0x00]),
            T::read(
                0x44,
                vec![
                    w[0],
                    w[1],
                    crate::i2c::sht3x::crc8(&w),
                    w[0],
                    w[1],
                    crate::i2c::sht3x::crc8(&w),
                ],
            ),
        ]
    }

    fn nack() -> Vec<T> {
        vec![T::write(0x44, vec![0x24, 0x00])
            .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))]
    }

    /// A sensor that stops answering goes offline after `offline_after`
    /// failed polls and comes back by itself; commands are refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nacking_sensor_goes_offline_and_recovers() {
        let text = r#"
[i2c]
bus = "/dev/i2c-test"
offline_after = 2
backoff_max_ms = 4
[[i2c.devices]]
name = "sht"
sensor = "sht3x"
address = 0x44
poll_ms = 1
"#;
        let bus: I2cBus = crate::bus::parse_table(text);
        let points = crate::bus::BusConfig::point_names(&bus, "sht");
        let mut script = good();
        script.extend(nack());
        script.extend(nack());
        for _ in 0..2000 {
            script.extend(good());
        }
        let i2c = Mock::new(&script);
        let (rtx, mut rrx) = mpsc::channel(4096);
        let (ctx, crx) = mpsc::channel(4);
        let board = StatusBoard::new(["sht"]);
        let mut status = board.subscribe();
        let io = BusIo {
            readings: rtx,
            commands: crx,
            status: board,
            clock: Arc::new(SystemClock),
        };
        let task = tokio::spawn(run_with(bus, i2c, NoopDelay::new(), io));
        let limit = std::time::Duration::from_secs(30);

        let first = tokio::time::timeout(limit, rrx.recv())
            .await
            .expect("reading")
            .expect("open");
        assert_eq!(
            (first.device.as_str(), first.point.as_str()),
            ("sht", "temperature")
        );
        assert_eq!(first.value, Some(Value::Float(25.0)));
        assert_eq!(first.unit.as_deref(), Some("°C"));
        let second = tokio::time::timeout(limit, rrx.recv())
            .await
            .expect("reading")
            .expect("open");
        // One poll's readings are the sensor's points, in order.
        assert_eq!([first.point, second.point], *points);
        let offline = tokio::time::timeout(
            limit,
            status.wait_for(|m| {
                matches!(
                    m.get("sht").map(|s| &s.state),
                    Some(DeviceState::Offline { .. })
                )
            }),
        )
        .await
        .expect("went offline")
        .expect("watch")
        .get("sht")
        .cloned()
        .expect("sht");
        assert!(
            matches!(offline.state, DeviceState::Offline { ref reason, .. } if reason.contains("NoAcknowledge")),
            "{offline:?}"
        );
        tokio::time::timeout(
            limit,
            status.wait_for(|m| m.get("sht").is_some_and(|s| s.is_online())),
        )
        .await
        .expect("recovered")
        .expect("watch");

        let (tx, rx) = tokio::sync::oneshot::channel();
        let cmd = Command {
            device: "sht".into(),
            point: "temperature".into(),
            value: Value::Float(1.0),
        };
        ctx.send((cmd, tx)).await.expect("queued");
        let reply = tokio::time::timeout(limit, rx)
            .await
            .expect("reply")
            .expect("sent");
        assert_eq!(
            reply,
            Err(crate::error::CommandError::Point(PointError::ReadOnly))
        );
        task.abort();
    }
}
