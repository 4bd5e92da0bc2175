//! 100 `streembit run` processes on loopback: lookup latency and lookups per
//! second, then the issue's anchor (a 96-node dht-rpc network timing
//! findNode) in the same run, on the same machine.
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench network
//! ```
//!
//! (`cargo bench` builds into `target/release`, where the harness finds the
//! release `streembit` binary.) Arguments: `[nodes=100] [lookups=1000]`.
//!
//! Lookups go straight to each agent's API socket (HTTP over the Unix
//! socket, no CLI process per lookup). Two times per lookup: `elapsed_us`,
//! measured by the node from `find_value` to its `QueryFinished`, and the
//! end-to-end time of the API request. Only prints figures.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::bench::{api_get, quantile};

/// Random numbers without a dependency: xorshift seeded from the clock.
struct Rng(u64);
impl Rng {
    fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self(t | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn config(seed: Option<&AgentProcess>) -> String {
    let seeds = seed
        .map(|s| format!("\"{}@{}\"", s.key, s.addr))
        .unwrap_or_default();
    format!("listen = \"127.0.0.1:0\"\nnetwork = \"public\"\nseeds = [{seeds}]\n")
}

struct Sample {
    e2e: Duration,
    node_us: u64,
    rounds: u64,
    messages: u64,
}

/// One lookup through `from`'s API; `Err(why)` when it did not find `to`.
fn lookup(from: &AgentProcess, to: &AgentProcess) -> Result<Sample, String> {
    let t = Instant::now();
    let (code, body) = api_get(&from.api_socket(), &format!("/v1/lookup/{}", to.key))
        .map_err(|e| format!("API socket: {e}"))?;
    let e2e = t.elapsed();
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    if code == 200 && v["addrs"][0] == to.addr.as_str() {
        Ok(Sample {
            e2e,
            node_us: v["elapsed_us"].as_u64().unwrap_or(0),
            rounds: v["rounds"].as_u64().unwrap_or(0),
            messages: v["messages"].as_u64().unwrap_or(0),
        })
    } else {
        Err(format!("HTTP {code} after {:.0} ms: {body}", ms(e2e)))
    }
}

/// Keeps the first few reasons a lookup missed, to print.
fn note(misses: &std::sync::Mutex<Vec<String>>, why: String) {
    if let Ok(mut m) = misses.lock() {
        if m.len() < 5 {
            m.push(why);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100);
    let lookups = args.get(1).copied().unwrap_or(1000);

    let tmp = tempfile::tempdir().expect("tmp");
    let started = Instant::now();
    let mut nodes = vec![AgentProcess::builder(&tmp.path().join("n0"), &config(None))
        .log("warn")
        .spawn()];
    for i in 1..n {
        let cfg = config(Some(&nodes[0]));
        nodes.push(
            AgentProcess::builder(&tmp.path().join(format!("n{i}")), &cfg)
                .log("warn")
                .spawn(),
        );
    }
    println!(
        "{n} nodes started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for node in nodes.iter_mut() {
        node.wait_published(10);
    }
    println!(
        "every record stored at ≥10 nodes after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tables: Vec<u64> = {
        let mut t: Vec<u64> = nodes
            .iter()
            .filter_map(|a| api_get(&a.api_socket(), "/v1/status").ok())
            .filter_map(|(_, b)| serde_json::from_str::<Value>(&b).ok())
            .filter_map(|v| v["table_size"].as_u64())
            .collect();
        t.sort();
        t
    };
    println!(
        "routing tables: median {} contacts (min {}, max {})",
        quantile(&tables, 0.5),
        tables.first().copied().unwrap_or(0),
        tables.last().copied().unwrap_or(0)
    );

    let mut rng = Rng::new();
    let mut pair = || loop {
        let (a, b) = (rng.below(n), rng.below(n));
        if a != b {
            return (a, b);
        }
    };

    // Warm-up: connections between the pairs that lookups use get dialled
    // here (a first contact costs a handshake); caches settle.
    let misses = std::sync::Mutex::new(Vec::new());
    let mut failed = 0;
    for _ in 0..lookups / 2 {
        let (a, b) = pair();
        if let Err(why) = lookup(&nodes[a], &nodes[b]) {
            note(&misses, why);
            failed += 1;
        }
    }

    // Latency: one lookup at a time, random source and target.
    let mut samples = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let (a, b) = pair();
        match lookup(&nodes[a], &nodes[b]) {
            Ok(s) => samples.push(s),
            Err(why) => {
                note(&misses, why);
                failed += 1;
            }
        }
    }
    let mut node_us: Vec<u64> = samples.iter().map(|s| s.node_us).collect();
    node_us.sort();
    let mut e2e: Vec<Duration> = samples.iter().map(|s| s.e2e).collect();
    e2e.sort();
    let mean = |f: fn(&Sample) -> u64| {
        samples.iter().map(f).sum::<u64>() as f64 / samples.len().max(1) as f64
    };
    println!(
        "lookup latency, in-node (elapsed_us): p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms \
         over {} lookups",
        quantile(&node_us, 0.5) as f64 / 1e3,
        quantile(&node_us, 0.99) as f64 / 1e3,
        mean(|s| s.node_us) / 1e3,
        samples.len()
    );
    println!(
        "lookup latency, end to end through the API socket: p50 {:.3} ms, p99 {:.3} ms",
        ms(quantile(&e2e, 0.5)),
        ms(quantile(&e2e, 0.99))
    );
    println!(
        "per lookup: {:.2} rounds, {:.2} messages (mean); {failed} lookups failed",
        mean(|s| s.rounds),
        mean(|s| s.messages)
    );

    // Throughput: CLIENTS threads, each one lookup at a time through a
    // random node's API, for a fixed time.
    for clients in [16usize, 64] {
        let done = AtomicUsize::new(0);
        let missed = AtomicUsize::new(0);
        let window = Duration::from_secs(10);
        let t = Instant::now();
        std::thread::scope(|s| {
            for c in 0..clients {
                let (nodes, done, missed, misses) = (&nodes, &done, &missed, &misses);
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1) ^ Rng::new().0);
                    while t.elapsed() < window {
                        let (a, b) = (rng.below(n), rng.below(n));
                        if a == b {
                            continue;
                        }
                        match lookup(&nodes[a], &nodes[b]) {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(why) => {
                                note(misses, why);
                                missed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        println!(
            "lookups per second, {clients} concurrent API clients over {n} nodes: {:.0}/s \
             ({} found, {} not)",
            done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64(),
            done.load(Ordering::Relaxed),
            missed.load(Ordering::Relaxed)
        );
    }

    for why in misses.lock().map(|m| m.clone()).unwrap_or_default() {
        println!("missed lookup: {why}");
    }
    // What the nodes refused or lost, summed: where misses come from.
    let mut refused = std::collections::BTreeMap::<String, u64>::new();
    for node in &nodes {
        let Ok((_, text)) = api_get(&node.api_socket(), "/metrics") else {
            continue;
        };
        for line in text.lines().filter(|l| {
            l.starts_with("streembit_envelopes_rejected_total")
                || l.starts_with("streembit_dht_messages_rejected_total")
                || l.starts_with("streembit_dht_request_timeouts_total")
                || l.starts_with("streembit_handshakes_refused_total")
        }) {
            if let Some((series, v)) = line.rsplit_once(' ') {
                *refused.entry(series.to_owned()).or_default() += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    refused.retain(|_, v| *v > 0);
    println!("refusals and timeouts summed over all nodes: {refused:?}");

    // Our processes go before the anchor runs, so both get the machine.
    drop(nodes);
    anchor();
}

/// The 96-node dht-rpc network of the issue, from `tests/benches/dht-rpc/`.
fn anchor() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join("dht-rpc");
    if !dir.join("node_modules").join("dht-rpc").exists() {
        println!(
            "dht-rpc anchor: not run: {}/node_modules is missing (run `npm ci` there)",
            dir.display()
        );
        return;
    }
    match Command::new("node")
        .args(["findnode.mjs", "96", "1000", "16"])
        .current_dir(&dir)
        .output()
    {
        Ok(out) if out.status.success() => {
            let line = String::from_utf8_lossy(&out.stdout);
            let v: Value = serde_json::from_str(line.trim()).unwrap_or_default();
            println!(
                "dht-rpc anchor ({}, Node.js {}), {} nodes in one process, findNode: \
                 p50 {} ms, p99 {} ms, mean {} ms; {}/s with {} in flight (tables median {})",
                v["impl"].as_str().unwrap_or("dht-rpc"),
                v["node"].as_str().unwrap_or("?"),
                v["nodes"],
                v["p50_ms"],
                v["p99_ms"],
                v["mean_ms"],
                v["per_s"],
                v["concurrency"],
                v["table_median"]
            );
        }
        Ok(out) => println!(
            "dht-rpc anchor: failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("dht-rpc anchor: cannot run node: {e}"),
    }
}
