//! One Modbus line (serial port) or host (TCP): the I/O half of its
//! polled bus.
//!
//! [`Line`] is a [`Poller`]: the shared loop in `crate::poll` decides
//! which device is due, keeps its health and takes commands between polls;
//! a `Line` owns the port, so there is never more than one request on the
//! line at a time. It reads a device's blocks, writes commands, and reopens
//! the port or reconnects after any link error (a late answer must never be
//! taken for the next one).
//!
//! A serial port that cannot be opened (absent at boot, or its USB adapter
//! pulled while running) is the line's state, not a device's: each poll
//! reports it as [`Failure::Bus`], so every device shows offline with
//! the port's reason (`/dev/ttyUSB0 absent`) and the port is tried again
//! at each device's next (backed-off) poll, which brings the line back when
//! the adapter is plugged in.

// Implementation notes: the tokio-modbus `Context` is dropped after every
// timeout or transport error. On a serial line the port is then reopened
// and both buffers cleared, which discards a slave's late reply; on TCP a
// fresh connection does the same.
//
// RTU frames carry no transaction id, so clearing only helps if the late
// reply is already in the buffer. A slow slave's answer that lands after
// the clear would be read as the answer to the next request: to another
// slave (a header mismatch that used to count against that innocent
// neighbour, and whose own answer then became the next stray frame), or
// to the same slave's next poll (stale data taken as fresh). So when a
// request finally fails on a serial line the task lets the line settle for
// one more timeout before reopening: a reply up to twice the timeout late
// is dropped. Between retries of the same request it does not wait: a late
// answer to an identical request is a valid answer to the retry. A frame
// from another slave (or for another function) that still turns up is not
// the addressed device's fault: the line settles, and the request is asked
// again (up to `MAX_STRAY_FRAMES` times) without spending a retry. Found by
// the "slow slave" test in tests/tests/bridge_modbus_rtu.rs; the cost to a
// neighbour's poll rate is measured by the `bridge_faults` bench.

use std::time::Duration;

use tokio::time::timeout;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::ProtocolError;
use tokio_serial::SerialPort;

use super::codec::{decode_registers, encode_bit, encode_registers, exception};
use super::config::{ModbusDevice, Parity, RtuBus, Table, TcpBus};
use super::plan::{plan, split, Block};
use super::unit_id::UnitId;
use crate::bus::{cannot_open, Access};
use crate::clock::{Clock, Now};
use crate::error::{BridgeError, PointError};
use crate::poll::{Applied, Contact, Failure, HealthPolicy, Polled, PolledDevice, Poller};
use crate::reading::{Command, Reading};

/// How to open the link.
#[derive(Debug, Clone)]
enum Link {
    Serial(RtuBus),
    Tcp { host: String, port: u16 },
}

/// One device on the line, with its request plan.
struct Device {
    cfg: ModbusDevice,
    unit: UnitId,
    blocks: Vec<Block>,
    policy: HealthPolicy,
}

/// Frames from another slave tolerated in one request before it fails.
const MAX_STRAY_FRAMES: u32 = 2;

/// What one read came to, in the two layers.
type Answer<T> = Result<Result<T, PointError>, BridgeError>;

enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

/// A Modbus line or host and its devices.
pub(crate) struct Line {
    link: Link,
    timeout: Duration,
    retries: u32,
    devices: Vec<Device>,
    ctx: Option<Context>,
}

impl Line {
    pub(crate) fn rtu(bus: RtuBus) -> Self {
        let devices = devices(&bus.devices, bus.offline_after, bus.backoff_max_ms);
        Line {
            timeout: Duration::from_millis(bus.timeout_ms),
            retries: bus.retries,
            devices,
            link: Link::Serial(bus),
            ctx: None,
        }
    }

    pub(crate) fn tcp(bus: TcpBus) -> Self {
        Line {
            timeout: Duration::from_millis(bus.timeout_ms),
            retries: bus.retries,
            devices: devices(&bus.devices, bus.offline_after, bus.backoff_max_ms),
            link: Link::Tcp {
                host: bus.host,
                port: bus.port,
            },
            ctx: None,
        }
    }

