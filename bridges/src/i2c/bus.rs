//! One I2C bus: the I/O half of its polled bus, and opening it on Linux.
//!
//! [`SensorBus`] is a [`Poller`]: the shared loop in `crate::poll` decides
//! which sensor is due and keeps its health. Bus transfers block, so each
//! poll moves the bus into tokio's blocking pool and takes it back; one
//! task per bus means one transfer at a time.
//!
//! The bus is opened by the first poll, and again by the first poll after
//! a failed transfer (the rule of a Modbus line). A bus that cannot be
//! opened (`/dev/i2c-1 absent` before i2c-dev is loaded, or a USB adapter
//! pulled) is the bus's state: every sensor shows offline with that reason
//! ([`Failure::Bus`]) and its next (backed-off) poll tries again, so the
//! sensors come online by themselves once the bus appears.

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::addr::I2cAddr;
use super::ads1115::Ads1115;
use super::bme280::Bme280;
use super::config::{I2cBus, I2cDevice, SensorKind};
use super::sensor::Sample;
use super::sht3x::Sht3x;
use crate::bus::{cannot_open, BusIo};
use crate::clock::Clock;
use crate::error::{BridgeError, PointError};
use crate::poll::{Applied, Contact, Failure, HealthPolicy, Polled, PolledDevice, Poller};
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

/// Runs the shared polling loop on the Linux bus `bus.bus` until the
/// readings receiver is dropped. An I2C bus is a device file that the
/// group `i2c` may open on Debian and Raspberry Pi OS.
pub(crate) async fn run_linux(bus: I2cBus, io: BusIo) {
    let path = bus.bus.clone();
    let open = move || {
        linux_embedded_hal::I2cdev::new(&path)
            .map(|dev| (dev, linux_embedded_hal::Delay))
            .map_err(|e| {
                let e = std::io::Error::from(e);
                cannot_open(&path, "i2c", e.kind(), &e.to_string())
            })
    };
    crate::poll::run(SensorBus::new(&bus, Box::new(open)), io).await;
}

fn policy(bus: &I2cBus, d: &I2cDevice) -> HealthPolicy {
    HealthPolicy {
        offline_after: bus.offline_after,
        interval: Duration::from_millis(d.poll_ms),
        backoff_max: Duration::from_millis(bus.backoff_max_ms),
    }
}

/// Opens the bus: one attempt per call, made by a poll that finds the bus
/// closed. Any embedded-hal 1.0 bus and delay: Linux's, or a mock in tests.
type Open<I, D> = Box<dyn FnMut() -> Result<(I, D), BridgeError> + Send>;

/// The sensors of one bus, and the bus itself while it is open and no
/// poll has it.
struct SensorBus<I, D> {
    sensors: Vec<Sensor>,
    /// Lent to the blocking pool during a poll; `None` until opened, and
    /// after a failed transfer.
    hw: Option<(I, D)>,
    open: Open<I, D>,
}

impl<I, D> SensorBus<I, D> {
    /// Every sensor with a driver; one whose address no driver takes is
    /// skipped (validation rules that out) and stays `Starting`. The bus is
    /// opened with `open` by the first poll.
    fn new(bus: &I2cBus, open: Open<I, D>) -> Self {
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
            hw: None,
            open,
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
        let mut driver = self.sensors.get_mut(device)?.driver.take()?;
        let hw = match self.hw.take() {
            Some(hw) => Ok(hw),
            None => (self.open)(),
        };
        let (mut i2c, mut delay) = match hw {
            Ok(hw) => hw,
            Err(e) => {
                let s = self.sensors.get_mut(device)?;
                s.driver = Some(driver);
                let why = match e {
                    BridgeError::CannotOpen(reason) => Failure::Bus(reason),
                    e => Failure::Device(e.to_string()),
                };
                return Some(Polled {
                    readings: Vec::new(),
                    contact: Contact::failed(why, clock.now()),
                });
            }
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = driver.measure(&mut i2c, &mut delay);
            (i2c, delay, driver, r)
        })
        .await;
        let Ok((i2c, delay, driver, result)) = joined else {
            tracing::error!("i2c poll task panicked; stopping the bus");
            return None;
        };
        // After a failed transfer the bus is dropped and the next poll
        // reopens it: a bus whose file vanished (a USB adapter pulled)
        // then says so instead of failing transfer after transfer.
        if result.is_ok() {
            self.hw = Some((i2c, delay));
        }
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
                contact: Contact::failed(
                    Failure::Device(format!("{:#04x}: {e}", s.cfg.address)),
                    now,
                ),
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
        // Every open hands out the same scripted bus.
        let open: Open<_, _> = Box::new(move || Ok((i2c.clone(), NoopDelay::new())));
        let task = tokio::spawn(crate::poll::run(SensorBus::new(&bus, open), io));
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

