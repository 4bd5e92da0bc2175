//! What the local API asks of the running node, and the JSON it answers
//! with. The shapes here are the API's contract (`docs/api.md`); the CLI
//! decodes the same types.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::identity::PublicKey;

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Network id.
    pub network: String,
    /// `public` or `private`.
    pub network_kind: String,
    /// This agent's public key.
    pub key: String,
    /// Its node id (SHA-256 of the key).
    pub node_id: String,
    /// UDP addresses it listens on.
    pub listen: Vec<String>,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Open QUIC connections.
    pub connections: usize,
    /// Contacts in the routing table.
    pub table_size: usize,
    /// Records stored for others.
    pub records_stored: usize,
    /// Hosted devices.
    pub devices: usize,
    /// `unknown`, `public` (a third peer dialed us back) or `private`
    /// (behind NAT: reached through relays).
    #[serde(default)]
    pub reachability: String,
    /// The addresses our records announce now (`relay:<key>@<ip:port>`
    /// for a relay).
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Open connections and how they reach their peer.
    #[serde(default)]
    pub links: Vec<Link>,
}

/// One open connection, in [`Status::links`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Link {
    /// The key its handshake proved (a node's or a device's).
    pub key: String,
    /// `direct` or `relayed`.
    pub path: String,
    /// The peer's UDP address (direct), or the relay's (relayed).
    pub addr: String,
}

/// One routing-table contact, `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    /// Public key.
    pub key: String,
    /// Addresses it announced.
    pub addrs: Vec<String>,
}

/// A record found by `GET /v1/lookup/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LookupAnswer {
    /// The key looked up.
    pub key: String,
    /// `peer` or `device`.
    pub kind: String,
    /// Addresses in the record.
    pub addrs: Vec<String>,
    /// The record's sequence number.
    pub seq: u64,
    /// For a device record: the hosting gateway's key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway: Option<String>,
    /// Lookup rounds.
    pub rounds: u32,
    /// Messages sent by the lookup.
    pub messages: u32,
    /// Time inside the node from starting the lookup to its end, in
    /// microseconds (excludes the API round trip).
    #[serde(default)]
    pub elapsed_us: u64,
}

/// An API error body: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

/// A question for the node, answered on the enclosed channel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Query {
    /// Status summary.
    Status(oneshot::Sender<Status>),
    /// The routing table's contacts.
    Peers(oneshot::Sender<Vec<Peer>>),
    /// Look a key up in the DHT; `Ok(None)` when no record exists.
    Lookup(
        PublicKey,
        oneshot::Sender<Result<Option<LookupAnswer>, String>>,
    ),
    /// The node's metric families.
    Metrics(oneshot::Sender<Vec<crate::metrics::Family>>),
    /// The devices this gateway hosts now (replaces the previous set).
    Host(
        Vec<std::sync::Arc<crate::identity::Keypair>>,
        oneshot::Sender<()>,
    ),
    /// A peer left the allowlist: close its connection and drop it from
    /// the routing table; answers whether it was known.
    Forget(PublicKey, oneshot::Sender<bool>),
}

/// The sending half the API server holds.
pub type QuerySender = mpsc::Sender<Query>;
