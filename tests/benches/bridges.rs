//! Throughput of the bridges against the reference clients, side by side in
//! one run (issue 7, item 7). Not part of `cargo test`; run with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target cargo bench -p streembit-tests --bench bridges
//! ```
//!
//! Modbus RTU: our bridge and pymodbus's own serial client take turns on
//! the same PTY end, against the same pymodbus server, reading 1, 10 and
//! 125 holding registers back to back; transactions per second.
//!
//! MQTT: the same QoS 1 backlog (queued by mosquitto for a persistent
//! session, published once by one mosquitto_pub) is drained by
//! `mosquitto_sub` alone (output to /dev/null) and by our bridge (JSON →
//! two readings per message, queued on the readings channel); messages per
//! second from connecting to the last message.
//!
//! Each figure is the median of `ROUNDS` rounds; ratios are ours / theirs.

use std::time::{Duration, Instant};

use streembit_bridges::{BridgeFile, BridgeHandle, BridgeOptions, Readings};
use streembit_tests::harness::process::Proc;
use streembit_tests::peers::mosquitto::Broker;
use streembit_tests::peers::pty::PtyPair;
use streembit_tests::peers::pymodbus::ModbusServer;
use streembit_tests::peers::python::script;
use tokio::process::Command;

const ROUNDS: usize = 5;
const MODBUS_SECS: f64 = 2.0;
const MQTT_MESSAGES: usize = 20_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn start(toml: &str) -> (BridgeHandle, Readings) {
    let bus = match BridgeFile::from_toml_str(toml).and_then(BridgeFile::into_bus) {
        Ok(b) => b,
        Err(e) => panic!("{e:?}"),
    };
    BridgeHandle::start(
        bus,
        &tokio::runtime::Handle::current(),
        BridgeOptions::default(),
    )
}

/// Our bridge polling one point of `regs` registers with no pause.
async fn modbus_ours(port: &std::path::Path, regs: u16) -> f64 {
    let ty = if regs == 1 {
        "type = \"u16\"".to_owned()
    } else {
        format!("type = \"string\", length = {regs}")
    };
    let toml = format!(
        "[modbus_rtu]\nport = \"{}\"\nbaud = 115200\ntimeout_ms = 1000\n[[modbus_rtu.devices]]\nname = \"d\"\nunit_id = 1\npoll_ms = 1\npoints = [ {{ name = \"p\", table = \"holding_register\", address = 0, {ty} }} ]\n",
        port.display()
    );
    let (bridge, mut rx) = start(&toml);
    for _ in 0..5 {
        let _ = rx.recv().await;
    }
    let (t0, mut n, mut errors) = (Instant::now(), 0u64, 0u64);
    while t0.elapsed().as_secs_f64() < MODBUS_SECS {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(r)) => {
                n += 1;
                errors += u64::from(r.value.is_none());
            }
            _ => panic!("bridge stalled: {:?}", bridge.status()),
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    // Wait until the port is closed: pymodbus's client opens it next.
    bridge.stop().await;
    assert_eq!(errors, 0, "point errors during the bench");
    rate
}

/// pymodbus's serial client on the same PTY end.
async fn modbus_theirs(port: &std::path::Path, regs: u16) -> f64 {
    let mut p = Proc::spawn(
        "pymodbus client",
        Command::new("python3")
            .arg(script("modbus_bench_client.py"))
            .arg(port)
            .arg(regs.to_string())
            .arg(MODBUS_SECS.to_string()),
    );
    let line = p
        .expect_line("RATE", |l| l.starts_with("RATE") || l.starts_with("ERR"))
        .await;
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.get(3), Some(&"0"), "pymodbus client errors: {line}");
    parts
        .get(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

async fn modbus() {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1]).await;
    server.set(1, "hr", 0, &[0x4142; 125]).await;
    println!("\n## Modbus RTU over a PTY pair, pymodbus 3.16 server (transactions/s, median of {ROUNDS} × {MODBUS_SECS} s)\n");
    println!("| registers per read | streembit bridge | pymodbus client | ratio |");
    println!("|---:|---:|---:|---:|");
    for regs in [1u16, 10, 125] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(modbus_ours(&line.a, regs).await);
            theirs.push(modbus_theirs(&line.a, regs).await);
        }
        let (o, t) = (median(ours), median(theirs));
        println!("| {regs} | {o:.0} | {t:.0} | {:.2} |", o / t);
    }
}

