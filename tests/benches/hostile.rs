//! Hostile peers at the issue's full counts, against a release agent.
//!
//! ```sh
//! cargo build --release -p streembit-agent && cargo bench -p streembit-tests --bench hostile
//! ```
//!
//! Prints one `FIGURE` line per measurement (README "Reliability") and
//! exits non-zero if any security property fails; memory and rates are
//! reported, not asserted, since they depend on the machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::dht::Message;
use streembit_agent::wire::{NetworkId, ReplayWindow, UnixMillis};
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::bench::status_kib;
use streembit_tests::labs::hostile::{self, private_agent, Answer, HostilePeer};

fn key_of(a: &AgentProcess) -> PublicKey {
    PublicKey::from_bytes(&hex::decode(&a.key).expect("hex")).expect("key")
}

fn addr_of(a: &AgentProcess) -> SocketAddr {
    a.addr.parse().expect("addr")
}

fn rss(a: &AgentProcess) -> u64 {
    a.pid().map_or(0, |pid| status_kib(pid, "VmRSS"))
}

fn check(ok: bool, what: &str, failed: &mut Vec<String>) {
    if !ok {
        eprintln!("FAILED: {what}");
        failed.push(what.to_owned());
    }
}

fn outsider_dials(tmp: &std::path::Path, failed: &mut Vec<String>) {
    let a = private_agent(&tmp.join("dials"), &[]);
    let target = key_of(&a);
    let outsider = HostilePeer::new("acme", &[target]);
    let t0 = Instant::now();
    const DIALS: u64 = 1000;
    for _ in 0..DIALS {
        let _ = outsider.dial(&target, addr_of(&a));
    }
    let refused = a.metric("streembit_handshakes_refused_total{reason=\"not_allowlisted\"}");
    let streams = a.metric("streembit_connections_opened_total");
    let bytes = a.metric("streembit_app_bytes_received_total");
    let table = a.metric("streembit_dht_table_size");
    println!(
        "FIGURE outsider: {DIALS} dials in {:.1} s: {refused} refused and counted, {streams} connections, {bytes} application bytes, {table} table entries",
        t0.elapsed().as_secs_f64()
    );
    check(
        refused == DIALS && streams == 0 && bytes == 0 && table == 0,
        "outsider",
        failed,
    );
}

fn replays(tmp: &std::path::Path, failed: &mut Vec<String>) {
    const N: u64 = 10_000;
    let key = Arc::new(Keypair::generate());
    let mut a = private_agent(&tmp.join("replay"), &[hex::encode(key.public().as_bytes())]);
    let target = key_of(&a);
    let mut peer = HostilePeer::with_key(key, "acme", &[target]);
    let conn = peer.dial(&target, addr_of(&a)).expect("dial");
    let captured: Vec<Vec<u8>> = (0..N)
        .map(|i| peer.seal(&target, &Message::Ping { rid: i }))
        .collect();
    let first = peer.send_all(&conn, captured.clone(), 64);
    let answered = first
        .iter()
        .filter(|x| matches!(x, Answer::Answered(_)))
        .count();
    let again = peer.send_all(&conn, captured.clone(), 64);
    let refused_live = again.iter().filter(|x| **x == Answer::Refused).count();
    a.restart(None);
    let conn = peer.dial(&target, addr_of(&a)).expect("dial after restart");
    let after = peer.send_all(&conn, captured, 64);
    let refused_restart = after.iter().filter(|x| **x == Answer::Refused).count();
    let accepted_restart = a.metric("streembit_envelopes_accepted_total");
    println!(
        "FIGURE replay: {N} captured envelopes ({answered} answered first): replayed live {refused_live}/{N} refused; replayed after a restart {refused_restart}/{N} refused, {accepted_restart} accepted"
    );
    check(
        answered as u64 == N
            && refused_live as u64 == N
            && refused_restart as u64 == N
            && accepted_restart == 0,
        "replay",
        failed,
    );
}

