//! The event loop of one I2C bus: polls its sensors in turn.
//!
//! Bus transfers block, so each poll moves the bus into tokio's blocking
//! pool and takes it back; one task per bus means one transfer at a time.

use std::sync::Arc;
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::addr::I2cAddr;
use super::sensor::Sample;
use super::{Ads1115, Bme280, Sht3x};
use crate::bridge::CommandRequest;
use crate::clock::Clock;
use crate::config::{I2cBus, I2cDevice, SensorKind};
use crate::error::{BridgeError, PointError};
use crate::health::{Health, HealthPolicy};
use crate::reading::Reading;
use crate::schedule::Schedule;
use crate::status::StatusBoard;

enum Driver {
    Bme280(Bme280),
    Sht3x(Sht3x),
    Ads1115(Ads1115),
}

struct Sensor {
    cfg: I2cDevice,
    /// Lent to the blocking pool during a poll.
    driver: Option<Driver>,
    health: Health,
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
pub(crate) async fn run_linux(
    bus: I2cBus,
    readings: mpsc::Sender<Reading>,
    mut commands: mpsc::Receiver<CommandRequest>,
    board: StatusBoard,
    clock: Arc<dyn Clock>,
) {
    let mut retry = Duration::from_secs(1);
    loop {
        match linux_embedded_hal::I2cdev::new(&bus.bus) {
            Ok(dev) => {
                return run_with(
                    bus,
                    dev,
                    linux_embedded_hal::Delay,
                    readings,
                    commands,
                    board,
                    clock,
                )
                .await;
            }
            Err(e) => {
                let now = clock.now();
                for d in &bus.devices {
                    let mut h = Health::new(policy(&bus, d));
                    let _ = h.on_failure(&format!("{}: {e}", bus.bus), now);
                    for _ in 1..bus.offline_after {
                        let _ = h.on_failure(&format!("{}: {e}", bus.bus), now);
                    }
                    board.set(&d.name, h.status().clone());
                }
                let until = now.instant + retry;
                retry = (retry * 2).min(Duration::from_millis(bus.backoff_max_ms.max(1000)));
                loop {
                    tokio::select! {
                        () = sleep_until(until) => break,
                        () = readings.closed() => return,
                        req = commands.recv() => match req {
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

/// Runs the bus loop over any embedded-hal 1.0 bus and delay (a mock in
/// tests, another HAL elsewhere) until the readings receiver is dropped.
pub(crate) async fn run_with<I, D>(
    bus: I2cBus,
    i2c: I,
    delay: D,
    readings: mpsc::Sender<Reading>,
    mut commands: mpsc::Receiver<CommandRequest>,
    board: StatusBoard,
    clock: Arc<dyn Clock>,
) where
    I: I2c + Send + 'static,
    D: DelayNs + Send + 'static,
{
    let mut sensors = Vec::new();
    for d in &bus.devices {
        match Driver::new(d) {
            Ok(driver) => sensors.push(Sensor {
                cfg: d.clone(),
                driver: Some(driver),
                health: Health::new(policy(&bus, d)),
            }),
            Err(e) => tracing::warn!(device = %d.name, "skipped: {e}"),
        }
    }
    let mut schedule = Schedule::new(sensors.len(), clock.now().instant);
    let mut hw = Some((i2c, delay));
    let mut commands_open = true;
    while let Some((idx, due)) = schedule.next() {
        tokio::select! {
            biased;
            () = readings.closed() => return,
            req = commands.recv(), if commands_open => match req {
                Some((cmd, reply)) => {
                    let known = sensors.iter().any(|s| s.cfg.name == cmd.device);
                    let e = if known { PointError::ReadOnly } else { PointError::Unknown(cmd.device) };
                    let _ = reply.send(Err(e.into()));
                }
                None => commands_open = false,
            },
            () = sleep_until(due) => {
                let Some((mut i2c, mut delay)) = hw.take() else { return };
                let Some(mut driver) = sensors.get_mut(idx).and_then(|s| s.driver.take()) else { return };
                let joined = tokio::task::spawn_blocking(move || {
                    let r = driver.measure(&mut i2c, &mut delay);
                    (i2c, delay, driver, r)
                })
                .await;
                let Ok((i2c, delay, driver, result)) = joined else {
                    tracing::error!("i2c poll task panicked; stopping the bus");
                    return;
                };
                hw = Some((i2c, delay));
                let now = clock.now();
                let s = &mut sensors[idx];
                s.driver = Some(driver);
                let delay = match result {
                    Ok(samples) => {
                        s.health.on_success(now);
                        for smp in samples {
                            let r = Reading::from_result(&s.cfg.name, &smp.point, smp.value, Some(&smp.unit), now.unix_ms);
                            if readings.send(r).await.is_err() {
                                return;
                            }
                        }
                        Duration::from_millis(s.cfg.poll_ms)
                    }
                    Err(e) => s.health.on_failure(&format!("{:#04x}: {e}", s.cfg.address), now),
                };
                board.set(&s.cfg.name, s.health.status().clone());
                schedule.polled(idx, delay, now.instant);
            }
        }
    }
}
