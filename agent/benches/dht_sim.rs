//! `dht-sim`: the DHT simulator's command line (a `harness = false` bench).
//!
//! ```text
//! cargo bench -p streembit-agent --features sim --bench dht_sim -- \
//!     --scenario all --nodes 10000 --lookups 10000 --seed 1
//! ```
//!
//! The figures go to stdout and depend only on the arguments. Wall time
//! and resident memory, which do not, go to stderr.

use std::time::Instant;

use clap::{Parser, ValueEnum};
use streembit_agent::internals::dht::sim::hostile;
use streembit_agent::internals::dht::sim::scenario::{self, Params, Report};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Join + lookups of random live node ids (`--loss` applies).
    Lookup,
    /// Same with 10% loss (or `--loss`).
    Loss,
    /// Records stored, then `--kill` of the nodes killed at once.
    Kill,
    /// `--churn` of the nodes replaced over 2 virtual hours, republish on.
    Churn,
    /// `--flooders` hostile peers flood one node with STOREs.
    Flood,
    /// Lookups over 3 disjoint paths (S/Kademlia), otherwise as `lookup`.
    Paths,
    /// `--liars` of the nodes lie in lookups: 1 path vs `--paths` (≥ 2).
    Lying,
    /// Every scenario above, in order.
    All,
}

/// Deterministic simulator of the Streembit DHT.
#[derive(Parser, Debug)]
#[command(name = "dht-sim")]
struct Args {
    /// Nodes in the network.
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Lookups of random live node ids.
    #[arg(long, default_value_t = 10_000)]
    lookups: usize,
    /// Seed of everything.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Message loss probability, 0..1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Fraction of nodes killed at once (kill scenario).
    #[arg(long, default_value_t = 0.20)]
    kill: f64,
    /// Fraction of nodes replaced over 2 hours (churn scenario).
    #[arg(long, default_value_t = 0.30)]
    churn: f64,
    /// Records published (kill and churn scenarios); default min(1000, N/2).
    #[arg(long)]
    records: Option<usize>,
    /// Hostile peers (flood scenario); default min(100, N/4).
    #[arg(long)]
    flooders: Option<usize>,
    /// Disjoint lookup paths (S/Kademlia); 1 is plain Kademlia.
    #[arg(long, default_value_t = 1)]
    paths: usize,
    /// Fraction of nodes lying in lookups (lying scenario).
    #[arg(long, default_value_t = 0.20)]
    liars: f64,
    /// Which scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Lookup)]
    scenario: Scenario,
    /// Accepted and ignored: `cargo bench` appends it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Resident set size in bytes, from /proc (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU seconds this process used (user + system), from /proc (Linux; the
/// kernel reports them in USER_HZ = 100 ticks per second); 0 elsewhere.
/// The simulator is single-threaded, so this is time on one core, and
/// unlike wall time it does not grow when other processes share the core.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn run(name: &str, p: &Params, f: impl FnOnce(&Params) -> Report) {
    let rss0 = rss_bytes();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let report = f(p);
    let wall = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let rss1 = rss_bytes();
    print!("{}", report.text);
    println!();
    eprintln!(
        "[{name}] wall {:.2} s, CPU {:.2} s (one thread); RSS {:.1} MiB -> {:.1} MiB, delta per node {:.1} KiB",
        wall.as_secs_f64(),
        cpu,
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        rss1.saturating_sub(rss0) as f64 / 1024.0 / p.nodes.max(1) as f64
    );
}

fn main() {
    let a = Args::parse();
    let mut p = Params::table(a.nodes, a.lookups, a.seed);
    p.loss = a.loss;
    p.kill = a.kill;
    p.churn = a.churn;
    p.paths = a.paths;
    p.liars = a.liars;
    if let Some(r) = a.records {
        p.records = r;
    }
    if let Some(f) = a.flooders {
        p.flooders = f;
    }
    let loss = if a.loss > 0.0 { a.loss } else { 0.10 };
    let pick = a.scenario;
    let want = |s: Scenario| {
        matches!(pick, Scenario::All) || std::mem::discriminant(&pick) == std::mem::discriminant(&s)
    };
    if want(Scenario::Lookup) {
        run("lookup", &p, |p| scenario::lookup(p, p.loss));
    }
    if want(Scenario::Loss) {
        run("loss", &p, |p| scenario::lookup(p, loss));
    }
    if want(Scenario::Kill) {
        run("kill", &p, scenario::kill);
    }
    if want(Scenario::Churn) {
        run("churn", &p, scenario::churn);
    }
    if want(Scenario::Flood) {
        run("flood", &p, scenario::flood);
    }
    if want(Scenario::Paths) {
        let p3 = Params {
            paths: 3,
            ..p.clone()
        };
        run("paths", &p3, |p| scenario::lookup(p, p.loss));
    }
    if want(Scenario::Lying) {
        let pd = Params {
            paths: p.paths.max(3),
            ..p.clone()
        };
        run("lying", &pd, hostile::lying);
    }
}
