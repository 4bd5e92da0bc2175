//! The one polling loop every polled bus (Modbus RTU, Modbus TCP, I2C)
//! runs, behind the [`Poller`] trait.
//!
//! - [`run`]: the loop. It owns the schedule and each device's health; it
//!   polls the device due soonest, takes commands between polls, keeps the
//!   status board current and sends the readings out.
//! - [`Poller`]: what a bus supplies: its devices, one poll of one device,
//!   one command. It only talks to its port or bus.
//! - `health`: offline after N failures, or at once when the bus's device
//!   file cannot be opened; backoff, recovery ([`Contact`] and [`Failure`]
//!   are what a poller reports for it).
//! - `schedule`: which device is due next.
//!
//! What it does not do: no bus I/O and no encoding (that is the poller's),
//! and nothing for event-driven buses: MQTT has its own loop, since the
//! broker tells it when something happened.

// Implementation notes: the loop is generic over the poller, not boxed, so
// each bus gets its own monomorphic loop; the trait's methods return
// `impl Future + Send` so that the loop's future is `Send` and can be
// spawned on a multi-threaded runtime.
//
// Where the Modbus and I2C loops this replaces differed, it keeps: the
// closed readings receiver checked first (the I2C order; the Modbus loop
// looked last, so it could still apply a queued command or poll once more
// after the agent had gone); the status board set before the readings go
// out, and the next due time reckoned after they went out (the Modbus
// order; the I2C loop did both the other way round, so a slow consumer
// held back its status).

mod health;
mod schedule;

use std::future::Future;

use tokio::time::sleep_until;

pub(crate) use health::{Contact, Failure, Health, HealthPolicy};

use crate::bus::BusIo;
use crate::clock::Clock;
use crate::error::CommandError;
use crate::reading::{Command, Reading};
use schedule::Schedule;

/// One device of a polled bus, as the loop sees it.
#[derive(Debug, Clone)]
pub(crate) struct PolledDevice {
    /// Its name on the status board.
    pub(crate) name: String,
    /// Poll interval, offline threshold and backoff.
    pub(crate) policy: HealthPolicy,
}

/// What one poll of one device came to.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// Readings, in the order they are sent out.
    pub(crate) readings: Vec<Reading>,
    /// What the poll says about the device's health.
    pub(crate) contact: Contact,
}

/// What one command came to.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The answer for whoever sent the command.
    pub(crate) result: Result<(), CommandError>,
    /// The device the command was sent to, if it reached the bus (a command
    /// refused before, for an unknown or read-only point or a bad value,
    /// says nothing about the device's health).
    pub(crate) device: Option<usize>,
    /// What the exchange says about that device's health.
    pub(crate) contact: Contact,
}

impl Applied {
    /// A command refused before it reached the bus.
    pub(crate) fn refused(e: impl Into<CommandError>) -> Self {
        Applied {
            result: Err(e.into()),
            device: None,
            contact: Contact::default(),
        }
    }
}

/// A bus whose devices are asked in turn: the I/O half of a polled bus.
///
/// The loop calls `devices` once, then `poll` and `apply` one at a time
/// (never two at once), so an implementation owns its port without locks.
/// Devices are numbered by their place in `devices()`.
pub(crate) trait Poller: Send {
    /// The devices to poll, in order.
    fn devices(&self) -> Vec<PolledDevice>;

    /// Reads every point of device `device`. `clock` stamps the readings
    /// when their data arrive. `None` when the bus cannot go on at all (its
    /// I/O task died): the loop then ends.
    fn poll(
        &mut self,
        device: usize,
        clock: &dyn Clock,
    ) -> impl Future<Output = Option<Polled>> + Send;

    /// Applies one command, between polls.
    fn apply(&mut self, cmd: &Command, clock: &dyn Clock) -> impl Future<Output = Applied> + Send;
}

