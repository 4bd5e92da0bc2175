//! Wrong clocks, against real agents (issue 17): a gateway whose clock is
//! two hours slow and an agent ten minutes fast in one network; a gateway
//! whose clock steps back an hour across a restart while a subscriber
//! follows; a flood of envelopes stamped at the far edge of the freshness
//! window. Each agent's wrong clock is made through its own `Clock`
//! (`simulate_clock_offset_ms`), never by touching the machine's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::dht::Message;
use streembit_agent::wire::UnixMillis;
use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{json, stderr};
use streembit_tests::labs::hostile::{private_agent, Answer, HostilePeer};
use streembit_tests::peers::mosquitto::Broker;

const TWO_HOURS_SLOW: i64 = -2 * 3_600_000;
const TEN_MINUTES_FAST: i64 = 10 * 60_000;
const AN_HOUR_BACK: i64 = -3_600_000;

/// A gateway config on `port` (0: any), with its clock off by `offset_ms`
/// and `seeds`.
fn config(port: u16, offset_ms: i64, seeds: &[String]) -> String {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "listen = \"127.0.0.1:{port}\"\nsimulate_clock_offset_ms = {offset_ms}\nseeds = [{}]\n",
        seeds.join(", ")
    )
}

/// A bridge file with one MQTT device, `counter`, whose point `n` is the
/// integer published on `c/n`.
fn counter_bridge(dir: &Path, broker: u16) {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        dir.join("bridges.d/counter.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"gw-clock\"\n\n[[mqtt.devices]]\nname = \"counter\"\npoints = [ {{ name = \"n\", topic = \"c/n\", type = \"int\" }} ]\n"
        ),
    )
    .expect("bridge file");
}

fn status(a: &AgentProcess) -> Value {
    json(&a.cli(&["status", "--json"]))
}

fn device_key(gw: &AgentProcess) -> String {
    json(&gw.cli(&["devices", "--json"]))[0]["key"]
        .as_str()
        .expect("device key")
        .to_owned()
}

/// The values in `agent`'s inbox for `device`, with their sequences.
fn inbox(agent: &AgentProcess, device: &str) -> Vec<(u64, i64)> {
    json(&agent.cli(&["inbox", device, "--json", "--limit", "10000"]))
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["seq"].as_u64()?, e["value"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes `from..=to` on the counter's topic, each once the previous
/// reached the subscriber: so every value is a reading of its own.
fn count(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    sub: &AgentProcess,
    dev: &str,
    from: i64,
    to: i64,
) {
    for v in from..=to {
        rt.block_on(broker.publish("c/n", &v.to_string()));
        eventually(&format!("reading {v} at the subscriber"), || {
            inbox(sub, dev).iter().any(|(_, got)| *got == v)
        });
    }
}

fn offset_ms(a: &AgentProcess) -> i64 {
    status(a)["clock_offset_ms"].as_i64().unwrap_or(0)
}

/// Within 30 s of `want`: a time answer's round trip on loopback is far
/// below that, so anything else is a wrong estimate.
fn near(got: i64, want: i64) -> bool {
    (got - want).abs() < 30_000
}

#[test]
fn a_gateway_two_hours_slow_and_an_agent_ten_minutes_fast_join_serve_and_lose_nothing() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let seed = AgentProcess::builder(&tmp.path().join("seed"), &config(0, 0, &[])).spawn();

    let gw_dir = tmp.path().join("gw");
    counter_bridge(&gw_dir, broker.port);
    let mut gw = AgentProcess::builder(&gw_dir, &config(0, TWO_HOURS_SLOW, &[seed.seed()])).spawn();
    let mut reader = AgentProcess::builder(
        &tmp.path().join("reader"),
        &config(0, TEN_MINUTES_FAST, &[seed.seed()]),
    )
    .spawn();

    // Both join: their records are stored by peers, so their stamps are
    // accepted, so they learned the network's time.
    gw.wait_published(1);
    reader.wait_published(1);
    eventually("the gateway's offset", || {
        near(offset_ms(&gw), -TWO_HOURS_SLOW)
    });
    eventually("the reader's offset", || {
        near(offset_ms(&reader), -TEN_MINUTES_FAST)
    });
    let warnings = status(&gw)["warnings"].to_string();
    assert!(
        warnings.contains("clock") && warnings.contains("behind"),
        "{warnings}"
    );
    assert!(
        gw.log().contains("fit a real-time clock"),
        "no WARN about the clock"
    );
    let metrics = String::from_utf8_lossy(&gw.cli(&["metrics"]).stdout).into_owned();
    assert!(
        metrics.contains("streembit_clock_offset_seconds 7"),
        "{metrics}"
    );

    // Its device is found, read and subscribed to.
    let dev = device_key(&gw);
    gw.wait_for("the device record", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    rt.block_on(broker.publish("c/n", "1"));
    eventually("the device's first reading on the gateway", || {
        json(&gw.cli(&["devices", "--json"]))[0]["points"]["n"]["value"] == 1
    });
    let lookup = reader.cli(&["lookup", &dev, "--json"]);
    assert!(lookup.status.success(), "lookup: {}", stderr(&lookup));
    assert_eq!(json(&lookup)["gateway"], gw.key.as_str());
    let read = reader.cli(&["read", &dev, "n", "--json"]);
    assert!(read.status.success(), "read: {}", stderr(&read));
    assert_eq!(json(&read)["readings"][0]["value"], 1);
    assert!(reader.cli(&["subscribe", &dev]).status.success());
    gw.wait_subscriber(&dev, &reader.key);
    count(&rt, &broker, &reader, &dev, 2, 20);

    // The gateway's clock is corrected (a restart on the right time):
    // the subscriber goes on from where it was, missing nothing.
    gw.restart(Some(&config(0, 0, &[seed.seed()])));
    count(&rt, &broker, &reader, &dev, 21, 40);
    let got = inbox(&reader, &dev);
    // The subscription began after reading 1.
    let values: Vec<i64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        values,
        (2..=40).collect::<Vec<i64>>(),
        "every reading once, in order"
    );
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "sequences grow");
    let subs = json(&reader.cli(&["subscriptions", "--json"]));
    assert_eq!(subs[0]["behind"], 0, "{subs}");
    assert_eq!(subs[0]["rejected"], 0, "{subs}");
}

