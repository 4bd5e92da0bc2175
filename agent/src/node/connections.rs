//! The connection cache: at most one live connection per peer reused for
//! every request, a bound on how many are open, least recently used closed
//! first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::identity::PublicKey;
use crate::transport::socket::Path;
use crate::transport::{Connection, Endpoint};

/// Application close code: evicted from a full cache.
pub(crate) const CLOSE_EVICTED: u32 = 2;
/// Live connections one peer may hold to us at once.
pub(crate) const MAX_PER_PEER: usize = 4;
/// Live connections one peer may hold to hosted devices at once.
pub(crate) const DEVICE_CONNS_PER_PEER: usize = 64;
/// Application close code: the agent is shutting down.
pub(crate) const CLOSE_SHUTDOWN: u32 = 3;
/// Application close code: the peer left the allowlist.
pub(crate) const CLOSE_NOT_ALLOWED: u32 = 4;

struct Entry {
    conn: Connection,
    last_used: u64,
}

/// A connection to a hosted device, counted until dropped.
pub(crate) struct DeviceSlot {
    inner: Arc<Mutex<Inner>>,
    peer: PublicKey,
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(n) = inner.to_devices.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.to_devices.remove(&self.peer);
                }
            }
        }
    }
}

/// Shared between the node loop and its I/O tasks.
#[derive(Clone)]
pub(crate) struct Connections {
    inner: Arc<Mutex<Inner>>,
    endpoint: Arc<Endpoint>,
    /// Keys whose connections were just dropped: connections to hosted
    /// devices are served outside the cache and close on this.
    expelled: tokio::sync::broadcast::Sender<PublicKey>,
}

struct Inner {
    by_peer: HashMap<PublicKey, Entry>,
    /// Live connections peers made to hosted devices, by peer: not cached
    /// (they carry no DHT traffic) but counted against the same caps.
    to_devices: HashMap<PublicKey, usize>,
    /// Live connections beyond the cached one (both sides dialed at once):
    /// not used for our requests, but closed with the peer's.
    extra: HashMap<PublicKey, Vec<Connection>>,
    max: usize,
    tick: u64,
}

