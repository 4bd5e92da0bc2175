//! Defences against hostile peers, round two (issue 19), on running agents:
//! a delivery batch larger than a frame is split and delivered; subscriber
//! slots nobody acknowledges expire, so throwaway keys cannot hold them.

use std::path::Path;

use serde_json::Value;
use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::json;
use streembit_tests::peers::mosquitto::Broker;

/// A gateway bridge file: one MQTT device `notes` with a text point `t`
/// on topic `n/t`.
fn notes_bridge(dir: &Path, broker: u16) {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        dir.join("bridges.d/notes.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"gw-notes\"\n\n[[mqtt.devices]]\nname = \"notes\"\npoints = [ {{ name = \"t\", topic = \"n/t\", type = \"string\" }} ]\n"
        ),
    )
    .expect("bridge file");
}

fn gateway_and_subscriber(
    tmp: &Path,
    broker: u16,
    gw_extra: &str,
) -> (AgentProcess, AgentProcess, String, u16) {
    let gw_dir = tmp.join("gw");
    notes_bridge(&gw_dir, broker);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let mut gw = AgentProcess::start(
        &gw_dir,
        &format!("listen = \"127.0.0.1:{port}\"\n{gw_extra}"),
    );
    let mut sub = AgentProcess::start(&tmp.join("sub"), &gw.seeded_config());
    sub.wait_published(1);
    gw.wait_for("the device record", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    let dev = json(&gw.cli(&["devices", "--json"]))[0]["key"]
        .as_str()
        .expect("device key")
        .to_owned();
    assert!(sub.cli(&["subscribe", &dev]).status.success());
    gw.wait_subscriber(&dev, &sub.key);
    (gw, sub, dev, port)
}

fn inbox(agent: &AgentProcess, device: &str) -> Vec<Value> {
    json(&agent.cli(&["inbox", device, "--json", "--limit", "1000"]))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Five 20 KiB readings queued while the subscriber is away make a batch
/// of 100 KiB, past the 64 KiB frame cap: before issue 19 the gateway sent
/// it whole and the subscriber reconnected for ever; now it is split.
#[test]
fn a_batch_past_the_frame_cap_is_split_and_delivered() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let (gw, mut sub, dev, _) = gateway_and_subscriber(tmp.path(), broker.port, "");
    sub.kill();
    let big: Vec<String> = (0..5)
        .map(|i| format!("{i}{}", "x".repeat(20 * 1024)))
        .collect();
    for (i, text) in big.iter().enumerate() {
        rt.block_on(broker.publish("n/t", text));
        eventually(&format!("note {i} queued at the gateway"), || {
            gw.metric(&format!(
                "streembit_outbox_readings{{device=\"{dev}\",subscriber=\"{}\"}}",
                sub.key
            )) == i as u64 + 1
        });
    }
    sub.restart(None);
    eventually("all five notes at the subscriber", || {
        inbox(&sub, &dev).len() == 5
    });
    let got: Vec<String> = inbox(&sub, &dev)
        .iter()
        .filter_map(|e| e["value"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(got, big, "every note, in order, whole");
    let subs = json(&sub.cli(&["subscriptions", "--json"]));
    assert_eq!(subs[0]["rejected"], 0, "{subs}");
    assert_eq!(
        gw.metric(&format!(
            "streembit_outbox_refused_total{{device=\"{dev}\",subscriber=\"{}\"}}",
            sub.key
        )),
        0
    );
}

/// A subscriber that never comes back holds its slot only until the
/// expiry: here the gateway restarts a month later (its clock moved on by
/// `simulate_clock_offset_ms`, with no peer to correct it) and frees it.
#[test]
fn a_subscriber_slot_nobody_acknowledges_expires() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut gw, mut sub, dev, port) = gateway_and_subscriber(tmp.path(), broker.port, "");
    let queue = tmp
        .path()
        .join("gw/.streembit/outbox")
        .join(&dev)
        .join(&sub.key);
    assert!(queue.is_dir(), "the subscriber's queue on disk");
    sub.kill();
    let a_month_later = 31 * 24 * 3_600_000i64;
    gw.restart(Some(&format!(
        "listen = \"127.0.0.1:{port}\"\nsimulate_clock_offset_ms = {a_month_later}\n"
    )));
    eventually("the slot expired", || {
        gw.metric("streembit_subscriptions_expired_total") == 1
    });
    assert!(!queue.exists(), "the expired queue is deleted");
}
