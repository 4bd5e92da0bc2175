//! The node's counters as metric families.

use std::collections::BTreeMap;

use crate::dht::{Counters, StoreRefusal};
use crate::metrics::{Family, Kind};
use crate::transport::Refusals;

/// Counters the node keeps beyond the DHT core's and the gate's.
#[derive(Debug, Default)]
pub(crate) struct NodeCounters {
    /// Envelopes refused by `wire`, by reason.
    pub(crate) envelopes_rejected: BTreeMap<&'static str, u64>,
    /// Envelopes whose signer was not the connection's verified peer.
    pub(crate) sender_mismatch: u64,
    /// Envelopes accepted.
    pub(crate) envelopes_accepted: u64,
    /// User lookups by outcome.
    pub(crate) lookups: BTreeMap<&'static str, u64>,
    /// Connections established (dialed or accepted).
    pub(crate) connections_opened: u64,
    /// Bytes of application frames received (requests and answers).
    pub(crate) app_bytes_received: u64,
    /// Writes to the state directory that failed (disk full, read-only).
    pub(crate) state_write_errors: u64,
    /// Our requests' handshakes refused by peers, by their reason.
    pub(crate) refused_by_peers: BTreeMap<&'static str, u64>,
}

pub(crate) struct Snapshot<'a> {
    pub(crate) node: &'a NodeCounters,
    pub(crate) dht: &'a Counters,
    pub(crate) refusals: &'a Refusals,
    pub(crate) stream_refusals: &'a Refusals,
    pub(crate) connections: usize,
    pub(crate) device_connections: usize,
    pub(crate) table_size: usize,
    pub(crate) records_stored: usize,
    pub(crate) replay_entries: usize,
    pub(crate) dials_refused: u64,
}

/// The node's metric families.
pub(crate) fn families(s: &Snapshot<'_>) -> Vec<Family> {
    let mut refused = Family::new(
        "streembit_handshakes_refused",
        "Handshakes refused, by reason.",
        Kind::Counter,
    );
    for (reason, n) in s.refusals.snapshot() {
        refused.push(&[("reason", reason)], n);
    }
    let mut streams_refused = Family::new(
        "streembit_streams_refused",
        "Streams refused after the handshake (the peer is no longer admitted), by reason.",
        Kind::Counter,
    );
    for (reason, n) in s.stream_refusals.snapshot() {
        streams_refused.push(&[("reason", reason)], n);
    }
    let mut rejected = Family::new(
        "streembit_envelopes_rejected",
        "Envelopes refused, by reason.",
        Kind::Counter,
    );
    for (reason, n) in &s.node.envelopes_rejected {
        rejected.push(&[("reason", reason)], *n);
    }
    rejected.push(&[("reason", "sender_mismatch")], s.node.sender_mismatch);
    let d = s.dht;
    let mut dht_rejected = Family::new(
        "streembit_dht_messages_rejected",
        "DHT payloads refused after the envelope opened, by reason.",
        Kind::Counter,
    );
    for (reason, n) in [
        ("unknown_kind", d.rejected_unknown_kind),
        ("oversize", d.rejected_oversize),
        ("malformed", d.rejected_malformed),
        ("unsolicited_reply", d.unsolicited_replies),
        ("mismatched_reply", d.mismatched_replies),
        ("bad_record", d.bad_records),
    ] {
        dht_rejected.push(&[("reason", reason)], n);
    }
    let mut lookups = Family::new(
        "streembit_lookups",
        "User lookups, by outcome.",
        Kind::Counter,
    );
    for (outcome, n) in &s.node.lookups {
        lookups.push(&[("outcome", outcome)], *n);
    }
    let mut stores = Family::new("streembit_dht_stores", "STOREs, by result.", Kind::Counter)
        .with(&[("result", "accepted")], d.store_accepted);
    for (reason, n) in &d.store_refused {
        let label = format!("refused_{}", refusal_name(*reason));
        stores.push(&[("result", &label)], *n);
    }
    vec![
        Family::single(
            "streembit_connections",
            "Open QUIC connections.",
            Kind::Gauge,
            s.connections as u64,
        ),
        Family::single(
            "streembit_device_connections",
            "Open QUIC connections peers made to hosted devices (not cached; counted \
             towards the same caps).",
            Kind::Gauge,
            s.device_connections as u64,
        ),
        Family::single(
            "streembit_connections_opened",
            "QUIC connections established.",
            Kind::Counter,
            s.node.connections_opened,
        ),
        refused,
        streams_refused,
        Family::single(
            "streembit_app_bytes_received",
            "Bytes of application frames received.",
            Kind::Counter,
            s.node.app_bytes_received,
        ),
        Family::single(
            "streembit_envelopes_accepted",
            "Envelopes that opened.",
            Kind::Counter,
            s.node.envelopes_accepted,
        ),
        rejected,
        dht_rejected,
        lookups,
        Family::single(
            "streembit_dht_table_size",
            "Contacts in the routing table.",
            Kind::Gauge,
            s.table_size as u64,
        ),
        Family::single(
            "streembit_records_stored",
            "Records held for others.",
            Kind::Gauge,
            s.records_stored as u64,
        ),
        stores,
        {
            let mut by_peers = Family::new(
                "streembit_refused_by_peers",
                "Our handshakes peers refused, by the reason their alert gave \
                 (not_admitted: not in their network's membership).",
                Kind::Counter,
            );
            for (why, n) in &s.node.refused_by_peers {
                by_peers.push(&[("reason", why)], *n);
            }
            by_peers
        },
        Family::single(
            "streembit_dials_refused",
            "Dials not made: more unproven keys at one address than the per-address budget allows.",
            Kind::Counter,
            s.dials_refused,
        ),
        Family::single(
            "streembit_dht_unverified_skipped",
            "Lookup requests not sent: the lookup had asked as many contacts outside the routing table as one may.",
            Kind::Counter,
            d.unverified_skipped,
        ),
        Family::single(
            "streembit_dht_request_timeouts",
            "DHT requests that timed out.",
            Kind::Counter,
            d.timeouts,
        ),
        Family::single(
            "streembit_state_write_errors",
            "Writes to the state directory that failed (full, read-only); what was stored before is kept.",
            Kind::Counter,
            s.node.state_write_errors,
        ),
        Family::single(
            "streembit_replay_window_entries",
            "Envelopes remembered by the replay window.",
            Kind::Gauge,
            s.replay_entries as u64,
        ),
    ]
}

fn refusal_name(r: StoreRefusal) -> &'static str {
    match r {
        StoreRefusal::TooLarge => "too_large",
        StoreRefusal::Invalid => "invalid",
        StoreRefusal::Stale => "stale",
        StoreRefusal::PublisherQuota => "publisher_quota",
        StoreRefusal::Full => "full",
        StoreRefusal::NotClosest => "not_closest",
    }
}
