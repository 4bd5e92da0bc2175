//! The Streembit edge agent.
//!
//! Module map (arrows of dependency point down the list, never up):
//!
//! - [`cli`]: the `streembit` command line (argument definitions and the
//!   offline commands).
//! - [`daemon`]: `streembit run`: config, the local API, signals, systemd
//!   notifications, around one [`node`].
//! - [`config`]: `agent.toml` and `STREEMBIT_*` environment variables.
//! - [`devices`]: hosted devices: bridge files, running bridges, device
//!   identities and latest readings.
//! - [`node`]: the tokio shell driving the DHT core over the transport.
//! - [`metrics`]: metric families as plain data, encoded for `/metrics`.
//! - [`transport`]: QUIC (quinn) with TLS bound to Ed25519 keys, the
//!   private-network gate, and framing.
//! - [`wire`]: signed envelopes (COSE_Sign1 over CBOR), limits and the
//!   replay window. Every message on the network is one of these.
//! - [`dht`]: the Kademlia DHT as a sans-IO core (routing table, lookups,
//!   self-certifying record store) and its deterministic simulator.
//! - [`journal`]: a bounded, crash-safe sequence log on disk (the
//!   store-and-forward queues and subscribers' inboxes).
//! - [`identity`]: Ed25519 keys, node ids and the keystore on disk.
//!
//! What this crate does not do: talk to devices. The `streembit-bridges`
//! crate turns bus traffic into readings; this crate decides identity and
//! signing.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod devices;
pub mod dht;
pub mod identity;
pub mod journal;
pub mod metrics;
pub mod node;
pub mod transport;
pub mod wire;
