//! Finding out whether this node can be dialed, and publishing how it can
//! be reached: its own addresses, or its relays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::protocol::{NatAnswer, NatRequest};
use super::service::{bump, Nat};
use super::{PeerAddr, ReachMode, Reachability};
use crate::identity::PublicKey;
use crate::node::rpc::Input;
use crate::transport::socket::Path;
use crate::transport::Connection;

/// An `observe` or `reserve` may take this long.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// A `dial_back` may take this long (the third peer's dial within it).
const DIAL_BACK_ASK: Duration = Duration::from_secs(15);
/// How long a NAT may keep a mapping open after we sent to an address
/// (Linux: 30 s unanswered, 120 s once answered; routers vary).
const CONTACT_MEMORY: Duration = Duration::from_secs(180);
/// First test shortly after start (joining opens the first connections).
const FIRST_TEST: Duration = Duration::from_secs(2);
/// Re-test this often once the answer is known.
const RETEST: Duration = Duration::from_secs(600);
/// Retry at most this far apart while the answer is unknown (a few small
/// requests to at most four peers each time).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the task that decides reachability and keeps our published
/// addresses in line with it. `announce`: the configured addresses;
/// `seeds`: tried first as relays.
pub(crate) fn spawn_reachability(
    nat: Arc<Nat>,
    announce: Vec<SocketAddr>,
    seeds: Vec<(PublicKey, SocketAddr)>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut wait = FIRST_TEST;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            let state = match nat.cfg.mode {
                ReachMode::Public => Reachability::Public(announce.clone()),
                ReachMode::Private => Reachability::Private,
                ReachMode::Auto => nat.detect(&announce).await,
            };
            let state = match nat.state.lock() {
                Ok(mut s) => {
                    // An inconclusive re-test keeps what was found before.
                    if state != Reachability::Unknown || *s == Reachability::Unknown {
                        if *s != state {
                            tracing::info!(reachability = state.name(), "reachability");
                        }
                        *s = state;
                    }
                    s.clone()
                }
                Err(_) => state,
            };
            wait = match state {
                Reachability::Public(addrs) => {
                    if nat.cfg.mode == ReachMode::Public {
                        return;
                    }
                    nat.publish(addrs.into_iter().map(PeerAddr::Direct).collect())
                        .await;
                    RETEST
                }
                // Jittered, so that peers testing each other drift apart.
                Reachability::Unknown => {
                    let jitter = rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1000;
                    (wait * 2).min(MAX_BACKOFF) + Duration::from_millis(jitter.into())
                }
                Reachability::Private => {
                    let held = nat.reserve_relays(&seeds).await;
                    if held.is_empty() {
                        (wait * 2).min(Duration::from_secs(30))
                    } else {
                        let addrs = held
                            .iter()
                            .map(|c| PeerAddr::Relay {
                                relay: c.peer().key(),
                                addr: c.peer().addr(),
                            })
                            .collect();
                        nat.publish(addrs).await;
                        // Until a relay goes away (then reserve again at
                        // once), or the periodic re-test.
                        let closed = held.iter().map(|c| Box::pin(c.quic().closed()));
                        tokio::select! {
                            _ = futures_select_all(closed.collect()) => FIRST_TEST,
                            _ = tokio::time::sleep(RETEST) => FIRST_TEST,
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            };
        }
    });
}

/// Resolves when the first of `futs` does.
async fn futures_select_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

impl Nat {
    /// Our addresses from now on, for our peer record and device records.
    async fn publish(&self, addrs: Vec<PeerAddr>) {
        if let Ok(mut r) = self.relays.lock() {
            *r = addrs
                .iter()
                .filter_map(|a| match a {
                    PeerAddr::Relay { relay, addr } => Some((*relay, *addr)),
                    PeerAddr::Direct(_) => None,
                })
                .collect();
        }
        let text = addrs.iter().map(|a| a.to_string()).collect();
        let _ = self.inputs.send(Input::SetAddrs(text)).await;
    }

    /// Peers we hold a direct connection to, to ask.
    fn direct_peers(&self) -> Vec<Connection> {
        let mut peers: Vec<Connection> = self
            .conns
            .live()
            .into_iter()
            .filter(|c| self.endpoint.path_of(c) == Path::Direct)
            .collect();
        peers.truncate(4);
        peers
    }

