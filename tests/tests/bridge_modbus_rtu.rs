//! Modbus RTU against a real pymodbus server on the far end of a socat PTY
//! pair: every data type and order decodes, commands land in the pymodbus
//! datastore, exceptions are point errors, a silent, slow or garbling slave
//! goes offline while the others keep being polled, a line that vanishes
//! (or is not there yet when the bridge starts) takes its devices offline
//! as absent, and everything recovers by itself.

use std::collections::BTreeSet;

use streembit_bridges::{BridgeFile, DeviceState, DeviceStatus, Value};
use streembit_tests::harness::bridge::{point, reading, start, status, tee, StatusLog};
use streembit_tests::peers::modbus_checks::{
    bridge_file, expect_all_types, load, offline, online, Link, Offline,
};
use streembit_tests::peers::pty::PtyPair;
use streembit_tests::peers::pymodbus::ModbusServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_types_commands_exceptions_garbage_and_silent_slave() {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Serial(&line.a)));
    let mut readings = tee(readings);
    expect_all_types(&mut readings).await;
    streembit_tests::peers::modbus_checks::exceptions_and_commands(
        &bridge,
        &mut readings,
        &mut server,
    )
    .await;
    streembit_tests::peers::modbus_checks::silent_slave(&bridge, &mut readings, &mut server).await;
    streembit_tests::peers::modbus_checks::garbage(
        &bridge,
        &mut readings,
        &mut server,
        &["badcrc", "noise"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_goes_offline_other_line_keeps_polling_then_recovers() {
    let (line_a, line_b) = (PtyPair::new().await, PtyPair::new().await);
    let mut server_a = ModbusServer::serial(&line_a.b, &[1, 2]).await;
    let mut server_b = ModbusServer::serial(&line_b.b, &[1, 2]).await;
    load(&mut server_a).await;
    load(&mut server_b).await;
    let (bridge_a, ra) = start(&bridge_file(&Link::Serial(&line_a.a)));
    let (bridge_b, rb) = start(&bridge_file(&Link::Serial(&line_b.a)));
    let (mut ra, mut rb) = (tee(ra), tee(rb));
    point(&mut ra, "meter", "u16", |r| r.value.is_some()).await;
    point(&mut rb, "meter", "u16", |r| r.value.is_some()).await;

    server_a.proc.kill().await;
    let Offline { reason, since } = offline(&bridge_a, "meter").await;
    assert!(reason.contains("timed out"), "{reason}");
    // The other line goes on: fresh readings after A went offline.
    for _ in 0..3 {
        point(&mut rb, "meter", "u16", |r| {
            r.timestamp >= since && r.value.is_some()
        })
        .await;
    }
    assert!(bridge_b
        .device_status("meter")
        .is_some_and(|s| s.is_online()));

    // Restart A's server on the same PTY: the bridge recovers by itself.
    let mut server_a = ModbusServer::serial(&line_a.b, &[1, 2]).await;
    load(&mut server_a).await;
    online(&bridge_a, "meter").await;
    point(&mut ra, "meter", "u16", |r| {
        r.timestamp > since && r.value == Some(Value::Int(65000))
    })
    .await;
    let st = bridge_a.device_status("meter").expect("status");
    assert!(st.last_success.is_some_and(|t| t > since));
}

/// Failed polls of `log`'s device that the log shows; a device that never
/// failed shows none.
fn failures(log: &StatusLog) -> Vec<DeviceStatus> {
    log.seen()
        .into_iter()
        .filter(|s| s.consecutive_failures > 0 || !s.is_online())
        .collect()
}

/// The test file's `offline_after`.
const OFFLINE_AFTER: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_slave_goes_offline_and_its_late_answers_cost_the_neighbour_nothing() {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Serial(&line.a)));
    let mut readings = tee(readings);
    online(&bridge, "meter").await;
    online(&bridge, "second").await;
    let (meter_log, second_log) = (
        StatusLog::start(&bridge, "meter"),
        StatusLog::start(&bridge, "second"),
    );

    // 400 ms late with a 250 ms timeout: every answer misses its request
    // and arrives while the bridge is asking "meter" something.
    server.slow(2, 400).await;
    let Offline { reason, since } = offline(&bridge, "second").await;
    assert!(
        reason.contains("unit 2") && reason.contains("timed out"),
        "{reason}"
    );
    // Offline after exactly `offline_after` failed polls, not before.
    let seen = second_log
        .until("offline", |s| {
            matches!(s.state, DeviceState::Offline { .. })
        })
        .await;
    let first_offline = seen
        .iter()
        .position(|s| matches!(s.state, DeviceState::Offline { .. }))
        .expect("offline seen");
    assert!(
        seen[first_offline].consecutive_failures >= OFFLINE_AFTER,
        "{seen:#?}"
    );
    assert!(
        seen[..first_offline]
            .iter()
            .all(|s| s.consecutive_failures < OFFLINE_AFTER),
        "{seen:#?}"
    );
    // The neighbour keeps being polled through several of the slow slave's
    // retries (backoff ≤ 400 ms), and none of its polls fails.
    for _ in 0..20 {
        point(&mut readings, "meter", "u16", |r| {
            r.timestamp >= since && r.value == Some(Value::Int(65000))
        })
        .await;
    }
    assert_eq!(failures(&meter_log), [], "the neighbour's polls failed");

    server.mode(2, "normal").await;
    online(&bridge, "second").await;
    point(&mut readings, "second", "value", |r| {
        r.timestamp > since && r.value == Some(Value::Int(42))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbling_slave_goes_offline_while_the_neighbour_keeps_polling() {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Serial(&line.a)));
    let mut readings = tee(readings);
    online(&bridge, "meter").await;
    online(&bridge, "second").await;
    for mode in ["noise", "badcrc"] {
        let meter_log = StatusLog::start(&bridge, "meter");
        server.mode(2, mode).await;
        let since = offline(&bridge, "second").await.since;
        for _ in 0..10 {
            point(&mut readings, "meter", "u16", |r| {
                r.timestamp >= since && r.value == Some(Value::Int(65000))
            })
            .await;
        }
        assert_eq!(
            failures(&meter_log),
            [],
            "{mode}: the neighbour's polls failed"
        );
        server.mode(2, "normal").await;
        online(&bridge, "second").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_line_takes_its_devices_offline_and_they_return_with_it() {
    let mut line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Serial(&line.a)));
    let mut readings = tee(readings);
    online(&bridge, "meter").await;
    online(&bridge, "second").await;

    // The adapter is pulled: slave and PTY gone, the port cannot be opened.
    server.proc.kill().await;
    line.close().await;
    let absent = format!("{} absent", line.a.display());
    for device in ["meter", "second"] {
        status(
            &bridge,
            device,
            "offline: absent",
            |s| matches!(&s.state, DeviceState::Offline { reason, .. } if *reason == absent),
        )
        .await;
    }
    assert!(!bridge.is_finished(), "the bridge task gave up on the line");
    let since = match bridge.device_status("meter").map(|s| s.state) {
        Some(DeviceState::Offline { since, .. }) => since,
        other => panic!("{other:?}"),
    };

    // Plugged back in, under the same path: both come back by themselves.
    line.reopen().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    online(&bridge, "meter").await;
    online(&bridge, "second").await;
    point(&mut readings, "second", "value", |r| {
        r.timestamp > since && r.value == Some(Value::Int(42))
    })
    .await;
}

/// A gateway that boots with its adapter unplugged: the bridge starts, its
/// devices are offline because the port is absent, and when the port
/// appears the same bridge brings them online, with nothing restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_port_at_start_comes_online_when_plugged_in() {
    let mut line = PtyPair::unplugged();
    let text = bridge_file(&Link::Serial(&line.a));
    let (bridge, readings) = start(&text);
    let mut readings = tee(readings);
    let absent = format!("{} absent", line.a.display());
    for device in ["meter", "second"] {
        assert_eq!(offline(&bridge, device).await.reason, absent);
    }
    // It keeps trying (paced by the backoff) and does not give up.
    status(&bridge, "meter", "retried", |s| s.consecutive_failures >= 3).await;
    assert!(!bridge.is_finished(), "the bridge task gave up on the port");
    assert!(
        bridge.status().values().all(|s| s.last_success.is_none()),
        "{:#?}",
        bridge.status()
    );

    // Plugged in: the path appears, a slave answers on the other end.
    line.reopen().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    online(&bridge, "meter").await;
    online(&bridge, "second").await;
    point(&mut readings, "meter", "u16", |r| {
        r.value == Some(Value::Int(65000))
    })
    .await;
    point(&mut readings, "second", "value", |r| {
        r.value == Some(Value::Int(42))
    })
    .await;

    // The readings carry exactly the points `point_names` lists.
    let bus = BridgeFile::from_toml_str(&text)
        .and_then(BridgeFile::into_bus)
        .expect("valid");
    let want: BTreeSet<String> = bus.point_names("meter").into_iter().collect();
    assert_eq!(want.len(), 22);
    let mut seen = BTreeSet::new();
    while seen != want {
        let r = reading(&mut readings, "every meter point", |r| r.device == "meter").await;
        assert!(
            want.contains(&r.point),
            "{} is not a point of meter",
            r.point
        );
        seen.insert(r.point);
    }
}
