//! The agent's MQTT broker admits every client by its account and confines
//! it to its own topics (issue 19), on a running agent with two MQTT bridge
//! files: a plug (bridge `bridge-a`, device account `plug`) and a meter
//! (bridge `bridge-b`, device account `meter`).
//!
//! - A forged reading on the plug's input topic, by a client without
//!   credentials or with the other bridge's or device's, is refused and
//!   never signed: the signed output shows the plug's real reading and
//!   never the forged value.
//! - A device's publish on a signed output topic (`streembit/...`) or on
//!   a command topic never reaches a subscriber.
//! - An anonymous client is refused by default.
//! - A bridge file added on reload brings its accounts; a broker that
//!   dies is counted and restarted.
//! - Without mosquitto the agent refuses to start and names the fix.
//!
//! Every assertion awaits an event (a line from a subscriber, a process
//! exit, a metric); nothing sleeps and then looks.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{binary, json};
use streembit_tests::harness::ports::free_port;
use streembit_tests::harness::process::Proc;
use streembit_tests::peers::modbus_checks::KEY;
use streembit_tests::peers::mosquitto::mosquitto_sub;

type Login = Option<(&'static str, &'static str)>;
const PLUG: Login = Some(("plug", "plug-pw"));
const METER: Login = Some(("meter", "meter-pw"));
const BRIDGE_A: Login = Some(("bridge-a", "bridge-a-pw"));
const BRIDGE_B: Login = Some(("bridge-b", "bridge-b-pw"));
const ANONYMOUS: Login = None;

/// 99999.9, as the forger publishes it.
const FORGED: &str = r#"{"Power": 99999.9}"#;

/// A gateway whose broker listens on a free port, with both bridge files.
fn gateway(dir: &Path) -> (AgentProcess, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir.join("bridges.d")).expect("mkdir");
    let file = |name: &str, text: String| {
        std::fs::write(dir.join("bridges.d").join(name), text).expect("bridge file");
    };
    file(
        "plug.toml",
        format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "gw-plug"
username = "bridge-a"
password = "bridge-a-pw"

[[mqtt.devices]]
name = "plug"
writers = ["{KEY}"]
username = "plug"
password = "plug-pw"
points = [
  {{ name = "power", topic = "tele/plug/SENSOR", pointer = "/Power", type = "float" }},
  {{ name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = {{ topic = "cmnd/plug/POWER" }} }},
]
"#
        ),
    );
    file(
        "meter.toml",
        format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "gw-meter"
username = "bridge-b"
password = "bridge-b-pw"

[[mqtt.devices]]
name = "meter"
username = "meter"
password = "meter-pw"
points = [ {{ name = "v", topic = "tele/meter/SENSOR", type = "float" }} ]
"#
        ),
    );
    let gw = AgentProcess::builder(
        dir,
        &format!("listen = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .spawn();
    (gw, port)
}

/// `--u user -P password`, or nothing for an anonymous client.
fn login_args(login: Login) -> Vec<&'static str> {
    login.map_or_else(Vec::new, |(u, p)| vec!["-u", u, "-P", p])
}

/// One QoS 1 `mosquitto_pub` run to its end: exit 0 means the broker
/// took the message (its PUBACK), whatever it then did with it.
async fn publish(port: u16, login: Login, topic: &str, message: &str) -> Output {
    tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(login_args(login))
        .args(["-t", topic, "-m", message])
        .output()
        .await
        .expect("mosquitto_pub (scripts/install-test-deps.sh installs it)")
}

/// A subscriber on `topic` as `login`, printing `topic hex-payload`.
async fn subscribe(port: u16, login: Login, topic: &str) -> Proc {
    let port = port.to_string();
    let mut args = vec!["-p", &port, "-q", "1", "-d", "-t", topic, "-F", "%t %x"];
    args.extend(login_args(login));
    mosquitto_sub(&args).await
}

/// The plug's key, as the gateway hosts it.
fn plug_key(gw: &AgentProcess) -> String {
    let d = json(&gw.cli(&["devices", "--json"]));
    d.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "plug"))
        .and_then(|x| x["key"].as_str())
        .expect("the plug is hosted")
        .to_owned()
}

