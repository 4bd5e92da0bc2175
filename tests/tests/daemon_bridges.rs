//! Bridge files in a running agent: devices with their own keys and latest
//! readings through the API, SIGHUP reloads that keep a running bridge when
//! its new file is broken, and check-config across files.

use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::{eventually, gateway_dir, AgentProcess};
use streembit_tests::harness::cli::stderr;
use streembit_tests::peers::mosquitto::Broker;

fn plug(port: u16, points: &[&str]) -> String {
    let mut s = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"gw-test\"\n\n[[mqtt.devices]]\nname = \"plug\"\npoints = [\n"
    );
    for p in points {
        let field = if *p == "power" { "Power" } else { "Voltage" };
        s.push_str(&format!(
            "  {{ name = \"{p}\", topic = \"tele/plug/SENSOR\", pointer = \"/ENERGY/{field}\", type = \"float\" }},\n"
        ));
    }
    s.push_str("]\n");
    s
}

fn devices(agent: &AgentProcess) -> Value {
    let out = agent.cli(&["devices", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Waits until the device list satisfies `pred` (the API is the only view
/// of a reading's arrival, so this polls it, bounded).
fn wait_devices(agent: &AgentProcess, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = devices(agent);
        if pred(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "no {what}; devices: {d}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn point(d: &Value, name: &str) -> Option<f64> {
    d.as_array()?.iter().find(|x| x["name"] == "plug")?["points"][name]["value"].as_f64()
}

#[test]
fn devices_readings_and_reloads() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = gateway_dir(tmp.path(), &[("plug.toml", &plug(broker.port, &["power"]))]);
    let mut agent = AgentProcess::start(&dir, "listen = \"127.0.0.1:0\"\n");

    // The device has its own identity, distinct from the gateway's.
    let d = devices(&agent);
    let key = d[0]["key"].as_str().expect("key").to_owned();
    assert_eq!(key.len(), 64);
    assert_ne!(key, agent.key);
    assert!(dir.join(".streembit/devices/plug.pem").exists());

    rt.block_on(broker.publish_retained(
        "tele/plug/SENSOR",
        r#"{"ENERGY":{"Power":42.5,"Voltage":230.1}}"#,
    ));
    wait_devices(&agent, "power 42.5", |d| point(d, "power") == Some(42.5));

    // A broken file on reload: reported, the running bridge keeps going.
    std::fs::write(dir.join("bridges.d/plug.toml"), "[mqtt]\nhots = 1\n").expect("write");
    agent.signal("HUP");
    let status = agent.wait_for("reload refusal", |m| m.contains("previous versions kept"));
    assert!(status.contains("STATUS=reload: "), "{status}");
    assert!(agent.log().contains("hots"), "the log names the bad key");
    assert!(agent.metric("streembit_bridge_reload_errors_total") >= 1);
    rt.block_on(broker.publish_retained(
        "tele/plug/SENSOR",
        r#"{"ENERGY":{"Power":43.0,"Voltage":230.2}}"#,
    ));
    wait_devices(&agent, "power 43 from the old bridge", |d| {
        point(d, "power") == Some(43.0)
    });

    // A fixed file (one more point), renamed: applied, same device key.
    std::fs::remove_file(dir.join("bridges.d/plug.toml")).expect("rm");
    std::fs::write(
        dir.join("bridges.d/10-plug.toml"),
        plug(broker.port, &["power", "voltage"]),
    )
    .expect("write");
    agent.signal("HUP");
    agent.wait_for("reload", |m| m.contains("STATUS=reloaded: 1 devices"));
    let d = wait_devices(&agent, "voltage", |d| point(d, "voltage") == Some(230.2));
    assert_eq!(
        d[0]["key"].as_str(),
        Some(key.as_str()),
        "device key changed on rename"
    );
    assert_eq!(d[0]["bridge"], "10-plug.toml");
    // `read` by the device's key; `write` to a read-only point is refused
    // with the bridge's reason.
    let out = agent.cli(&["read", &key, "voltage", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["readings"][0]["value"], 230.2);
    assert_eq!(r["readings"][0]["point"], "voltage");
    assert_eq!(r["device"], key.as_str());
    // Signed by the device's own key: pycose checks it with that key alone.
    let out = agent.cli(&["read", &key, "voltage", "--cose"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let envelope = hex::decode(line.split_whitespace().nth(1).expect("hex")).expect("hex");
    let checked = streembit_tests::peers::python::run(
        "cose_peer.py",
        &["verify", "--pubkey", &key],
        &["pycose", "cbor2"],
        &envelope,
    );
    assert!(checked.status.success(), "pycose: {}", stderr(&checked));
    let v: Value = serde_json::from_slice(&checked.stdout).expect("json");
    assert_eq!(v["kind"], "reading");
    assert_eq!(v["payload"]["device"], "plug");
    assert_eq!(v["payload"]["value"], 230.2);
    // …and not with the gateway's key.
    let other = streembit_tests::peers::python::run(
        "cose_peer.py",
        &["verify", "--pubkey", &agent.key],
        &["pycose", "cbor2"],
        &envelope,
    );
    assert_eq!(other.status.code(), Some(1));
    let out = agent.cli(&["read", &key]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("power"));
    let out = agent.cli(&["write", &key, "power", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).is_empty());
    let out = agent.cli(&["read", &"ab".repeat(32)]);
    assert_eq!(out.status.code(), Some(1), "unknown device");
    let status = agent.cli(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["devices"], 1);
    agent.terminate();
}

#[test]
fn check_config_catches_cross_file_and_device_path_problems() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(dir.join("agent.toml"), "").expect("write");
    std::fs::write(dir.join("bridges.d/a.toml"), plug(1883, &["power"])).expect("write");
    std::fs::write(dir.join("bridges.d/b.toml"), plug(1884, &["power"])).expect("write");
    std::fs::write(
        dir.join("bridges.d/c.toml"),
        "[modbus_rtu]\nport = \"/dev/ttyNOPE0\"\nbaud = 9600\n\n[[modbus_rtu.devices]]\nname = \"meter\"\nunit_id = 1\npoints = [ { name = \"v\", table = \"input_register\", address = 0, type = \"f32\" } ]\n",
    )
    .expect("write");
    let out = std::process::Command::new(streembit_tests::harness::cli::binary())
        .args(["check-config", "--config", "agent.toml"])
        .current_dir(dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("b.toml") && err.contains("already defined in a.toml"),
        "{err}"
    );
    // An absent serial device is a warning (the adapter may be plugged in
    // later), named with its file and key, not a problem.
    assert!(
        err.contains("warning: ")
            && err.contains("c.toml")
            && err.contains("modbus_rtu.port")
            && err.contains("/dev/ttyNOPE0 does not exist"),
        "{err}"
    );
    // `run` refuses to start on the same files.
    let out = std::process::Command::new(streembit_tests::harness::cli::binary())
        .args(["run", "--config", "agent.toml"])
        .current_dir(dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Without the cross-file problem, the absent device alone passes the
    // check: exit 0, the warning on the way.
    std::fs::remove_file(dir.join("bridges.d/b.toml")).expect("remove");
    let out = std::process::Command::new(streembit_tests::harness::cli::binary())
        .args(["check-config", "--config", "agent.toml"])
        .current_dir(dir)
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", stderr(&out));
    assert!(
        said.contains("config OK") && said.contains("warning: ") && said.contains("/dev/ttyNOPE0"),
        "{said}"
    );
}

#[test]
fn a_device_is_found_through_the_dht_and_dialed_by_its_own_key() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let gw_dir = tmp.path().join("gw");
    std::fs::create_dir_all(gw_dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        gw_dir.join("bridges.d/plug.toml"),
        plug(broker.port, &["power"]),
    )
    .expect("write");
    let mut gw = AgentProcess::start(&gw_dir, "listen = \"127.0.0.1:0\"\n");
    let device_key = devices(&gw)[0]["key"].as_str().expect("key").to_owned();
    let cfg = gw.seeded_config();
    let mut other = AgentProcess::start(&tmp.path().join("other"), &cfg);
    other.wait_published(1);
    gw.wait_published(1);
    // The device's own record is stored somewhere before anyone looks.
    gw.wait_for("device record stored", |m| {
        m.contains(&format!("device {device_key} record stored at"))
            && !m.contains("stored at 0 nodes")
    });

    // A lookup of the device key from another agent names the gateway.
    let out = other.cli(&["lookup", &device_key, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(found["kind"], "device");
    assert_eq!(found["gateway"], gw.key.as_str());
    assert_eq!(found["addrs"][0], gw.addr.as_str());

    // Dialing the device's key at that address. A prober with no
    // connection to the gateway is refused as if the device were not
    // hosted there (issue 19, item 9), before any signature; after a
    // handshake with the gateway, the device's own key proves the
    // connection, not the gateway's.
    let device: streembit_agent::identity::PublicKey = device_key.parse().expect("key");
    let gateway: streembit_agent::identity::PublicKey = gw.key.parse().expect("key");
    let addr: std::net::SocketAddr = gw.addr.parse().expect("addr");
    use streembit_agent::internals::transport::{Endpoint, Membership, TransportConfig};
    let me = std::sync::Arc::new(streembit_agent::identity::Keypair::generate());
    let cfg = TransportConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        streembit_agent::wire::NetworkId::public(),
    );
    let ep = {
        let _guard = rt.enter();
        Endpoint::bind(me, Membership::public(), &cfg).expect("bind")
    };
    let opened = gw.metric("streembit_connections_opened_total");
    let (cold, absent, _gateway) = rt.block_on(async {
        let cold = ep.dial(&device, addr).await.map(|c| c.peer().key());
        let nobody = streembit_agent::identity::Keypair::generate().public();
        let absent = ep.dial(&nobody, addr).await.map(|c| c.peer().key());
        let gateway = ep.dial(&gateway, addr).await.expect("dial the gateway");
        (cold, absent, gateway)
    });
    // TLS 1.3: our side of the handshake ends before the gateway's; the
    // gateway knows this address as proven once it has taken the
    // connection in.
    eventually("the gateway took the connection in", || {
        gw.metric("streembit_connections_opened_total") > opened
    });
    let peer = rt.block_on(async { ep.dial(&device, addr).await.map(|c| c.peer().key()) });
    let (Err(cold), Err(absent)) = (cold, absent) else {
        panic!("a cold dial of a device (or of nobody) got an answer");
    };
    assert_eq!(
        cold.to_string(),
        absent.to_string(),
        "the probe learns nothing"
    );
    assert_eq!(
        gw.metric(r#"streembit_handshakes_refused_total{reason="device_name_unproven"}"#),
        1
    );
    assert_eq!(peer.ok(), Some(device));
    gw.terminate();
    other.terminate();
}
