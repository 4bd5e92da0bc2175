//! What the core hands back: actions for the shell, events for the
//! application, and the counters behind metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::identity::NodeId;

use super::contact::Contact;
use super::lookup::QueryStats;
use super::message::{Message, StoreRefusal};

/// Names one query started by [`Dht::find_node`](super::Dht::find_node), [`Dht::find_value`](super::Dht::find_value),
/// [`Dht::publish`](super::Dht::publish) or [`Dht::bootstrap`](super::Dht::bootstrap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueryId(pub u64);

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Action {
    /// Seal `message` (kind `message.kind().name()`, recipient `to.id()`)
    /// and send it to `to` (dialing `to.key_bytes()` at `to.addrs()`). If
    /// it cannot be sent, call [`Dht::handle_unreachable`](super::Dht::handle_unreachable) with its rid.
    Send {
        /// The recipient.
        to: Contact,
        /// The payload.
        message: Message,
    },
}

/// Something the application may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Event {
    /// A query finished. Refresh lookups the core starts itself finish
    /// silently.
    QueryFinished {
        /// Which query.
        id: QueryId,
        /// Its target (node id or record key).
        target: NodeId,
        /// What it found.
        outcome: Outcome,
        /// What it cost.
        stats: QueryStats,
        /// Time from start to finish.
        elapsed: Duration,
    },
    /// A record published through [`Dht::publish`](super::Dht::publish) reached half its TTL:
    /// sign a fresh one (higher sequence) and publish it again.
    RepublishDue {
        /// The record key.
        key: NodeId,
    },
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Outcome {
    /// FIND_NODE (and bootstrap): the k closest nodes that answered, and the
    /// target's contact if it answered or a node listed it.
    Nodes {
        /// Closest answering nodes, closest first.
        closest: Vec<Contact>,
        /// The target itself, if found.
        target: Option<Contact>,
    },
    /// FIND_VALUE: the first valid record (verified, key-checked, live).
    Value {
        /// The record bytes, if found.
        record: Option<Vec<u8>>,
    },
    /// PUT: how the STOREs to the k closest went.
    Stored {
        /// Nodes that kept it.
        acks: u32,
        /// Nodes that refused it.
        refused: u32,
        /// Nodes that did not answer.
        failed: u32,
    },
}

/// Counters of what was refused or went missing (for metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Payloads of a kind the DHT does not know.
    pub rejected_unknown_kind: u64,
    /// Payloads over their byte cap.
    pub rejected_oversize: u64,
    /// Payloads that did not decode or broke a list cap.
    pub rejected_malformed: u64,
    /// Replies nobody asked for (unknown rid, or from the wrong peer).
    pub unsolicited_replies: u64,
    /// Replies of the wrong kind for their request.
    pub mismatched_replies: u64,
    /// Records in VALUE replies that failed verification.
    pub bad_records: u64,
    /// STOREs kept.
    pub store_accepted: u64,
    /// STOREs refused, by reason.
    pub store_refused: BTreeMap<StoreRefusal, u64>,
    /// Requests that timed out (each attempt).
    pub timeouts: u64,
    /// Lookup requests not sent: the lookup had asked as many contacts
    /// outside the routing table as one may.
    pub unverified_skipped: u64,
}

impl Counters {
    #[cfg(any(test, feature = "sim"))]
    /// All STOREs refused.
    pub(crate) fn store_refused_total(&self) -> u64 {
        self.store_refused.values().sum()
    }
}