/// `streembit verify` of a signed output line (`topic hex`): the sender and
/// the reading's value.
fn verified(line: &str) -> (String, serde_json::Value) {
    let hex = line.split_whitespace().nth(1).expect("a payload");
    let mut child = Command::new(binary())
        .args(["verify", "--json", "--hex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("streembit verify");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(hex.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("verify");
    let v = json(&out);
    (
        v["sender"].as_str().unwrap_or_default().to_owned(),
        v["payload"]["value"].clone(),
    )
}

/// The plug publishes `power` until a signed reading of it shows on
/// `outputs`: the gateway's bridge (which connects on its own schedule)
/// is then subscribed, and the agent publishes. Returns that line.
async fn until_signed(port: u16, outputs: &mut Proc, topic: &str, power: f64) -> String {
    loop {
        let out = publish(
            port,
            PLUG,
            "tele/plug/SENSOR",
            &format!("{{\"Power\": {power}}}"),
        )
        .await;
        assert!(out.status.success(), "the plug's own publish: {out:?}");
        let wait = outputs.expect_line("a signed reading", |l| l.starts_with(topic));
        if let Ok(line) = tokio::time::timeout(Duration::from_secs(2), wait).await {
            return line;
        }
    }
}

/// Metric of the broker's refusals, by reason.
fn refused(gw: &AgentProcess, reason: &str) -> u64 {
    gw.metric(&format!(
        "streembit_mqtt_broker_refused_total{{reason=\"{reason}\"}}"
    ))
}

#[test]
fn a_forged_reading_is_refused_by_the_broker_and_never_signed() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let (gw, port) = gateway(&tmp.path().join("gw"));
    let plug = plug_key(&gw);
    let topic = format!("streembit/{plug}/power");
    rt.block_on(async {
        let mut outputs = subscribe(port, METER, &topic).await;
        until_signed(port, &mut outputs, &topic, 1.5).await;

        // No credentials: refused at CONNECT.
        let out = publish(port, ANONYMOUS, "tele/plug/SENSOR", FORGED).await;
        assert!(!out.status.success(), "an anonymous client got in: {out:?}");
        // Another bridge's, another device's, and the plug's own bridge's
        // accounts: logged in, the publish taken and dropped.
        for login in [BRIDGE_B, METER, BRIDGE_A] {
            let out = publish(port, login, "tele/plug/SENSOR", FORGED).await;
            assert!(out.status.success(), "{login:?}: {out:?}");
        }
        // Then the plug itself: the next signed reading is its own, and
        // none before it carried the forged value.
        publish(port, PLUG, "tele/plug/SENSOR", r#"{"Power": 42.5}"#).await;
        loop {
            let line = outputs
                .expect_line("the plug's reading", |l| l.starts_with(&topic))
                .await;
            let (sender, value) = verified(&line);
            assert_eq!(sender, plug);
            assert_ne!(value, 99999.9, "a forged value signed with the plug's key");
            if value == 42.5 {
                break;
            }
        }
    });
    assert_eq!(
        json(&gw.cli(&["devices", "--json"]))
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == "plug"))
            .map(|d| d["points"]["power"]["value"].clone()),
        Some(serde_json::json!(42.5))
    );
    // The broker's refusals, as the agent counts them from its log.
    eventually("the refusals counted", || {
        refused(&gw, "login") >= 1 && refused(&gw, "publish") >= 3
    });
}

#[test]
fn a_device_cannot_publish_on_signed_output_or_command_topics() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let (gw, port) = gateway(&tmp.path().join("gw"));
    let plug = plug_key(&gw);
    let topic = format!("streembit/{plug}/power");
    let spoof = "SPOOFED";
    let spoof_hex = hex::encode(spoof);
    rt.block_on(async {
        let mut outputs = subscribe(port, METER, "streembit/#").await;
        let mut commands = subscribe(port, PLUG, "cmnd/plug/POWER").await;
        until_signed(port, &mut outputs, &topic, 1.5).await;

        for login in [PLUG, METER] {
            let out = publish(port, login, &topic, spoof).await;
            assert!(out.status.success(), "{login:?}: {out:?}");
            let out = publish(port, login, "cmnd/plug/POWER", spoof).await;
            assert!(out.status.success(), "{login:?}: {out:?}");
        }
        // What may publish there, after the spoofs: the agent (a signed
        // reading) and the plug's bridge (a command). Each subscriber gets
        // messages in the order the broker took them.
        publish(port, PLUG, "tele/plug/SENSOR", r#"{"Power": 42.5}"#).await;
        loop {
            let line = outputs
                .expect_line("a signed reading", |l| l.starts_with(&topic))
                .await;
            assert!(
                !line.contains(&spoof_hex),
                "a spoofed output delivered: {line}"
            );
            if verified(&line).1 == 42.5 {
                break;
            }
        }
        let out = publish(port, BRIDGE_A, "cmnd/plug/POWER", "MARKER").await;
        assert!(out.status.success(), "{out:?}");
        let marker = format!("cmnd/plug/POWER {}", hex::encode("MARKER"));
        commands
            .expect_line("the bridge's command", |l| l == marker)
            .await;
        assert!(
            !commands.seen.iter().any(|l| l.contains(&spoof_hex)),
            "a spoofed command delivered: {:#?}",
            commands.seen
        );
        assert!(
            !outputs.seen.iter().any(|l| l.contains(&spoof_hex)),
            "a spoofed output delivered: {:#?}",
            outputs.seen
        );
    });
    eventually("the refusals counted", || refused(&gw, "publish") >= 4);
}

