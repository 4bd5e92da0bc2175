//! A lossy UDP proxy that delays and drops datagrams: latency and jitter
//! for agents on loopback, where this kernel offers no `netem`.
//!
//! It is not a relay in the agent's sense (`[nat] relay`): the agents do
//! not know it is there, nothing is reserved or authenticated, and it only
//! shapes a link that looks direct to both ends.
//!
//! Each backend (an agent's real UDP port) gets a front address; agents
//! announce their front, so every datagram between two agents crosses the
//! proxy once, in each direction. A datagram from agent x to front i is
//! sent on to agent i from front x, so each agent sees the others at their
//! announced addresses, as on a real network. Each datagram is held for `delay ±
//! jitter` (uniform) and dropped with probability `loss`, independently.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// Link behaviour of the proxy.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Mean one-way delay added.
    pub delay: Duration,
    /// Half-width of the uniform jitter around `delay`.
    pub jitter: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
}

/// A running proxy (stops when dropped, with its runtime).
pub struct LossyProxy {
    _rt: tokio::runtime::Runtime,
    /// Front address of each backend, in order.
    pub fronts: Vec<SocketAddr>,
    /// Datagrams forwarded and dropped so far.
    pub counts: Arc<[AtomicU64; 2]>,
}

/// A tiny shared RNG (splitmix64 over an atomic counter): the proxy needs
/// independent coin flips, not reproducibility.
struct Coin(AtomicU64);

impl Coin {
    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Shared {
    link: Link,
    coin: Coin,
    counts: Arc<[AtomicU64; 2]>,
}

impl Shared {
    /// Sends `data` on `sock` to `to` after the link's delay, unless lost.
    fn forward(self: &Arc<Self>, sock: Arc<UdpSocket>, data: Vec<u8>, to: SocketAddr) {
        if self.coin.unit() < self.link.loss {
            self.counts[1].fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counts[0].fetch_add(1, Ordering::Relaxed);
        let j = self.link.jitter.as_secs_f64();
        let d = (self.link.delay.as_secs_f64() + (self.coin.unit() * 2.0 - 1.0) * j).max(0.0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(d)).await;
            let _ = sock.send_to(&data, to).await;
        });
    }
}

impl LossyProxy {
    /// Starts a proxy with one front per backend.
    pub fn new(backends: &[SocketAddr], link: Link) -> LossyProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("lossy proxy runtime");
        let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let shared = Arc::new(Shared {
            link,
            coin: Coin(AtomicU64::new(seed)),
            counts: counts.clone(),
        });
        let fronts = rt.block_on(async {
            let mut socks = Vec::new();
            for _ in backends {
                socks.push(Arc::new(
                    UdpSocket::bind("127.0.0.1:0").await.expect("front"),
                ));
            }
            let addrs: Vec<SocketAddr> = socks
                .iter()
                .map(|s| s.local_addr().expect("front addr"))
                .collect();
            let socks = Arc::new(socks);
            let backends = Arc::new(backends.to_vec());
            for i in 0..backends.len() {
                tokio::spawn(serve_front(
                    i,
                    socks.clone(),
                    backends.clone(),
                    shared.clone(),
                ));
            }
            addrs
        });
        LossyProxy {
            _rt: rt,
            fronts,
            counts,
        }
    }

    /// Datagrams (forwarded, dropped) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts[0].load(Ordering::Relaxed),
            self.counts[1].load(Ordering::Relaxed),
        )
    }
}

/// Front `i` receives what agent x sends to agent i; it goes on to
/// agent i from front x, so agent i sees x's announced address as the
/// source and its answers (to front x) come back the same way.
async fn serve_front(
    i: usize,
    fronts: Arc<Vec<Arc<UdpSocket>>>,
    backends: Arc<Vec<SocketAddr>>,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = fronts[i].recv_from(&mut buf).await else {
            continue;
        };
        // Only this proxy's own agents are forwarded.
        let Some(x) = backends.iter().position(|b| *b == from) else {
            continue;
        };
        shared.forward(fronts[x].clone(), buf[..n].to_vec(), backends[i]);
    }
}