    /// Reads every block of device `idx`, in plan order. Stops at the
    /// first link failure: the blocks after it wait for the next poll.
    async fn read_device(&mut self, idx: usize, clock: &dyn Clock) -> Polled {
        let mut out = Polled::default();
        let Some(unit) = self.devices.get(idx).map(|d| d.unit) else {
            return out;
        };
        let mut b = 0;
        while let Some(block) = self.devices[idx].blocks.get(b).cloned() {
            let answer = self.read(unit, &block).await;
            let now = clock.now();
            let dev = &mut self.devices[idx];
            match answer {
                Ok(Ok(data)) => {
                    out.contact.answered = Some(now);
                    decode_block(dev, &block, &data, now, &mut out.readings);
                }
                Ok(Err(e)) if block.points.len() > 1 => {
                    // The device objects to something in a coalesced read:
                    // from now on ask for each point alone to find which.
                    tracing::debug!(device = %dev.cfg.name, "exception {e} on a coalesced read; splitting");
                    out.contact.answered = Some(now);
                    let singles = split(&block, &dev.cfg.points);
                    dev.blocks.splice(b..=b, singles);
                    continue;
                }
                Ok(Err(e)) => {
                    out.contact.answered = Some(now);
                    for &i in &block.points {
                        let p = &dev.cfg.points[i];
                        out.readings.push(Reading::bad(
                            &dev.cfg.name,
                            &p.name,
                            e.clone(),
                            p.unit.as_deref(),
                            now.unix_ms,
                        ));
                    }
                }
                Err(e) => {
                    tracing::debug!(device = %dev.cfg.name, "poll failed: {e}");
                    out.contact.failed = Some((failure(unit, e), now));
                    return out;
                }
            }
            b += 1;
        }
        out
    }

    async fn read(&mut self, unit: UnitId, block: &Block) -> Answer<Data> {
        let (table, start, count) = (block.table, block.start, block.count);
        self.call(unit, move |ctx| {
            Box::pin(async move {
                let r = match table {
                    Table::Coil => ctx
                        .read_coils(start, count)
                        .await
                        .map(|r| r.map(Data::Bits)),
                    Table::DiscreteInput => ctx
                        .read_discrete_inputs(start, count)
                        .await
                        .map(|r| r.map(Data::Bits)),
                    Table::InputRegister => ctx
                        .read_input_registers(start, count)
                        .await
                        .map(|r| r.map(Data::Words)),
                    Table::HoldingRegister => ctx
                        .read_holding_registers(start, count)
                        .await
                        .map(|r| r.map(Data::Words)),
                };
                r
            })
        })
        .await
    }

    /// One request with timeout and retries. Any link error drops the
    /// context so the next attempt starts on a clean port.
    async fn call<T, F>(&mut self, unit: UnitId, mut f: F) -> Answer<T>
    where
        F: for<'c> FnMut(
            &'c mut Context,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = tokio_modbus::Result<T>> + Send + 'c>,
        >,
    {
        let mut last = BridgeError::Timeout(self.timeout.as_millis() as u64);
        let (mut attempts, mut strays) = (0, 0);
        while attempts <= self.retries {
            attempts += 1;
            let ctx = match self.ctx.as_mut() {
                Some(c) => c,
                None => match open(&self.link, self.timeout).await {
                    Ok(c) => self.ctx.insert(c),
                    // Opening again at once would fail the same way; the
                    // backoff decides when to try again.
                    Err(e @ BridgeError::CannotOpen(_)) => return Err(e),
                    Err(e) => {
                        last = e;
                        continue;
                    }
                },
            };
            ctx.set_slave(unit.into());
            match timeout(self.timeout, f(ctx)).await {
                Ok(Ok(Ok(v))) => return Ok(Ok(v)),
                Ok(Ok(Err(code))) => return Ok(Err(exception(code))),
                Ok(Err(tokio_modbus::Error::Protocol(
                    e @ (ProtocolError::HeaderMismatch { .. }
                    | ProtocolError::FunctionCodeMismatch { .. }),
                ))) if strays < MAX_STRAY_FRAMES => {
                    // A late frame meant for an earlier request: ask again,
                    // for free, once our own answer had time to land.
                    tracing::debug!(%unit, "stray frame dropped: {e}");
                    strays += 1;
                    attempts -= 1;
                    self.reset(true).await;
                    continue;
                }
                Ok(Err(tokio_modbus::Error::Transport(e))) => last = BridgeError::Io(e.to_string()),
                Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                    last = BridgeError::PeerMisbehaved(e.to_string())
                }
                Err(_) => last = BridgeError::Timeout(self.timeout.as_millis() as u64),
            }
            self.reset(attempts > self.retries).await;
        }
        Err(last)
    }

    /// Drops the context after a failed attempt. With `settle`, on a serial
    /// line, first lets a late reply arrive so that reopening the port
    /// discards it (see the implementation notes at the top).
    async fn reset(&mut self, settle: bool) {
        if self.ctx.take().is_some() && settle && matches!(self.link, Link::Serial(_)) {
            tokio::time::sleep(self.timeout).await;
        }
    }
}

