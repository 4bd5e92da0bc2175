//! What a relayed path costs, against the direct path, on loopback.
//!
//! `cargo bench -p streembit-agent --bench relay`
//!
//! Three endpoints on 127.0.0.1: a relay R (`TransportConfig::relay`, with
//! a rate limit of 1 GiB/s and a 1 GiB burst so the limit never caps the
//! figure), and two public peers A and B. The relayed session is set up by
//! hand, as the NAT service would after the `connect` exchange: R's
//! forwarder opens session `sid` between A's and B's addresses, and A and
//! B each register the session, A getting the virtual address it dials B
//! at. No control plane, no hole punching: only the data path.
//!
//! 1. Handshake time of fresh connections A→B, direct (B's real address)
//!    vs relayed (the virtual address), median of [`HANDSHAKES`] each,
//!    alternating so machine noise hits both alike.
//! 2. Throughput of one bidirectional stream carrying [`TRANSFER`] bytes
//!    A→B (timed until B's one-byte answer arrives), direct vs relayed,
//!    median of [`RUNS`] each, and the ratio relayed/direct.
//! 3. CPU of the relay: R runs on its own current-thread tokio runtime in
//!    a dedicated OS thread, whose utime+stime (`/proc/self/task/<tid>/stat`,
//!    the tid taken from `/proc/thread-self` inside that thread) is read
//!    before and after the relayed transfers: CPU seconds per GiB of
//!    payload relayed, and R's CPU as a share of one core while relaying.
//!
//! A and B share a 2-worker multi-thread runtime; on a 2-core machine R's
//! thread competes with them for the cores, which is what a relay serving
//! two local peers would do too.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streembit_agent::identity::Keypair;
use streembit_agent::internals::transport::RelayLimits;
use streembit_agent::internals::transport::{Answer, Endpoint, Membership, TransportConfig};
use streembit_agent::internals::transport::{Path, Paths};
use streembit_agent::wire::NetworkId;

const HANDSHAKES: usize = 31;
const RUNS: usize = 5;
const TRANSFER: usize = 32 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
const WAIT: Duration = Duration::from_secs(30);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(relay: Option<RelayLimits>) -> TransportConfig {
    let mut c = TransportConfig::new(loopback(), NetworkId::public());
    c.relay = relay;
    c
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when unknown).
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of one thread of this process, in clock ticks.
fn thread_ticks(tid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // After the parenthesised name, field 3 of the line is index 0; utime
    // and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum()
}