fn spoiled(tmp: &std::path::Path, failed: &mut Vec<String>) {
    const EACH: u64 = 20_000;
    let key = Arc::new(Keypair::generate());
    let a = private_agent(
        &tmp.join("spoiled"),
        &[hex::encode(key.public().as_bytes())],
    );
    let target = key_of(&a);
    let mut peer = HostilePeer::with_key(key, "acme", &[target]);
    let conn = peer.dial(&target, addr_of(&a)).expect("dial");
    let other: NetworkId = "other".parse().expect("id");
    let stranger = Keypair::generate();
    let now = streembit_agent::clock::Clock::system().wall().0;
    let mut total = 0u64;
    let mut answered = 0usize;
    let t0 = Instant::now();
    for kind in 0..5u64 {
        let envs: Vec<Vec<u8>> = (0..EACH)
            .map(|i| {
                let msg = Message::Ping { rid: i };
                match kind {
                    0 => {
                        let mut e = peer.seal(&target, &msg);
                        let bit = (i as usize * 7919) % (e.len() * 8);
                        e[bit / 8] ^= 1 << (bit % 8);
                        e
                    }
                    1 => {
                        let k = peer.key.clone();
                        peer.seal_foreign(&k, &other, &target, &msg, i)
                    }
                    2 => {
                        let net = peer.network().clone();
                        peer.seal_foreign(&stranger, &net, &target, &msg, i)
                    }
                    3 => peer.seal_at(&target, &msg, UnixMillis(now - 600_000)),
                    _ => peer.seal_at(&target, &msg, UnixMillis(now + 600_000)),
                }
            })
            .collect();
        total += envs.len() as u64;
        answered += peer
            .send_all(&conn, envs, 64)
            .iter()
            .filter(|x| matches!(x, Answer::Answered(_)))
            .count();
    }
    let accepted = a.metric("streembit_envelopes_accepted_total");
    println!(
        "FIGURE spoiled: {total} envelopes (flipped bit, wrong network, wrong key, stale, future; {EACH} each) in {:.1} s: {accepted} accepted, {answered} answered",
        t0.elapsed().as_secs_f64()
    );
    check(accepted == 0 && answered == 0, "spoiled", failed);
}

fn replay_window_bound(failed: &mut Vec<String>) {
    let mut w = ReplayWindow::new(ReplayWindow::DEFAULT_CAPACITY, 0);
    let bound = ReplayWindow::memory_bound(ReplayWindow::DEFAULT_CAPACITY);
    let before = w.memory_bytes();
    let mut max = before;
    for i in 0..1_000_000u64 {
        let mut sender = [0u8; 32];
        sender[..8].copy_from_slice(&i.to_le_bytes());
        let _ = w.check_and_insert(&sender, i, 1_000_000 + i, 0);
        if i % 10_000 == 0 {
            max = max.max(w.memory_bytes());
        }
    }
    max = max.max(w.memory_bytes());
    println!(
        "FIGURE replay window: 10^6 distinct senders into the default window: {max} B at most (documented bound {bound} B; {before} B when empty)"
    );
    check(max <= bound, "replay window bound", failed);
}

fn store_flood(tmp: &std::path::Path, failed: &mut Vec<String>) {
    const STORES: u64 = 100_000;
    let key = Arc::new(Keypair::generate());
    let a = private_agent(&tmp.join("stores"), &[hex::encode(key.public().as_bytes())]);
    let target = key_of(&a);
    let mut peer = HostilePeer::with_key(key, "acme", &[target]);
    let net = peer.network().clone();
    let conn = peer.dial(&target, addr_of(&a)).expect("dial");
    let rss0 = rss(&a);
    let owner = Keypair::generate();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut max_seq = 0;
    while sent < STORES {
        let envs: Vec<Vec<u8>> = (0..5_000u64)
            .map(|j| {
                let i = sent + j;
                let record = match i % 4 {
                    // The owner's record, sequence going up and down.
                    0 => {
                        let seq = if i % 8 == 0 { i } else { i / 2 };
                        max_seq = max_seq.max(seq);
                        hostile::peer_record(&owner, &net, seq)
                    }
                    1 => hostile::oversize_record(&owner, &net),
                    _ => hostile::peer_record(&Keypair::generate(), &net, 1),
                };
                peer.seal(&target, &Message::Store { rid: i, record })
            })
            .collect();
        sent += envs.len() as u64;
        let _ = peer.send_all(&conn, envs, 64);
    }
    let secs = t0.elapsed().as_secs_f64();
    let held = a.metric("streembit_records_stored");
    let rss1 = rss(&a);
    let ask = peer.seal(
        &target,
        &Message::FindValue {
            rid: 1,
            key: owner.public().node_id(),
        },
    );
    let seq = match peer.send_all(&conn, vec![ask], 1).pop() {
        Some(Answer::Answered(b)) => match peer.open_answer(&b) {
            Some(Message::Value {
                record: Some(r), ..
            }) => streembit_agent::wire::open_published(&r, &net, 4096)
                .ok()
                .and_then(|o| {
                    ciborium::from_reader::<streembit_agent::internals::dht::PeerRecord, _>(
                        o.payload(),
                    )
                    .ok()
                })
                .map(|p| p.seq),
            _ => None,
        },
        _ => None,
    };
    let quota = streembit_agent::internals::dht::DEFAULT_MAX_PER_PUBLISHER;
    println!(
        "FIGURE store flood: {sent} STOREs from one allowlisted peer in {secs:.1} s: {held} records held (quota {quota}), owner's record seq {seq:?} of highest sent {max_seq}; agent RSS {rss0} KiB -> {rss1} KiB"
    );
    check(
        held <= quota as u64 && seq == Some(max_seq),
        "store flood",
        failed,
    );
}

