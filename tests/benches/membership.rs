//! Issue 18's figures: what credentials cost, what revocation holds, how
//! fast a revocation reaches a network.
//!
//! ```sh
//! cargo build --release -p streembit-agent
//! cargo bench -p streembit-tests --bench membership              # all three
//! cargo bench -p streembit-tests --bench membership -- handshake # or one
//! ```
//!
//! 1. `handshake`: handshake + first request on loopback on a private
//!    network admitting by allowlist (a set lookup) and by credential
//!    (each side checks the other's COSE credential, once per credential,
//!    in one Ed25519 batch with the TLS handshake signature), in interleaved rounds
//!    in one process; the median of the rounds' p50s and the ratio. Twice:
//!    at first contact (a fresh key each time: nothing verified before),
//!    and for peers that connected before (a full handshake again, as
//!    there is no resumption, but their credentials verified already).
//! 2. `memory`: the resident memory a membership takes for a signed
//!    revocation list of 10,000 keys (the list kept as received, and the
//!    set checked at every handshake), and the time to apply it.
//! 3. `propagation [nodes=100]`: that many `streembit run` processes on a
//!    credentials-only network; the admin revokes a key at one of them,
//!    and each agent's log says when it applied the list. p50 and p99 of
//!    the delay from the revoke to each agent.
//!
//! Only prints figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streembit_agent::identity::Keypair;
use streembit_agent::internals::transport::{
    request, Authority, Endpoint, Membership, TransportConfig,
};
use streembit_agent::wire::membership::{Credential, Revocations, Role};
use streembit_agent::wire::{NetworkId, UnixMillis};
use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::bench::{quantile, serve_echo, status_kib};
use streembit_tests::harness::cli::{keygen, network_create, Sandbox};

const WAIT: Duration = Duration::from_secs(10);

fn acme() -> NetworkId {
    "acme".parse().expect("network id")
}

fn credential(admin: &Keypair, key: &Keypair, role: Role) -> Vec<u8> {
    Credential {
        network: "acme".into(),
        subject: key.public(),
        role,
        issued: UnixMillis(1),
        expires: None,
        serial: 1,
    }
    .sign(&[admin])
}

fn bind(key: Arc<Keypair>, gate: Membership, credential: Option<Vec<u8>>) -> Endpoint {
    let mut cfg = TransportConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), acme());
    cfg.credential = credential;
    Endpoint::bind(key, gate, &cfg).expect("bind")
}

/// p50 of `n` connections (dial, one 64-byte request, close) of fresh
/// keys; with `known`, each client has connected once before (untimed),
/// as a member reconnecting to a peer it knows.
async fn round(
    n: usize,
    known: bool,
    server: &Keypair,
    addr: SocketAddr,
    client: impl Fn(Arc<Keypair>) -> Endpoint,
    admit: impl Fn(&Keypair),
) -> Duration {
    let keys: Vec<Arc<Keypair>> = (0..n).map(|_| Arc::new(Keypair::generate())).collect();
    for k in &keys {
        admit(k);
    }
    let clients: Vec<Endpoint> = keys.iter().map(|k| client(k.clone())).collect();
    if known {
        for c in &clients {
            let conn = c.dial(&server.public(), addr).await.expect("dial");
            let _ = request(&conn, &[0x5a; 64], 1024, WAIT).await;
            conn.close(0, "done");
        }
    }
    let mut samples = Vec::with_capacity(n);
    for c in &clients {
        let t = Instant::now();
        let conn = c.dial(&server.public(), addr).await.expect("dial");
        let answer = request(&conn, &[0x5a; 64], 1024, WAIT)
            .await
            .expect("request");
        assert!(answer.is_some(), "echo");
        samples.push(t.elapsed());
        conn.close(0, "done");
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn handshake() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = Arc::new(Keypair::generate());
        let authority = || Authority::new(vec![admin.public()], 1).expect("authority");
        // Allowlist: the server lists each client; each client lists the server.
        let list_key = Arc::new(Keypair::generate());
        let list_gate = Membership::private(&acme(), [], None);
        let list_server = Arc::new(bind(list_key.clone(), list_gate.clone(), None));
        let list_addr = list_server.local_addr().expect("addr");
        serve_echo(list_server.clone());
        let listed = std::sync::Mutex::new(Vec::new());
        // Credentials: no list anywhere.
        let cred_key = Arc::new(Keypair::generate());
        let cred_server = Arc::new(bind(
            cred_key.clone(),
            Membership::private(&acme(), [], Some(authority())),
            Some(credential(&admin, &cred_key, Role::Gateway)),
        ));
        let cred_addr = cred_server.local_addr().expect("addr");
        serve_echo(cred_server.clone());

        const ROUNDS: usize = 9;
        const PER_ROUND: usize = 200;
        for known in [false, true] {
            let (mut by_list, mut by_cred) = (Vec::new(), Vec::new());
            for r in 0..=ROUNDS {
                let list = round(
                    PER_ROUND,
                    known,
                    &list_key,
                    list_addr,
                    |k| bind(k, Membership::private(&acme(), [list_key.public()], None), None),
                    |k| {
                        if let Ok(mut l) = listed.lock() {
                            l.push(k.public());
                            list_gate.replace_allowlist(l.iter().copied());
                        }
                    },
                )
                .await;
                let cred = round(
                    PER_ROUND,
                    known,
                    &cred_key,
                    cred_addr,
                    |k| {
                        let c = credential(&admin, &k, Role::Member);
                        bind(k, Membership::private(&acme(), [], Some(authority())), Some(c))
                    },
                    |_| {},
                )
                .await;
                // Round 0 warms up.
                if r > 0 {
                    by_list.push(list);
                    by_cred.push(cred);
                }
            }
            by_list.sort();
            by_cred.sort();
            let (l, c) = (by_list[ROUNDS / 2], by_cred[ROUNDS / 2]);
            println!(
                "handshake + first request, {}, median of {ROUNDS} rounds' p50 ({PER_ROUND} each): \
                 allowlist {:.0} µs, credential {:.0} µs, ratio {:.2}×",
                if known { "a peer connected before (credentials verified once)" } else { "first contact (fresh key)" },
                l.as_secs_f64() * 1e6,
                c.as_secs_f64() * 1e6,
                c.as_secs_f64() / l.as_secs_f64()
            );
        }
    });
}

