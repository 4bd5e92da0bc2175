//! Dialing a peer by the addresses of its record: directly, or through
//! one of its relays, then trying to upgrade a relayed connection to a
//! hole-punched direct one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::{NatAnswer, NatRequest};
use super::service::{bump, Nat};
use super::PeerAddr;
use crate::identity::PublicKey;
use crate::node::rpc::Input;
use crate::transport::socket::is_virtual;
use crate::transport::{Connection, TransportError};

/// The relay's answer to `connect` may take this long (it asks the target).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(12);
/// The end-to-end handshake through the relay may take this long.
const RELAYED_HANDSHAKE: Duration = Duration::from_secs(15);
/// How long the direct dial of a hole punch may try: a few of QUIC's
/// Initial retransmissions, while the target's probes open its NAT.
const PUNCH_WINDOW: Duration = Duration::from_secs(8);
/// After an upgrade, the relayed connection serves what is in flight on
/// it this long before it is closed.
const RELAYED_GRACE: Duration = Duration::from_secs(10);
/// Application close code: replaced by a direct connection.
pub(crate) const CLOSE_UPGRADED: u32 = 6;

/// The one way anything in the agent dials a peer or a device: over the
/// connection cache, directly or through a relay, with a hole punch
/// behind a relayed connection. A new connection is served by the node
/// from then on like an accepted one.
#[derive(Clone)]
pub(crate) struct Dialer(Arc<Nat>);

impl Dialer {
    pub(crate) fn new(nat: Arc<Nat>) -> Self {
        Self(nat)
    }

    /// A connection proven by `peer`'s key: the cached one, or a new one to
    /// the first of `addrs` that answers. `host` is the node that serves
    /// `peer` (itself, or a device's gateway): relays know nodes, not
    /// devices.
    pub(crate) async fn get_or_dial(
        &self,
        peer: &PublicKey,
        host: &PublicKey,
        addrs: &[PeerAddr],
    ) -> Result<Connection, TransportError> {
        self.0.get_or_dial(peer, host, addrs).await
    }
}

