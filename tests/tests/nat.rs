//! Reachable behind NAT (issue 11). On loopback: a gateway told it is
//! private holds a reservation at a relay and is read through it, then
//! upgraded to a direct path. In network namespaces (root only; skipped
//! otherwise): two gateways behind real iptables NATs, where detection,
//! the relayed read, and hole punching (or its failure through a symmetric
//! NAT) are observed for real.

use std::path::Path;

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{json, keygen};
use streembit_tests::labs::natlab::{NatKind, NatLab};
use streembit_tests::labs::netns::Host;
use streembit_tests::peers::plug::{feed_plug, plug_bridge, read_plug};

#[test]
fn a_private_gateway_is_read_through_a_relay_then_directly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let relay = AgentProcess::start(
        &tmp.path().join("relay"),
        "listen = \"127.0.0.1:0\"\n[nat]\nrelay = true\n",
    );
    let seeds = format!("seeds = [\"{}@{}\"]\n", relay.key, relay.addr);
    let broker = streembit_tests::harness::ports::free_port();
    let gw_dir = tmp.path().join("gw");
    plug_bridge(&gw_dir, broker);
    let mut gw = AgentProcess::builder(
        &gw_dir,
        &format!("listen = \"127.0.0.1:0\"\n{seeds}[mqtt]\nlisten = \"127.0.0.1:{broker}\"\n"),
    )
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .env("STREEMBIT_NAT__REACHABILITY", "private")
    .spawn();
    let announced = gw.wait_relayed();
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
        reader.path_to(&plug).as_deref() == Some("direct")
    });
    assert_eq!(
        reader.metric("streembit_holepunch_total{outcome=\"direct\"}"),
        1
    );
    assert_eq!(read_plug(&reader, &plug), 42.5);
    let status = json(&gw.cli(&["status", "--json"]));
    assert_eq!(status["reachability"], "private");
}

