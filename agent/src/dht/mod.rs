//! The Kademlia DHT as a sans-IO core.
//!
//! Module map:
//!
//! - [`Dht`] (`core/mod.rs`): the state machine the node shell drives; its
//!   doc is the calling contract. `core/query.rs` runs its queries.
//! - [`Action`], [`Event`], [`Outcome`], [`Counters`] (`output.rs`): what
//!   it hands back.
//! - [`RoutingTable`] (`table.rs`) of k-buckets (`bucket.rs`: LRS order,
//!   replacement cache, ping-before-evict).
//! - `lookup.rs`: one iterative lookup (alpha in flight, optional disjoint
//!   paths) as a state machine object; [`QueryStats`].
//! - [`Message`] (`message.rs`): PING/PONG, FIND_NODE/NODES,
//!   FIND_VALUE/VALUE, STORE/STORED payloads with caps checked while
//!   decoding; [`Contact`] and [`Addrs`] (`contact.rs`).
//! - [`RecordVerifier`] (`record.rs`): the self-certification rules;
//!   [`RecordStore`] (`store.rs`): bounded storage for others' records;
//!   [`PeerRecord`] and [`WireRecordVerifier`] (`peer_record.rs`): records
//!   as `wire` envelopes, and [`Dht::handle_opened`]; [`DeviceRecord`]
//!   (`device_record.rs`): a device's record naming its gateway, with the
//!   gateway's counter-signature; `revocation_record.rs`: the one record
//!   of a whole private network, its revocation list, under a key of the
//!   network's.
//! - [`Time`] and the timer table (`timer.rs`).
//! - [`sim`] (feature `sim`, and in tests): N cores on one virtual clock,
//!   with latency, loss and churn from a seed; the `dht_sim` bench is its
//!   command line.
//!
//! What this module does not do: open sockets, read clocks, draw global
//! randomness, spawn tasks, or seal and open envelopes. The node shell does
//! all of that and hands the core verified senders, decoded payloads,
//! `now` and an RNG. `tests/mod.rs` greps these sources to keep it so.

mod bucket;
mod contact;
mod core;
mod device_record;
mod lookup;
mod message;
mod output;
mod peer_record;
mod record;
mod revocation_record;
mod store;
mod table;
mod timer;

#[cfg(any(test, feature = "sim"))]
// Built for the core's own tests too, which use only part of it: the
// rest is the `dht_sim` bench's (with the `sim` feature).
#[cfg_attr(not(feature = "sim"), allow(dead_code, unreachable_pub))]
pub mod sim;
#[cfg(test)]
mod tests;

use std::time::Duration;

/// Addresses one record or contact holds at most.
pub(crate) use self::contact::MAX_ADDRS;
pub use self::contact::{Addrs, Contact};
pub(crate) use self::core::Dht;
pub(crate) use self::device_record::DeviceRecord;
pub(crate) use self::lookup::QueryStats;
pub(crate) use self::message::MAX_CONTACTS;
pub use self::message::{Message, MessageKind, StoreRefusal, MAX_RECORD_WIRE_BYTES};
pub(crate) use self::output::{Action, Counters, Event, Outcome, QueryId};
pub use self::peer_record::PeerRecord;
pub(crate) use self::peer_record::WireRecordVerifier;
pub(crate) use self::record::{RecordError, DEFAULT_TTL};
#[cfg(any(test, feature = "sim"))]
pub(crate) use self::record::{RecordVerifier, VerifiedRecord};
pub(crate) use self::revocation_record::{revocations_key, seal as seal_revocation_record};
pub(crate) use self::store::StoreConfig;
pub(crate) use self::store::DEFAULT_MAX_DEVICES_PER_GATEWAY;
pub use self::store::DEFAULT_MAX_PER_PUBLISHER;
pub(crate) use self::timer::Time;
#[cfg(test)]
pub(crate) use self::{contact::MAX_ADDR_LEN, record::MAX_TTL, table::RoutingTable};

/// Tunables of the DHT core. The defaults are Kademlia's (k = 20,
/// alpha = 3) and a gateway's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// Bucket size and replication factor.
    pub k: usize,
    /// Requests in flight per lookup path.
    pub alpha: usize,
    /// Disjoint lookup paths (S/Kademlia), 1 to 8; 1 is plain Kademlia.
    pub paths: usize,
    /// Verified contacts kept per bucket to replace dead entries.
    pub replacement_cache: usize,
    /// A full bucket pings its least recently seen entry before evicting it
    /// only if that entry was silent this long; fresher ones are kept
    /// without asking.
    pub ping_after: Duration,
    /// How long a request may stay unanswered.
    pub request_timeout: Duration,
    /// How many times a lookup request is re-sent after a timeout.
    pub request_retries: u8,
    /// Unanswered requests in a row before a contact leaves the table.
    pub max_failures: u8,
    /// A bucket without a lookup into its range for this long is refreshed.
    pub refresh_interval: Duration,
    /// After the bootstrap lookup, refresh every bucket farther than the
    /// closest neighbour (Kademlia's join).
    pub refresh_on_join: bool,
    /// When a bootstrap ends with nobody answering, try the seeds again
    /// after this long.
    pub rejoin_after: Duration,
    /// Limits on records kept for others.
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: 20,
            alpha: 3,
            paths: 1,
            replacement_cache: 4,
            ping_after: Duration::from_secs(300),
            request_timeout: Duration::from_secs(2),
            request_retries: 1,
            max_failures: 2,
            refresh_interval: Duration::from_secs(3600),
            refresh_on_join: true,
            rejoin_after: Duration::from_secs(10),
            store: StoreConfig::default(),
        }
    }
}

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// Peer misbehaved: a payload over its kind's byte cap (checked before
    /// decoding).
    #[error("{kind} payload of {len} bytes exceeds the cap of {max}")]
    Oversize {
        /// Wire name of the kind.
        kind: &'static str,
        /// Payload length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Peer misbehaved: a payload that does not decode, or breaks a list cap.
    #[error("malformed {kind} payload: {reason}")]
    Malformed {
        /// Wire name of the kind.
        kind: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// Peer misbehaved: a kind the DHT does not know.
    #[error("unknown DHT message kind {0:?}")]
    UnknownKind(String),
    /// A record failed self-certification (a peer's, or one we publish).
    #[error("record rejected: {0}")]
    Record(#[from] RecordError),
    /// Local: a persisted routing table that cannot be read.
    #[error("persisted routing table unreadable: {0}")]
    BadTable(String),
    /// Local misuse of the API.
    #[error("API misuse: {0}")]
    LocalMisuse(&'static str),
}