/// Opens the serial port (clearing stale bytes) or connects to the host.
async fn open(link: &Link, limit: Duration) -> Result<Context, BridgeError> {
    match link {
        Link::Serial(bus) => {
            let parity = match bus.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            };
            let data_bits = if bus.data_bits == 7 {
                tokio_serial::DataBits::Seven
            } else {
                tokio_serial::DataBits::Eight
            };
            let stop_bits = if bus.stop_bits == 2 {
                tokio_serial::StopBits::Two
            } else {
                tokio_serial::StopBits::One
            };
            let builder = tokio_serial::new(&bus.port, bus.baud)
                .parity(parity)
                .data_bits(data_bits)
                .stop_bits(stop_bits);
            let port = tokio_serial::SerialStream::open(&builder)
                .map_err(|e| serial_open_error(&bus.port, &e))?;
            // Drop whatever a slave sent after we stopped listening.
            port.clear(tokio_serial::ClearBuffer::All)
                .map_err(|e| serial_open_error(&bus.port, &e))?;
            Ok(tokio_modbus::client::rtu::attach(port))
        }
        Link::Tcp { host, port } => {
            let target = format!("{host}:{port}");
            let connect = tokio::net::TcpStream::connect(target.clone());
            let stream = timeout(limit, connect)
                .await
                .map_err(|_| BridgeError::Timeout(limit.as_millis() as u64))?
                .map_err(|e| BridgeError::Io(format!("{target}: {e}")))?;
            let _ = stream.set_nodelay(true);
            Ok(tokio_modbus::client::tcp::attach(stream))
        }
    }
}

/// Why `port` could not be opened, in the words every bus uses for its
/// device file. serialport reports a port another program holds (TIOCEXCL
/// or its lock) as `NoDevice`.
fn serial_open_error(port: &str, e: &tokio_serial::Error) -> BridgeError {
    let kind = match e.kind {
        tokio_serial::ErrorKind::Io(kind) => kind,
        tokio_serial::ErrorKind::NoDevice => std::io::ErrorKind::ResourceBusy,
        _ => std::io::ErrorKind::Other,
    };
    cannot_open(port, "dialout", kind, &e.description)
}

/// What a failed exchange with `unit` says about its health: a port that
/// cannot be opened is the whole line's state (its reason names the port,
/// not the unit); anything else counts against the unit.
fn failure(unit: UnitId, e: BridgeError) -> Failure {
    match e {
        BridgeError::CannotOpen(reason) => Failure::Bus(reason),
        e => Failure::Device(format!("{unit}: {e}")),
    }
}