impl Connections {
    pub(crate) fn new(endpoint: Arc<Endpoint>, max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                by_peer: HashMap::new(),
                to_devices: HashMap::new(),
                extra: HashMap::new(),
                max: max.max(1),
                tick: 0,
            })),
            endpoint,
            expelled: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// Tells of every key [`Connections::drop_peer`] drops, for the
    /// connections to hosted devices, which are not in the cache.
    pub(crate) fn expelled(&self) -> tokio::sync::broadcast::Receiver<PublicKey> {
        self.expelled.subscribe()
    }

    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|i| i.by_peer.len()).unwrap_or(0)
    }

    /// Open connections peers made to hosted devices.
    pub(crate) fn device_connections(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.to_devices.values().sum())
            .unwrap_or(0)
    }

    /// The cached live connections.
    pub(crate) fn live(&self) -> Vec<Connection> {
        self.inner
            .lock()
            .map(|i| {
                i.by_peer
                    .values()
                    .filter(|e| e.conn.quic().close_reason().is_none())
                    .map(|e| e.conn.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a live, verified connection (either side dialed) runs to
    /// `addr`: what lets that address ask for a hosted device (see
    /// [`crate::transport::Answer`]). A linear scan of at most the cache's
    /// bound, once per incoming handshake.
    pub(crate) fn holds_address(&self, addr: &SocketAddr) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        let open = |c: &Connection| {
            c.quic().remote_address() == *addr && c.quic().close_reason().is_none()
        };
        inner.by_peer.values().any(|e| open(&e.conn)) || inner.extra.values().flatten().any(open)
    }

    /// A live connection to `peer`, if cached.
    pub(crate) fn cached(&self, peer: &PublicKey) -> Option<Connection> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.by_peer.get_mut(peer)?;
        if entry.conn.quic().close_reason().is_some() {
            inner.by_peer.remove(peer);
            return None;
        }
        entry.last_used = tick;
        Some(entry.conn.clone())
    }

    /// Adds a connection (dialed or accepted). An existing live one for the
    /// same peer stays the cached one and the new one is kept aside, up to
    /// [`MAX_PER_PEER`] in all; past that the new one is closed at once.
    /// Evicts the least recently used peer when full.
    pub(crate) fn insert(&self, conn: Connection) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        let key = conn.peer().key();
        if let Some(old) = inner.by_peer.get(&key) {
            // A direct path replaces a relayed one (hole punching worked);
            // the relayed one then serves what is in flight on it.
            let upgrade = self.endpoint.path_of(&conn) == Path::Direct
                && self.endpoint.path_of(&old.conn) != Path::Direct;
            if upgrade {
                let old = old.conn.clone();
                inner.extra.entry(key).or_default().push(old);
            } else if old.conn.quic().close_reason().is_none()
                && old.conn.quic().stable_id() != conn.quic().stable_id()
            {
                // Keep the older live one in the cache; the new one serves
                // whatever the peer sends on it and closes when idle.
                let extra = inner.extra.entry(key).or_default();
                extra.retain(|c| c.quic().close_reason().is_none());
                if extra.len() + 1 >= MAX_PER_PEER {
                    conn.close(CLOSE_EVICTED, "too many connections from this peer");
                } else {
                    extra.push(conn);
                }
                return;
            }
        }
        if !inner.by_peer.contains_key(&key) && inner.by_peer.len() >= inner.max {
            let lru = inner
                .by_peer
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            if let Some(lru) = lru {
                if let Some(e) = inner.by_peer.remove(&lru) {
                    e.conn.close(CLOSE_EVICTED, "connection cache full");
                }
            }
        }
        inner.by_peer.insert(
            key,
            Entry {
                conn,
                last_used: tick,
            },
        );
    }

    /// Admits a connection a peer made to a hosted device, if the caps
    /// allow: all connections together at most the cache's size, and one
    /// peer's to devices at most [`DEVICE_CONNS_PER_PEER`] (a reader may
    /// read many devices of one gateway, each on a connection proven by
    /// the device's key). The slot is held until the returned guard drops.
    pub(crate) fn admit_to_device(&self, peer: PublicKey) -> Option<DeviceSlot> {
        let mut inner = self.inner.lock().ok()?;
        let total: usize = inner.by_peer.len() + inner.to_devices.values().sum::<usize>();
        let mine = inner.to_devices.get(&peer).copied().unwrap_or(0);
        if total >= inner.max || mine >= DEVICE_CONNS_PER_PEER {
            return None;
        }
        *inner.to_devices.entry(peer).or_insert(0) += 1;
        Some(DeviceSlot {
            inner: self.inner.clone(),
            peer,
        })
    }

    /// Forgets `conn` if it is the cached one for its peer.
    pub(crate) fn remove(&self, conn: &Connection) {
        if let Ok(mut inner) = self.inner.lock() {
            let key = conn.peer().key();
            if let Some(list) = inner.extra.get_mut(&key) {
                list.retain(|c| c.quic().stable_id() != conn.quic().stable_id());
                if list.is_empty() {
                    inner.extra.remove(&key);
                }
            }
            if inner
                .by_peer
                .get(&key)
                .is_some_and(|e| e.conn.quic().stable_id() == conn.quic().stable_id())
            {
                inner.by_peer.remove(&key);
            }
        }
    }

    /// Closes and forgets every connection to `peer`, those made to hosted
    /// devices included (through [`Connections::expelled`]).
    pub(crate) fn drop_peer(&self, peer: &PublicKey, code: u32, reason: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(e) = inner.by_peer.remove(peer) {
                e.conn.close(code, reason);
            }
            for c in inner.extra.remove(peer).unwrap_or_default() {
                c.close(code, reason);
            }
        }
        // Err: no connection to a device is open; nobody to tell.
        let _ = self.expelled.send(*peer);
    }

    /// Closes everything (shutdown).
    pub(crate) fn close_all(&self, code: u32, reason: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            for (_, e) in inner.by_peer.drain() {
                e.conn.close(code, reason);
            }
            for (_, list) in inner.extra.drain() {
                for c in list {
                    c.close(code, reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::transport::{Membership, TransportConfig};

    fn cache(max: usize) -> Connections {
        let key = Arc::new(Keypair::generate());
        let cfg = TransportConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            crate::wire::NetworkId::public(),
        );
        let endpoint = Endpoint::bind(key, Membership::public(), &cfg).expect("bind");
        Connections::new(Arc::new(endpoint), max)
    }

    /// Issue 19, item 6: connections to hosted devices count towards the
    /// total cap and have a per-peer cap of their own.
    #[tokio::test]
    async fn connections_to_devices_count_towards_the_caps() {
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let small = cache(3);
        let held: Vec<DeviceSlot> = (0..3).filter_map(|_| small.admit_to_device(a)).collect();
        assert_eq!(held.len(), 3);
        assert!(small.admit_to_device(b).is_none(), "the total cap is full");
        drop(held);
        assert!(
            small.admit_to_device(b).is_some(),
            "slots come back on drop"
        );

        let large = cache(1000);
        let held: Vec<DeviceSlot> = (0..DEVICE_CONNS_PER_PEER + 1)
            .filter_map(|_| large.admit_to_device(a))
            .collect();
        assert_eq!(held.len(), DEVICE_CONNS_PER_PEER, "one peer's cap");
        assert!(
            large.admit_to_device(b).is_some(),
            "another peer still gets in"
        );
    }
}
