//! A Tasmota-style MQTT plug on a gateway's embedded broker, and reading
//! it from another agent: what the NAT test and bench read across NATs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::agent_process::{AgentProcess, WAIT};

/// The command's standard output as JSON; panics (with its stderr) when
/// the command failed.
pub fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Writes a bridge file to `dir/bridges.d/plug.toml`: one device `plug`
/// fed by the broker at 127.0.0.1:`broker` (the gateway's embedded one).
pub fn plug_bridge(dir: &Path, broker: u16) {
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

/// Publishes the plug's reading (`mosquitto_pub` run under `wrapper`, e.g.
/// inside the gateway's namespace) until the gateway holds it; returns
/// the plug's key.
pub fn feed_plug(gw: &AgentProcess, broker: u16, wrapper: &[String]) -> String {
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
pub fn wait_relayed(gw: &mut AgentProcess) -> String {
    let status = gw.wait_for("a relayed address", |m| m.contains("announcing relay:"));
    status
        .split_whitespace()
        .find(|w| w.starts_with("relay:"))
        .expect("relay address")
        .to_owned()
}

/// The path of the agent's open connection to `key`, if any.
pub fn path_to(agent: &AgentProcess, key: &str) -> Option<String> {
    let status = json(&agent.cli(&["status", "--json"]));
    status["links"]
        .as_array()?
        .iter()
        .find(|l| l["key"] == key)
        .and_then(|l| l["path"].as_str().map(str::to_owned))
}

/// Reads the plug from `reader`: the verified value.
pub fn read_plug(reader: &AgentProcess, plug: &str) -> f64 {
    let out = reader.cli(&["read", plug, "power", "--json"]);
    let v = json(&out);
    v["readings"][0]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("no value in {v}"))
}

/// Polls until `pred` holds (the state is in the agent; there is no event
/// to await from outside); panics naming `what` after [`WAIT`].
pub fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