fn handshake_flood(tmp: &std::path::Path, failed: &mut Vec<String>) {
    let key = Arc::new(Keypair::generate());
    let a = private_agent(&tmp.join("flood"), &[hex::encode(key.public().as_bytes())]);
    let target = key_of(&a);
    let addr = addr_of(&a);
    let outsider = HostilePeer::new("acme", &[target]);
    let t_cap = Instant::now();
    let initials = outsider.capture_initials(&target, 50_000);
    let cap_secs = t_cap.elapsed().as_secs_f64();
    let rss0 = rss(&a);
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let flood_for = Duration::from_secs(20);
    let (sent, legit, peak) = std::thread::scope(|s| {
        let f = s.spawn(|| hostile::flood(addr, &initials, 128, 5_000, &stop, 5_000, tx));
        let _ = rx.recv();
        let mut peer = HostilePeer::with_key(key, "acme", &[target]);
        let t0 = Instant::now();
        let mut ok = 0;
        let mut tries = 0;
        let mut lat = Vec::new();
        let mut peak = 0;
        while t0.elapsed() < flood_for {
            tries += 1;
            let t = Instant::now();
            if let Ok(c) = peer.dial(&target, addr) {
                let env = peer.seal(&target, &Message::Ping { rid: tries });
                if matches!(
                    peer.send_all(&c, vec![env], 1).pop(),
                    Some(Answer::Answered(_))
                ) {
                    ok += 1;
                    lat.push(t.elapsed().as_micros());
                }
                c.close(0, "bye");
            }
            peak = peak.max(rss(&a));
        }
        stop.store(true, Ordering::Relaxed);
        let sent = f.join().expect("flooder");
        lat.sort_unstable();
        let median = lat.get(lat.len() / 2).copied().unwrap_or(0);
        ((sent, flood_for), (ok, tries, median), peak)
    });
    let rss_after = rss(&a);
    let (n, d) = sent;
    let (ok, tries, median) = legit;
    println!(
        "FIGURE handshake flood: {n} Initials in {:.0} s ({:.0}/s; {} distinct connection attempts captured in {cap_secs:.1} s, sent from 128 source ports): legitimate peer {ok}/{tries} dial+ping succeeded (median {median} us); agent RSS {rss0} KiB before, {peak} KiB peak, {rss_after} KiB after; refusals {:?}",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64(),
        initials.len(),
        [
            "handshake_failed",
            "not_allowlisted",
            "busy"
        ]
        .map(|r| (r, a.metric(&format!("streembit_handshakes_refused_total{{reason=\"{r}\"}}"))))
    );
    check(ok > 0, "legitimate peer during flood", failed);
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |n: &str| which.is_empty() || which.iter().any(|w| w == n);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut failed = Vec::new();
    if want("window") {
        replay_window_bound(&mut failed);
    }
    if want("dials") {
        outsider_dials(tmp.path(), &mut failed);
    }
    if want("replay") {
        replays(tmp.path(), &mut failed);
    }
    if want("spoiled") {
        spoiled(tmp.path(), &mut failed);
    }
    if want("stores") {
        store_flood(tmp.path(), &mut failed);
    }
    if want("flood") {
        handshake_flood(tmp.path(), &mut failed);
    }
    if !failed.is_empty() {
        eprintln!("FAILED: {failed:?}");
        std::process::exit(1);
    }
}
