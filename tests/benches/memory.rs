//! Memory and idle CPU of one `streembit run` process.
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench memory
//! ```
//!
//! 1. A lone node (no seeds, empty table): VmRSS once settled, and
//!    wake-ups per second (context switches of all its threads) over 10 s.
//! 2. The same node with 100 open connections: 100 in-process endpoints
//!    dial it, each completes one signed PING/PONG and keeps the connection
//!    open. VmRSS and the delta per connection; wake-ups again.
//! 3. A second node started from a persisted routing table offering 1,000
//!    contacts (`<state>/routing-table.bin`, the format of
//!    `RoutingTable::to_bytes`): VmRSS and how many the table kept.
//!
//! Only prints figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use serde_json::Value;
use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::dht::{Addrs, Message};
use streembit_agent::internals::transport::request;
use streembit_agent::internals::transport::{Endpoint, Membership, TransportConfig};
use streembit_agent::wire::{Audience, Kind, NetworkId, Sealer};
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::bench::{api_get, context_switches, cpu_time, status_kib, threads};

const CONNECTIONS: usize = 100;
const CONTACTS: usize = 1000;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// Time a process is left alone before a reading.
const SETTLE: Duration = Duration::from_secs(3);

fn config() -> &'static str {
    "listen = \"127.0.0.1:0\"\nnetwork = \"public\"\nseeds = []\n"
}

fn network() -> NetworkId {
    "public".parse().expect("network id")
}

/// The routing table file: CBOR `{v: 1, c: [[key-bytes, addrs], ...]}`.
#[derive(Serialize)]
struct Persisted {
    v: u8,
    c: Vec<(Key, Addrs)>,
}
struct Key([u8; 32]);
impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

fn status(node: &AgentProcess) -> Value {
    api_get(&node.api_socket(), "/v1/status")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Wake-ups per second and CPU time over `IDLE_WINDOW`.
fn idle(pid: u32) -> (f64, Duration) {
    let (c0, t0) = (context_switches(pid), cpu_time(pid));
    std::thread::sleep(IDLE_WINDOW);
    let (c1, t1) = (context_switches(pid), cpu_time(pid));
    (
        (c1 - c0) as f64 / IDLE_WINDOW.as_secs_f64(),
        t1.saturating_sub(t0),
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let tmp = tempfile::tempdir().expect("tmp");

    // 1. Alone and idle.
    let node = AgentProcess::builder(&tmp.path().join("idle"), config())
        .log("warn")
        .spawn();
    let pid = node.pid().expect("pid");
    std::thread::sleep(SETTLE);
    let rss_idle = rss(pid);
    let (wake_idle, cpu_idle) = idle(pid);
    println!(
        "idle node (empty table, no connections): VmRSS {rss_idle} KiB ({:.1} MiB), \
         {} threads; {wake_idle:.1} wake-ups/s, {} ms CPU in {} s",
        mib(rss_idle),
        threads(pid),
        cpu_idle.as_millis(),
        IDLE_WINDOW.as_secs()
    );

    // 2. 100 connections, each with one signed PING answered.
    let target: PublicKey = node.key.parse().expect("agent key");
    let addr: SocketAddr = node.addr.parse().expect("agent addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let held = rt.block_on(async {
        let mut held = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let key = Arc::new(Keypair::generate());
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let ep = Endpoint::bind(
                key.clone(),
                Membership::public(),
                &TransportConfig::new(loopback, network()),
            )
            .expect("bind");
            let conn = ep.dial(&target, addr).await.expect("dial the agent");
            let ping = Message::Ping { rid: 1 };
            let kind: Kind = ping.kind().name().parse().expect("kind");
            let env = Sealer::new(network())
                .seal(
                    &key,
                    kind,
                    Audience::Node(target.node_id()),
                    &ping.encode(),
                    streembit_agent::clock::Clock::system().wall(),
                )
                .expect("seal");
            let pong = request(&conn, &env, 64 * 1024, Duration::from_secs(10))
                .await
                .expect("request")
                .expect("an answer");
            assert!(!pong.is_empty());
            // Streams the agent opens later (it may ask us things) are
            // refused at once rather than left to time out.
            let c = conn.clone();
            tokio::spawn(async move { while c.quic().accept_bi().await.is_ok() {} });
            held.push((ep, conn));
        }
        held
    });
    let t = Instant::now();
    while status(&node)["connections"].as_u64().unwrap_or(0) < CONNECTIONS as u64
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(SETTLE);
    let s = status(&node);
    let rss_conns = rss(pid);
    let (wake_conns, cpu_conns) = idle(pid);
    println!(
        "with {} open connections ({} contacts): VmRSS {rss_conns} KiB ({:.1} MiB), \
         +{:.1} KiB per connection; {wake_conns:.1} wake-ups/s, {} ms CPU in {} s",
        s["connections"],
        s["table_size"],
        mib(rss_conns),
        rss_conns.saturating_sub(rss_idle) as f64 / CONNECTIONS as f64,
        cpu_conns.as_millis(),
        IDLE_WINDOW.as_secs()
    );
    drop(held);
    drop(rt);
    drop(node);

    // 3. A table offering 1,000 contacts, written before start. The
    //    addresses are closed loopback ports: the node's refresh lookups to
    //    them fail, as they would for peers that went away.
    let dir = tmp.path().join("contacts");
    let state = dir.join(".streembit");
    std::fs::create_dir_all(&state).expect("state dir");
    let contacts: Vec<(Key, Addrs)> = (0..CONTACTS)
        .map(|i| {
            let key = Keypair::generate().public();
            let port = 20_000 + (i % 20_000);
            let addrs = Addrs::new(&[format!("127.0.0.1:{port}")]).expect("addrs");
            (Key(*key.as_bytes()), addrs)
        })
        .collect();
    let mut bytes = Vec::new();
    ciborium::into_writer(&Persisted { v: 1, c: contacts }, &mut bytes).expect("cbor");
    std::fs::write(state.join("routing-table.bin"), &bytes).expect("write table");
    let mut node = AgentProcess::builder(&dir, config()).log("warn").spawn();
    let restored = node.wait_for("restored", |m| m.contains("restored"));
    let pid = node.pid().expect("pid");
    let rss_start = rss(pid);
    std::thread::sleep(SETTLE);
    let s = status(&node);
    let rss_table = rss(pid);
    println!(
        "started from a table offering {CONTACTS} contacts ({} bytes on disk): {}; \
         VmRSS {rss_start} KiB at READY, {rss_table} KiB ({:.1} MiB) after {} s with {} \
         contacts in the table and {} connections",
        bytes.len(),
        restored
            .lines()
            .find(|l| l.contains("restored"))
            .unwrap_or(""),
        mib(rss_table),
        SETTLE.as_secs(),
        s["table_size"],
        s["connections"]
    );
}
