//! Zero-config joining (issue 22), with real agents on test hosts in
//! network namespaces on one bridge:
//! - five agents of a private network with no seeds (listening on
//!   0.0.0.0, nothing announced by hand) find each other through DNS-SD
//!   over mDNS and form one network, while an agent of another private
//!   network on the same bridge is never dialed and never admitted;
//! - a flood of forged announcements from a third-party mDNS stack
//!   (python-zeroconf) costs bounded dials and memory, and is counted;
//! - seeds published as DNS TXT records by dnsmasq bring an agent in.
//!
//! Needs root, iproute2, iptables, python3 with zeroconf and dnsmasq;
//! prints SKIPPED and passes otherwise (scripts/install-test-deps.sh
//! installs them; CI runs as root).

use std::path::Path;
use std::process::Command;

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::bench::status_kib;
use streembit_tests::harness::cli::{json, keygen};
use streembit_tests::labs::netns::{Host, Lab};
use streembit_tests::peers::python;

/// The namespace tests each build a lab: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An agent in `host` with `config`, LAN discovery on.
fn start(dir: &Path, host: &Host, config: &str) -> AgentProcess {
    AgentProcess::builder(&dir.join(&host.ns), config)
        .log("warn,streembit_agent=info")
        .env("STREEMBIT_DISCOVERY__MDNS", "true")
        .wrapper(Lab::exec_prefix(host))
        .spawn()
}

fn status(a: &AgentProcess) -> serde_json::Value {
    json(&a.cli(&["status", "--json"]))
}