#[test]
fn a_clock_stepped_back_an_hour_across_a_restart_loses_no_reading() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let gw_dir = tmp.path().join("gw");
    counter_bridge(&gw_dir, broker.port);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let mut gw = AgentProcess::builder(&gw_dir, &config(port, 0, &[])).spawn();
    let mut sub =
        AgentProcess::builder(&tmp.path().join("sub"), &config(0, 0, &[gw.seed()])).spawn();
    sub.wait_published(1);
    gw.wait_for("the device record", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    let dev = device_key(&gw);
    assert!(sub.cli(&["subscribe", &dev]).status.success());
    gw.wait_subscriber(&dev, &sub.key);
    count(&rt, &broker, &sub, &dev, 1, 20);

    // The gateway comes back with its clock an hour behind, then right.
    gw.restart(Some(&config(port, AN_HOUR_BACK, &[])));
    eventually("the gateway learning the network's time again", || {
        near(offset_ms(&gw), -AN_HOUR_BACK)
    });
    count(&rt, &broker, &sub, &dev, 21, 40);
    gw.restart(Some(&config(port, 0, &[])));
    count(&rt, &broker, &sub, &dev, 41, 60);

    let got = inbox(&sub, &dev);
    let values: Vec<i64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        values,
        (1..=60).collect::<Vec<i64>>(),
        "every reading once, in order"
    );
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "sequences grow");
    let subs = json(&sub.cli(&["subscriptions", "--json"]));
    for counter in ["duplicates", "behind", "rejected", "dropped"] {
        assert_eq!(subs[0][counter], 0, "{counter}: {subs}");
    }
    assert_eq!(gw.metric("streembit_sequence_mark_errors_total"), 0);
}

fn ping(rid: u64) -> Message {
    Message::Ping { rid }
}

#[test]
fn a_future_dated_flood_does_not_deafen_the_agent_to_an_honest_peer() {
    const FLOOD: u64 = 40_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let flooder_key = Arc::new(Keypair::generate());
    let honest_key = Arc::new(Keypair::generate());
    let agent = private_agent(
        &tmp.path().join("a"),
        &[
            hex::encode(flooder_key.public().as_bytes()),
            hex::encode(honest_key.public().as_bytes()),
        ],
    );
    let target: PublicKey = agent.key.parse().expect("key");
    let addr: SocketAddr = agent.addr.parse().expect("addr");
    let mut flooder = HostilePeer::with_key(flooder_key, "acme", &[target]);
    let mut honest = HostilePeer::with_key(honest_key, "acme", &[target]);
    let flood_conn = flooder.dial(&target, addr).expect("flooder dials");
    let honest_conn = honest.dial(&target, addr).expect("honest dials");

    // Valid envelopes stamped at the far edge of the ±60 s window: the
    // longest-lived entries a replay window can hold.
    let edge = streembit_agent::clock::Clock::system().wall().0 + 59_500;
    let flood: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| flooder.seal_at(&target, &ping(i), UnixMillis(edge)))
        .collect();
    let flooding = std::thread::spawn(move || {
        let answers = flooder.send_all(&flood_conn, flood, 64);
        answers
            .iter()
            .filter(|a| matches!(a, Answer::Answered(_)))
            .count()
    });

    // The honest peer keeps asking during the flood and after it.
    let mut asked = 0u64;
    let mut failures = Vec::new();
    let mut ask = |peer: &mut HostilePeer| {
        let batch: Vec<Vec<u8>> = (0..20)
            .map(|i| peer.seal(&target, &ping(asked + i)))
            .collect();
        asked += batch.len() as u64;
        failures.extend(
            peer.send_all(&honest_conn, batch, 4)
                .into_iter()
                .filter(|a| !matches!(a, Answer::Answered(_))),
        );
    };
    while !flooding.is_finished() {
        ask(&mut honest);
    }
    let flooded = flooding.join().expect("flood thread") as u64;
    for _ in 0..5 {
        ask(&mut honest);
    }
    assert!(asked >= 100, "the honest peer asked only {asked} times");
    let refusals: Vec<String> = String::from_utf8_lossy(&agent.cli(&["metrics"]).stdout)
        .lines()
        .filter(|l| l.starts_with("streembit_envelopes_rejected") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {asked} honest requests failed during or after the flood, e.g. {:?}; {refusals:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    // The flood really filled the window (it holds 32,768 by default).
    assert!(flooded > 32_768, "only {flooded} flood envelopes accepted");
    assert_eq!(
        agent.metric("streembit_envelopes_rejected_total{reason=\"replayed\"}"),
        0
    );
}