#[test]
fn an_anonymous_client_is_refused_by_default() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    // The default config and no bridge file (what main before issue 19
    // also ran: there this client got in).
    let port = free_port();
    let gw = AgentProcess::builder(
        &tmp.path().join("gw"),
        &format!("listen = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .spawn();
    let out = rt.block_on(publish(port, ANONYMOUS, "tele/meter/SENSOR", "1"));
    assert!(!out.status.success(), "an anonymous client got in: {out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not authorised"), "{said}");
    // A made-up login is no better.
    let out = rt.block_on(publish(
        port,
        Some(("meter", "guess")),
        "tele/meter/SENSOR",
        "1",
    ));
    assert!(!out.status.success(), "a made-up login got in: {out:?}");
    eventually("the refusals counted", || refused(&gw, "login") >= 2);
}

#[test]
fn a_new_bridge_file_gets_its_accounts_on_reload() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("gw");
    let (mut gw, port) = gateway(&dir);
    let lamp = Some(("lamp", "lamp-pw"));
    let out = rt.block_on(publish(port, lamp, "tele/lamp/STATE", "1"));
    assert!(!out.status.success(), "an unknown account got in: {out:?}");
    std::fs::write(
        dir.join("bridges.d/lamp.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"gw-lamp\"\n\
             username = \"bridge-c\"\npassword = \"bridge-c-pw\"\n\n\
             [[mqtt.devices]]\nname = \"lamp\"\nusername = \"lamp\"\npassword = \"lamp-pw\"\n\
             points = [ {{ name = \"on\", topic = \"tele/lamp/STATE\", type = \"int\" }} ]\n"
        ),
    )
    .expect("bridge file");
    gw.signal("HUP");
    gw.wait_for("the reload", |m| {
        m.contains("READY=1") && m.contains("reload")
    });
    // The lamp logs in once mosquitto has re-read its files (SIGHUP);
    // its bridge subscribes on its own schedule.
    eventually("the lamp's reading at the gateway", || {
        rt.block_on(publish(port, lamp, "tele/lamp/STATE", "1"))
            .status
            .success()
            && json(&gw.cli(&["devices", "--json"]))
                .as_array()
                .and_then(|a| a.iter().find(|d| d["name"] == "lamp"))
                .is_some_and(|d| d["points"]["on"]["value"] == 1)
    });
}

#[test]
fn a_dead_broker_is_counted_and_restarted() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let (gw, port) = gateway(&tmp.path().join("gw"));
    let agent = gw.pid().expect("the agent runs").to_string();
    let found = Command::new("pgrep")
        .args(["-P", &agent, "mosquitto"])
        .output()
        .expect("pgrep");
    let child = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(!child.is_empty(), "no mosquitto child of the agent");
    let killed = Command::new("kill").args(["-9", &child]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    eventually("the death counted and mosquitto back", || {
        gw.metric("streembit_mqtt_broker_restarts_total") >= 1
            && gw.metric("streembit_mqtt_embedded_broker") == 1
            && rt
                .block_on(publish(port, METER, "tele/meter/SENSOR", "1"))
                .status
                .success()
    });
}

#[test]
fn without_mosquitto_the_agent_says_what_to_install_or_set() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let port = free_port();
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "state_dir = \"state\"\nruntime_dir = \"run\"\nlisten = \"127.0.0.1:0\"\n\
             [mqtt]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .expect("config");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    // A mount namespace where /usr/sbin (mosquitto's home) is empty and
    // PATH has no mosquitto: a machine without the package.
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(r#"mount --bind "$1" /usr/sbin && shift && PATH=/usr/bin:/bin exec "$@""#)
        .arg("sh")
        .arg(&empty)
        .arg(binary())
        .args(["run", "--config", "agent.toml"])
        .current_dir(dir)
        .env("STREEMBIT_DISCOVERY__MDNS", "false")
        .env("STREEMBIT_WEB__ENABLED", "false")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUNTIME_DIRECTORY")
        .output()
        .expect("unshare (util-linux; needs root, as the lab tests do)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("mosquitto")
            && said.contains("apt install mosquitto")
            && said.contains("embedded = false"),
        "{said}"
    );
}