fn links(a: &AgentProcess) -> Vec<String> {
    status(a)["links"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|l| l["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The keys of the five and of the other network's agent.
fn hosts_keys(five: &[AgentProcess], other: &AgentProcess) -> Vec<String> {
    five.iter().chain([other]).map(|a| a.key.clone()).collect()
}

/// Handshakes this agent refused, all reasons.
fn refusals(a: &AgentProcess) -> u64 {
    let metrics = String::from_utf8_lossy(&a.cli(&["metrics"]).stdout).into_owned();
    metrics
        .lines()
        .filter(|l| l.starts_with("streembit_handshakes_refused_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn announcements(a: &AgentProcess, outcome: &str) -> u64 {
    a.metric(&format!(
        "streembit_discovery_announcements_total{{outcome=\"{outcome}\"}}"
    ))
}

#[test]
fn five_agents_with_no_seeds_form_one_private_network_and_never_admit_another() {
    let _serial = serial();
    let Some(lab) = Lab::new(6, 0) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = lab.hosts();
    // Each agent's key made ahead, for the allowlists.
    let keys: Vec<String> = hosts
        .iter()
        .map(|h| {
            let state = dir.path().join(&h.ns).join(".streembit");
            std::fs::create_dir_all(&state).expect("dir");
            keygen(&state.join("identity.pem"))
        })
        .collect();
    // The five: a private network, no seeds, no listen or announce (the
    // default 0.0.0.0:7470, the interfaces' addresses announced).
    let members: Vec<String> = keys[..5].iter().map(|k| format!("\"{k}\"")).collect();
    let config = format!(
        "network = \"lab-net\"\nallowlist = [{}]\n",
        members.join(", ")
    );
    let five: Vec<AgentProcess> = hosts[..5]
        .iter()
        .map(|h| start(dir.path(), h, &config))
        .collect();
    // An agent of another private network on the same bridge, announcing
    // itself too, and even told to join through one of the five.
    let other = start(
        dir.path(),
        &hosts[5],
        &format!(
            "network = \"other-net\"\nallowlist = [\"{}\"]\nseeds = [\"{}@{}:7470\"]\n",
            keys[5], keys[0], hosts[0].ip
        ),
    );
    assert_eq!(other.key, keys[5]);
    for a in &five {
        eventually(
            &format!("{} to know the four others", a.dir().display()),
            || {
                let peers = a.peers();
                five.iter()
                    .filter(|b| b.key != a.key)
                    .all(|b| peers.contains(&b.key))
            },
        );
    }
    // Every agent looks every other up: 20 of 20, each record carrying the
    // interface address the agent announced with nothing configured.
    let mut found = 0;
    for a in &five {
        for (b, host) in five.iter().zip(hosts) {
            if a.key == b.key {
                continue;
            }
            let v = json(&a.cli(&["lookup", &b.key, "--json"]));
            let want = format!("{}:7470", host.ip);
            assert!(
                v["addrs"]
                    .as_array()
                    .is_some_and(|x| x.iter().any(|x| x == &want[..])),
                "{} looking up {}: {v}",
                a.dir().display(),
                b.key
            );
            found += 1;
        }
    }
    assert_eq!(found, 20);
    for a in &five {
        let s = status(a);
        let by_source = &s["table_by_source"];
        assert!(
            by_source["mdns"].as_u64().unwrap_or(0) >= 1,
            "{}: nothing learned on the LAN: {by_source}",
            a.dir().display()
        );
        assert_eq!(by_source["seed"], 0, "{by_source}");
        assert!(announcements(a, "dialed") >= 1);
        assert!(!links(a).contains(&other.key));
        // The table may fill through the DHT before every announcement is
        // resolved: wait until the five others are all heard.
        let heard = || -> Vec<serde_json::Value> {
            json(&a.cli(&["discover", "--json"]))["agents"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        eventually(
            &format!("{} to hear the five others", a.dir().display()),
            || {
                let agents = heard();
                // The private network's agent was heard, listed as such, never
                // dialed, and is not connected.
                assert!(
                    announcements(a, "other_network") >= 1,
                    "{}",
                    a.dir().display()
                );
                hosts_keys(&five, &other)
                    .iter()
                    .filter(|k| **k != a.key)
                    .all(|k| agents.iter().any(|x| x["key"] == k.as_str()))
            },
        );
        let agents = heard();
        let entry = |k: &str| agents.iter().find(|x| x["key"] == k).cloned();
        let o = entry(&other.key).expect("the other network's agent listed");
        assert_eq!(o["same_network"], false);
        assert_eq!(o["connected"], false);
        assert!(o["network"]
            .as_str()
            .is_some_and(|n| n.starts_with("private network ") && !n.contains("other-net")));
        for b in five.iter().filter(|b| b.key != a.key) {
            let e = entry(&b.key).expect("a LAN peer listed");
            assert_eq!(e["same_network"], true);
            assert!(e["network"]
                .as_str()
                .is_some_and(|n| n.starts_with("private network ")));
        }
    }
    // The other network's agent heard the five and dialed none from the
    // LAN; its configured seed refused it in the handshake; it holds no
    // connection and is in no table.
    assert!(announcements(&other, "other_network") >= 5);
    assert_eq!(announcements(&other, "dialed"), 0);
    eventually("the other network's dial to be refused and counted", || {
        refusals(&five[0]) >= 1
    });
    assert!(links(&other).is_empty());
    for a in &five {
        assert!(!a.peers().contains(&other.key));
    }
    // None of the others ever saw a handshake from it.
    for a in &five[1..] {
        assert_eq!(refusals(a), 0, "{}", a.dir().display());
    }
    // The text form of `discover` says the same.
    let text = String::from_utf8_lossy(&five[0].cli(&["discover"]).stdout).into_owned();
    assert!(text.contains("agents heard on the LAN"), "{text}");
}

#[test]
fn a_flood_of_forged_announcements_costs_bounded_dials_and_memory() {
    let _serial = serial();
    let Some(lab) = Lab::new(2, 0) else { return };
    python::require(&["zeroconf", "cryptography"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = lab.hosts();
    let per_minute = 10u64;
    let target = start(
        dir.path(),
        &hosts[0],
        &format!("[discovery]\nmax_new_per_minute = {per_minute}\n"),
    );
    let pid = target.pid().expect("pid");
    let rss_before = status_kib(pid, "VmRSS");
    let started = std::time::Instant::now();
    // 1,000 forged agents with real keys, all at one address where
    // nothing listens, and 100 announcements with a key that is none.
    let prefix = Lab::exec_prefix(&hosts[1]);
    let out = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg("python3")
        .arg(python::script("mdns_flood.py"))
        .args([hosts[1].ip.as_str(), "1000", "100", "10.99.0.1"])
        .output()
        .expect("run the flood");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The flood is seen and counted: forged agents let through (dialed)
    // or queued (deferred, the oldest later dropped), keys that are none
    // counted malformed. UDP multicast may lose some of 1,100 datagrams
    // on a busy machine, so the counts are checked for a large share.
    eventually("the flood to be counted", || {
        let heard = ["dialed", "deferred"]
            .iter()
            .map(|o| announcements(&target, o))
            .sum::<u64>();
        heard >= 500 && announcements(&target, "malformed_key") >= 50
    });
    let minutes = started.elapsed().as_secs() / 60 + 1;
    let dialed = announcements(&target, "dialed");
    assert!(
        dialed <= per_minute * (minutes + 1),
        "{dialed} dials in {minutes} min at {per_minute}/min"
    );
    let deferred = announcements(&target, "deferred");
    assert!(
        announcements(&target, "dropped_rate_limited") >= deferred.saturating_sub(64 + dialed),
        "queued {deferred}, dialed {dialed}: the rest must be counted dropped"
    );
    assert!(target.metric("streembit_discovery_deferred") <= 64);
    assert!(target.metric("streembit_discovery_lan_peers") <= 256);
    // The per-address dial budget caps the QUIC dials aimed at the one
    // address: the rest are refused before a packet leaves.
    let refused = target.metric("streembit_dials_refused_total");
    let rss_after = status_kib(pid, "VmRSS");
    let restarts = target.metric("streembit_discovery_browser_restarts_total");
    println!(
        "flood: 1000 forged + 100 malformed announcements; {dialed} let through, \
         {refused} dials refused by the per-address budget; browser restarted {restarts} times; \
         RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Still answering, still itself.
    assert_eq!(status(&target)["key"], target.key.as_str());
}

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over
/// `/etc/resolv.conf` for what runs in the namespace; removed on drop.
struct NetnsResolvConf(std::path::PathBuf);

impl NetnsResolvConf {
    fn new(ns: &str, nameserver: &str) -> Self {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("/etc/netns dir");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .expect("resolv.conf");
        Self(dir)
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn seeds_published_in_dns_bring_an_agent_in() {
    let _serial = serial();
    let Some(lab) = Lab::new(3, 0) else { return };
    assert!(
        Command::new("dnsmasq").arg("--version").output().is_ok(),
        "dnsmasq is missing: run ./scripts/install-test-deps.sh"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = lab.hosts();
    let (seed_host, dns_host, new_host) = (&hosts[0], &hosts[1], &hosts[2]);
    // The seed: LAN discovery off, so only DNS can bring the newcomer.
    let seed = AgentProcess::builder(
        &dir.path().join(&seed_host.ns),
        &format!("listen = \"{}:7470\"\n", seed_host.ip),
    )
    .log("warn,streembit_agent=info")
    .wrapper(Lab::exec_prefix(seed_host))
    .spawn();
    // The operator's zone: the seed's record, and a junk record.
    let prefix = Lab::exec_prefix(dns_host);
    let mut dnsmasq = Command::new(&prefix[0])
        .args(&prefix[1..])
        .args([
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--port=53",
            "--log-queries",
            "--log-facility=-",
            &format!("--listen-address={}", dns_host.ip),
            "--bind-interfaces",
            &format!(
                "--txt-record=_streembit._udp.lab.test,{}@{}:7470",
                seed.key, seed_host.ip
            ),
            "--txt-record=_streembit._udp.lab.test,not a seed",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let _resolv = NetnsResolvConf::new(&new_host.ns, &dns_host.ip);
    let newcomer = AgentProcess::builder(
        &dir.path().join(&new_host.ns),
        &format!(
            "listen = \"{}:7470\"\nseeds_dns = [\"_streembit._udp.lab.test\", \"missing.lab.test\"]\n",
            new_host.ip
        ),
    )
    .log("warn,streembit_agent=info")
    .wrapper(Lab::exec_prefix(new_host))
    .spawn();
    eventually("the newcomer to join through the DNS seed", || {
        newcomer.peers().contains(&seed.key)
    });
    let peers = json(&newcomer.cli(&["peers", "--json"]));
    let entry = peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["key"] == seed.key.as_str()).cloned())
        .expect("the seed in the table");
    assert_eq!(entry["learned"], "dns");
    assert_eq!(status(&newcomer)["table_by_source"]["dns"], 1);
    let v = json(&newcomer.cli(&["lookup", &seed.key, "--json"]));
    assert_eq!(v["key"], seed.key.as_str());
    // Both names were asked: one answered, one does not exist (counted,
    // not fatal); the junk record was counted and skipped.
    assert!(newcomer.metric("streembit_dns_seed_lookups_total{outcome=\"ok\"}") >= 1);
    assert!(newcomer.metric("streembit_dns_seed_lookups_total{outcome=\"failed\"}") >= 1);
    assert!(newcomer.metric("streembit_dns_seed_bad_records_total") >= 1);
    assert_eq!(newcomer.metric("streembit_dns_seeds"), 1);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
}
