//! A member removed from a private network while connected (issue 18,
//! "the gate never leaks"): a reload of the allowlist closes every
//! connection of the removed key at once, the one it holds to a hosted
//! device's name included (those are not in the connection cache), and
//! frees its subscriber slots and queues.

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{json, keygen};
use streembit_tests::peers::mosquitto::Broker;
use streembit_tests::peers::plug::{feed_plug, plug_bridge, read_plug};

#[test]
fn a_removed_reader_loses_its_device_connection_and_subscriptions_at_once() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| tmp.path().join(n);
    let gw_key = keygen(&dir("gw").join(".streembit/identity.pem"));
    let reader_key = keygen(&dir("reader").join(".streembit/identity.pem"));
    let plug = keygen(&dir("gw").join(".streembit/devices/plug.pem"));
    let allow_file = tmp.path().join("allow.txt");
    let write_allow = |keys: &[&str]| {
        std::fs::write(&allow_file, format!("{}\n", keys.join("\n"))).expect("allowlist");
    };
    write_allow(&[&gw_key, &reader_key, &plug]);
    let cfg = |extra: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nnetwork = \"site\"\nallowlist_file = \"{}\"\n{extra}",
            allow_file.display()
        )
    };
    plug_bridge(&dir("gw"), broker.port);
    let mut gw = AgentProcess::start(&dir("gw"), &cfg(""));
    assert_eq!(feed_plug(&gw, broker.port, &[]), plug);
    let seeds = format!("seeds = [\"{}\"]\n", gw.seed());
    let reader = AgentProcess::start(&dir("reader"), &cfg(&seeds));
    eventually("the device record", || {
        reader.cli(&["lookup", &plug, "--json"]).status.success()
    });
    assert_eq!(read_plug(&reader, &plug), 42.5);
    // The reader keeps its connection to the device's name open, and
    // follows the device: a subscriber slot and a queue at the gateway.
    assert_eq!(gw.metric("streembit_device_connections"), 1);
    assert!(reader.cli(&["subscribe", &plug]).status.success());
    let queue = format!("subscriber=\"{reader_key}\"");
    eventually("the reader's queue at the gateway", || {
        String::from_utf8_lossy(&gw.cli(&["metrics"]).stdout).contains(&queue)
    });

    write_allow(&[&gw_key, &plug]);
    gw.signal("HUP");
    gw.wait_for("reload", |m| m.contains("STATUS=reloaded"));
    // Closed by the reload itself, not by an idle timeout or the
    // reader's next stream.
    eventually("the device connection closed", || {
        gw.metric("streembit_device_connections") == 0
    });
    assert_eq!(gw.metric("streembit_connections"), 0);
    // Its slot and queue are freed with it.
    assert_eq!(gw.metric("streembit_subscriptions_removed_total"), 1);
    assert!(!String::from_utf8_lossy(&gw.cli(&["metrics"]).stdout).contains(&queue));
    let refused = reader.cli(&["read", &plug, "power", "--json"]);
    assert!(!refused.status.success(), "{}", json(&refused));
    // The reader is told why, not only that nothing was found.
    assert!(reader.metric(r#"streembit_refused_by_peers_total{reason="not_admitted"}"#) >= 1);
}
