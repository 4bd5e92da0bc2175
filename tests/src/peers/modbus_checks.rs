//! The Modbus checks shared by the RTU and TCP tests: one bridge file with
//! every data type and order, values loaded into pymodbus, and the
//! assertions on readings, commands, exceptions, silence and garbage.

use std::path::Path;

use streembit_bridges::{
    BridgeHandle, Command, CommandError, DeviceState, PointError, Reading, Readings, Value,
};

use crate::harness::bridge::{point, status};
use crate::peers::pymodbus::ModbusServer;

/// A writer key for the rw points (the bridge only checks its format).
pub const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

/// Where the bridge under test connects.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    /// A serial port (one end of a PTY pair).
    Serial(&'a Path),
    /// A TCP port on 127.0.0.1.
    Tcp(u16),
}

/// The bridge file: "meter" (unit 1) with a point of every type and order,
/// illegal addresses and rw points; "second" (unit 2) with one register.
pub fn bridge_file(link: &Link<'_>) -> String {
    let head = match link {
        Link::Serial(p) => format!("[modbus_rtu]\nport = \"{}\"\nbaud = 115200\n", p.display()),
        Link::Tcp(port) => format!("[modbus_tcp]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    };
    let section = match link {
        Link::Serial(_) => "modbus_rtu",
        Link::Tcp(_) => "modbus_tcp",
    };
    format!(
        r#"
{head}
timeout_ms = 250
retries = 0
offline_after = 2
backoff_max_ms = 400

[[{section}.devices]]
name = "meter"
unit_id = 1
poll_ms = 50
writers = ["{KEY}"]
points = [
  {{ name = "u16", table = "holding_register", address = 0, type = "u16" }},
  {{ name = "i16", table = "holding_register", address = 1, type = "i16" }},
  {{ name = "u32", table = "holding_register", address = 2, type = "u32" }},
  {{ name = "u32_cdab", table = "holding_register", address = 4, type = "u32", word_order = "little" }},
  {{ name = "i32", table = "holding_register", address = 6, type = "i32" }},
  {{ name = "u64", table = "holding_register", address = 8, type = "u64" }},
  {{ name = "f32", table = "holding_register", address = 12, type = "f32", unit = "V" }},
  {{ name = "f32_cdab", table = "holding_register", address = 14, type = "f32", word_order = "little" }},
  {{ name = "f32_badc", table = "holding_register", address = 16, type = "f32", byte_order = "little" }},
  {{ name = "f64", table = "holding_register", address = 18, type = "f64" }},
  {{ name = "model", table = "holding_register", address = 22, type = "string", length = 3 }},
  {{ name = "temp", table = "holding_register", address = 25, type = "i16", scale = 0.1, offset = -40.0, unit = "°C" }},
  {{ name = "flag", table = "holding_register", address = 26, type = "bool" }},
  {{ name = "nan", table = "holding_register", address = 28, type = "f32" }},
  {{ name = "setpoint", table = "holding_register", address = 40, type = "f32", word_order = "little", access = "rw" }},
  {{ name = "limit", table = "holding_register", address = 42, type = "u16", scale = 0.5, access = "rw", write_multiple = true }},
  {{ name = "edge", table = "holding_register", address = 198, type = "u16" }},
  {{ name = "beyond", table = "holding_register", address = 199, type = "u32" }},
  {{ name = "ghost", table = "holding_register", address = 300, type = "u16", access = "rw" }},
  {{ name = "relay", table = "coil", address = 3, access = "rw" }},
  {{ name = "alarm", table = "discrete_input", address = 0 }},
  {{ name = "count", table = "input_register", address = 0 }},
]

[[{section}.devices]]
name = "second"
unit_id = 2
poll_ms = 50
points = [ {{ name = "value", table = "input_register", address = 0 }} ]
"#
    )
}

/// Loads the values [`expect_all_types`] expects into the server.
pub async fn load(server: &mut ModbusServer) {
    #[rustfmt::skip]
    let regs = [
        65000, (-1234i16) as u16, 0xEE6B, 0x2800, 0x2800, 0xEE6B, 0xFFFE, 0x7960,
        0x0123, 0x4567, 0x89AB, 0xCDEF, 0x4366, 0x8000, 0x8000, 0x4366,
        0x6643, 0x0080, 0x4049, 0x1000, 0, 0, 0x5344, 0x4D31, 0x3230, 650, 1,
        0, 0x7FC0, 0,
    ];
    server.set(1, "hr", 0, &regs).await;
    server.set(1, "co", 3, &[1]).await;
    server.set(1, "di", 0, &[1]).await;
    server.set(1, "ir", 0, &[777]).await;
    server.set(2, "ir", 0, &[42]).await;
}

fn float(r: &Reading, want: f64) -> bool {
    matches!(r.value, Some(Value::Float(v)) if (v - want).abs() < 1e-9)
}

/// Every data type, word order, byte order and scale decodes as loaded.
pub async fn expect_all_types(readings: &mut Readings) {
    let ints = [
        ("u16", 65000),
        ("i16", -1234),
        ("u32", 4_000_000_000),
        ("u32_cdab", 4_000_000_000),
        ("i32", -100_000),
        ("u64", 0x0123_4567_89AB_CDEF),
        ("count", 777),
    ];
    for (name, want) in ints {
        point(readings, "meter", name, |r| {
            r.value == Some(Value::Int(want))
        })
        .await;
    }
    for (name, want) in [
        ("f32", 230.5),
        ("f32_cdab", 230.5),
        ("f32_badc", 230.5),
        ("f64", 50.125),
        ("temp", 25.0),
    ] {
        point(readings, "meter", name, |r| float(r, want)).await;
    }
    let f32 = point(readings, "meter", "f32", |_| true).await;
    assert_eq!(f32.unit.as_deref(), Some("V"));
    point(readings, "meter", "model", |r| {
        r.value == Some(Value::String("SDM120".into()))
    })
    .await;
    for name in ["flag", "relay", "alarm"] {
        point(readings, "meter", name, |r| {
            r.value == Some(Value::Bool(true))
        })
        .await;
    }
    let nan = point(readings, "meter", "nan", |_| true).await;
    assert_eq!(nan.error(), Some(&PointError::NotFinite), "{nan:?}");
}

/// Waits for `device` to be online.
pub async fn online(bridge: &BridgeHandle, device: &str) {
    status(bridge, device, "online", |s| s.state == DeviceState::Online).await;
}

/// Waits for `device` to be offline; returns why and since when.
pub async fn offline(bridge: &BridgeHandle, device: &str) -> Offline {
    let st = status(bridge, device, "offline", |s| {
        matches!(s.state, DeviceState::Offline { .. })
    })
    .await;
    match st.state {
        DeviceState::Offline { reason, since } => Offline { reason, since },
        other => panic!("not offline: {other:?}"),
    }
}

/// What [`offline`] saw, from one observation: reading the status again
/// could already find the device back (a noisy line can, rarely, carry a
/// frame whose CRC happens to match).
#[derive(Debug)]
pub struct Offline {
    pub reason: String,
    /// When the device went offline, ms since the epoch.
    pub since: u64,
}

fn cmd(p: &str, v: Value) -> Command {
    Command {
        device: "meter".into(),
        point: p.into(),
        value: v,
    }
}

/// Illegal addresses are point errors (a coalesced read is split so its
/// good neighbour still reads); commands land in the datastore; refusals
/// come back as point errors.
pub async fn exceptions_and_commands(
    bridge: &BridgeHandle,
    readings: &mut Readings,
    server: &mut ModbusServer,
) {
    let ghost = point(readings, "meter", "ghost", |r| r.value.is_none()).await;
    assert!(
        matches!(ghost.error(), Some(PointError::Exception { code: 2, .. })),
        "{ghost:?}"
    );
    let beyond = point(readings, "meter", "beyond", |r| r.value.is_none()).await;
    assert!(
        matches!(beyond.error(), Some(PointError::Exception { code: 2, .. })),
        "{beyond:?}"
    );
    point(readings, "meter", "edge", |r| {
        r.value == Some(Value::Int(0))
    })
    .await;
    online(bridge, "meter").await;

    bridge
        .command(cmd("setpoint", Value::Float(12.5)))
        .await
        .expect("setpoint");
    assert_eq!(server.get(1, "hr", 40, 2).await, vec![0x0000, 0x4148]);
    bridge
        .command(cmd("limit", Value::Float(250.0)))
        .await
        .expect("limit");
    assert_eq!(server.get(1, "hr", 42, 1).await, vec![500]);
    bridge
        .command(cmd("relay", Value::Bool(false)))
        .await
        .expect("relay");
    assert_eq!(server.get(1, "co", 3, 1).await, vec![0]);
    point(readings, "meter", "setpoint", |r| float(r, 12.5)).await;
    point(readings, "meter", "relay", |r| {
        r.value == Some(Value::Bool(false))
    })
    .await;

    let err = bridge.command(cmd("ghost", Value::Int(1))).await;
    assert!(
        matches!(
            err,
            Err(CommandError::Point(PointError::Exception { code: 2, .. }))
        ),
        "{err:?}"
    );
    let err = bridge.command(cmd("u16", Value::Int(1))).await;
    assert_eq!(err, Err(CommandError::Point(PointError::ReadOnly)));
    let err = bridge.command(cmd("limit", Value::Float(1e9))).await;
    assert!(
        matches!(err, Err(CommandError::Point(PointError::OutOfRange(_)))),
        "{err:?}"
    );
    let err = bridge
        .command(cmd("setpoint", Value::Float(f64::NAN)))
        .await;
    assert_eq!(err, Err(CommandError::Point(PointError::NotFinite)));
    let err = bridge.command(cmd("nope", Value::Int(1))).await;
    assert!(
        matches!(err, Err(CommandError::Point(PointError::Unknown(_)))),
        "{err:?}"
    );
}

/// A slave that stops answering goes offline while the other keeps its
/// polls, and comes back by itself.
pub async fn silent_slave(
    bridge: &BridgeHandle,
    readings: &mut Readings,
    server: &mut ModbusServer,
) {
    online(bridge, "second").await;
    server.mode(2, "mute").await;
    let Offline { reason, since } = offline(bridge, "second").await;
    assert!(reason.contains("unit 2"), "{reason}");
    for _ in 0..3 {
        point(readings, "meter", "u16", |r| {
            r.timestamp >= since && r.value.is_some()
        })
        .await;
    }
    assert!(bridge.device_status("meter").is_some_and(|s| s.is_online()));
    server.mode(2, "normal").await;
    online(bridge, "second").await;
    point(readings, "second", "value", |r| {
        r.value == Some(Value::Int(42))
    })
    .await;
}

/// Garbage answers (bad CRC, random bytes): no panic, the device goes
/// offline, and comes back once its frames are good again.
pub async fn garbage(
    bridge: &BridgeHandle,
    readings: &mut Readings,
    server: &mut ModbusServer,
    modes: &[&str],
) {
    for mode in modes {
        server.mode(1, mode).await;
        offline(bridge, "meter").await;
        assert!(!bridge.is_finished(), "bridge task died on {mode}");
        server.mode(1, "normal").await;
        online(bridge, "meter").await;
        point(readings, "meter", "u16", |r| {
            r.value == Some(Value::Int(65000))
        })
        .await;
    }
}
