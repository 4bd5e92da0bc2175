//! `streembit demo`: a small network on loopback, with nothing installed
//! but this binary and mosquitto (the gateway's MQTT broker, which the
//! agent runs). Five agents run as real processes (this binary's `run`):
//! a gateway hosting a simulated Modbus TCP meter and an MQTT plug that
//! logs in to its broker, and four peers. The demo then shows what the
//! product does, as it happens: device records found in the DHT, readings
//! fetched from another agent and verified with the device key, a write
//! refused for an outsider and applied for a writer, a subscription
//! filling — and a summary at the end (`--duration`, or Ctrl-C).
//!
//! - `mod.rs`: the agents, the scenario, the summary.
//! - `sim.rs`: the simulated devices.
//!
//! What this module does not do: take part itself. Every agent is a child
//! process, and everything shown comes through their local APIs.

mod sim;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::agent_client::{get, post};
use super::{DemoArgs, Failure};
use crate::identity::Keystore;

const AGENTS: usize = 5;
const GATEWAY: usize = 0;
const READER: usize = 1;
const SUBSCRIBER: usize = 2;
const OUTSIDER: usize = 3;
const WRITER: usize = 4;

struct Agent {
    dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn socket(&self) -> PathBuf {
        self.dir.join("run/api.sock")
    }

    fn get(&self, path: &str) -> Option<Value> {
        let (status, body) = get(&self.socket(), path).ok()?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).ok()
        } else {
            None
        }
    }

    /// `(ok, body)` of a POST.
    fn post(&self, path: &str, body: Value) -> (bool, Value) {
        match post(&self.socket(), path, body.to_string().into_bytes()) {
            Ok((status, body)) => (
                (200..300).contains(&status),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ),
            Err(e) => (false, serde_json::json!({ "error": e.message })),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port(udp: bool) -> Result<u16, Failure> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| Failure::usage(format!("no free loopback port: {e}")))
}

#[derive(Default)]
struct Tally {
    lookups: u32,
    reads_verified: u32,
    reads_failed: u32,
    writes_refused: u32,
    writes_applied: u32,
}

/// Runs the demo; prints as it goes.
pub(super) fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::usage(format!("demo: {e}"));
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("streembit-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base).map_err(io)?;
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io)?;
    {
        let stop = stop.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let meter_addr: SocketAddr = ([127, 0, 0, 1], free_port(false)?).into();
    let broker_addr: SocketAddr = ([127, 0, 0, 1], free_port(false)?).into();
    let registers = rt.block_on(sim::meter(meter_addr)).map_err(io)?;
    let result = scenario(
        args,
        &base,
        &rt,
        meter_addr,
        broker_addr,
        &registers,
        &stop,
        out,
    );
    if !args.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    result
}

