//! Connection set-up across real NATs: direct vs relayed vs hole-punched,
//! with full agent processes in network namespaces (root only; prints
//! "SKIPPED: ..." and exits 0 otherwise).
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench nat
//! ```
//!
//! The test bed ([`NatLab`]): two public hosts and four routers.
//!
//! | host       | agents                                                         |
//! |------------|----------------------------------------------------------------|
//! | public 0   | relay R (`[nat] relay = true`); public gateway P with a plug   |
//! | public 1   | public reader                                                  |
//! | behind 0/1 | gateways G0, G1 with a plug, `reachability = auto` (EIM)      |
//! | behind 2   | reader behind an endpoint-independent NAT (`private`)          |
//! | behind 3   | reader behind a symmetric NAT (`private`)                      |
//!
//! Every gateway runs its embedded broker inside its namespace; the plug
//! is fed with `mosquitto_pub` there. The agents log
//! `streembit_agent::node::nat` at debug level, whose `connected` line
//! (peer, addr, `elapsed_us`) is the set-up time of the connection the
//! read needed, and whose `hole punched` line is the time from the
//! relayed connection to the direct one.
//!
//! Each sample is a fresh connection: the reader is restarted (new
//! process, new UDP port, so new NAT mappings, empty connection cache),
//! then `streembit read <plug> power` is timed end to end from its CLI
//! (DHT lookup of the device record + connection + signed answer).
//!
//! - direct: public reader → P's plug (`connected`, plain address);
//! - relayed: reader behind the symmetric NAT → G0/G1's plug (`connected`,
//!   `relay:` address; the hole punch fails there by design);
//! - hole-punched: reader behind the EIM NAT → G0/G1's plug: the relayed
//!   set-up, then the `hole punched` line's time after it.
//!
//! The NATed gateways find out for themselves (`auto`): on a bed this
//! small every peer is one they already talk to, so no dial-back can be
//! trusted, and being seen at an address that is not theirs decides it.
//! The readers are told they are private (their own reachability is not
//! what is measured).
//!
//! NATed samples alternate between G0 and G1: a relay admits at most 8
//! sessions per key at once (sessions of killed readers linger until
//! idle), so one gateway would run out within a run.

use std::path::Path;
use std::time::{Duration, Instant};

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::json;
use streembit_tests::labs::natlab::{NatKind, NatLab};
use streembit_tests::labs::netns::Host;
use streembit_tests::peers::plug::{feed_plug, plug_bridge};

/// Fresh connections per case.
const SAMPLES: usize = 6;
const PORT: u16 = 7490;
const BROKER: u16 = 1883;
const LOG: &str = "warn,streembit_agent::node::nat=debug";
/// How long the hole punch may take to be logged after the read.
const PUNCH_WAIT: Duration = Duration::from_secs(12);

fn start(dir: &Path, host: &Host, port: u16, extra: &str, env: &[(&str, &str)]) -> AgentProcess {
    let cfg = format!(
        "listen = \"{ip}:{port}\"\nannounce = [\"{ip}:{port}\"]\n{extra}",
        ip = host.ip
    );
    AgentProcess::builder(&dir.join(format!("{}-{port}", host.ns)), &cfg)
        .log(LOG)
        .envs(env)
        .wrapper(NatLab::exec_prefix(host))
        .spawn()
}

/// A gateway with a plug on its embedded broker; returns it and the
/// plug's key once the plug has a reading.
fn gateway(
    dir: &Path,
    host: &Host,
    port: u16,
    seeds: &str,
    reachability: &str,
) -> (AgentProcess, String) {
    let gw_dir = dir.join(format!("{}-{port}", host.ns));
    plug_bridge(&gw_dir, BROKER);
    let mut gw = start(
        dir,
        host,
        port,
        &format!("{seeds}[mqtt]\nlisten = \"127.0.0.1:{BROKER}\"\n"),
        &[
            ("STREEMBIT_MQTT__EMBEDDED", "true"),
            ("STREEMBIT_NAT__REACHABILITY", reachability),
        ],
    );
    if reachability != "public" {
        gw.wait_relayed();
    }
    let plug = feed_plug(&gw, BROKER, &NatLab::exec_prefix(host));
    (gw, plug)
}

/// `elapsed_us` and `addr` of the first line of `log` with `marker` and
/// `peer=<peer>`.
fn logged(log: &str, marker: &str, peer: &str) -> Option<(u64, String)> {
    let peer = format!("peer={peer}");
    let line = log
        .lines()
        .find(|l| l.contains(marker) && l.split_whitespace().any(|w| w == peer))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_owned)
    };
    let us = field("elapsed_us=")?.parse().ok()?;
    Some((us, field("addr=").unwrap_or_default()))
}

/// One sample: `streembit read` end to end (ms), the `connected` line
/// (µs, addr), and with `punch`, the `hole punched` line (µs).
struct Sample {
    read_ms: f64,
    connect_us: u64,
    addr: String,
    punch_us: Option<u64>,
}

