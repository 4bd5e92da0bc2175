//! A gateway that boots with its USB RS-485 adapter unplugged (issue 17):
//! the agent starts anyway, its MQTT device works, the Modbus meter shows
//! why it is offline, and once the adapter appears (socat makes the PTY
//! path; pymodbus answers on the other end) the meter comes online, with
//! no restart of anything.

use serde_json::Value;
use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{binary, json};
use streembit_tests::peers::mosquitto::Broker;
use streembit_tests::peers::plug::{feed_plug, plug_bridge};
use streembit_tests::peers::pty::PtyPair;
use streembit_tests::peers::pymodbus::ModbusServer;

fn device(gw: &AgentProcess, name: &str) -> Value {
    json(&gw.cli(&["devices", "--json"]))
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn an_adapter_plugged_in_after_boot_comes_online_without_a_restart() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let mut line = PtyPair::unplugged();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("gw");
    plug_bridge(&dir, broker.port);
    std::fs::write(
        dir.join("bridges.d/meter.toml"),
        format!(
            "[modbus_rtu]\nport = \"{}\"\nbaud = 9600\ntimeout_ms = 200\noffline_after = 1\nbackoff_max_ms = 1000\n\n[[modbus_rtu.devices]]\nname = \"meter\"\nunit_id = 1\npoll_ms = 200\npoints = [ {{ name = \"v\", table = \"input_register\", address = 0, type = \"u16\" }} ]\n",
            line.a.display()
        ),
    )
    .expect("bridge file");
    std::fs::write(dir.join("agent.toml"), "listen = \"127.0.0.1:0\"\n").expect("config");

    // The absent port is a warning, not an error.
    let check = std::process::Command::new(binary())
        .args(["check-config", "--config", "agent.toml"])
        .current_dir(&dir)
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("check-config");
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{said}");
    assert!(
        said.contains("warning") && said.contains(&line.a.display().to_string()),
        "{said}"
    );

    // The agent starts (READY) and its MQTT device works.
    let gw = AgentProcess::start(&dir, "listen = \"127.0.0.1:0\"\n");
    let pid = gw.pid();
    let plug = feed_plug(&gw, broker.port, &[]);
    assert!(!plug.is_empty());
    let absent = format!("offline: {} absent", line.a.display());
    eventually("the meter offline with its adapter absent", || {
        device(&gw, "meter")["state"] == absent.as_str()
    });

    // Plugged in: the path appears and a slave answers.
    let _server = rt.block_on(async {
        line.reopen().await;
        let mut server = ModbusServer::serial(&line.b, &[1]).await;
        server.set(1, "ir", 0, &[4242]).await;
        server
    });
    eventually("the meter online with its reading", || {
        let m = device(&gw, "meter");
        m["state"] == "online" && m["points"]["v"]["value"] == 4242
    });
    assert_eq!(gw.pid(), pid, "the agent was not restarted");
    // The plug kept working throughout.
    assert_eq!(device(&gw, "plug")["state"], "online");
}
