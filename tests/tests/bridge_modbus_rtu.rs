//! Modbus RTU against a real pymodbus server on the far end of a socat PTY
//! pair: every data type and order decodes, commands land in the pymodbus
//! datastore, exceptions are point errors, a silent slave goes offline while
//! the others keep being polled, and everything recovers by itself.

use streembit_bridges::{DeviceState, Value};
use streembit_tests::bridge::{point, start, tee};
use streembit_tests::modbus_checks::{bridge_file, expect_all_types, load, offline, online, Link};
use streembit_tests::pty::PtyPair;
use streembit_tests::pymodbus::ModbusServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_types_commands_exceptions_garbage_and_silent_slave() {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Serial(&line.a)));
    let mut readings = tee(readings);
    expect_all_types(&mut readings).await;
    streembit_tests::modbus_checks::exceptions_and_commands(&bridge, &mut readings, &mut server)
        .await;
    streembit_tests::modbus_checks::silent_slave(&bridge, &mut readings, &mut server).await;
    streembit_tests::modbus_checks::garbage(
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
    let reason = offline(&bridge_a, "meter").await;
    assert!(reason.contains("timed out"), "{reason}");
    let since = match bridge_a.device_status("meter").map(|s| s.state) {
        Some(DeviceState::Offline { since, .. }) => since,
        other => panic!("{other:?}"),
    };
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
