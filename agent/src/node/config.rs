//! The node's settings, as the daemon hands them over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;
use crate::dht;
use crate::identity::PublicKey;
use crate::wire::{NetworkId, WireConfig};

use super::{NatConfig, ReachMode};

/// Node settings.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// Network id (signed into every envelope).
    pub network: NetworkId,
    /// Where the routing table is persisted.
    pub state_dir: PathBuf,
    /// Addresses announced in our peer record.
    pub announce: Vec<SocketAddr>,
    /// Peers to join through.
    pub seeds: Vec<(PublicKey, SocketAddr)>,
    /// DHT tunables.
    pub dht: dht::Config,
    /// Envelope limits.
    pub wire: WireConfig,
    /// Connections kept open at most.
    pub max_connections: usize,
    /// Persist the routing table this often (and at shutdown).
    pub persist_every: Duration,
    /// Lifetime of our peer record.
    pub record_ttl: Duration,
    /// Reachability, relaying and hole punching.
    pub nat: NatConfig,
    /// Where the node reads the time.
    pub clock: Clock,
}

impl NodeConfig {
    /// Defaults for `network` with state in `state_dir`.
    pub(crate) fn new(network: NetworkId, state_dir: PathBuf) -> Self {
        Self {
            network,
            state_dir,
            announce: Vec::new(),
            seeds: Vec::new(),
            dht: dht::Config::default(),
            wire: WireConfig::default(),
            max_connections: 256,
            persist_every: Duration::from_secs(60),
            record_ttl: dht::DEFAULT_TTL,
            nat: NatConfig {
                mode: ReachMode::Auto,
                relay: None,
                max_relays: 2,
            },
            clock: Clock::system(),
        }
    }
}
