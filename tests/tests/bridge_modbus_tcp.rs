//! Modbus TCP against a real pymodbus server on a free loopback port: the
//! same checks as RTU (types, commands, exceptions, a silent unit, garbage),
//! plus a killed and restarted server.

use streembit_bridges::Value;
use streembit_tests::harness::bridge::{point, start, tee};
use streembit_tests::harness::ports::free_port;
use streembit_tests::peers::modbus_checks::{
    bridge_file, exceptions_and_commands, expect_all_types, garbage, load, offline, online,
    silent_slave, Link,
};
use streembit_tests::peers::pymodbus::ModbusServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_types_commands_exceptions_garbage_and_silent_unit() {
    let port = free_port();
    let mut server = ModbusServer::tcp(port, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Tcp(port)));
    let mut readings = tee(readings);
    expect_all_types(&mut readings).await;
    exceptions_and_commands(&bridge, &mut readings, &mut server).await;
    silent_slave(&bridge, &mut readings, &mut server).await;
    garbage(&bridge, &mut readings, &mut server, &["noise"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_killed_goes_offline_then_recovers_on_restart() {
    let port = free_port();
    let mut server = ModbusServer::tcp(port, &[1, 2]).await;
    load(&mut server).await;
    let (bridge, readings) = start(&bridge_file(&Link::Tcp(port)));
    let mut readings = tee(readings);
    point(&mut readings, "meter", "u16", |r| r.value.is_some()).await;
    online(&bridge, "meter").await;

    server.proc.kill().await;
    let since = offline(&bridge, "meter").await.since;
    offline(&bridge, "second").await;

    let mut server = ModbusServer::tcp(port, &[1, 2]).await;
    load(&mut server).await;
    online(&bridge, "meter").await;
    online(&bridge, "second").await;
    point(&mut readings, "meter", "u16", |r| {
        r.timestamp > since && r.value == Some(Value::Int(65000))
    })
    .await;
}