    /// Asks peers where they see us, and has third peers dial us there.
    pub(super) async fn detect(&self, announce: &[SocketAddr]) -> Reachability {
        let peers = self.direct_peers();
        let mut candidates: Vec<SocketAddr> = Vec::new();
        for p in &peers {
            if let Ok(NatAnswer::Observed { addr }) =
                self.ask(p, &NatRequest::Observe, ASK_TIMEOUT).await
            {
                if let Ok(a) = addr.parse::<SocketAddr>() {
                    if !candidates.contains(&a) {
                        candidates.push(a);
                    }
                }
            }
        }
        // Announced addresses can only be tested on an IP a peer sees us at.
        let seen_ips: Vec<_> = candidates.iter().map(|a| a.ip()).collect();
        for a in announce {
            if seen_ips.contains(&a.ip()) && !candidates.contains(a) {
                candidates.insert(0, *a);
            }
        }
        candidates.truncate(2);
        let exclude: Vec<String> = self
            .conns
            .live()
            .iter()
            .map(|c| c.peer().key().to_string())
            .take(64)
            .collect();
        let (mut confirmed, mut failed) = (Vec::new(), false);
        for cand in candidates {
            for p in &peers {
                let ask = NatRequest::DialBack {
                    addr: cand.to_string(),
                    exclude: exclude.clone(),
                    token: self.dial_token(&p.peer().key(), cand),
                };
                match self.ask(p, &ask, DIAL_BACK_ASK).await {
                    // We sent to the dialer lately (DHT traffic, a dial
                    // for someone else): its dial may have ridden on the
                    // mapping that opened in our NAT. Ask another.
                    Ok(NatAnswer::DialBack {
                        reachable: Some(true),
                        by: Some(by),
                    }) if by.parse().is_ok_and(|a| {
                        self.endpoint.paths().contacted_within(a, CONTACT_MEMORY)
                    }) => {}
                    // A success must say who dialed, or it cannot be checked.
                    Ok(NatAnswer::DialBack {
                        reachable: Some(true),
                        by: Some(_),
                    }) => {
                        bump(&self.counters.dial_back_reachable);
                        confirmed.push(cand);
                        break;
                    }
                    Ok(NatAnswer::DialBack {
                        reachable: Some(false),
                        ..
                    }) => {
                        bump(&self.counters.dial_back_unreachable);
                        failed = true;
                        break;
                    }
                    // No third peer there, or no answer: ask another.
                    _ => {}
                }
            }
        }
        // No test possible (every peer is one we talk to, whose dial could
        // ride on our NAT's mapping): peers seeing us at an address that is
        // none of ours is evidence enough of a NAT.
        let mut own: Vec<_> = announce.iter().map(|a| a.ip()).collect();
        own.extend(self.endpoint.local_addr().ok().map(|a| a.ip()));
        let translated = !seen_ips.is_empty() && !seen_ips.iter().any(|ip| own.contains(ip));
        if !confirmed.is_empty() {
            Reachability::Public(confirmed)
        } else if failed {
            Reachability::Private
        } else if translated {
            tracing::info!(seen = ?seen_ips, "seen at an address not ours, no third peer to test it: behind NAT");
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// Reservations at up to `max_relays` relays: seeds first, then any
    /// peer we are connected to. Returns the connections that hold them.
    async fn reserve_relays(
        self: &Arc<Self>,
        seeds: &[(PublicKey, SocketAddr)],
    ) -> Vec<Connection> {
        let mut candidates: Vec<(PublicKey, SocketAddr)> = seeds.to_vec();
        for c in self.direct_peers() {
            if !candidates.iter().any(|(k, _)| *k == c.peer().key()) {
                candidates.push((c.peer().key(), c.peer().addr()));
            }
        }
        let mut held = Vec::new();
        for (key, addr) in candidates {
            if held.len() >= self.cfg.max_relays.max(1) {
                break;
            }
            let Ok(conn) = self
                .get_or_dial(&key, &key, &[PeerAddr::Direct(addr)])
                .await
            else {
                continue;
            };
            // The relay announces sessions on this connection: it must
            // count as one of ours before the first one arrives.
            if let Ok(mut r) = self.relays.lock() {
                if !r.iter().any(|(k, _)| *k == key) {
                    r.push((key, conn.peer().addr()));
                }
            }
            match self.ask(&conn, &NatRequest::Reserve, ASK_TIMEOUT).await {
                Ok(NatAnswer::Reserved { .. }) => {
                    tracing::info!(relay = %key, addr = %conn.peer().addr(), "relay reservation held");
                    held.push(conn);
                }
                other => {
                    if let Ok(mut r) = self.relays.lock() {
                        r.retain(|(k, _)| *k != key);
                    }
                    tracing::debug!(relay = %key, answer = ?other, "no reservation");
                }
            }
        }
        held
    }
}