/// The relay, on its own thread and current-thread runtime: its
/// address, path table (with the forwarder), and thread id. Runs until
/// `stop` fires.
struct Relay {
    addr: SocketAddr,
    paths: Arc<Paths>,
    tid: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start() -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                rt.block_on(async move {
                    let key = Keypair::from_seed(&[1; 32]);
                    let limits = RelayLimits {
                        max_sessions: 1024,
                        max_sessions_per_peer: 1024,
                        bytes_per_sec: 1 << 30,
                        burst_bytes: 1 << 30,
                        idle: Duration::from_secs(600),
                        setup: Duration::from_secs(600),
                        max_sessions_per_pair: 1024,
                    };
                    let ep =
                        Endpoint::bind(Arc::new(key), Membership::public(), &config(Some(limits)))
                            .expect("bind relay");
                    // "<pid>/task/<tid>"
                    let tid = std::fs::read_link("/proc/thread-self")
                        .expect("/proc/thread-self")
                        .file_name()
                        .expect("tid")
                        .to_string_lossy()
                        .into_owned();
                    let addr = ep.local_addr().expect("relay addr");
                    ready_tx
                        .send((addr, ep.paths().clone(), tid))
                        .expect("ready");
                    let _ = stop_rx.await;
                    ep.close(0, "done");
                });
            })
            .expect("relay thread");
        let (addr, paths, tid) = ready_rx.recv().expect("relay ready");
        Relay {
            addr,
            paths,
            tid,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn ticks(&self) -> u64 {
        thread_ticks(&self.tid)
    }

    fn relayed_bytes(&self) -> u64 {
        self.paths
            .forwarder()
            .map(|f| f.counters().bytes.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// B's side: accepts every connection; on each, every bidirectional
/// stream is read to its end and answered with one byte.
fn serve(b: Arc<Endpoint>) {
    tokio::spawn(async move {
        while let Some(accepted) = b.accept(Answer::OwnOnly).await {
            let Ok(conn) = accepted else { continue };
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.quic().accept_bi().await {
                    tokio::spawn(async move {
                        let mut n = 0usize;
                        while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
                            n += chunk.bytes.len();
                        }
                        let _ = send.write_all(&[u8::from(n > 0)]).await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
}

/// One fresh connection A→B at `addr`: the handshake time in µs.
async fn handshake(a: &Endpoint, b: &Keypair, addr: SocketAddr) -> f64 {
    let t = Instant::now();
    let conn = tokio::time::timeout(WAIT, a.dial(&b.public(), addr))
        .await
        .expect("handshake in time")
        .expect("handshake");
    let us = t.elapsed().as_secs_f64() * 1e6;
    conn.close(0, "measured");
    us
}

/// [`TRANSFER`] bytes A→B on one stream of a fresh connection: MiB/s
/// and the path the connection took.
async fn transfer(a: &Endpoint, b: &Keypair, addr: SocketAddr) -> (f64, Path, f64) {
    let conn = tokio::time::timeout(WAIT, a.dial(&b.public(), addr))
        .await
        .expect("dial in time")
        .expect("dial");
    let path = a.path_of(&conn);
    let buf = bytes_of(CHUNK);
    let t = Instant::now();
    let (mut send, mut recv) = conn.quic().open_bi().await.expect("open stream");
    let mut left = TRANSFER;
    while left > 0 {
        let n = left.min(CHUNK);
        send.write_all(&buf[..n]).await.expect("write");
        left -= n;
    }
    send.finish().expect("finish");
    let answer = tokio::time::timeout(WAIT, recv.read_to_end(16))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(answer, [1]);
    let secs = t.elapsed().as_secs_f64();
    conn.close(0, "measured");
    (TRANSFER as f64 / MIB / secs, path, secs)
}

fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A fresh client endpoint A with a new key: it has never spoken to B,
/// so no TLS session can be resumed (a first contact is what is timed).
fn fresh_a() -> (Arc<Keypair>, Endpoint) {
    let key = Arc::new(Keypair::generate());
    let ep = Endpoint::bind(key.clone(), Membership::public(), &config(None)).expect("bind A");
    (key, ep)
}

/// The relayed session between `a` and B, by hand, as the NAT service
/// would open it: R's forwarder learns both ends, both ends register the
/// session. Returns the virtual address A dials B at.
fn relayed_session(
    relay: &Relay,
    sid: u64,
    a: (&Keypair, &Endpoint),
    b: (&Keypair, &Endpoint),
) -> SocketAddr {
    relay
        .paths
        .forwarder()
        .expect("R relays")
        .open(
            sid,
            (a.0.public(), a.1.local_addr().expect("A addr")),
            (b.0.public(), b.1.local_addr().expect("B addr")),
            Instant::now(),
        )
        .expect("session opened");
    b.1.paths().add_session(relay.addr, sid);
    a.1.paths().add_session(relay.addr, sid)
}

fn main() {
    let tck = clk_tck();
    let relay = Relay::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let b_key = Arc::new(Keypair::from_seed(&[3; 32]));
        let b = Arc::new(
            Endpoint::bind(b_key.clone(), Membership::public(), &config(None)).expect("bind B"),
        );
        let b_addr = b.local_addr().expect("B addr");
        serve(b.clone());
        let mut sid = 0x5EED_0000_u64;
        let mut relayed = |a_key: &Keypair, a: &Endpoint| {
            sid += 1;
            relayed_session(&relay, sid, (a_key, a), (&*b_key, &*b))
        };

        // Warm-up: one connection each way (first use of each path).
        let (_, a) = fresh_a();
        handshake(&a, &b_key, b_addr).await;
        let (a_key, a) = fresh_a();
        let virt = relayed(&a_key, &a);
        handshake(&a, &b_key, virt).await;

        let (mut hs_direct, mut hs_relayed) = (Vec::new(), Vec::new());
        for _ in 0..HANDSHAKES {
            let (_, a) = fresh_a();
            hs_direct.push(handshake(&a, &b_key, b_addr).await);
            let (a_key, a) = fresh_a();
            let virt = relayed(&a_key, &a);
            hs_relayed.push(handshake(&a, &b_key, virt).await);
        }
        let (hs_d, hs_r) = (median(&mut hs_direct), median(&mut hs_relayed));

        let (mut tp_direct, mut tp_relayed) = (Vec::new(), Vec::new());
        let (mut relay_ticks, mut relay_secs, mut relay_bytes) = (0u64, 0.0f64, 0u64);
        for _ in 0..RUNS {
            let (_, a) = fresh_a();
            let (mibs, path, _) = transfer(&a, &b_key, b_addr).await;
            assert_eq!(path, Path::Direct);
            tp_direct.push(mibs);

            let (a_key, a) = fresh_a();
            let virt = relayed(&a_key, &a);
            let (t0, bytes0) = (relay.ticks(), relay.relayed_bytes());
            let (mibs, path, secs) = transfer(&a, &b_key, virt).await;
            relay_ticks += relay.ticks() - t0;
            relay_bytes += relay.relayed_bytes() - bytes0;
            relay_secs += secs;
            assert!(matches!(path, Path::Relayed { .. }), "path {path:?}");
            tp_relayed.push(mibs);
        }
        let (tp_d, tp_r) = (median(&mut tp_direct), median(&mut tp_relayed));
        let payload = (RUNS * TRANSFER) as f64;
        let cpu = relay_ticks as f64 / tck;

        println!("relay cost on loopback (quinn over the agent's path socket)\n");
        println!("| measure | direct | relayed | relayed/direct |");
        println!("|---|---|---|---|");
        println!(
            "| handshake, median of {HANDSHAKES} (ms) | {:.3} | {:.3} | {:.2} |",
            hs_d / 1e3,
            hs_r / 1e3,
            hs_r / hs_d
        );
        println!(
            "| throughput, {} MiB on one stream, median of {RUNS} (MiB/s) | {tp_d:.1} | {tp_r:.1} | {:.2} |",
            TRANSFER / (1024 * 1024),
            tp_r / tp_d
        );
        println!();
        println!("| relay CPU (its own thread, {RUNS} relayed transfers) | value |");
        println!("|---|---|");
        println!(
            "| payload relayed | {:.0} MiB ({:.0} MiB of relay frames both ways) |",
            payload / MIB,
            relay_bytes as f64 / MIB
        );
        println!(
            "| relay thread CPU | {cpu:.2} s ({relay_ticks} ticks at {tck} Hz) over {relay_secs:.2} s |"
        );
        println!("| CPU per GiB of payload | {:.2} s |", cpu / (payload / GIB));
        println!(
            "| relay CPU during transfers | {:.0} % of one core |",
            100.0 * cpu / relay_secs
        );
        println!();
        println!(
            "min/max handshake direct {:.3}/{:.3} ms, relayed {:.3}/{:.3} ms; throughput direct {:.1}..{:.1}, relayed {:.1}..{:.1} MiB/s",
            hs_direct[0] / 1e3,
            hs_direct[HANDSHAKES - 1] / 1e3,
            hs_relayed[0] / 1e3,
            hs_relayed[HANDSHAKES - 1] / 1e3,
            tp_direct[0],
            tp_direct[RUNS - 1],
            tp_relayed[0],
            tp_relayed[RUNS - 1],
        );
        println!("command: cargo bench -p streembit-agent --bench relay");
        b.close(0, "done");
    });
    drop(relay);
}
