//! The scenarios of the figures table, shared by `cargo test` (N = 1,000)
//! and the `dht_sim` bench (N = 10,000).
//!
//! Each returns a [`Report`]: deterministic text (a function of the
//! parameters alone) and the success rates the tests assert on.

use std::time::Duration;

use crate::dht::{Config, Event, Outcome, QueryStats};

pub use super::flood::{flood, flood_on};
use super::net::{Net, NetConfig};

/// Scenario parameters (the `dht_sim` command line).
#[derive(Clone, Debug)]
pub struct Params {
    /// Nodes in the network.
    pub nodes: usize,
    /// Lookups of random live node ids.
    pub lookups: usize,
    /// Seed of everything.
    pub seed: u64,
    /// Message loss probability (the loss scenario uses 0.10 when this is 0).
    pub loss: f64,
    /// Fraction of nodes killed at once in the kill scenario.
    pub kill: f64,
    /// Fraction of nodes replaced over the churn window.
    pub churn: f64,
    /// Records published in the kill and churn scenarios.
    pub records: usize,
    /// Hostile peers in the flood scenario.
    pub flooders: usize,
    /// STOREs each hostile peer sends.
    pub flood_per_peer: usize,
    /// Disjoint lookup paths.
    pub paths: usize,
    /// Fraction of nodes that lie in lookups (lying scenario).
    pub liars: f64,
}

impl Params {
    /// The figures-table parameters for `nodes` nodes.
    pub fn table(nodes: usize, lookups: usize, seed: u64) -> Self {
        Self {
            nodes,
            lookups,
            seed,
            loss: 0.0,
            kill: 0.20,
            churn: 0.30,
            records: 1000.min(nodes / 2),
            flooders: 100.min(nodes / 4),
            flood_per_peer: 20,
            paths: 1,
            liars: 0.20,
        }
    }
}

/// A named success rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Successes.
    pub ok: u64,
    /// Attempts.
    pub total: u64,
}

impl Rate {
    /// ok / total (1 when there were no attempts).
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.ok as f64 / self.total as f64
        }
    }
}

/// One scenario's outcome.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Deterministic figures, one per line.
    pub text: String,
    /// Success rates by name.
    pub rates: Vec<(&'static str, Rate)>,
}