fn say(out: &mut dyn Write, started: Instant, text: &str) -> Result<(), Failure> {
    writeln!(out, "[{:>5.1}s] {text}", started.elapsed().as_secs_f64()).map_err(Failure::usage)
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    args: &DemoArgs,
    base: &Path,
    rt: &tokio::runtime::Runtime,
    meter_addr: SocketAddr,
    broker_addr: SocketAddr,
    registers: &sim::Registers,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let started = crate::clock::Clock::system().instant();
    let io = |e: std::io::Error| Failure::usage(format!("demo: {e}"));
    let dirs: Vec<PathBuf> = (0..AGENTS)
        .map(|i| base.join(format!("agent{i}")))
        .collect();
    // The writer's identity exists before the gateway's bridge files name it.
    let writer_key = Keystore::new(&dirs[WRITER])
        .gateway()
        .map_err(|e| Failure::usage(e.to_string()))?
        .public();
    let gw_port = free_port(true)?;
    let plug_login = PlugLogin::random();
    let mut agents = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        std::fs::create_dir_all(dir.join("bridges.d")).map_err(io)?;
        let port = if i == GATEWAY {
            gw_port
        } else {
            free_port(true)?
        };
        let mut config = format!(
            "state_dir = \"{}\"\nruntime_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nlog_level = \"warn\"\n",
            dir.display(),
            dir.join("run").display()
        );
        if i == GATEWAY {
            config.push_str(&format!("[mqtt]\nlisten = \"{broker_addr}\"\n"));
            std::fs::write(
                dir.join("bridges.d/meter.toml"),
                meter_file(meter_addr, &writer_key.to_string()),
            )
            .map_err(io)?;
            std::fs::write(
                dir.join("bridges.d/plug.toml"),
                plug_file(broker_addr, &writer_key.to_string(), &plug_login),
            )
            .map_err(io)?;
        } else {
            let gw_key = Keystore::new(&dirs[GATEWAY])
                .gateway()
                .map_err(|e| Failure::usage(e.to_string()))?
                .public();
            config.push_str(&format!(
                "seeds = [\"{gw_key}@127.0.0.1:{gw_port}\"]\n[mqtt]\nembedded = false\n"
            ));
        }
        // The demo's agents find each other through the seed, not the
        // LAN: they must not dial, or be dialed by, agents on it.
        config.push_str("[discovery]\nmdns = false\n");
        // The gateway serves the web console on a free port; the others none.
        if i == GATEWAY {
            config.push_str(&format!(
                "[web]\nlisten = \"127.0.0.1:{}\"\n",
                free_port(false)?
            ));
        } else {
            config.push_str("[web]\nenabled = false\n");
        }
        std::fs::write(dir.join("agent.toml"), config).map_err(io)?;
        let log = std::fs::File::create(dir.join("agent.log")).map_err(io)?;
        let exe = std::env::current_exe().map_err(io)?;
        let child = Command::new(exe)
            .args(["run", "--config"])
            .arg(dir.join("agent.toml"))
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io)?;
        agents.push(Agent {
            dir: dir.clone(),
            child: Some(child),
        });
        if i == GATEWAY {
            // The plug needs the gateway's broker, which the gateway starts.
            wait_until(stop, Duration::from_secs(20), || {
                agents[GATEWAY].get("/v1/status")
            })
            .ok_or_else(|| {
                Failure::usage(format!(
                    "the gateway did not start; see {}",
                    dir.join("agent.log").display()
                ))
            })?;
            let _guard = rt.enter();
            sim::plug(broker_addr, &plug_login);
        }
    }
    for a in &agents {
        wait_until(stop, Duration::from_secs(20), || a.get("/v1/status")).ok_or_else(|| {
            Failure::usage(format!(
                "an agent did not start; see {}",
                a.dir.join("agent.log").display()
            ))
        })?;
    }
    let keys: Vec<String> = agents
        .iter()
        .map(|a| {
            a.get("/v1/status")
                .and_then(|s| s["key"].as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    say(
        out,
        started,
        &format!("{AGENTS} agents up on loopback (dir {})", base.display()),
    )?;
    if let Some(url) = agents[GATEWAY]
        .get("/v1/console")
        .and_then(|c| c["url"].as_str().map(str::to_owned))
    {
        say(out, started, &format!("web console of the gateway: {url}"))?;
    }
    for (i, role) in ["gateway", "reader", "subscriber", "outsider", "writer"]
        .iter()
        .enumerate()
    {
        writeln!(out, "          agent{i} {role:<10} {}", keys[i]).map_err(Failure::usage)?;
    }
    let devices = wait_until(stop, Duration::from_secs(20), || {
        agents[GATEWAY]
            .get("/v1/devices")
            .filter(|d| d.as_array().is_some_and(|a| a.len() == 2))
    })
    .ok_or_else(|| Failure::usage("the gateway's devices did not start"))?;
    let key_of = |name: &str| -> String {
        devices
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == name))
            .and_then(|d| d["key"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (meter, plug) = (key_of("meter"), key_of("plug"));
    say(
        out,
        started,
        &format!("gateway hosts meter {meter} (Modbus TCP, simulated)"),
    )?;
    say(
        out,
        started,
        &format!("         and plug  {plug} (MQTT on the gateway's broker, simulated)"),
    )?;
    let mut tally = Tally::default();
    for (name, key) in [("meter", &meter), ("plug", &plug)] {
        let found = wait_until(stop, Duration::from_secs(30), || {
            agents[READER]
                .get(&format!("/v1/lookup/{key}"))
                .filter(|l| l["kind"] == "device")
        });
        if let Some(l) = found {
            tally.lookups += 1;
            let how = match l["rounds"].as_u64() {
                Some(0) | None => "held by agent1 itself (one of the closest nodes)".to_owned(),
                Some(r) => format!("{r} rounds, {} µs", l["elapsed_us"]),
            };
            let gateway = short(l["gateway"].as_str().unwrap_or(""));
            say(
                out,
                started,
                &format!("agent1 looked {name} up in the DHT: device record naming gateway {gateway}, {how}"),
            )?;
        }
    }
    let (ok, _) = agents[SUBSCRIBER].post(&format!("/v1/subscriptions/{plug}"), Value::Null);
    if ok {
        say(
            out,
            started,
            "agent2 subscribed to the plug: its readings are delivered and kept for it",
        )?;
    }

    let deadline = started + Duration::from_secs(args.duration);
    let mut tick = 0u32;
    while crate::clock::Clock::system().instant() < deadline && !stop.load(Ordering::SeqCst) {
        for (name, key, point) in [("meter", &meter, "voltage"), ("plug", &plug, "power")] {
            match agents[READER].get(&format!("/v1/read/{key}?point={point}")) {
                Some(r) if r["readings"][0]["value"].is_number() => {
                    tally.reads_verified += 1;
                    let x = &r["readings"][0];
                    say(out, started, &format!(
                        "agent1 read {name}.{point} = {} {} (seq {}, signed by the device, verified)",
                        x["value"], x["unit"].as_str().unwrap_or(""), x["seq"]
                    ))?;
                }
                _ => tally.reads_failed += 1,
            }
        }
        if tick == 2 {
            writes(&agents, &meter, &plug, registers, &mut tally, started, out)?;
        }
        if tick % 3 == 2 {
            if let Some(s) = agents[SUBSCRIBER].get("/v1/subscriptions") {
                say(out, started, &format!(
                    "agent2's subscription to the plug: {} readings received, {} duplicates dropped, {} rejected",
                    s[0]["received"], s[0]["duplicates"], s[0]["rejected"]
                ))?;
            }
        }
        tick += 1;
        let next = crate::clock::Clock::system().instant() + Duration::from_secs(1);
        while crate::clock::Clock::system().instant() < next && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    summary(&agents, &tally, started, out)?;
    for a in &mut agents {
        a.stop();
    }
    Ok(())
}

fn writes(
    agents: &[Agent],
    meter: &str,
    plug: &str,
    registers: &sim::Registers,
    tally: &mut Tally,
    started: Instant,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (ok, body) = agents[OUTSIDER].post(
        &format!("/v1/write/{meter}/setpoint"),
        serde_json::json!({"value": 99}),
    );
    if !ok {
        tally.writes_refused += 1;
        say(
            out,
            started,
            &format!(
                "agent3 (not a writer) tried meter.setpoint = 99: {}",
                body["error"].as_str().unwrap_or("refused")
            ),
        )?;
    }
    let (ok, body) = agents[WRITER].post(
        &format!("/v1/write/{meter}/setpoint"),
        serde_json::json!({"value": 42}),
    );
    if ok {
        tally.writes_applied += 1;
        let on_bus = registers.lock().map(|r| r[sim::REG_SETPOINT]).unwrap_or(0);
        say(out, started, &format!(
            "agent4 (a writer) set meter.setpoint = {}: confirmed by the device; the Modbus register now holds {on_bus}",
            body["value"]
        ))?;
    } else {
        say(
            out,
            started,
            &format!("agent4's write failed: {}", body["error"]),
        )?;
    }
    let (ok, _) = agents[WRITER].post(
        &format!("/v1/write/{plug}/relay"),
        serde_json::json!({"value": true}),
    );
    if ok {
        tally.writes_applied += 1;
        say(
            out,
            started,
            "agent4 switched the plug's relay on: command published to cmnd/plug/POWER, confirmed",
        )?;
    }
    Ok(())
}

fn summary(
    agents: &[Agent],
    t: &Tally,
    started: Instant,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    // Every good reading is sealed by its device's key as it is taken.
    let signed: u64 = get(&agents[GATEWAY].socket(), "/metrics")
        .map(|(_, body)| {
            String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.starts_with("streembit_bridge_readings_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let received = agents[SUBSCRIBER]
        .get("/v1/subscriptions")
        .map(|s| s[0]["received"].clone())
        .unwrap_or(Value::Null);
    let text = format!(
        "\nsummary after {:.0} s\n  device lookups through the DHT   {}\n  remote reads verified            {} ({} not yet available)\n  writes refused (not a writer)    {}\n  writes applied (writer)          {}\n  readings received by agent2      {received}\n  readings signed by the devices   {signed}\n",
        started.elapsed().as_secs_f64(),
        t.lookups,
        t.reads_verified,
        t.reads_failed,
        t.writes_refused,
        t.writes_applied,
    );
    out.write_all(text.as_bytes()).map_err(Failure::usage)
}

fn short(key: &str) -> String {
    key.chars().take(16).collect::<String>() + "…"
}

/// Polls `probe` every 100 ms until it gives a value, `limit` passes or
/// Ctrl-C.
fn wait_until<T>(
    stop: &AtomicBool,
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = crate::clock::Clock::system().instant() + limit;
    while crate::clock::Clock::system().instant() < end && !stop.load(Ordering::SeqCst) {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn meter_file(addr: SocketAddr, writer: &str) -> String {
    format!(
        r#"# The demo's simulated energy meter (Modbus TCP).
[modbus_tcp]
host = "{ip}"
port = {port}

[[modbus_tcp.devices]]
name = "meter"
unit_id = 1
poll_ms = 500
writers = ["{writer}"]
points = [
  {{ name = "voltage", table = "holding_register", address = {v}, type = "u16", scale = 0.1, unit = "V" }},
  {{ name = "current", table = "holding_register", address = {c}, type = "u16", scale = 0.001, unit = "A" }},
  {{ name = "setpoint", table = "holding_register", address = {s}, type = "u16", access = "rw" }},
]
"#,
        ip = addr.ip(),
        port = addr.port(),
        v = sim::REG_VOLTAGE,
        c = sim::REG_CURRENT,
        s = sim::REG_SETPOINT,
    )
}

/// The demo plug's account on the gateway's broker, and its bridge's: the
/// broker admits no one else.
#[derive(Debug)]
pub(super) struct PlugLogin {
    /// The plug's password (user `demo-plug`).
    pub plug: String,
    /// The gateway bridge's password (user `demo-gateway`).
    pub bridge: String,
}

impl PlugLogin {
    fn random() -> Self {
        let mut b = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        Self {
            plug: hex::encode(&b[..16]),
            bridge: hex::encode(&b[16..]),
        }
    }
}

fn plug_file(broker: SocketAddr, writer: &str, login: &PlugLogin) -> String {
    format!(
        r#"# The demo's simulated smart plug (MQTT, on the gateway's broker).
[mqtt]
host = "{ip}"
port = {port}
client_id = "demo-gateway"
username = "demo-gateway"
password = "{bridge}"

[[mqtt.devices]]
name = "plug"
writers = ["{writer}"]
username = "demo-plug"
password = "{plug}"
points = [
  {{ name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" }},
  {{ name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = {{ topic = "cmnd/plug/POWER", on = "ON", off = "OFF" }} }},
]
"#,
        ip = broker.ip(),
        port = broker.port(),
        bridge = login.bridge,
        plug = login.plug,
    )
}
