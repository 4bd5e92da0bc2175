//! A Tasmota-style MQTT plug on a gateway's embedded broker, and reading
//! it from another agent: what the NAT test and bench read across NATs,
//! and what the embedded-broker test serves.
//!
//! The plug is `mosquitto_pub` publishing what a Tasmota plug publishes,
//! logged in with its own account; the gateway's side is an ordinary MQTT
//! bridge file, which also gives the gateway's broker both accounts.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::agent_process::{AgentProcess, WAIT};
use crate::harness::cli::json;
use crate::harness::process::wrapped;

/// The plug's account on the gateway's broker (its bridge file says so).
pub const PLUG_USER: &str = "plug";
/// Its password.
pub const PLUG_PASSWORD: &str = "plug-secret";
/// The gateway bridge's account.
pub const BRIDGE_USER: &str = "gw-plug";
/// Its password.
pub const BRIDGE_PASSWORD: &str = "bridge-secret";

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
username = "{BRIDGE_USER}"
password = "{BRIDGE_PASSWORD}"

[[mqtt.devices]]
name = "plug"
username = "{PLUG_USER}"
password = "{PLUG_PASSWORD}"
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
        let published = wrapped(wrapper, "mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.to_string()])
            .args(["-u", PLUG_USER, "-P", PLUG_PASSWORD])
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

/// Reads the plug from `reader`: the verified value.
pub fn read_plug(reader: &AgentProcess, plug: &str) -> f64 {
    let out = reader.cli(&["read", plug, "power", "--json"]);
    let v = json(&out);
    v["readings"][0]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("no value in {v}"))
}