fn mqtt_file(port: u16) -> String {
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"bench-bridge\"\n[[mqtt.devices]]\nname = \"plug\"\npoints = [\n  {{ name = \"sync\", topic = \"bench/sync\", type = \"string\" }},\n  {{ name = \"power\", topic = \"bench/SENSOR\", pointer = \"/ENERGY/Power\", type = \"float\" }},\n  {{ name = \"voltage\", topic = \"bench/SENSOR\", pointer = \"/ENERGY/Voltage\", type = \"float\" }},\n]\n"
    )
}

/// Queues `MQTT_MESSAGES` QoS 1 messages for both persistent sessions.
async fn backlog(broker: &Broker, dir: &std::path::Path) {
    let file = dir.join("messages");
    let body: String = (0..MQTT_MESSAGES)
        .map(|i| format!("{{\"ENERGY\":{{\"Power\":{i},\"Voltage\":230.{i}}}}}\n"))
        .collect();
    std::fs::write(&file, body).unwrap_or_else(|e| panic!("{e}"));
    let mut p = Proc::spawn(
        "mosquitto_pub",
        Command::new("sh").arg("-c").arg(format!(
            "mosquitto_pub -h 127.0.0.1 -p {} -q 1 -t bench/SENSOR -l < {}",
            broker.port,
            file.display()
        )),
    );
    assert_eq!(p.wait().await, Some(0), "{:?}", p.seen);
}

/// mosquitto_sub draining the backlog to /dev/null: from process start
/// (connect included) to its exit after the last message.
async fn mqtt_raw(broker: &Broker) -> f64 {
    let t0 = Instant::now();
    let status = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-q",
            "1",
            "-c",
            "-i",
            "bench-raw",
        ])
        .args(["-t", "bench/SENSOR", "-C", &MQTT_MESSAGES.to_string()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    assert!(status.is_ok_and(|s| s.success()), "mosquitto_sub failed");
    MQTT_MESSAGES as f64 / t0.elapsed().as_secs_f64()
}

async fn mqtt_ours(broker: &Broker) -> f64 {
    // From bridge start (connect included) to the last message's readings,
    // as for mosquitto_sub. Two readings (power, voltage) per message; the
    // retained sync point (delivered again on every subscribe) is skipped.
    let t0 = Instant::now();
    let (bridge, mut rx) = start(&mqtt_file(broker.port));
    for _ in 0..MQTT_MESSAGES {
        let a = next(&mut rx).await;
        let b = next(&mut rx).await;
        assert!(a.value.is_some() && b.value.is_some(), "{a:?} {b:?}");
    }
    let rate = MQTT_MESSAGES as f64 / t0.elapsed().as_secs_f64();
    bridge.stop().await;
    rate
}

async fn next(rx: &mut Readings) -> streembit_bridges::Reading {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(r)) if r.point == "sync" => continue,
            Ok(Some(r)) => return r,
            _ => panic!("bridge stalled"),
        }
    }
}

async fn mqtt() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Create both persistent sessions, then leave.
    drop(broker.subscribe("bench/SENSOR", Some("bench-raw")).await);
    {
        let (bridge, mut rx) = start(&mqtt_file(broker.port));
        // Retained, so it arrives whenever the bridge has subscribed (to
        // both topics, in one SUBSCRIBE).
        broker.publish_retained("bench/sync", "ready").await;
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        bridge.stop().await;
    }
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        backlog(&broker, dir.path()).await;
        raw.push(mqtt_raw(&broker).await);
        ours.push(mqtt_ours(&broker).await);
    }
    let (o, r) = (median(ours), median(raw));
    println!("\n## MQTT, mosquitto 2.0 on loopback, QoS 1 backlog of {MQTT_MESSAGES} messages (messages/s, median of {ROUNDS})\n");
    println!("| consumer | messages/s | ratio |");
    println!("|---|---:|---:|");
    println!("| mosquitto_sub alone (to /dev/null) | {r:.0} | 1.00 |");
    println!(
        "| streembit bridge (JSON → 2 readings/message) | {o:.0} | {:.2} |",
        o / r
    );
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        modbus().await;
        mqtt().await;
    });
}
