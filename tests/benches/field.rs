//! A gateway in the field (issue 17): memory and start-up with 1,000
//! devices, and how soon a gateway booted with a wrong clock serves its
//! first verified reading. Real agents on loopback, a real mosquitto.
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench field            # both parts
//! cargo bench -p streembit-tests --bench field -- devices # or one
//! cargo bench -p streembit-tests --bench field -- clock
//! ```
//!
//! 1. `devices`, [`ROUNDS`] rounds, each a fresh 5-agent network: a seed,
//!    a gateway with 0 devices and one with 1,000 MQTT devices of one
//!    point each (both seeded by the seed, same config otherwise), and two
//!    more agents.
//!    - Time to READY=1 (from spawning the process to its notification,
//!      as systemd sees it) of each gateway: at its first start (the
//!      1,000 device keys are created then) and at a restart (keys on
//!      disk), 0 and 1,000 devices alike.
//!    - VmRSS and VmHWM of both gateways once every device published one
//!      reading (a retained value per topic, awaited on the board) and
//!      every device record is held by all four other agents, then
//!      [`SETTLE`] left alone.
//! 2. `clock`, [`CLOCK_ROUNDS`] rounds, each a fresh 3-agent network: a
//!    seed, a reader, and a gateway with one MQTT device whose value the
//!    broker keeps (retained) and a publisher refreshes every 250 ms. The
//!    gateway starts with `simulate_clock_offset_ms = -7200000` (its clock
//!    2 h behind) or with a correct clock, in turn (the order alternates
//!    by round). Measured: from spawning the gateway until the reader's
//!    `streembit read <device key> --json` returns a reading verified with
//!    the device key (retried every [`READ_RETRY`]).
//!
//! Prints a `FIGURE field:` line per measurement with the median over the
//! rounds and every round's value; asserts nothing about figures.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::bench::{api_get, status_kib};
use streembit_tests::harness::cli::keygen;
use streembit_tests::peers::mosquitto::Broker;

/// Devices on the big gateway.
const DEVICES: usize = 1000;
/// Rounds of the devices part.
const ROUNDS: usize = 5;
/// Rounds of the clock part (each round runs both clocks).
const CLOCK_ROUNDS: usize = 9;
/// Time a gateway is left alone before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// Pause between two `read` attempts of the reader.
const READ_RETRY: Duration = Duration::from_millis(10);
/// Bound on any wait, against a hang; a bench run that reaches it says so.
const PATIENCE: Duration = Duration::from_secs(180);
/// The wrong clock: 2 h behind.
const TWO_HOURS_SLOW: i64 = -7_200_000;