fn rss_kib() -> u64 {
    status_kib(std::process::id(), "VmRSS")
}

fn memory() {
    let admin = Keypair::generate();
    let list = Revocations {
        network: "acme".into(),
        seq: 1,
        issued: UnixMillis(1),
        revoked: (0..10_000).map(|_| Keypair::generate().public()).collect(),
    };
    let bytes = list.sign(&[&admin]);
    drop(list);
    let mut deltas = Vec::new();
    let mut times = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..5 {
        let gate = Membership::private(
            &acme(),
            [],
            Some(Authority::new(vec![admin.public()], 1).expect("authority")),
        );
        let before = rss_kib();
        let t = Instant::now();
        gate.apply_revocations(&bytes).expect("applied");
        times.push(t.elapsed());
        deltas.push(rss_kib().saturating_sub(before));
        kept.push(gate);
    }
    deltas.sort();
    times.sort();
    println!(
        "revocation state, 10,000 keys: signed list {} KiB; resident memory per membership holding it, median of 5: {} KiB; apply (verify + index) median {:.1} ms",
        bytes.len() / 1024,
        deltas[2],
        times[2].as_secs_f64() * 1e3
    );
}

/// The wall-clock time of a log line (`2026-12-06T17:15:42.742199Z ...`),
/// in ms since the epoch.
fn log_ms(line: &str) -> Option<u64> {
    let ts = line.split_whitespace().next()?;
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let day = streembit_agent::clock::parse_date(date).ok()?.0;
    let mut hms = time.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next()?.parse().ok()?;
    Some(day + h * 3_600_000 + m * 60_000 + (s * 1000.0) as u64)
}

fn propagation(nodes: usize) {
    let tmp = tempfile::tempdir().expect("tmp");
    let sandbox = Sandbox::new();
    let admin_key = tmp.path().join("acme-admin.pem");
    let admin = network_create(&sandbox, "acme", &admin_key);
    let config = |dir: &std::path::Path, seeds: &str| {
        let key = keygen(&dir.join(".streembit/identity.pem"));
        let cred = dir.join("credential.cose");
        let o = sandbox.run(
            &[
                "member",
                "issue",
                &key,
                "--role",
                "member",
                "--network",
                "acme",
                "--admin-key",
                admin_key.to_str().expect("path"),
                "--out",
                cred.to_str().expect("path"),
            ],
            b"",
        );
        assert!(o.status.success(), "issue");
        format!(
            "listen = \"127.0.0.1:0\"\nnetwork = \"acme\"\nadmins = [\"{admin}\"]\ncredential_file = \"{}\"\n{seeds}",
            cred.display()
        )
    };
    let started = Instant::now();
    let first = tmp.path().join("n0");
    let mut agents = vec![AgentProcess::start(&first, &config(&first, ""))];
    let seeds = format!("seeds = [\"{}\"]\n", agents[0].seed());
    for i in 1..nodes {
        let dir = tmp.path().join(format!("n{i}"));
        let cfg = config(&dir, &seeds);
        agents.push(AgentProcess::builder(&dir, &cfg).log("info").spawn());
    }
    println!(
        "{nodes} agents started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Joined: each has contacts beyond the seed.
    for a in &agents {
        eventually("joined", || a.metric("streembit_dht_table_size") >= 2);
    }
    let victim = Keypair::generate().public().to_string();
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let at = &agents[nodes / 2];
    let o = at.cli(&[
        "member",
        "revoke",
        &victim,
        "--admin-key",
        admin_key.to_str().expect("path"),
    ]);
    assert!(
        o.status.success(),
        "revoke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut delays = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        if i == nodes / 2 {
            continue;
        }
        eventually("the list applied", || {
            a.log().contains("revocation list applied")
        });
        let line = a
            .log()
            .lines()
            .find(|l| l.contains("revocation list applied"))
            .map(str::to_owned)
            .expect("line");
        delays.push(log_ms(&line).expect("timestamp").saturating_sub(t0) as f64);
    }
    delays.sort_by(f64::total_cmp);
    println!(
        "revocation propagation, {nodes} agents, from `member revoke` to each agent applying it: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        quantile(&delays, 0.50),
        quantile(&delays, 0.99),
        delays.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let which = args.first().map(String::as_str);
    if which.is_none() || which == Some("handshake") {
        handshake();
    }
    if which.is_none() || which == Some("memory") {
        memory();
    }
    if which.is_none() || which == Some("propagation") {
        let nodes = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100);
        propagation(nodes);
    }
}
