//! Devices as first-class peers, end to end with real processes: readings
//! of a device on one gateway fetched and verified by another agent (and
//! by pycose with only the device key), writes refused for non-writers and
//! applied for writers, and durable subscriptions across a subscriber's
//! absence and a gateway SIGKILL.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::cli::{binary, json, keygen, stderr, stdout};
use streembit_tests::peers::mosquitto::{mosquitto_sub, Broker};
use streembit_tests::peers::plug::{plug_bridge, PLUG_PASSWORD, PLUG_USER};
use streembit_tests::peers::pty::PtyPair;
use streembit_tests::peers::pymodbus::ModbusServer;
use streembit_tests::peers::python;

/// Creates the identity of an agent that will run in `dir` (so its key can
/// go into a bridge file before it starts) and returns its key.
fn identity(dir: &Path) -> String {
    keygen(&dir.join(".streembit/identity.pem"))
}

/// Writes `bridges.d/<name>` of the agent in `dir`.
fn bridge_file(dir: &Path, name: &str, contents: &str) {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(dir.join("bridges.d").join(name), contents).expect("bridge file");
}

/// Polls `probe` (bounded) until it gives a value: the CLI is the only
/// view of a reading's arrival at another process.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// The value `read KEY POINT --json` shows at `agent`, if any.
fn remote_value(agent: &AgentProcess, device: &str, point: &str) -> Option<Value> {
    let out = agent.cli(&["read", device, point, "--json"]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["readings"][0]["value"].as_f64()?;
    Some(v)
}

fn device_key(gw: &AgentProcess, name: &str) -> String {
    let d = json(&gw.cli(&["devices", "--json"]));
    d.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .and_then(|x| x["key"].as_str())
        .expect("device key")
        .to_owned()
}

fn wait_device_record(gw: &mut AgentProcess, device: &str) {
    gw.wait_for("device record stored", |m| {
        m.contains(&format!("device {device} record stored at")) && !m.contains("stored at 0 nodes")
    });
}

#[test]
fn mqtt_device_read_and_verified_elsewhere_written_only_by_writers() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let writer_dir = tmp.path().join("writer");
    let writer_key = identity(&writer_dir);
    let gw_dir = tmp.path().join("gw");
    bridge_file(
        &gw_dir,
        "plug.toml",
        &format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "gw-devices-network"

[[mqtt.devices]]
name = "plug"
writers = ["{writer_key}"]
points = [
  {{ name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" }},
  {{ name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = {{ topic = "cmnd/plug/POWER", on = "ON", off = "OFF" }} }},
]
"#,
            port = broker.port
        ),
    );
    let mut gw = AgentProcess::start(&gw_dir, "listen = \"127.0.0.1:0\"\n");
    let plug = device_key(&gw, "plug");
    let mut reader = AgentProcess::start(&tmp.path().join("reader"), &gw.seeded_config());
    let writer = AgentProcess::start(&writer_dir, &gw.seeded_config());
    assert_eq!(writer.key, writer_key);
    reader.wait_published(1);
    wait_device_record(&mut gw, &plug);

    // A reading made on the gateway's bus, fetched and verified elsewhere.
    rt.block_on(broker.publish("tele/plug/SENSOR", r#"{"ENERGY":{"Power":123.5}}"#));
    let seen = eventually("the reading at the reader", || {
        remote_value(&reader, &plug, "power").filter(|v| v["readings"][0]["value"] == 123.5)
    });
    assert_eq!(seen["device"], plug.as_str());
    assert_eq!(seen["readings"][0]["device"], "plug");
    assert_eq!(seen["readings"][0]["unit"], "W");

    // A third party checks it with pycose and nothing but the device key
    // that the DHT lookup gave.
    let found = json(&reader.cli(&["lookup", &plug, "--json"]));
    assert_eq!(found["kind"], "device");
    let key_from_lookup = found["key"].as_str().expect("key");
    let cose = stdout(&reader.cli(&["read", &plug, "power", "--cose"]));
    let hex_env = cose.strip_prefix("power ").expect("point and envelope");
    let envelope = hex::decode(hex_env.trim()).expect("hex");
    let checked = python::run(
        "cose_peer.py",
        &["verify", "--pubkey", key_from_lookup],
        &["pycose", "cbor2"],
        &envelope,
    );
    assert!(
        checked.status.success(),
        "pycose refused: {}",
        stderr(&checked)
    );
    let checked: Value = serde_json::from_slice(&checked.stdout).expect("json");
    assert_eq!(checked["kind"], "reading");
    assert_eq!(checked["payload"]["value"], 123.5);
    // The gateway's key does not verify it: it was signed by the device.
    let wrong = python::run(
        "cose_peer.py",
        &["verify", "--pubkey", &gw.key],
        &["pycose", "cbor2"],
        &envelope,
    );
    assert!(!wrong.status.success());

    // The reader is not a writer: refused with the device's signed error,
    // and counted at the gateway.
    let refused = reader.cli(&["write", &plug, "relay", "true"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not_authorized"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        gw.metric(r#"streembit_device_requests_total{kind="command",outcome="not_authorized"}"#),
        1
    );

    // The writer is: the command reaches the bus and the device confirms.
    let mut commands = rt.block_on(broker.subscribe("cmnd/plug/POWER", None));
    let done = writer.cli(&["write", &plug, "relay", "true"]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(
        stdout(&done).contains("confirmed by the device"),
        "{}",
        stdout(&done)
    );
    rt.block_on(commands.expect_line("the relay command", |l| l == "cmnd/plug/POWER ON"));
    assert_eq!(
        gw.metric(r#"streembit_device_requests_total{kind="command",outcome="ok"}"#),
        1
    );
    gw.terminate();
}

#[test]
fn modbus_register_reaches_another_agent_and_a_writer_sets_one() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let line = rt.block_on(PtyPair::new());
    let mut slave = rt.block_on(ModbusServer::serial(&line.b, &[1]));
    let tmp = tempfile::tempdir().expect("tmp");
    let writer_dir = tmp.path().join("writer");
    let writer_key = identity(&writer_dir);
    let gw_dir = tmp.path().join("gw");
    bridge_file(
        &gw_dir,
        "meter.toml",
        &format!(
            r#"[modbus_rtu]
port = "{port}"
baud = 115200
timeout_ms = 300

[[modbus_rtu.devices]]
name = "meter"
unit_id = 1
poll_ms = 100
writers = ["{writer_key}"]
points = [
  {{ name = "temp", table = "holding_register", address = 0, type = "u16" }},
  {{ name = "setpoint", table = "holding_register", address = 10, type = "u16", access = "rw" }},
]
"#,
            port = line.a.display()
        ),
    );
    rt.block_on(slave.set(1, "hr", 0, &[42]));
    let mut gw = AgentProcess::start(&gw_dir, "listen = \"127.0.0.1:0\"\n");
    let meter = device_key(&gw, "meter");
    let mut reader = AgentProcess::start(&tmp.path().join("reader"), &gw.seeded_config());
    let writer = AgentProcess::start(&writer_dir, &gw.seeded_config());
    reader.wait_published(1);
    wait_device_record(&mut gw, &meter);

    eventually("42 at the reader", || {
        remote_value(&reader, &meter, "temp").filter(|v| v["readings"][0]["value"] == 42)
    });
    // A register changed in the slave shows up, verified, at the reader.
    rt.block_on(slave.set(1, "hr", 0, &[43]));
    eventually("43 at the reader", || {
        remote_value(&reader, &meter, "temp").filter(|v| v["readings"][0]["value"] == 43)
    });

    let refused = reader.cli(&["write", &meter, "setpoint", "77"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert_eq!(rt.block_on(slave.get(1, "hr", 10, 1)), vec![0]);
    let done = writer.cli(&["write", &meter, "setpoint", "77"]);
    assert!(done.status.success(), "{}", stderr(&done));
    // The slave itself holds the value.
    assert_eq!(rt.block_on(slave.get(1, "hr", 10, 1)), vec![77]);
    gw.terminate();
}

/// `(seq, value)` of every reading in `agent`'s inbox for `device`.
fn inbox(agent: &AgentProcess, device: &str) -> Vec<(u64, i64)> {
    let out = agent.cli(&["inbox", device, "--json", "--limit", "10000"]);
    let v: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) if out.status.success() => v,
        _ => return Vec::new(),
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["seq"].as_u64()?, e["value"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn subscriber_away_and_gateway_killed_every_reading_arrives_once_in_order() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let gw_dir = tmp.path().join("gw");
    bridge_file(
        &gw_dir,
        "counter.toml",
        &format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {}
client_id = "gw-store-and-forward"

[[mqtt.devices]]
name = "counter"
points = [ {{ name = "n", topic = "counter/n", type = "int" }} ]
"#,
            broker.port
        ),
    );
    // A fixed port: the gateway comes back at the same address.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let gw_config = format!("listen = \"127.0.0.1:{port}\"\n");
    let mut gw = AgentProcess::start(&gw_dir, &gw_config);
    let counter = device_key(&gw, "counter");
    let mut sub = AgentProcess::start(&tmp.path().join("sub"), &gw.seeded_config());
    sub.wait_published(1);
    wait_device_record(&mut gw, &counter);
    let out = sub.cli(&["subscribe", &counter]);
    assert!(out.status.success(), "{}", stderr(&out));
    gw.wait_subscriber(&counter, &sub.key);
    let outbox = format!(
        r#"streembit_outbox_readings{{device="{counter}",subscriber="{}"}}"#,
        sub.key
    );
    let values =
        |from: i64, to: i64| -> Vec<String> { (from..=to).map(|i| i.to_string()).collect() };
    // Each batch goes out only once the bridge is known to be subscribed
    // (its previous value is on the board), so no message is lost to MQTT.
    let board_shows = |gw: &AgentProcess, n: i64| {
        eventually(&format!("{n} on the gateway's board"), || {
            let d = json(&gw.cli(&["devices", "--json"]));
            (d[0]["points"]["n"]["value"] == n).then_some(())
        })
    };
    rt.block_on(broker.publish_lines("counter/n", &values(1, 10)));
    board_shows(&gw, 10);
    eventually("10 readings at the subscriber", || {
        (inbox(&sub, &counter).len() == 10).then_some(())
    });

    // The subscriber goes away; 500 readings are made; the gateway is
    // SIGKILLed and restarted; 500 more.
    sub.terminate();
    rt.block_on(broker.publish_lines("counter/n", &values(11, 510)));
    board_shows(&gw, 510);
    assert!(gw.metric(&outbox) >= 500, "queued: {}", gw.metric(&outbox));
    gw.kill();
    gw.restart(None);
    // Its bridge resubscribes with the same MQTT session before the batch.
    rt.block_on(broker.publish_lines("counter/n", &values(511, 1010)));
    board_shows(&gw, 1010);

    // The subscriber comes back and gets all 1,010, in order, once.
    sub.restart(None);
    let got = eventually("1010 readings at the subscriber", || {
        let got = inbox(&sub, &counter);
        (got.len() >= 1010).then_some(got)
    });
    let values_seen: Vec<i64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(values_seen, (1..=1010).collect::<Vec<i64>>());
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "sequences grow");
    let subs = json(&sub.cli(&["subscriptions", "--json"]));
    assert_eq!(subs[0]["dropped"], 0);
    gw.terminate();
    sub.terminate();
}

#[test]
fn embedded_broker_serves_a_device_and_carries_its_signed_readings() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = streembit_tests::harness::ports::free_port();
    let tmp = tempfile::tempdir().expect("tmp");
    let gw_dir = tmp.path().join("gw");
    plug_bridge(&gw_dir, port);
    let gw = AgentProcess::builder(
        &gw_dir,
        &format!("listen = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .spawn();
    let plug = device_key(&gw, "plug");
    let topic = format!("streembit/{plug}/power");
    // A local application on the agent's broker (any account may read the
    // signed readings; here the plug's): topic and hex payload.
    let mut app = rt.block_on(mosquitto_sub(&[
        "-p",
        &port.to_string(),
        "-u",
        PLUG_USER,
        "-P",
        PLUG_PASSWORD,
        "-d",
        "-t",
        "streembit/#",
        "-F",
        "%t %x",
    ]));
    // The device publishes on the agent's broker until the gateway's
    // bridge (which connects on its own schedule) has taken a reading.
    let line = rt.block_on(async {
        let publish = || async {
            let status = tokio::process::Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-u",
                    PLUG_USER,
                    "-P",
                    PLUG_PASSWORD,
                    "-t",
                    "tele/plug/SENSOR",
                ])
                .args(["-m", r#"{"Power": 42.5}"#])
                .status()
                .await
                .expect("mosquitto_pub");
            assert!(status.success());
        };
        loop {
            publish().await;
            let wait = app.expect_line("a signed reading", |l| l.starts_with(&topic));
            if let Ok(line) = tokio::time::timeout(Duration::from_secs(2), wait).await {
                return line;
            }
        }
    });
    let hex_env = line.split_whitespace().nth(1).expect("payload");
    let envelope = hex::decode(hex_env).expect("hex payload");
    let checked = python::run(
        "cose_peer.py",
        &["verify", "--pubkey", &plug],
        &["pycose", "cbor2"],
        &envelope,
    );
    assert!(
        checked.status.success(),
        "pycose refused: {}",
        stderr(&checked)
    );
    let checked: Value = serde_json::from_slice(&checked.stdout).expect("json");
    assert_eq!(checked["payload"]["value"], 42.5);
    assert!(gw.metric("streembit_mqtt_published_total") >= 1);
    assert_eq!(gw.metric("streembit_mqtt_embedded_broker"), 1);
}

#[test]
fn the_demo_shows_signed_reads_refused_and_applied_writes_and_a_summary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(binary())
        .args(["demo", "--duration", "8", "--dir"])
        .arg(tmp.path().join("demo"))
        .output()
        .expect("demo");
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{}", text, stderr(&out));
    for expected in [
        "5 agents up on loopback",
        "agent1 looked meter up in the DHT: device record",
        "signed by the device, verified",
        "refused (not_authorized)",
        "confirmed by the device; the Modbus register now holds 42",
        "agent4 switched the plug's relay on",
        "summary after",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let figure = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
    };
    assert!(figure("remote reads verified") >= 2);
    assert_eq!(figure("writes refused (not a writer)"), 1);
    assert_eq!(figure("writes applied (writer)"), 2);
    assert!(figure("readings signed by the devices") >= 4);
    // The demo cleans up after itself.
    assert!(!tmp.path().join("demo").exists());
}

/// On an allowlist network a gateway admits its own devices (it signs
/// their device credentials): no device key is listed anywhere. A reader
/// that does not admit the gateway refuses its devices too, for a read as
/// for a subscription.
#[test]
fn on_a_private_network_devices_are_admitted_through_their_gateway() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let (gw_dir, r1_dir, r2_dir) = (
        tmp.path().join("gw"),
        tmp.path().join("r1"),
        tmp.path().join("r2"),
    );
    let (gw_key, r1_key, r2_key) = (identity(&gw_dir), identity(&r1_dir), identity(&r2_dir));
    // The device's key exists before the gateway first runs.
    let out = Command::new(binary())
        .args(["keygen", "--out"])
        .arg(gw_dir.join(".streembit/devices/plug.pem"))
        .output()
        .expect("keygen");
    let plug = stdout(&out);
    bridge_file(&gw_dir, "plug.toml", &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"gw-private\"\n\n[[mqtt.devices]]\nname = \"plug\"\npoints = [ {{ name = \"power\", topic = \"p\", type = \"float\" }} ]\n",
            broker.port
        ));
    let private = |allow: &[&str], seeds: &str| {
        let list: Vec<String> = allow.iter().map(|k| format!("\"{k}\"")).collect();
        format!(
            "listen = \"127.0.0.1:0\"\nnetwork = \"acme\"\nallowlist = [{}]\n{seeds}",
            list.join(", ")
        )
    };
    // No list names the device.
    let everyone = [gw_key.as_str(), &r1_key, &r2_key];
    let mut gw = AgentProcess::start(&gw_dir, &private(&everyone, ""));
    assert_eq!(device_key(&gw, "plug"), plug);
    let seeds = format!("seeds = [\"{gw_key}@{}\"]\n", gw.addr);
    let mut r1 = AgentProcess::start(&r1_dir, &private(&everyone, &seeds));
    // r2 admits r1, but neither the gateway nor its device; it joins
    // through r1.
    let r1_seed = format!("seeds = [\"{r1_key}@{}\"]\n", r1.addr);
    let r2 = AgentProcess::start(&r2_dir, &private(&[&r1_key, &r2_key], &r1_seed));
    r1.wait_published(1);
    wait_device_record(&mut gw, &plug);
    rt.block_on(broker.publish("p", "7.5"));
    eventually("the reading at r1", || {
        remote_value(&r1, &plug, "power").filter(|v| v["readings"][0]["value"] == 7.5)
    });
    eventually("r2 finds the device record", || {
        r2.cli(&["lookup", &plug, "--json"])
            .status
            .success()
            .then_some(())
    });
    let refused = r2.cli(&["read", &plug]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    let subscribed = r2.cli(&["subscribe", &plug]);
    let refusals = |r: &str| {
        r2.metric(&format!(
            "streembit_handshakes_refused_total{{reason=\"{r}\"}}"
        ))
    };
    // A device is reached through its gateway, which r2 does not admit:
    // refused in r2's own handshake, for the read as for the subscription.
    eventually("r2 refused the gateway", || {
        (refusals("not_allowlisted") >= 1).then_some(())
    });
    let subs = String::from_utf8_lossy(&r2.cli(&["subscriptions", "--json"]).stdout).into_owned();
    assert!(
        !subscribed.status.success() || !subs.contains("\"connected\":true"),
        "r2 is subscribed to a device it does not admit: {subs}"
    );
    gw.terminate();
}