#[test]
fn on_a_private_network_the_relayed_target_still_checks_its_allowlist() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| tmp.path().join(n);
    let id = |n: &str| keygen(&dir(n).join(".streembit/identity.pem"));
    let (relay_key, gw_key, ok_key, out_key) = (id("relay"), id("gw"), id("ok"), id("out"));
    let plug = keygen(&dir("gw").join(".streembit/devices/plug.pem"));
    let private = |allow: &[&str], extra: &str| {
        let list: Vec<String> = allow.iter().map(|k| format!("\"{k}\"")).collect();
        format!(
            "listen = \"127.0.0.1:0\"\nnetwork = \"acme\"\nallowlist = [{}]\n{extra}",
            list.join(", ")
        )
    };
    let everyone = [relay_key.as_str(), &gw_key, &ok_key, &out_key, &plug];
    let relay = AgentProcess::start(&dir("relay"), &private(&everyone, "[nat]\nrelay = true\n"));
    let seeds = format!("seeds = [\"{relay_key}@{}\"]\n", relay.addr);
    let broker = streembit_tests::harness::ports::free_port();
    plug_bridge(&dir("gw"), broker);
    // The gateway admits the relay and one reader, not the other.
    let mut gw = AgentProcess::builder(
        &dir("gw"),
        &private(
            &[&relay_key, &gw_key, &ok_key, &plug],
            &format!("{seeds}[mqtt]\nlisten = \"127.0.0.1:{broker}\"\n"),
        ),
    )
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .env("STREEMBIT_NAT__REACHABILITY", "private")
    .spawn();
    let announced = gw.wait_relayed();
    assert_eq!(feed_plug(&gw, broker, &[]), plug);
    let ok = AgentProcess::start(&dir("ok"), &private(&everyone, &seeds));
    let out = AgentProcess::start(&dir("out"), &private(&everyone, &seeds));
    for reader in [&ok, &out] {
        eventually("the device record with the relay", || {
            let found = reader.cli(&["lookup", &plug, "--json"]);
            found.status.success() && json(&found)["addrs"][0] == announced.as_str()
        });
    }
    assert_eq!(read_plug(&ok, &plug), 42.5);
    // The relay admits `out`, but the gateway does not: refused, counted.
    let refused = out.cli(&["read", &plug, "power"]);
    assert!(!refused.status.success());
    assert!(gw.metric(r#"streembit_nat_requests_refused_total{code="not_allowed"}"#) >= 1);
    assert_eq!(
        out.metric("streembit_relayed_dials_total{outcome=\"failed\"}"),
        1
    );
    assert_eq!(
        out.metric("streembit_relayed_dials_total{outcome=\"ok\"}"),
        0
    );
}

/// The namespace tests each build a lab and start agents: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const PORT: u16 = 7470;
/// The embedded broker, on each gateway namespace's own loopback.
const BROKER: u16 = 1883;

/// A public relay, a gateway with a plug behind NAT 0, and a reader behind
/// NAT 1, all deciding reachability for themselves.
struct NatNetwork {
    lab: NatLab,
    relay: AgentProcess,
    gw: AgentProcess,
    reader: AgentProcess,
    plug: String,
}

fn agent_in(dir: &Path, lab_host: &Host, extra: &str, env: &[(&str, &str)]) -> AgentProcess {
    let cfg = format!(
        "listen = \"{ip}:{PORT}\"\nannounce = [\"{ip}:{PORT}\"]\n{extra}",
        ip = lab_host.ip
    );
    AgentProcess::builder(&dir.join(&lab_host.ns), &cfg)
        .log("info,streembit_agent::node::nat=debug")
        .envs(env)
        .wrapper(NatLab::exec_prefix(lab_host))
        .spawn()
}

fn nat_network(dir: &Path, kinds: [NatKind; 2]) -> Option<NatNetwork> {
    let lab = NatLab::new(1, &kinds)?;
    let relay = agent_in(dir, lab.public(0), "[nat]\nrelay = true\n", &[]);
    let seeds = format!("seeds = [\"{}@{}\"]\n", relay.key, relay.addr);
    let auto = ("STREEMBIT_NAT__REACHABILITY", "auto");
    let gw_host = lab.behind(0).clone();
    std::fs::create_dir_all(dir.join(&gw_host.ns)).expect("dir");
    plug_bridge(&dir.join(&gw_host.ns), BROKER);
    let mut gw = agent_in(
        dir,
        &gw_host,
        &seeds,
        &[auto, ("STREEMBIT_MQTT__EMBEDDED", "true")],
    );
    let reader = agent_in(dir, lab.behind(1), &seeds, &[auto]);
    // The gateway finds out it cannot be dialed (the reader's dial-back
    // fails at its NAT) and takes a reservation at the relay. (The reader
    // has no third peer left to test it once the two talk directly.)
    let relayed = format!("relay:{}@{}", relay.key, relay.addr);
    assert_eq!(gw.wait_relayed(), relayed);
    let status = json(&gw.cli(&["status", "--json"]));
    assert_eq!(status["reachability"], "private");
    assert!(gw.metric("streembit_dial_backs_total{outcome=\"unreachable\"}") >= 1);
    let plug = feed_plug(&gw, BROKER, &NatLab::exec_prefix(&gw_host));
    // Both the gateway's peer record and its device's record lead to the relay.
    for key in [&gw.key, &plug] {
        eventually("a record with the relay", || {
            let out = reader.cli(&["lookup", key, "--json"]);
            out.status.success() && json(&out)["addrs"][0] == relayed.as_str()
        });
    }
    Some(NatNetwork {
        lab,
        relay,
        gw,
        reader,
        plug,
    })
}

#[test]
fn behind_two_endpoint_independent_nats_a_relayed_read_upgrades_to_direct() {
    let _one = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let kinds = [NatKind::EndpointIndependent, NatKind::EndpointIndependent];
    let Some(net) = nat_network(tmp.path(), kinds) else {
        return;
    };
    assert_eq!(read_plug(&net.reader, &net.plug), 42.5);
    assert!(net.relay.metric("streembit_relay_packets_total") > 0);
    assert!(net.gw.metric("streembit_relayed_sessions_incoming_total") >= 1);
    eventually("the hole-punched path", || {
        net.reader.path_to(&net.plug).as_deref() == Some("direct")
    });
    assert_eq!(
        net.reader
            .metric("streembit_holepunch_total{outcome=\"direct\"}"),
        1
    );
    // The direct path goes to the gateway's NAT, not to the relay.
    let status = json(&net.reader.cli(&["status", "--json"]));
    let link = status["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == net.plug.as_str()))
        .cloned()
        .expect("a link to the plug");
    assert_eq!(link["addr"], format!("{}:{PORT}", net.lab.router_wan_ip(0)));
    assert_eq!(read_plug(&net.reader, &net.plug), 42.5);
    assert_eq!(net.reader.path_to(&net.plug).as_deref(), Some("direct"));
}

#[test]
fn through_a_symmetric_nat_the_read_stays_relayed_and_keeps_working() {
    let _one = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let kinds = [NatKind::EndpointIndependent, NatKind::Symmetric];
    let Some(net) = nat_network(tmp.path(), kinds) else {
        return;
    };
    assert_eq!(read_plug(&net.reader, &net.plug), 42.5);
    assert!(net.gw.metric("streembit_relayed_sessions_incoming_total") >= 1);
    eventually("the failed hole punch", || {
        net.reader
            .metric("streembit_holepunch_total{outcome=\"failed\"}")
            >= 1
    });
    assert_eq!(
        net.reader
            .metric("streembit_holepunch_total{outcome=\"direct\"}"),
        0
    );
    assert_eq!(net.reader.path_to(&net.plug).as_deref(), Some("relayed"));
    let relayed_before = net.relay.metric("streembit_relay_packets_total");
    for _ in 0..3 {
        assert_eq!(read_plug(&net.reader, &net.plug), 42.5);
    }
    assert!(
        net.relay.metric("streembit_relay_packets_total") > relayed_before,
        "later reads went through the relay"
    );
    assert_eq!(net.reader.path_to(&net.plug).as_deref(), Some("relayed"));
    // The relay itself reaches the gateway through the mapping its
    // reservation keeps open in the gateway's NAT.
    assert_eq!(read_plug(&net.relay, &net.plug), 42.5);
    assert_eq!(net.relay.path_to(&net.plug).as_deref(), Some("direct"));
}