/// Runs a polled bus until the readings receiver is dropped (or the
/// poller gives up).
///
/// Order of precedence when several things are ready: the readings
/// receiver being gone (nothing more is read or written), then a command
/// (commands wait for no poll), then the device that is due. A successful
/// write makes its device due at once, so the value it now holds is read
/// back before the device's normal turn.
pub(crate) async fn run<P: Poller>(mut poller: P, io: BusIo) {
    let BusIo {
        readings,
        mut commands,
        status,
        clock,
    } = io;
    let devices = poller.devices();
    let mut health: Vec<Health> = devices.iter().map(|d| Health::new(d.policy)).collect();
    let mut schedule = Schedule::new(devices.len(), clock.now().instant);
    let mut commands_open = true;
    while let Some((idx, due)) = schedule.next() {
        tokio::select! {
            biased;
            () = readings.closed() => return,
            req = commands.recv(), if commands_open => match req {
                Some((cmd, reply)) => {
                    let applied = poller.apply(&cmd, clock.as_ref()).await;
                    if let Some(i) = applied.device {
                        if let (Some(d), Some(h)) = (devices.get(i), health.get_mut(i)) {
                            let _ = h.record(applied.contact);
                            status.set(&d.name, h.status().clone());
                        }
                        if applied.result.is_ok() {
                            // Read the new value back now, not at the
                            // device's next turn: whoever wrote it sees
                            // the device's answer in the next reading.
                            schedule.due_now(i, clock.now().instant);
                        }
                    }
                    let _ = reply.send(applied.result);
                }
                None => commands_open = false,
            },
            () = sleep_until(due) => {
                let Some(polled) = poller.poll(idx, clock.as_ref()).await else {
                    return;
                };
                let (Some(d), Some(h)) = (devices.get(idx), health.get_mut(idx)) else {
                    return;
                };
                let delay = h.record(polled.contact);
                status.set(&d.name, h.status().clone());
                for r in polled.readings {
                    if readings.send(r).await.is_err() {
                        return;
                    }
                }
                schedule.polled(idx, delay, clock.now().instant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::clock::SystemClock;
    use crate::error::PointError;
    use crate::status::{DeviceState, StatusBoard};
    use crate::value::Value;

    /// Device 0 ("meter") answers with two points and is polled once an
    /// hour; device 1 ("dead") never answers and is polled every 1 ms.
    struct Scripted {
        polls: i64,
    }

    impl Poller for Scripted {
        fn devices(&self) -> Vec<PolledDevice> {
            let policy = |ms| HealthPolicy {
                offline_after: 2,
                interval: Duration::from_millis(ms),
                backoff_max: Duration::from_millis(4),
            };
            vec![
                PolledDevice {
                    name: "meter".into(),
                    policy: policy(3_600_000),
                },
                PolledDevice {
                    name: "dead".into(),
                    policy: policy(1),
                },
            ]
        }

        async fn poll(&mut self, device: usize, clock: &dyn Clock) -> Option<Polled> {
            let now = clock.now();
            if device == 1 {
                return Some(Polled {
                    readings: Vec::new(),
                    contact: Contact::failed(Failure::Device("no answer".into()), now),
                });
            }
            self.polls += 1;
            let r = |p: &str| Reading::good("meter", p, Value::Int(self.polls), None, now.unix_ms);
            Some(Polled {
                readings: vec![r("a"), r("b")],
                contact: Contact::answered(now),
            })
        }

        async fn apply(&mut self, cmd: &Command, clock: &dyn Clock) -> Applied {
            if cmd.device != "meter" {
                return Applied::refused(PointError::Unknown(cmd.device.clone()));
            }
            Applied {
                result: Ok(()),
                device: Some(0),
                contact: Contact::answered(clock.now()),
            }
        }
    }

    /// Readings go out in the poller's order; a device that stops
    /// answering goes offline while the other keeps its status; commands
    /// are answered between polls; the loop ends when the readings
    /// receiver is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_loop_for_every_polled_bus() {
        let limit = Duration::from_secs(30);
        let (rtx, mut rrx) = mpsc::channel(16);
        let (ctx, crx) = mpsc::channel(4);
        let board = StatusBoard::new(["meter", "dead"]);
        let mut status = board.subscribe();
        let io = BusIo {
            readings: rtx,
            commands: crx,
            status: board,
            clock: Arc::new(SystemClock),
        };
        let task = tokio::spawn(run(Scripted { polls: 0 }, io));
        let mut next = async || {
            let r = tokio::time::timeout(limit, rrx.recv())
                .await
                .expect("in time");
            let r = r.expect("open");
            (r.point, r.value)
        };
        assert_eq!(next().await, ("a".into(), Some(Value::Int(1))));
        assert_eq!(next().await, ("b".into(), Some(Value::Int(1))));

        let map = tokio::time::timeout(
            limit,
            status.wait_for(|m| {
                m.get("dead")
                    .is_some_and(|s| matches!(s.state, DeviceState::Offline { .. }))
            }),
        )
        .await
        .expect("offline in time")
        .expect("watch")
        .clone();
        let dead = map.get("dead").expect("dead");
        assert!(
            matches!(&dead.state, DeviceState::Offline { reason, .. }
                if reason.starts_with("no answer (") && reason.ends_with(" consecutive failures)")),
            "{dead:?}"
        );
        assert!(map.get("meter").is_some_and(|s| s.is_online()));

        let send = |device: &str| {
            let (tx, rx) = oneshot::channel();
            let cmd = Command {
                device: device.into(),
                point: "a".into(),
                value: Value::Int(7),
            };
            (ctx.send((cmd, tx)), rx)
        };
        // Commands are taken between polls of the busy dead device.
        let (queued, reply) = send("meter");
        queued.await.expect("queued");
        assert_eq!(reply.await.expect("answered"), Ok(()));
        assert!(status.borrow().get("meter").is_some_and(|s| s.is_online()));

        let (queued, reply) = send("nope");
        queued.await.expect("queued");
        assert_eq!(
            reply.await.expect("answered"),
            Err(CommandError::Point(PointError::Unknown("nope".into())))
        );

        drop(rrx);
        tokio::time::timeout(limit, task)
            .await
            .expect("the loop ends")
            .expect("no panic");
    }

    /// One valve polled once an hour whose writes always succeed; each
    /// poll reads the number of writes so far.
    struct Valve {
        writes: i64,
    }

    impl Poller for Valve {
        fn devices(&self) -> Vec<PolledDevice> {
            vec![PolledDevice {
                name: "valve".into(),
                policy: HealthPolicy {
                    offline_after: 1,
                    interval: Duration::from_secs(3600),
                    backoff_max: Duration::from_secs(3600),
                },
            }]
        }

        async fn poll(&mut self, _device: usize, clock: &dyn Clock) -> Option<Polled> {
            let now = clock.now();
            let r = Reading::good("valve", "open", Value::Int(self.writes), None, now.unix_ms);
            Some(Polled {
                readings: vec![r],
                contact: Contact::answered(now),
            })
        }

        async fn apply(&mut self, _cmd: &Command, clock: &dyn Clock) -> Applied {
            self.writes += 1;
            Applied {
                result: Ok(()),
                device: Some(0),
                contact: Contact::answered(clock.now()),
            }
        }
    }

    /// A successful write is read back at once, not at the device's next
    /// turn an hour later (the limit only fails a stuck test).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_read_back_at_once() {
        let limit = Duration::from_secs(30);
        let (rtx, mut rrx) = mpsc::channel(16);
        let (ctx, crx) = mpsc::channel(4);
        let io = BusIo {
            readings: rtx,
            commands: crx,
            status: StatusBoard::new(["valve"]),
            clock: Arc::new(SystemClock),
        };
        let task = tokio::spawn(run(Valve { writes: 0 }, io));
        let first = tokio::time::timeout(limit, rrx.recv())
            .await
            .expect("first poll")
            .expect("open");
        assert_eq!(first.value, Some(Value::Int(0)));

        let (tx, reply) = oneshot::channel();
        let cmd = Command {
            device: "valve".into(),
            point: "open".into(),
            value: Value::Bool(true),
        };
        ctx.send((cmd, tx)).await.expect("queued");
        assert_eq!(reply.await.expect("answered"), Ok(()));
        let back = tokio::time::timeout(limit, rrx.recv())
            .await
            .expect("read back after the write, not an hour later")
            .expect("open");
        assert_eq!(back.value, Some(Value::Int(1)));
        task.abort();
    }
}