    /// A bus absent at start: its sensor is offline with the bus's reason,
    /// the open is retried, and once the bus appears the sensor comes
    /// online and reads, with nothing restarted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn absent_bus_then_plugged_in() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let text = r#"
[i2c]
bus = "/dev/i2c-test"
offline_after = 3
backoff_max_ms = 4
[[i2c.devices]]
name = "sht"
sensor = "sht3x"
address = 0x44
poll_ms = 1
"#;
        let bus: I2cBus = crate::bus::parse_table(text);
        let plugged = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU32::new(0));
        let open: Open<_, _> = {
            let (plugged, attempts) = (plugged.clone(), attempts.clone());
            Box::new(move || {
                attempts.fetch_add(1, Ordering::SeqCst);
                if plugged.load(Ordering::SeqCst) {
                    Ok((Sht3xAt25, NoopDelay::new()))
                } else {
                    Err(cannot_open(
                        "/dev/i2c-test",
                        "i2c",
                        std::io::ErrorKind::NotFound,
                        "No such file or directory",
                    ))
                }
            })
        };
        let (rtx, mut rrx) = mpsc::channel(16);
        let (_ctx, crx) = mpsc::channel(4);
        let board = StatusBoard::new(["sht"]);
        let mut status = board.subscribe();
        let io = BusIo {
            readings: rtx,
            commands: crx,
            status: board,
            clock: Arc::new(SystemClock),
        };
        let task = tokio::spawn(crate::poll::run(SensorBus::new(&bus, open), io));
        let limit = std::time::Duration::from_secs(30);

        // Offline with the bus's reason (that it is so at the first failed
        // open is `health`'s test: a watch may skip states).
        let map = tokio::time::timeout(
            limit,
            status.wait_for(|m| {
                m.get("sht")
                    .is_some_and(|s| matches!(s.state, DeviceState::Offline { .. }))
            }),
        )
        .await
        .expect("offline in time")
        .expect("watch")
        .clone();
        let st = map.get("sht").expect("sht");
        assert!(
            matches!(&st.state, DeviceState::Offline { reason, .. } if reason == "/dev/i2c-test absent"),
            "{st:?}"
        );
        // Retried: more failed opens show up on the board.
        tokio::time::timeout(
            limit,
            status.wait_for(|m| m.get("sht").is_some_and(|s| s.consecutive_failures >= 3)),
        )
        .await
        .expect("retried in time")
        .expect("watch");
        assert!(attempts.load(Ordering::SeqCst) >= 3);

        plugged.store(true, Ordering::SeqCst);
        tokio::time::timeout(
            limit,
            status.wait_for(|m| m.get("sht").is_some_and(|s| s.is_online())),
        )
        .await
        .expect("online in time")
        .expect("watch");
        let r = tokio::time::timeout(limit, rrx.recv())
            .await
            .expect("reading")
            .expect("open");
        assert_eq!(
            (r.point.as_str(), r.value),
            ("temperature", Some(Value::Float(25.0)))
        );
        task.abort();
    }

    /// A bus with one SHT3x that always measures 25 °C (a scripted mock
    /// would run out: the loop keeps polling every millisecond).
    struct Sht3xAt25;

    impl embedded_hal::i2c::ErrorType for Sht3xAt25 {
        type Error = ErrorKind;
    }

    impl I2c for Sht3xAt25 {
        fn transaction(
            &mut self,
            _address: u8,
            operations: &mut [embedded_hal::i2c::Operation<'_>],
        ) -> Result<(), Self::Error> {
            let w = [0x66, 0x66];
            let c = crate::i2c::sht3x::crc8(&w);
            for op in operations {
                if let embedded_hal::i2c::Operation::Read(buf) = op {
                    for (b, v) in buf.iter_mut().zip([w[0], w[1], c, w[0], w[1], c]) {
                        *b = v;
                    }
                }
            }
            Ok(())
        }
    }
}