impl Line {
    /// Writes one command: checks, encodes, writes. Returns the device and
    /// what the write came to, or why it never reached the line.
    async fn write(&mut self, cmd: &Command) -> Result<(usize, UnitId, Answer<()>), PointError> {
        let unknown = || PointError::Unknown(format!("{}.{}", cmd.device, cmd.point));
        let idx = self
            .devices
            .iter()
            .position(|d| d.cfg.name == cmd.device)
            .ok_or_else(unknown)?;
        let dev = &self.devices[idx];
        let p = dev
            .cfg
            .points
            .iter()
            .find(|p| p.name == cmd.point)
            .ok_or_else(unknown)?
            .clone();
        if p.access != Access::ReadWrite {
            return Err(PointError::ReadOnly);
        }
        let unit = dev.unit;
        let answer: Answer<()> = match p.table {
            Table::Coil => {
                let bit = encode_bit(&cmd.value)?;
                let (addr, multiple) = (p.address, p.write_multiple);
                self.call(unit, move |ctx| {
                    Box::pin(async move {
                        if multiple {
                            ctx.write_multiple_coils(addr, &[bit]).await
                        } else {
                            ctx.write_single_coil(addr, bit).await
                        }
                    })
                })
                .await
            }
            Table::HoldingRegister => {
                let words = encode_registers(&p, &cmd.value)?;
                let addr = p.address;
                let single = words.len() == 1 && !p.write_multiple;
                self.call(unit, move |ctx| {
                    let words = words.clone();
                    Box::pin(async move {
                        if single {
                            ctx.write_single_register(addr, words[0]).await
                        } else {
                            ctx.write_multiple_registers(addr, &words).await
                        }
                    })
                })
                .await
            }
            Table::DiscreteInput | Table::InputRegister => return Err(PointError::ReadOnly),
        };
        Ok((idx, unit, answer))
    }
}

impl Poller for Line {
    fn devices(&self) -> Vec<PolledDevice> {
        self.devices
            .iter()
            .map(|d| PolledDevice {
                name: d.cfg.name.clone(),
                policy: d.policy,
            })
            .collect()
    }

    async fn poll(&mut self, device: usize, clock: &dyn Clock) -> Option<Polled> {
        Some(self.read_device(device, clock).await)
    }

    async fn apply(&mut self, cmd: &Command, clock: &dyn Clock) -> Applied {
        let (idx, unit, answer) = match self.write(cmd).await {
            Ok(sent) => sent,
            Err(e) => return Applied::refused(e),
        };
        let now = clock.now();
        let (result, contact) = match answer {
            Ok(Ok(())) => (Ok(()), Contact::answered(now)),
            Ok(Err(e)) => (Err(e.into()), Contact::answered(now)),
            Err(e) => (
                Err(e.clone().into()),
                Contact::failed(failure(unit, e), now),
            ),
        };
        Applied {
            result,
            device: Some(idx),
            contact,
        }
    }
}

fn devices(cfg: &[ModbusDevice], offline_after: u32, backoff_max_ms: u64) -> Vec<Device> {
    cfg.iter()
        .map(|d| Device {
            unit: UnitId::new(d.unit_id),
            blocks: plan(&d.points),
            policy: HealthPolicy {
                offline_after,
                interval: Duration::from_millis(d.poll_ms),
                backoff_max: Duration::from_millis(backoff_max_ms),
            },
            cfg: d.clone(),
        })
        .collect()
}

