//! Real `streembit run` processes on loopback: joining, lookups, the
//! private-network gate, network separation, restarts.

use std::collections::HashSet;

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::cli::{stderr, stdout};

/// The tests of this file start up to 30 agent processes each; run them one
/// at a time so a loaded 2-core CI machine does not turn into a timeout test.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config(network: &str, seeds: &[&AgentProcess], allow: &[&str]) -> String {
    let seeds: Vec<String> = seeds
        .iter()
        .map(|s| format!("\"{}@{}\"", s.key, s.addr))
        .collect();
    let allow: Vec<String> = allow.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "listen = \"127.0.0.1:0\"\nnetwork = \"{network}\"\nseeds = [{}]\nallowlist = [{}]\n",
        seeds.join(", "),
        allow.join(", ")
    )
}

fn lookup(from: &AgentProcess, key: &str) -> Option<Value> {
    let out = from.cli(&["lookup", key, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Keys are made before the agents start (the allowlist needs them all).
fn keygen(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    let out = std::process::Command::new(streembit_tests::harness::cli::binary())
        .args(["keygen"])
        .current_dir(dir)
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn thirty_nodes_one_seed_every_node_finds_every_other() {
    let _serial = serial();
    const N: usize = 30;
    let tmp = tempfile::tempdir().expect("tmp");
    let mut nodes = vec![AgentProcess::start(
        &tmp.path().join("n0"),
        &config("public", &[], &[]),
    )];
    for i in 1..N {
        let cfg = config("public", &[&nodes[0]], &[]);
        nodes.push(AgentProcess::start(&tmp.path().join(format!("n{i}")), &cfg));
    }
    // Every record replicated on at least 10 nodes before anyone looks.
    for n in nodes.iter_mut() {
        n.wait_published(10);
    }
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|from| {
                let nodes = &nodes;
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for to in nodes.iter().filter(|t| t.key != from.key) {
                        match lookup(from, &to.key) {
                            Some(v) if v["addrs"][0] == to.addr.as_str() => {}
                            other => bad.push(format!("{} -> {}: {other:?}", from.addr, to.addr)),
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} lookups failed: {failures:?}",
        failures.len(),
        N * (N - 1)
    );
}

#[test]
fn private_network_refuses_the_outsider_at_the_handshake() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..11)
        .map(|i| keygen(&tmp.path().join(format!("p{i}"))))
        .collect();
    let allow: Vec<&str> = keys[..10].iter().map(String::as_str).collect();
    // p9 is allowlisted but joins nobody and nobody seeds it: the outsider's
    // only contact with it is the attack, so its counters are exact.
    let mut insiders = vec![AgentProcess::start(
        &tmp.path().join("p0"),
        &config("acme", &[], &allow),
    )];
    for i in 1..9 {
        let cfg = config("acme", &[&insiders[0]], &allow);
        insiders.push(AgentProcess::start(&tmp.path().join(format!("p{i}")), &cfg));
    }
    let target = AgentProcess::start(&tmp.path().join("p9"), &config("acme", &[], &allow));
    for n in insiders.iter_mut() {
        n.wait_published(4);
    }
    // The outsider has a valid key and lists itself and everyone, and is
    // seeded with every insider and the isolated target.
    let mut outsider_allow = allow.clone();
    outsider_allow.push(&keys[10]);
    let mut seeds: Vec<&AgentProcess> = insiders.iter().collect();
    seeds.push(&target);
    let mut outsider = AgentProcess::start(
        &tmp.path().join("p10"),
        &config("acme", &seeds, &outsider_allow),
    );
    assert_eq!(outsider.key, keys[10]);
    let joined = outsider.wait_for("joined", |m| m.contains("joined:"));
    assert!(joined.contains("joined: 0 contacts"), "{joined}");
    for n in &insiders {
        assert!(
            lookup(&outsider, &n.key).is_none(),
            "outsider found {}",
            n.key
        );
    }

    // Nobody let it in.
    for n in insiders.iter().chain([&target]) {
        assert!(
            !n.peers().contains(&outsider.key),
            "{} has the outsider in its table",
            n.addr
        );
    }
    let refused: u64 = insiders
        .iter()
        .chain([&target])
        .map(|n| n.metric("streembit_handshakes_refused_total{reason=\"not_allowlisted\"}"))
        .sum();
    assert!(refused >= 10, "refusals counted: {refused}");
    // The isolated target saw the outsider's attempts and nothing else:
    // refused, and not one connection, stream or envelope.
    assert!(target.metric("streembit_handshakes_refused_total{reason=\"not_allowlisted\"}") >= 1);
    assert_eq!(target.metric("streembit_connections_opened_total"), 0);
    assert_eq!(target.metric("streembit_envelopes_accepted_total"), 0);
    assert_eq!(target.metric("streembit_app_bytes_received_total"), 0);
    assert_eq!(outsider.metric("streembit_envelopes_accepted_total"), 0);
    assert_eq!(outsider.metric("streembit_dht_table_size"), 0);
}

#[test]
fn two_private_networks_never_connect() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..6)
        .map(|i| keygen(&tmp.path().join(format!("x{i}"))))
        .collect();
    // The same allowlist on both sides: only the network id differs.
    let allow: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut alpha = vec![AgentProcess::start(
        &tmp.path().join("x0"),
        &config("alpha", &[], &allow),
    )];
    let mut beta = vec![AgentProcess::start(
        &tmp.path().join("x3"),
        &config("beta", &[], &allow),
    )];
    for i in 1..3 {
        // Every node is seeded with both networks' seeds.
        let cfg = config("alpha", &[&alpha[0], &beta[0]], &allow);
        alpha.push(AgentProcess::start(&tmp.path().join(format!("x{i}")), &cfg));
        let cfg = config("beta", &[&beta[0], &alpha[0]], &allow);
        beta.push(AgentProcess::start(
            &tmp.path().join(format!("x{}", i + 3)),
            &cfg,
        ));
    }
    for n in alpha.iter_mut().skip(1).chain(beta.iter_mut().skip(1)) {
        n.wait_published(1);
    }
    let alpha_keys: HashSet<String> = alpha.iter().map(|n| n.key.clone()).collect();
    let beta_keys: HashSet<String> = beta.iter().map(|n| n.key.clone()).collect();
    for n in &alpha {
        assert!(
            n.peers().iter().all(|k| alpha_keys.contains(k)),
            "alpha node knows beta"
        );
    }
    for n in &beta {
        assert!(
            n.peers().iter().all(|k| beta_keys.contains(k)),
            "beta node knows alpha"
        );
    }
    let wrong_network: u64 = alpha
        .iter()
        .chain(beta.iter())
        .map(|n| n.metric("streembit_handshakes_refused_total{reason=\"wrong_network\"}"))
        .sum();
    assert!(wrong_network >= 2, "ALPN refusals counted: {wrong_network}");
}

#[test]
fn sigkill_and_restart_keeps_identity_and_rejoins_without_seeds() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut nodes = vec![AgentProcess::start(
        &tmp.path().join("r0"),
        &config("public", &[], &[]),
    )];
    for i in 1..5 {
        let cfg = config("public", &[&nodes[0]], &[]);
        nodes.push(AgentProcess::start(&tmp.path().join(format!("r{i}")), &cfg));
    }
    for n in nodes.iter_mut() {
        n.wait_published(3);
    }
    let victim = &mut nodes[4];
    let key = victim.key.clone();
    victim.wait_for("joined", |m| m.contains("joined:"));
    victim.kill();
    // Restart with no seeds at all: only the persisted table can help.
    let addr_line = format!("listen = \"{}\"\n", victim.addr);
    victim.restart(Some(&addr_line));
    assert_eq!(victim.key, key, "identity changed across the restart");
    let restored = victim.wait_for("restored table", |m| m.contains("restored "));
    assert!(!restored.contains("restored 0 contacts"), "{restored}");
    let joined = victim.wait_for("joined", |m| m.contains("joined:"));
    assert!(!joined.contains("joined: 0 contacts"), "{joined}");
    victim.wait_published(3);
    let victim = &nodes[4];
    for other in &nodes[..4] {
        assert!(
            lookup(victim, &other.key).is_some(),
            "restarted node cannot find {}",
            other.addr
        );
        assert!(
            lookup(other, &key).is_some(),
            "{} cannot find the restarted node",
            other.addr
        );
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_persists_the_table() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = AgentProcess::start(&tmp.path().join("a"), &config("public", &[], &[]));
    let mut b = AgentProcess::start(&tmp.path().join("b"), &config("public", &[&a], &[]));
    b.wait_published(1);
    // How long it takes is a benchmark figure, not a test assertion.
    let _took = b.terminate();
    assert!(b.dir().join(".streembit/routing-table.bin").exists());
    assert!(
        !b.dir().join(".streembit/run/api.sock").exists(),
        "API socket left behind"
    );
    a.terminate();
}

#[test]
fn removing_a_peer_from_the_allowlist_and_sighup_drops_it() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..3)
        .map(|i| keygen(&tmp.path().join(format!("h{i}"))))
        .collect();
    let allow_file = tmp.path().join("allowlist");
    std::fs::write(&allow_file, format!("# site\n{}\n", keys.join("\n"))).expect("write");
    let cfg = |seeds: &[&AgentProcess]| {
        let seeds: Vec<String> = seeds
            .iter()
            .map(|s| format!("\"{}@{}\"", s.key, s.addr))
            .collect();
        format!(
            "listen = \"127.0.0.1:0\"\nnetwork = \"site\"\nallowlist_file = \"{}\"\nseeds = [{}]\n",
            allow_file.display(),
            seeds.join(", ")
        )
    };
    let mut a = AgentProcess::start(&tmp.path().join("h0"), &cfg(&[]));
    let mut b = AgentProcess::start(&tmp.path().join("h1"), &cfg(&[&a]));
    let mut c = AgentProcess::start(&tmp.path().join("h2"), &cfg(&[&a]));
    b.wait_published(1);
    c.wait_published(1);
    assert!(a.peers().contains(&c.key));
    let before = a.metric("streembit_connections");
    assert!(before >= 2, "connections before: {before}");

    // C leaves the allowlist: A reloads and lets it go.
    std::fs::write(
        &allow_file,
        format!("{}\n{}\n# {} removed\n", keys[0], keys[1], keys[2]),
    )
    .expect("write");
    a.signal("HUP");
    a.wait_for("reload", |m| m.contains("STATUS=reloaded"));
    assert!(!a.peers().contains(&c.key), "C still in A's table");
    assert!(a.peers().contains(&b.key), "B lost too");
    assert_eq!(
        a.metric("streembit_connections"),
        before - 1,
        "C's connection not closed"
    );
    // C can no longer get in: its next handshake with A is refused.
    let _ = c.cli(&["lookup", &a.key]);
    let refused = a.metric("streembit_handshakes_refused_total{reason=\"not_allowlisted\"}");
    let c_in = a.peers().contains(&c.key);
    assert!(
        !c_in,
        "C re-entered A's table after removal (refusals so far: {refused})"
    );
}