impl Report {
    /// The rate called `name`.
    pub fn rate(&self, name: &str) -> Option<Rate> {
        self.rates.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    pub(super) fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    pub(super) fn rate_line(&mut self, name: &'static str, r: Rate) {
        self.line(format!(
            "{name}: {}/{} ({:.2}%)",
            r.ok,
            r.total,
            100.0 * r.ratio()
        ));
        self.rates.push((name, r));
    }
}

fn net_config(p: &Params, loss: f64) -> NetConfig {
    NetConfig {
        dht: Config {
            paths: p.paths,
            ..Config::default()
        },
        loss,
        ..NetConfig::default()
    }
}

/// Mean, p99 and max of integer samples, as text.
fn dist(samples: &mut [u32]) -> String {
    if samples.is_empty() {
        return "n/a".into();
    }
    samples.sort_unstable();
    let n = samples.len();
    let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64;
    let p99 = samples[(n * 99).div_ceil(100).saturating_sub(1)];
    format!("mean {mean:.2} p99 {p99} max {}", samples[n - 1])
}

/// A joined network and the lines describing its join.
#[derive(Clone)]
pub struct Built {
    /// The network, settled after the joins.
    pub(crate) net: Net,
    /// Join figures, one per line.
    pub(crate) text: String,
}

/// `p.nodes` nodes join one after another, 50 ms apart, through node 0,
/// with `loss` throughout; then 60 s to settle.
pub fn network(p: &Params, loss: f64) -> Built {
    let mut net = Net::new(net_config(p, loss), p.seed);
    let mut r = Report::default();
    net.add_node();
    let gap = Duration::from_millis(50);
    let mut joins = Vec::with_capacity(p.nodes);
    for _ in 1..p.nodes {
        let t = net.now() + gap;
        net.run_until(t);
        let n = net.add_node();
        joins.push((n, net.join(n, 0)));
    }
    let limit = net.now() + Duration::from_secs(600);
    net.run_while(limit, |n| joins.iter().any(|&(i, q)| !n.is_finished(i, q)));
    // Let join refreshes and rejoins (after lost bootstraps) settle.
    net.run_until(net.now() + Duration::from_secs(60));
    let mut msgs: Vec<u32> = joins
        .iter()
        .filter_map(|&(i, q)| stats_of(net.take_result(i, q)))
        .map(|s| s.messages)
        .collect();
    let mut sizes: Vec<u32> = net
        .nodes()
        .iter()
        .map(|n| n.dht.table().len() as u32)
        .collect();
    r.line(format!(
        "join: {} nodes through node 0, 50 ms apart, then 60 s to settle; messages per bootstrap lookup {}",
        p.nodes,
        dist(&mut msgs)
    ));
    r.line(format!("routing table size: {}", dist(&mut sizes)));
    let sent = net.stats.delivered + net.stats.lost + net.stats.to_dead;
    r.line(format!(
        "join traffic: {:.1} messages per node (bootstrap lookup, bucket refreshes, pings; requests and replies)",
        sent as f64 / p.nodes.max(1) as f64
    ));
    Built { net, text: r.text }
}

fn stats_of(ev: Option<Event>) -> Option<QueryStats> {
    match ev? {
        Event::QueryFinished { stats, .. } => Some(stats),
        _ => None,
    }
}

fn pick_alive(net: &mut Net, alive: &[usize]) -> usize {
    alive[net.rng.below(alive.len() as u64) as usize]
}

/// `count` lookups of random live node ids from random live nodes, 5 ms
/// apart; reports the found rate and the cost distributions.
fn lookups(net: &mut Net, count: usize, r: &mut Report, name: &'static str) {
    let alive = net.alive();
    lookups_among(net, &alive, count, r, name);
}

/// [`lookups`] with requesters and targets drawn from `alive` only.
pub(super) fn lookups_among(
    net: &mut Net,
    alive: &[usize],
    count: usize,
    r: &mut Report,
    name: &'static str,
) {
    let mut qs = Vec::with_capacity(count);
    for _ in 0..count {
        let from = pick_alive(net, alive);
        let mut to = pick_alive(net, alive);
        while to == from && alive.len() > 1 {
            to = pick_alive(net, alive);
        }
        let target = *net.contact(to).id();
        qs.push((from, net.find_node(from, target), target));
        let t = net.now() + Duration::from_millis(5);
        net.run_until(t);
    }
    let limit = net.now() + Duration::from_secs(600);
    net.run_while(limit, |n| qs.iter().any(|&(i, q, _)| !n.is_finished(i, q)));
    let (mut rounds, mut msgs, mut contacted, mut found) = (vec![], vec![], vec![], 0);
    let mut latency = vec![];
    for &(i, q, target) in &qs {
        if let Some(Event::QueryFinished {
            outcome: Outcome::Nodes { closest, target: t },
            stats,
            elapsed,
            ..
        }) = net.take_result(i, q)
        {
            if t.is_some_and(|c| *c.id() == target) || closest.iter().any(|c| *c.id() == target) {
                found += 1;
            }
            rounds.push(stats.rounds);
            msgs.push(stats.messages);
            contacted.push(stats.contacted);
            latency.push(elapsed.as_millis() as u32);
        }
    }
    r.rate_line(
        name,
        Rate {
            ok: found,
            total: count as u64,
        },
    );
    r.line(format!("  rounds: {}", dist(&mut rounds)));
    r.line(format!("  messages: {}", dist(&mut msgs)));
    r.line(format!("  nodes contacted: {}", dist(&mut contacted)));
    r.line(format!("  virtual latency, ms: {}", dist(&mut latency)));
}

/// FIND_VALUE for each owner's key from a random live node.
fn find_records(net: &mut Net, owners: &[usize], r: &mut Report, name: &'static str) {
    let alive = net.alive();
    let mut qs = Vec::new();
    for &o in owners {
        let from = pick_alive(net, &alive);
        let key = *net.contact(o).id();
        qs.push((from, net.find_value(from, key)));
        let t = net.now() + Duration::from_millis(5);
        net.run_until(t);
    }
    let limit = net.now() + Duration::from_secs(600);
    net.run_while(limit, |n| qs.iter().any(|&(i, q)| !n.is_finished(i, q)));
    let mut found = 0;
    let (mut msgs, mut latency) = (Vec::new(), Vec::new());
    for &(i, q) in &qs {
        if let Some(Event::QueryFinished {
            outcome: Outcome::Value { record },
            stats,
            elapsed,
            ..
        }) = net.take_result(i, q)
        {
            found += u64::from(record.is_some());
            msgs.push(stats.messages);
            latency.push(elapsed.as_millis() as u32);
        }
    }
    r.rate_line(
        name,
        Rate {
            ok: found,
            total: qs.len() as u64,
        },
    );
    r.line(format!("  messages: {}", dist(&mut msgs)));
    r.line(format!("  virtual latency, ms: {}", dist(&mut latency)));
}

/// Distinct random nodes (never node 0 unless n is tiny).
pub(super) fn sample(net: &mut Net, from: &[usize], n: usize) -> Vec<usize> {
    let mut pool = from.to_vec();
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !pool.is_empty() {
        let i = net.rng.below(pool.len() as u64) as usize;
        out.push(pool.swap_remove(i));
    }
    out
}

fn publish_all(net: &mut Net, owners: &[usize], ttl: Duration, r: &mut Report) {
    let mut qs = Vec::new();
    for &o in owners {
        if let Some(q) = net.publish(o, ttl) {
            qs.push((o, q));
        }
        let t = net.now() + Duration::from_millis(5);
        net.run_until(t);
    }
    let limit = net.now() + Duration::from_secs(600);
    net.run_while(limit, |n| qs.iter().any(|&(i, q)| !n.is_finished(i, q)));
    let mut acks = Vec::new();
    for &(i, q) in &qs {
        if let Some(Event::QueryFinished {
            outcome: Outcome::Stored { acks: a, .. },
            ..
        }) = net.take_result(i, q)
        {
            acks.push(a);
        }
    }
    r.line(format!(
        "published {} records (TTL {} s); copies stored per record {}",
        qs.len(),
        ttl.as_secs(),
        dist(&mut acks)
    ));
}

pub(super) fn footer(net: &Net, r: &mut Report) {
    let alive = net.alive();
    let mut heap: Vec<u32> = alive
        .iter()
        .map(|&i| net.node(i).dht.heap_bytes() as u32)
        .collect();
    r.line(format!(
        "core state per live node, bytes (Dht::heap_bytes): {}",
        dist(&mut heap)
    ));
    let s = &net.stats;
    r.line(format!(
        "traffic: {} delivered, {} lost, {} to dead nodes; {} signature checks; virtual time {} s",
        s.delivered,
        s.lost,
        s.to_dead,
        net.verifier.signature_checks,
        net.now().as_millis() / 1000
    ));
}

/// Join, then lookups of random live node ids (`loss` applies throughout).
pub fn lookup(p: &Params, loss: f64) -> Report {
    lookup_on(network(p, loss), p, loss)
}

/// [`lookup`] on a network built by [`network`]; `loss` applies from
/// here on (whatever the network was built with).
pub fn lookup_on(b: Built, p: &Params, loss: f64) -> Report {
    let mut r = Report::default();
    r.line(format!(
        "== lookups: {} nodes, {} lookups, seed {}, loss {:.1}%, paths {} ==",
        p.nodes,
        p.lookups,
        p.seed,
        loss * 100.0,
        p.paths
    ));
    r.text.push_str(&b.text);
    let mut net = b.net;
    net.set_loss(loss);
    lookups(&mut net, p.lookups, &mut r, "live node found");
    footer(&net, &mut r);
    r
}

/// Records stored, then a fraction of nodes killed at once; no republish.
pub fn kill(p: &Params) -> Report {
    kill_on(network(p, 0.0), p)
}

/// [`kill`] on a lossless network built by [`network`].
pub fn kill_on(b: Built, p: &Params) -> Report {
    let mut r = Report::default();
    r.line(format!(
        "== kill: {} nodes, {} records, {:.0}% killed at once, seed {} ==",
        p.nodes,
        p.records,
        p.kill * 100.0,
        p.seed
    ));
    r.text.push_str(&b.text);
    let mut net = b.net;
    let all: Vec<usize> = (1..p.nodes).collect();
    let owners = sample(&mut net, &all, p.records);
    publish_all(&mut net, &owners, crate::dht::DEFAULT_TTL, &mut r);
    let victims = sample(&mut net, &all, (p.nodes as f64 * p.kill) as usize);
    for &v in &victims {
        net.kill(v);
    }
    r.line(format!("killed {} nodes", victims.len()));
    find_records(&mut net, &owners, &mut r, "stored record found");
    lookups(&mut net, p.lookups, &mut r, "live node found");
    footer(&net, &mut r);
    r
}

/// Records with a 1 h TTL republished every 30 min by their owners while
/// `churn` of the nodes leave and as many join over two hours.
pub fn churn(p: &Params) -> Report {
    churn_on(network(p, 0.0), p)
}

/// [`churn`] on a lossless network built by [`network`].
pub fn churn_on(b: Built, p: &Params) -> Report {
    let mut r = Report::default();
    let window = Duration::from_secs(2 * 3600);
    let ttl = Duration::from_secs(3600);
    r.line(format!("== churn: {} nodes, {} records, {:.0}% replaced over {} min, republish at TTL/2, seed {} ==", p.nodes, p.records, p.churn * 100.0, window.as_secs() / 60, p.seed));
    r.text.push_str(&b.text);
    let mut net = b.net;
    net.auto_republish = true;
    let all: Vec<usize> = (1..p.nodes).collect();
    let owners = sample(&mut net, &all, p.records);
    publish_all(&mut net, &owners, ttl, &mut r);
    let start = net.now();
    let changes = (p.nodes as f64 * p.churn) as usize;
    let mut plan: Vec<(u64, bool)> = (0..2 * changes)
        .map(|i| (net.rng.below(window.as_millis() as u64), i % 2 == 0))
        .collect();
    plan.sort_unstable();
    let (mut left, mut joined) = (0, 0);
    for (at, leave) in plan {
        net.run_until(start + Duration::from_millis(at));
        let alive = net.alive();
        if leave {
            let v = pick_alive(&mut net, &alive);
            net.kill(v);
            left += 1;
        } else {
            let via = pick_alive(&mut net, &alive);
            let n = net.add_node();
            let _ = net.join(n, via);
            joined += 1;
        }
    }
    net.run_until(start + window);
    r.line(format!(
        "{left} nodes left and {joined} joined; {} alive",
        net.alive().len()
    ));
    let live_owners: Vec<usize> = owners
        .iter()
        .copied()
        .filter(|&o| net.node(o).alive)
        .collect();
    find_records(&mut net, &live_owners, &mut r, "record of live owner found");
    footer(&net, &mut r);
    r
}

/// Every scenario of the table, in order, then lookups over 3 disjoint
/// paths (S/Kademlia) for comparison.
pub fn all(p: &Params) -> Vec<Report> {
    vec![
        lookup(p, p.loss),
        lookup(p, if p.loss > 0.0 { p.loss } else { 0.10 }),
        kill(p),
        churn(p),
        flood(p),
        lookup(
            &Params {
                paths: 3,
                ..p.clone()
            },
            p.loss,
        ),
    ]
}
