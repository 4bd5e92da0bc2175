//! Devices as peers, measured with real processes on loopback.
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench devices
//! ```
//!
//! 1. Bus-to-remote-verification latency: a gateway with an MQTT device on
//!    a real mosquitto, a subscriber agent subscribed to it. 400 readings
//!    at 40/s; for each, the time from the bridge taking it off the bus
//!    (the reading's own `ts`) to the subscriber having verified it and
//!    stored it in its inbox (`received_ms`). Both on this machine's clock,
//!    ms resolution. p50 / p99 / max.
//! 2. Gateway memory with 100 devices and 10 subscribers: one bridge file
//!    of 100 MQTT devices, 10 subscriber agents each subscribed to every
//!    device (1,000 subscriptions, each with its queue on disk); every
//!    device reports once a second for 30 s. VmRSS at the end and VmHWM,
//!    beside the same gateway before any subscriber came.
//!
//! Only prints figures.

use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::bench::{quantile, status_kib};
use streembit_tests::peers::mosquitto::Broker;

const LATENCY_READINGS: usize = 400;
const DEVICES: usize = 100;
const SUBSCRIBERS: usize = 10;
const LOAD_SECONDS: u64 = 30;

fn json(agent: &AgentProcess, args: &[&str]) -> Value {
    let out = agent.cli(args);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn wait<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bridge(port: u16, devices: usize) -> String {
    let mut s = format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"bench-gw\"\n");
    for i in 0..devices {
        s.push_str(&format!(
            "\n[[mqtt.devices]]\nname = \"dev{i:03}\"\npoints = [ {{ name = \"v\", topic = \"dev/{i}/v\", type = \"int\" }} ]\n"
        ));
    }
    s
}

fn gateway(dir: &std::path::Path, port: u16, devices: usize) -> AgentProcess {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(dir.join("bridges.d/devices.toml"), bridge(port, devices)).expect("bridge");
    AgentProcess::builder(dir, "listen = \"127.0.0.1:0\"\n")
        .log("warn")
        .spawn()
}

fn subscriber(dir: &std::path::Path, gw: &AgentProcess) -> AgentProcess {
    let cfg = gw.seeded_config();
    let mut a = AgentProcess::builder(dir, &cfg).log("warn").spawn();
    a.wait_published(1);
    a
}

fn device_keys(gw: &AgentProcess) -> Vec<String> {
    json(gw, &["devices", "--json"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn latency(rt: &tokio::runtime::Runtime, broker: &Broker, base: &std::path::Path) {
    let mut gw = gateway(&base.join("lat-gw"), broker.port, 1);
    let key = device_keys(&gw).remove(0);
    let sub = subscriber(&base.join("lat-sub"), &gw);
    gw.wait_for("device record", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    assert!(sub.cli(&["subscribe", &key]).status.success());
    wait("the subscription", Duration::from_secs(30), || {
        json(&sub, &["subscriptions", "--json"])[0]["connected"]
            .as_bool()
            .filter(|c| *c)
    });
    for i in 0..LATENCY_READINGS {
        rt.block_on(broker.publish("dev/0/v", &i.to_string()));
        std::thread::sleep(Duration::from_millis(25));
    }
    let entries = wait(
        "every reading at the subscriber",
        Duration::from_secs(60),
        || {
            let v = json(&sub, &["inbox", &key, "--json", "--limit", "10000"]);
            v.as_array()
                .filter(|a| a.len() >= LATENCY_READINGS)
                .cloned()
        },
    );
    let mut ms: Vec<u64> = entries
        .iter()
        .filter_map(|e| {
            Some(
                e["received_ms"]
                    .as_u64()?
                    .saturating_sub(e["timestamp_ms"].as_u64()?),
            )
        })
        .collect();
    ms.sort_unstable();
    println!(
        "bus → verified at a remote subscriber, {} readings: p50 {} ms, p99 {} ms, max {} ms",
        ms.len(),
        quantile(&ms, 0.5),
        quantile(&ms, 0.99),
        ms.last().copied().unwrap_or(0)
    );
}

fn memory(rt: &tokio::runtime::Runtime, broker: &Broker, base: &std::path::Path) {
    let mut gw = gateway(&base.join("mem-gw"), broker.port, DEVICES);
    let keys = device_keys(&gw);
    assert_eq!(keys.len(), DEVICES);
    let pid = gw.pid().expect("pid");
    // One MQTT connection publishes every device's value each round.
    let mut options = rumqttc::MqttOptions::new("bench-devices", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1024);
    rt.spawn(async move { while eventloop.poll().await.is_ok() {} });
    let publish_round = |round: u64| {
        for i in 0..DEVICES {
            let payload = round.to_string();
            rt.block_on(client.publish(
                format!("dev/{i}/v"),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload,
            ))
            .expect("publish");
        }
    };
    publish_round(0);
    std::thread::sleep(Duration::from_secs(3));
    let alone = status_kib(pid, "VmRSS");
    let subs: Vec<AgentProcess> = (0..SUBSCRIBERS)
        .map(|i| subscriber(&base.join(format!("mem-sub{i}")), &gw))
        .collect();
    gw.wait_for("device records", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    for s in &subs {
        for k in &keys {
            assert!(s.cli(&["subscribe", k]).status.success());
        }
    }
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let all: Vec<Value> = subs
            .iter()
            .flat_map(|s| {
                json(s, &["subscriptions", "--json"])
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let connected = all.iter().filter(|x| x["connected"] == true).count();
        if connected == DEVICES * SUBSCRIBERS || Instant::now() > end {
            let errors: Vec<String> = all
                .iter()
                .filter(|x| x["connected"] != true)
                .filter_map(|x| x["last_error"].as_str().map(str::to_owned))
                .collect();
            println!(
                "subscriptions connected: {connected} of {}{}",
                DEVICES * SUBSCRIBERS,
                errors
                    .first()
                    .map(|e| format!(" (e.g. {e})"))
                    .unwrap_or_default()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let started = Instant::now();
    for round in 1..=LOAD_SECONDS {
        publish_round(round);
        let next = Duration::from_secs(round);
        if let Some(rest) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let want = (DEVICES * SUBSCRIBERS) as u64 * LOAD_SECONDS;
    let mut delivered = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while delivered < want && Instant::now() < end {
        delivered = subs
            .iter()
            .flat_map(|s| {
                json(s, &["subscriptions", "--json"])
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|x| x["received"].as_u64())
            .sum();
        std::thread::sleep(Duration::from_millis(500));
    }
    let rss = status_kib(pid, "VmRSS");
    let hwm = status_kib(pid, "VmHWM");
    println!(
        "gateway, {DEVICES} devices, alone: VmRSS {:.1} MiB",
        alone as f64 / 1024.0
    );
    println!(
        "gateway, {DEVICES} devices, {SUBSCRIBERS} subscribers × {DEVICES} devices, {LOAD_SECONDS} s at 1 reading/s/device ({delivered} deliveries): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    latency(&rt, &broker, tmp.path());
    memory(&rt, &broker, tmp.path());
}
