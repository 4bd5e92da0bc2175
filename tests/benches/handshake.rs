//! Handshake + first request on loopback, in-process with the library.
//!
//! ```sh
//! cargo bench -p streembit-tests --bench handshake
//! ```
//!
//! 1. Latency: one client dials the echo server (full TLS 1.3 handshake
//!    with both Ed25519 certificates checked), sends one 64-byte request on
//!    a new stream and reads the answer, then closes; p50/p99 over many
//!    fresh connections.
//! 2. Throughput on ONE core: server and `CLIENTS` concurrent clients all on
//!    one `current_thread` tokio runtime, so both halves of every handshake
//!    are paid by the same thread.
//!
//! Every dial uses a client endpoint that has never spoken to the server:
//! rustls keeps session tickets by default, so a second dial from the same
//! endpoint may resume and skip both certificate signatures, which is not
//! what a first contact costs.
//! Client endpoints are bound in batches outside the timed sections.
//!
//! Only prints figures; nothing here asserts on time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streembit_agent::identity::Keypair;
use streembit_agent::internals::transport::request;
use streembit_agent::internals::transport::{Endpoint, Membership, TransportConfig};
use streembit_agent::wire::NetworkId;
use streembit_tests::harness::bench::serve_echo;

const WAIT: Duration = Duration::from_secs(10);
const PAYLOAD: [u8; 64] = [0x5a; 64];
/// Fresh connections timed for the latency figures.
const LATENCY_SAMPLES: usize = 1000;
/// Concurrent clients for the throughput figure.
const CLIENTS: usize = 8;
/// Client endpoints bound per throughput round (untimed).
const BATCH: usize = 64;
/// Throughput rounds.
const ROUNDS: usize = 30;

fn network() -> NetworkId {
    "public".parse().expect("network id")
}

fn endpoint(key: Arc<Keypair>) -> Endpoint {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    Endpoint::bind(
        key,
        Membership::public(),
        &TransportConfig::new(loopback, network()),
    )
    .expect("bind loopback endpoint")
}

fn client() -> Endpoint {
    endpoint(Arc::new(Keypair::generate()))
}

/// Dial, one request/answer, close.
async fn one(client: &Endpoint, server: &Keypair, addr: SocketAddr) {
    let conn = client.dial(&server.public(), addr).await.expect("dial");
    let answer = request(&conn, &PAYLOAD, 1024, WAIT)
        .await
        .expect("request")
        .expect("an answer");
    assert_eq!(answer, PAYLOAD, "echo");
    conn.close(0, "done");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64) * p) as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server_key = Arc::new(Keypair::generate());
        let server = Arc::new(endpoint(server_key.clone()));
        let addr = server.local_addr().expect("server addr");
        serve_echo(server.clone());

        // Warm-up: code paths, allocator, the socket.
        for _ in 0..50 {
            one(&client(), &server_key, addr).await;
        }

        // 1. Latency of fresh connections, one at a time.
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        let mut done = 0;
        while done < LATENCY_SAMPLES {
            let batch: Vec<Endpoint> = (0..BATCH.min(LATENCY_SAMPLES - done))
                .map(|_| client())
                .collect();
            for c in &batch {
                let t = Instant::now();
                one(c, &server_key, addr).await;
                samples.push(t.elapsed());
            }
            done += batch.len();
        }
        samples.sort();
        println!(
            "handshake + first request (fresh connection, loopback): \
             p50 {:.0} µs, p99 {:.0} µs, mean {:.0} µs over {} connections",
            us(percentile(&samples, 0.50)),
            us(percentile(&samples, 0.99)),
            us(samples.iter().sum::<Duration>() / samples.len() as u32),
            samples.len()
        );

        // 2. Throughput: CLIENTS tasks share each batch of fresh endpoints.
        let mut timed = Duration::ZERO;
        let mut total = 0usize;
        let mut per_round = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let batch: Vec<Arc<Endpoint>> = (0..BATCH).map(|_| Arc::new(client())).collect();
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let t = Instant::now();
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let batch = batch.clone();
                    let next = next.clone();
                    let server_key = server_key.clone();
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(c) = batch.get(i) else { break };
                            one(c, &server_key, addr).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("client task");
            }
            let took = t.elapsed();
            timed += took;
            total += batch.len();
            per_round.push(batch.len() as f64 / took.as_secs_f64());
        }
        per_round.sort_by(f64::total_cmp);
        println!(
            "handshakes + first request per second, ONE core (current_thread runtime, \
             server and {CLIENTS} concurrent clients on the same thread): \
             {:.0}/s overall, median round {:.0}/s ({total} connections in {ROUNDS} rounds)",
            total as f64 / timed.as_secs_f64(),
            per_round[per_round.len() / 2],
        );

        server.close(0, "bench done");
    });
}