impl Nat {
    /// See [`Dialer::get_or_dial`].
    pub(crate) async fn get_or_dial(
        self: &Arc<Self>,
        peer: &PublicKey,
        host: &PublicKey,
        addrs: &[PeerAddr],
    ) -> Result<Connection, TransportError> {
        if let Some(c) = self.conns.cached(peer) {
            return Ok(c);
        }
        let mut last = TransportError::Local(format!("no address known for {peer}"));
        for addr in addrs {
            let started = self.clock.instant();
            let dialed = match *addr {
                PeerAddr::Direct(a) if peer != host => {
                    match self.host_connected_at(host, a).await {
                        Ok(()) => self.endpoint.dial(peer, a).await,
                        Err(e) => Err(e),
                    }
                }
                PeerAddr::Direct(a) => self.endpoint.dial(peer, a).await,
                PeerAddr::Relay { relay, addr } => self.dial_relayed(peer, host, relay, addr).await,
            };
            match dialed {
                Ok(conn) => {
                    // Set-up times, for the NAT bench (tests/benches/nat.rs).
                    let elapsed_us = self
                        .clock
                        .instant()
                        .saturating_duration_since(started)
                        .as_micros() as u64;
                    tracing::debug!(peer = %peer, addr = %addr, elapsed_us, "connected");
                    self.adopt(&conn, peer == host).await;
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Makes sure a verified connection to `host` runs from this endpoint
    /// to `addr`: a gateway answers as one of its devices only on such an
    /// address (`transport::Answer`), so a device is never dialed cold.
    async fn host_connected_at(
        &self,
        host: &PublicKey,
        addr: SocketAddr,
    ) -> Result<(), TransportError> {
        if self
            .conns
            .cached(host)
            .is_some_and(|c| c.quic().remote_address() == addr)
        {
            return Ok(());
        }
        let conn = self.endpoint.dial(host, addr).await?;
        self.adopt(&conn, true).await;
        Ok(())
    }

    /// A connection we dialed joins the cache and the node's serving, and
    /// may be asked the time.
    async fn adopt(&self, conn: &Connection, to_a_node: bool) {
        self.conns.insert(conn.clone());
        // A node (not a device's name) is offered our revocation sequence.
        if to_a_node {
            tokio::spawn(self.revocations().clone().offer(conn.clone()));
        }
        let _ = self.inputs.send(Input::Connected(conn.clone())).await;
        self.learn_time(conn).await;
    }

    /// Asks a newly connected peer for its time while too few have
    /// answered. With none yet, the dial waits for the answer: the first
    /// request it carries must already bear the network's time, or a node
    /// whose clock is off would be refused as stale by everyone.
    async fn learn_time(&self, conn: &Connection) {
        let time = self.time().clone();
        if !time.wants_more() {
            return;
        }
        if time.peers() == 0 {
            time.sync_with(conn).await;
        } else {
            let conn = conn.clone();
            tokio::spawn(async move { time.sync_with(&conn).await });
        }
    }

    /// The relayed connection to `peer`, hosted by `host`, which holds a
    /// reservation at `relay`; starts the hole punch beside it.
    async fn dial_relayed(
        self: &Arc<Self>,
        peer: &PublicKey,
        host: &PublicKey,
        relay: PublicKey,
        relay_addr: SocketAddr,
    ) -> Result<Connection, TransportError> {
        if relay == self.endpoint.key() {
            // We are its relay: its reservation keeps a mapping open in its
            // NAT towards us, so a dial to where that connection comes from
            // gets in.
            let held = self.reservation(host).ok_or_else(|| {
                TransportError::Local(format!("{host} holds no reservation here"))
            })?;
            let addr = held.quic().remote_address();
            return tokio::time::timeout(CONNECT_TIMEOUT, self.endpoint.dial(peer, addr))
                .await
                .map_err(|_| TransportError::TimedOut)?;
        }
        bump(&self.counters.relayed_dials);
        let result = self.relayed(peer, host, relay, relay_addr).await;
        if result.is_err() {
            bump(&self.counters.relayed_dial_failures);
        }
        result
    }

    async fn relayed(
        self: &Arc<Self>,
        peer: &PublicKey,
        host: &PublicKey,
        relay: PublicKey,
        relay_addr: SocketAddr,
    ) -> Result<Connection, TransportError> {
        let to_relay =
            Box::pin(self.get_or_dial(&relay, &relay, &[PeerAddr::Direct(relay_addr)])).await?;
        let ask = NatRequest::Connect {
            target: host.to_string(),
        };
        let (sid, target_seen) = match self.ask(&to_relay, &ask, CONNECT_TIMEOUT).await {
            Ok(NatAnswer::Session { sid, addr }) => (sid, addr.parse::<SocketAddr>().ok()),
            Ok(NatAnswer::Error { code, message }) => {
                return Err(TransportError::Handshake(format!(
                    "relay {relay} refused ({code}): {message}"
                )))
            }
            Ok(other) => {
                return Err(TransportError::Handshake(format!(
                    "relay {relay} answered {other:?}"
                )))
            }
            Err(e) => return Err(TransportError::Handshake(format!("relay {relay}: {e}"))),
        };
        let paths = self.endpoint.paths().clone();
        let virt = paths.add_session(to_relay.quic().remote_address(), sid);
        let conn =
            match tokio::time::timeout(RELAYED_HANDSHAKE, self.endpoint.dial(peer, virt)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    paths.remove_session(&virt);
                    return Err(e);
                }
                Err(_) => {
                    paths.remove_session(&virt);
                    return Err(TransportError::TimedOut);
                }
            };
        tracing::info!(peer = %peer, relay = %relay, "connected through relay");
        let watched = conn.clone();
        tokio::spawn(async move {
            watched.quic().closed().await;
            paths.remove_session(&virt);
        });
        if let Some(target) = target_seen.filter(|a| !is_virtual(a)) {
            tokio::spawn(
                self.clone()
                    .upgrade(*peer, target, conn.clone(), self.clock.instant()),
            );
        }
        Ok(conn)
    }

    /// The hole punch: dials `peer` at the address the relay sees its host
    /// at, while the host's probes open its NAT towards us. A direct
    /// connection then replaces the relayed one in the cache; otherwise the
    /// relayed one stays (a symmetric NAT maps each destination apart, so
    /// the relay's view is no use to us).
    async fn upgrade(
        self: Arc<Self>,
        peer: PublicKey,
        target: SocketAddr,
        relayed: Connection,
        started: Instant,
    ) {
        let direct = tokio::time::timeout(PUNCH_WINDOW, self.endpoint.dial(&peer, target)).await;
        match direct {
            Ok(Ok(conn)) => {
                bump(&self.counters.holepunch_direct);
                let elapsed_us = self
                    .clock
                    .instant()
                    .saturating_duration_since(started)
                    .as_micros() as u64;
                tracing::info!(peer = %peer, addr = %target, elapsed_us, "hole punched: direct connection");
                self.conns.insert(conn.clone());
                let _ = self.inputs.send(Input::Connected(conn)).await;
                tokio::time::sleep(RELAYED_GRACE).await;
                relayed.close(CLOSE_UPGRADED, "direct path found");
            }
            _ => {
                bump(&self.counters.holepunch_failed);
                tracing::info!(peer = %peer, addr = %target, "hole punch failed: staying relayed");
            }
        }
    }
}