fn api(agent: &AgentProcess, path: &str) -> Value {
    api_get(&agent.api_socket(), path)
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

/// Polls `probe` every 250 ms until it holds or [`PATIENCE`] passed;
/// returns whether it held.
fn wait_until(mut probe: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + PATIENCE;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// "median M (a, b, c)" of a per-round list.
fn summary(values: &[f64], unit: &str, digits: usize) -> String {
    let all: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
    format!(
        "median {:.digits$} {unit} ({})",
        median(values),
        all.join(", ")
    )
}

/// A bridge file of `devices` MQTT devices with one integer point each,
/// on `<prefix>/<i>/v`.
fn bridge(port: u16, client_id: &str, prefix: &str, devices: usize) -> String {
    let mut s =
        format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\n");
    for i in 0..devices {
        s.push_str(&format!(
            "\n[[mqtt.devices]]\nname = \"dev{i:04}\"\npoints = [ {{ name = \"v\", topic = \"{prefix}/{i}/v\", type = \"int\" }} ]\n"
        ));
    }
    s
}

fn write_bridge(dir: &Path, contents: &str) {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(dir.join("bridges.d/devices.toml"), contents).expect("bridge file");
}

/// An MQTT client on the broker, its event loop driven on `rt`.
fn mqtt(rt: &tokio::runtime::Runtime, port: u16, id: &str) -> rumqttc::AsyncClient {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 4096);
    rt.spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

/// Every point value on `gw`'s board equals `value`.
fn board_shows(gw: &AgentProcess, value: i64) -> bool {
    api(gw, "/v1/devices").as_array().is_some_and(|a| {
        a.len() == DEVICES
            && a.iter()
                .all(|d| d["points"]["v"]["value"].as_i64() == Some(value))
    })
}

struct DevicesRound {
    ready_first: [Duration; 2],
    ready: [Duration; 2],
    rss_kib: [u64; 2],
    hwm_kib: [u64; 2],
    threads: usize,
    complete: bool,
}

/// One round of part 1; index 0 of each pair is the 0-device gateway.
fn devices_round(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    base: &Path,
    round: usize,
) -> DevicesRound {
    let seed = AgentProcess::builder(&base.join("seed"), "listen = \"127.0.0.1:0\"\n")
        .log("warn")
        .spawn();
    let prefix = format!("field{round}");
    let mut gateways: Vec<AgentProcess> = [0, DEVICES]
        .iter()
        .map(|&n| {
            let dir = base.join(format!("gw{n}"));
            // No bridge file at all for 0 devices (an empty one is refused).
            if n > 0 {
                write_bridge(
                    &dir,
                    &bridge(broker.port, &format!("field-{round}-{n}"), &prefix, n),
                );
            }
            AgentProcess::builder(&dir, &seed.seeded_config())
                .log("warn")
                .spawn()
        })
        .collect();
    let ready_first = [gateways[0].ready_in, gateways[1].ready_in];
    for g in &mut gateways {
        g.restart(None);
    }
    let ready = [gateways[0].ready_in, gateways[1].ready_in];
    let others: Vec<AgentProcess> = ["a", "b"]
        .iter()
        .map(|n| {
            AgentProcess::builder(&base.join(n), &seed.seeded_config())
                .log("warn")
                .spawn()
        })
        .collect();

    // One reading per device: retained, so each arrives whenever the
    // bridge's subscription is in place.
    let client = mqtt(rt, broker.port, &format!("field-pub-{round}"));
    let value = 1000 + round as i64;
    for i in 0..DEVICES {
        rt.block_on(client.publish(
            format!("{prefix}/{i}/v"),
            rumqttc::QoS::AtLeastOnce,
            true,
            value.to_string(),
        ))
        .expect("publish");
    }
    let big = &gateways[1];
    let mut complete = wait_until(|| board_shows(big, value));
    // Every device record held by every other agent.
    let holders = [&seed, &gateways[0], &others[0], &others[1]];
    complete &= wait_until(|| {
        holders
            .iter()
            .all(|a| api(a, "/v1/status")["records_stored"].as_u64() >= Some(DEVICES as u64))
    });
    if !complete {
        let held: Vec<String> = holders
            .iter()
            .map(|a| api(a, "/v1/status")["records_stored"].to_string())
            .collect();
        let shown = api(big, "/v1/devices").as_array().map_or(0, |a| {
            a.iter()
                .filter(|d| d["points"]["v"]["value"].as_i64() == Some(value))
                .count()
        });
        eprintln!(
            "round {round}: not every reading or record arrived within {PATIENCE:?}: {shown} of {DEVICES} readings on the board, records held {}",
            held.join(" / ")
        );
    }
    std::thread::sleep(SETTLE);
    let pid = |g: &AgentProcess| g.pid().expect("pid");
    let r = DevicesRound {
        ready_first,
        ready,
        rss_kib: [
            status_kib(pid(&gateways[0]), "VmRSS"),
            status_kib(pid(&gateways[1]), "VmRSS"),
        ],
        hwm_kib: [
            status_kib(pid(&gateways[0]), "VmHWM"),
            status_kib(pid(&gateways[1]), "VmHWM"),
        ],
        threads: streembit_tests::harness::bench::threads(pid(&gateways[1])),
        complete,
    };
    println!(
        "round {round}: READY first start {:.3} s / {:.3} s, restart {:.3} s / {:.3} s; VmRSS {:.1} / {:.1} MiB, VmHWM {:.1} / {:.1} MiB (0 / {DEVICES} devices); {} threads",
        secs(r.ready_first[0]),
        secs(r.ready_first[1]),
        secs(r.ready[0]),
        secs(r.ready[1]),
        mib(r.rss_kib[0]),
        mib(r.rss_kib[1]),
        mib(r.hwm_kib[0]),
        mib(r.hwm_kib[1]),
        r.threads
    );
    r
}

fn devices(rt: &tokio::runtime::Runtime, broker: &Broker, tmp: &Path) {
    let rounds: Vec<DevicesRound> = (0..ROUNDS)
        .map(|i| devices_round(rt, broker, &tmp.join(format!("devices{i}")), i))
        .collect();
    let col = |f: &dyn Fn(&DevicesRound) -> f64| -> Vec<f64> { rounds.iter().map(f).collect() };
    let incomplete = rounds.iter().filter(|r| !r.complete).count();
    println!(
        "FIGURE field: gateway memory, {DEVICES} devices of one point, each published one reading, every record held by the 4 other agents, {ROUNDS} rounds{}: VmRSS {}, VmHWM {}; 0 devices, same network: VmRSS {}, VmHWM {}",
        if incomplete > 0 { format!(" ({incomplete} incomplete)") } else { String::new() },
        summary(&col(&|r| mib(r.rss_kib[1])), "MiB", 1),
        summary(&col(&|r| mib(r.hwm_kib[1])), "MiB", 1),
        summary(&col(&|r| mib(r.rss_kib[0])), "MiB", 1),
        summary(&col(&|r| mib(r.hwm_kib[0])), "MiB", 1),
    );
    println!(
        "FIGURE field: time to READY, restart (keys on disk), {ROUNDS} rounds: {DEVICES} devices {}; 0 devices {}",
        summary(&col(&|r| secs(r.ready[1])), "s", 3),
        summary(&col(&|r| secs(r.ready[0])), "s", 3),
    );
    println!(
        "FIGURE field: time to READY, first start (device keys created), {ROUNDS} rounds: {DEVICES} devices {}; 0 devices {}",
        summary(&col(&|r| secs(r.ready_first[1])), "s", 3),
        summary(&col(&|r| secs(r.ready_first[0])), "s", 3),
    );
}

/// One gateway start of part 2: the time until the reader's first
/// verified reading, and the clock offset the gateway then shows.
fn clock_run(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    base: &Path,
    offset_ms: i64,
) -> (Duration, Duration, i64, usize) {
    let seed = AgentProcess::builder(&base.join("seed"), "listen = \"127.0.0.1:0\"\n")
        .log("warn")
        .spawn();
    let mut reader = AgentProcess::builder(&base.join("reader"), &seed.seeded_config())
        .log("warn")
        .spawn();
    reader.wait_published(1);
    let gw_dir = base.join("gw");
    // The device key before the gateway exists, so the reader knows what
    // to read from the first moment.
    let device = keygen(&gw_dir.join(".streembit/devices/meter.pem"));
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("gw");
    let topic = format!("field/{name}/meter");
    std::fs::create_dir_all(gw_dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        gw_dir.join("bridges.d/meter.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"field-clock-{}\"\n\n[[mqtt.devices]]\nname = \"meter\"\npoints = [ {{ name = \"v\", topic = \"{topic}\", type = \"int\" }} ]\n",
            broker.port, name
        ),
    )
    .expect("bridge file");
    // The device publishes its value every 250 ms, retained.
    let client = mqtt(rt, broker.port, &format!("field-dev-{name}"));
    let publisher = rt.spawn({
        let topic = topic.clone();
        async move {
            for n in 0u64.. {
                let _ = client
                    .publish(&topic, rumqttc::QoS::AtLeastOnce, true, n.to_string())
                    .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let config = format!(
        "{}simulate_clock_offset_ms = {offset_ms}\n",
        seed.seeded_config()
    );
    let t0 = Instant::now();
    let gw = AgentProcess::builder(&gw_dir, &config).log("warn").spawn();
    let mut attempts = 0;
    let end = t0 + PATIENCE;
    let served = loop {
        attempts += 1;
        let out = reader.cli(&["read", &device, "--json"]);
        let verified = out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .is_some_and(|v| {
                    v["device"] == device.as_str() && v["readings"][0]["value"].is_i64()
                });
        if verified {
            break t0.elapsed();
        }
        if Instant::now() > end {
            eprintln!(
                "no verified reading within {PATIENCE:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            break PATIENCE;
        }
        std::thread::sleep(READ_RETRY);
    };
    let offset = api(&gw, "/v1/status")["clock_offset_ms"]
        .as_i64()
        .unwrap_or(0);
    publisher.abort();
    (served, gw.ready_in, offset, attempts)
}

fn clock(rt: &tokio::runtime::Runtime, broker: &Broker, tmp: &Path) {
    let mut wrong = Vec::new();
    let mut right = Vec::new();
    for round in 0..CLOCK_ROUNDS {
        let mut order = [TWO_HOURS_SLOW, 0];
        if round % 2 == 1 {
            order.reverse();
        }
        for offset in order {
            let base = tmp.join(format!("clock{round}_{}", offset.unsigned_abs()));
            let (served, ready, learned, attempts) = clock_run(rt, broker, &base, offset);
            println!(
                "round {round}: clock offset {offset} ms: first verified reading at the reader {:.3} s after spawn (READY at {:.3} s; {attempts} reads; offset learned {learned} ms)",
                secs(served),
                secs(ready)
            );
            if offset == 0 {
                right.push(secs(served));
            } else {
                wrong.push(secs(served));
            }
        }
    }
    println!(
        "FIGURE field: gateway spawn → first verified reading at a peer (3 agents, `streembit read` every {} ms), {CLOCK_ROUNDS} rounds: clock 2 h behind {}; correct clock {}",
        READ_RETRY.as_millis(),
        summary(&wrong, "s", 2),
        summary(&right, "s", 2),
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |n: &str| which.is_empty() || which.iter().any(|w| w == n);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    if want("devices") {
        devices(&rt, &broker, tmp.path());
    }
    if want("clock") {
        clock(&rt, &broker, tmp.path());
    }
}