fn sample(reader: &mut AgentProcess, fresh: bool, plug: &str, punch: bool) -> Option<Sample> {
    if fresh {
        reader.restart(None);
        // Its own record stored: the join and first lookups are over.
        reader.wait_published(1);
    }
    let from = reader.log().len();
    // A lookup right after a restart may miss the record; retried (the
    // failed attempts are reported, only the successful one is timed).
    let mut tries = 0;
    let (out, read_ms) = loop {
        let t = Instant::now();
        let out = reader.cli(&["read", plug, "power", "--json"]);
        let read_ms = t.elapsed().as_secs_f64() * 1e3;
        tries += 1;
        if out.status.success() || tries == 3 {
            break (out, read_ms);
        }
        eprintln!(
            "read of {plug} failed (attempt {tries}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    if !out.status.success() {
        return None;
    }
    let value = json(&out)["readings"][0]["value"].as_f64();
    assert_eq!(value, Some(42.5), "the plug's reading");
    let log = reader.log();
    let Some((connect_us, addr)) = logged(&log[from..], " connected peer=", plug) else {
        eprintln!("no `connected` line for {plug} (connection reused?)");
        return None;
    };
    let mut punch_us = None;
    if punch {
        let deadline = Instant::now() + PUNCH_WAIT;
        while punch_us.is_none() && Instant::now() < deadline {
            let log = reader.log();
            punch_us = logged(&log[from..], "hole punched: direct connection", plug).map(|p| p.0);
            if log[from..].contains("hole punch failed") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(Sample {
        read_ms,
        connect_us,
        addr,
        punch_us,
    })
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |m| format!("{m:.1}"))
}

fn main() {
    let Some(lab) = NatLab::new(
        2,
        &[
            NatKind::EndpointIndependent,
            NatKind::EndpointIndependent,
            NatKind::EndpointIndependent,
            NatKind::Symmetric,
        ],
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let built = Instant::now();

    let relay = start(dir, lab.public(0), PORT, "[nat]\nrelay = true\n", &[]);
    let seeds = format!("seeds = [\"{}@{}\"]\n", relay.key, relay.addr);
    let (_gw_pub, plug_pub) = gateway(dir, lab.public(0), PORT + 1, &seeds, "public");
    let mut pub_reader = start(dir, lab.public(1), PORT, &seeds, &[]);
    let (_gw0, plug0) = gateway(dir, lab.behind(0), PORT, &seeds, "auto");
    let (_gw1, plug1) = gateway(dir, lab.behind(1), PORT, &seeds, "auto");
    let private = [("STREEMBIT_NAT__REACHABILITY", "private")];
    let mut eim_reader = start(dir, lab.behind(2), PORT, &seeds, &private);
    let mut sym_reader = start(dir, lab.behind(3), PORT, &seeds, &private);
    // The device records are stored before anything is timed (asked of
    // the relay, so that no reader is warmed up by it).
    for plug in [&plug_pub, &plug0, &plug1] {
        eventually("the device records", || {
            relay.cli(&["lookup", plug, "--json"]).status.success()
        });
    }
    eprintln!(
        "test bed up in {:.1} s; {SAMPLES} samples per case",
        built.elapsed().as_secs_f64()
    );

    let (mut direct, mut relayed, mut punched) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let fresh = i > 0;
        let nat_plug = if i % 2 == 0 { &plug0 } else { &plug1 };
        direct.extend(sample(&mut pub_reader, fresh, &plug_pub, false));
        relayed.extend(sample(&mut sym_reader, fresh, nat_plug, false));
        punched.extend(sample(&mut eim_reader, fresh, nat_plug, true));
        eprintln!("sample {} done", i + 1);
    }

    println!("connection set-up on the NAT test bed (namespaces, iptables NAT)\n");
    println!(
        "| case | samples | connect median (ms) | + hole punch median (ms) | read end to end median (ms) | path |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, samples) in [
        ("direct (public reader → public gateway)", &direct),
        ("relayed (symmetric NAT → NATed gateway)", &relayed),
        ("hole-punched (EIM NAT → NATed gateway)", &punched),
    ] {
        let mut connect: Vec<f64> = samples.iter().map(|s| s.connect_us as f64 / 1e3).collect();
        let mut read: Vec<f64> = samples.iter().map(|s| s.read_ms).collect();
        let mut punch: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.punch_us.map(|p| p as f64 / 1e3))
            .collect();
        let relayed_addrs = samples
            .iter()
            .filter(|s| s.addr.starts_with("relay:"))
            .count();
        let punch_col = if punch.is_empty() {
            "-".to_owned()
        } else {
            format!("{} ({} punched)", fmt_ms(median(&mut punch)), punch.len())
        };
        println!(
            "| {name} | {} | {} | {punch_col} | {} | {relayed_addrs} of {} via relay: |",
            samples.len(),
            fmt_ms(median(&mut connect)),
            fmt_ms(median(&mut read)),
            samples.len(),
        );
    }
    println!();
    for (name, samples) in [
        ("direct", &direct),
        ("relayed", &relayed),
        ("hole-punched", &punched),
    ] {
        let each: Vec<String> = samples
            .iter()
            .map(|s| match s.punch_us {
                Some(p) => format!(
                    "{:.1}+{:.1}/{:.0}",
                    s.connect_us as f64 / 1e3,
                    p as f64 / 1e3,
                    s.read_ms
                ),
                None => format!("{:.1}/{:.0}", s.connect_us as f64 / 1e3, s.read_ms),
            })
            .collect();
        println!(
            "{name}: connect[+punch]/read ms per sample: {}",
            each.join(", ")
        );
    }
    let failed_punches = sym_reader.log().matches("hole punch failed").count();
    println!(
        "symmetric-NAT reader: {failed_punches} hole punches failed (expected), relay refused {} sessions",
        relay.metric("streembit_relay_sessions_refused_total{reason=\"peer_limit\"}")
            + relay.metric("streembit_relay_sessions_refused_total{reason=\"full\"}")
    );
    println!("command: cargo build --release -p streembit-agent && cargo bench -p streembit-tests --bench nat");
}
