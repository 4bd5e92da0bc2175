//! The Streembit edge agent.
//!
//! Module map, highest layer first (arrows of dependency point down the
//! list, never up; `tests/layering.rs` checks it on the sources):
//!
//! - [`cli`]: the `streembit` command line, a thin client of the daemon's
//!   local API (plus the offline commands: keys, sign, verify).
//! - `daemon`: `streembit run`: config, the local API server, signals,
//!   systemd notifications, the local MQTT broker, around one node.
//! - `devices`: hosted devices (bridges, their identities, readings sealed
//!   by each device's key, subscriptions) and this agent as a client of
//!   devices anywhere.
//! - `discovery`: where peers are, besides the DHT: seeds from the
//!   config and from DNS, and agents announced on the LAN (mDNS).
//! - `node`: the tokio shell driving the DHT core over the transport; NAT
//!   traversal; the one dialer.
//! - `transport`: QUIC (quinn) with TLS bound to Ed25519 keys, and the
//!   network's membership, the one place admission is decided.
//! - `dht`: the Kademlia DHT as a sans-IO core (routing table, lookups,
//!   self-certifying record store) and its deterministic simulator.
//! - [`clock`]: the one place the time is read.
//! - [`wire`]: signed envelopes (COSE_Sign1 over CBOR), limits, the replay
//!   window, and [`wire::Session`] for point-to-point exchanges.
//! - `journal`: a bounded, crash-safe sequence log on disk (the
//!   store-and-forward queues and subscribers' inboxes).
//! - `metrics`: metric families as plain data, encoded for `/metrics`.
//! - `state_file`: small files in the state directory, written atomically.
//! - [`api`]: the local API's JSON shapes (a leaf: no layer owns them).
//! - [`identity`]: Ed25519 keys, node ids and the keystore on disk.
//!
//! The public surface is what others build on: the command line, the
//! API's shapes, identities, the wire format (any COSE library can check
//! our envelopes; this crate's [`wire`] is one), and the clock. Everything
//! else is private. Tests, benches and fuzz targets reach what they need
//! through [`internals`], which carries no promise.
//!
//! What this crate does not do: talk to devices. The `streembit-bridges`
//! crate turns bus traffic into readings; this crate decides identity and
//! signing.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod clock;
mod daemon;
mod devices;
mod dht;
mod discovery;
pub mod identity;
mod journal;
mod metrics;
mod node;
mod state_file;
mod transport;
pub mod wire;

/// What tests, benches and fuzz targets use of the agent's insides, so
/// that they exercise the real code. Not an API: anything here may change
/// with any commit.
#[doc(hidden)]
pub mod internals {
    /// The DHT core, its messages and records (and, with the `sim`
    /// feature, its simulator).
    pub mod dht {
        #[cfg(feature = "sim")]
        pub use crate::dht::sim;
        pub use crate::dht::{
            Addrs, Contact, Message, MessageKind, PeerRecord, StoreRefusal,
            DEFAULT_MAX_PER_PUBLISHER, MAX_RECORD_WIRE_BYTES,
        };
    }

    /// The QUIC endpoint, its framing, relay and socket.
    pub mod transport {
        pub use crate::transport::cert::certified_key;
        pub use crate::transport::framing::{read_frame, request, write_frame};
        pub use crate::transport::relay::RelayLimits;
        pub use crate::transport::socket::{Path, Paths};
        pub use crate::transport::{
            alpn_for, Answer, Authority, Connection, Endpoint, Membership, TransportConfig,
            TransportError,
        };
    }

    /// NAT traversal's messages.
    pub mod node {
        pub use crate::node::{
            nat_decode as decode, nat_encode as encode, NatAnswer, NatRequest, PeerAddr,
        };
    }

    /// Readings as the devices layer seals and checks them; the
    /// store-and-forward queues.
    pub mod devices {
        pub use crate::devices::{
            next_seq, seal_reading, verify_reading, verify_readings, Outboxes,
        };
    }

    /// The daemon's config and the local API's route parser.
    pub mod daemon {
        pub use crate::daemon::config::{AgentConfig, DEFAULT_CONFIG_PATH};
        pub use crate::daemon::routes::{parse, Route};
    }
}