/// Turns one block's data into readings, one per point.
fn decode_block(dev: &Device, block: &Block, data: &Data, now: Now, out: &mut Vec<Reading>) {
    for &i in &block.points {
        let p = &dev.cfg.points[i];
        let off = usize::from(p.address - block.start);
        let span = usize::from(p.span());
        let result = match data {
            Data::Bits(bits) => bits
                .get(off)
                .map(|b| crate::value::Value::Bool(*b))
                .ok_or_else(|| PointError::Decode(format!("short response: {} bits", bits.len()))),
            Data::Words(words) => match words.get(off..off + span) {
                Some(regs) => decode_registers(p, regs),
                None => Err(PointError::Decode(format!(
                    "short response: {} registers",
                    words.len()
                ))),
            },
        };
        out.push(Reading::from_result(
            &dev.cfg.name,
            &p.name,
            result,
            p.unit.as_deref(),
            now.unix_ms,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;
    use crate::clock::SystemClock;

    /// Decoding every block a device's plan reads yields one reading per
    /// point, named as `point_names` says: gaps, coalescing and tables
    /// neither add nor lose a name.
    #[test]
    fn readings_carry_the_point_names() {
        let bus: RtuBus = crate::bus::parse_table(
            r#"
[modbus_rtu]
port = "/dev/ttyUSB0"
[[modbus_rtu.devices]]
name = "meter"
unit_id = 1
points = [
  { name = "volts", table = "input_register", address = 0, type = "f32" },
  { name = "amps", table = "input_register", address = 2, type = "f32" },
  { name = "model", table = "holding_register", address = 100, type = "string", length = 4 },
  { name = "relay", table = "coil", address = 3 },
  { name = "alarm", table = "discrete_input", address = 9 },
  { name = "far", table = "input_register", address = 500 },
]
"#,
        );
        let names = bus.point_names("meter");
        let line = Line::rtu(bus);
        let dev = &line.devices[0];
        let now = SystemClock.now();
        let mut out = Vec::new();
        for b in &dev.blocks {
            let n = usize::from(b.count);
            let data = if b.table.is_bits() {
                Data::Bits(vec![false; n])
            } else {
                Data::Words(vec![0x3f80; n])
            };
            decode_block(dev, b, &data, now, &mut out);
        }
        let mut seen: Vec<String> = out.into_iter().map(|r| r.point).collect();
        seen.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(seen, want);
        assert_eq!(names, ["volts", "amps", "model", "relay", "alarm", "far"]);
    }

    fn rtu(port: &str) -> Line {
        Line::rtu(crate::bus::parse_table(&format!(
            r#"
[modbus_rtu]
port = "{port}"
retries = 2
[[modbus_rtu.devices]]
name = "a"
unit_id = 1
points = [ {{ name = "v", table = "input_register", address = 0 }} ]
[[modbus_rtu.devices]]
name = "b"
unit_id = 2
writers = ["{}"]
points = [ {{ name = "relay", table = "coil", address = 0, access = "rw" }} ]
"#,
            "ab".repeat(32)
        )))
    }

    /// The reason a poll gives when the port cannot be opened.
    async fn bus_failure(line: &mut Line, device: usize) -> String {
        let polled = line.poll(device, &SystemClock).await.expect("polled");
        assert!(polled.readings.is_empty());
        match polled.contact.failed {
            Some((Failure::Bus(reason), _)) => reason,
            other => panic!("not the line's state: {other:?}"),
        }
    }

    /// A port that does not exist is the line's state, reported for every
    /// device with the port's reason (not a unit's), and tried again at each
    /// poll; other open failures say what they are.
    #[tokio::test]
    async fn a_port_that_cannot_be_opened_is_the_lines_state() {
        let dir = std::env::temp_dir().join(format!("streembit-absent-{}", std::process::id()));
        let port = dir.join("ttyUSB9");
        let port = port.to_str().expect("utf-8 path");
        let mut line = rtu(port);
        for device in [0, 1, 0] {
            assert_eq!(
                bus_failure(&mut line, device).await,
                format!("{port} absent")
            );
        }
        let cmd = Command {
            device: "b".into(),
            point: "relay".into(),
            value: crate::value::Value::Bool(true),
        };
        let applied = line.apply(&cmd, &SystemClock).await;
        let absent = BridgeError::CannotOpen(format!("{port} absent"));
        assert_eq!(applied.result, Err(absent.into()));
        assert!(
            matches!(applied.contact.failed, Some((Failure::Bus(_), _))),
            "{applied:?}"
        );

        // A directory exists but is no serial port.
        let mut line = rtu("/");
        let reason = bus_failure(&mut line, 0).await;
        assert!(reason.starts_with("/: cannot open: "), "{reason}");
    }
}
