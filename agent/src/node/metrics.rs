//! The node's counters in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::dht::{Counters, StoreRefusal};
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
}

pub(crate) struct Snapshot<'a> {
    pub(crate) node: &'a NodeCounters,
    pub(crate) dht: &'a Counters,
    pub(crate) refusals: &'a Refusals,
    pub(crate) connections: usize,
    pub(crate) table_size: usize,
    pub(crate) records_stored: usize,
    pub(crate) replay_entries: usize,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric.
pub(crate) fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "streembit_connections",
        "gauge",
        "Open QUIC connections.",
    );
    let _ = writeln!(out, "streembit_connections {}", s.connections);
    family(
        &mut out,
        "streembit_connections_opened_total",
        "counter",
        "QUIC connections established.",
    );
    let _ = writeln!(
        out,
        "streembit_connections_opened_total {}",
        s.node.connections_opened
    );
    family(
        &mut out,
        "streembit_handshakes_refused_total",
        "counter",
        "Handshakes refused, by reason.",
    );
    for (reason, n) in s.refusals.snapshot() {
        let _ = writeln!(
            out,
            "streembit_handshakes_refused_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "streembit_envelopes_accepted_total",
        "counter",
        "Envelopes that opened.",
    );
    let _ = writeln!(
        out,
        "streembit_envelopes_accepted_total {}",
        s.node.envelopes_accepted
    );
    family(
        &mut out,
        "streembit_envelopes_rejected_total",
        "counter",
        "Envelopes refused, by reason.",
    );
    for (reason, n) in &s.node.envelopes_rejected {
        let _ = writeln!(
            out,
            "streembit_envelopes_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "streembit_envelopes_rejected_total{{reason=\"sender_mismatch\"}} {}",
        s.node.sender_mismatch
    );
    let d = s.dht;
    family(
        &mut out,
        "streembit_dht_messages_rejected_total",
        "counter",
        "DHT payloads refused after the envelope opened, by reason.",
    );
    for (reason, n) in [
        ("unknown_kind", d.rejected_unknown_kind),
        ("oversize", d.rejected_oversize),
        ("malformed", d.rejected_malformed),
        ("unsolicited_reply", d.unsolicited_replies),
        ("mismatched_reply", d.mismatched_replies),
        ("bad_record", d.bad_records),
    ] {
        let _ = writeln!(
            out,
            "streembit_dht_messages_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "streembit_lookups_total",
        "counter",
        "User lookups, by outcome.",
    );
    for (outcome, n) in &s.node.lookups {
        let _ = writeln!(out, "streembit_lookups_total{{outcome=\"{outcome}\"}} {n}");
    }
    family(
        &mut out,
        "streembit_dht_table_size",
        "gauge",
        "Contacts in the routing table.",
    );
    let _ = writeln!(out, "streembit_dht_table_size {}", s.table_size);
    family(
        &mut out,
        "streembit_records_stored",
        "gauge",
        "Records held for others.",
    );
    let _ = writeln!(out, "streembit_records_stored {}", s.records_stored);
    family(
        &mut out,
        "streembit_dht_stores_total",
        "counter",
        "STOREs, by result.",
    );
    let _ = writeln!(
        out,
        "streembit_dht_stores_total{{result=\"accepted\"}} {}",
        d.store_accepted
    );
    for (reason, n) in &d.store_refused {
        let _ = writeln!(
            out,
            "streembit_dht_stores_total{{result=\"refused_{}\"}} {n}",
            refusal_name(*reason)
        );
    }
    family(
        &mut out,
        "streembit_dht_request_timeouts_total",
        "counter",
        "DHT requests that timed out.",
    );
    let _ = writeln!(out, "streembit_dht_request_timeouts_total {}", d.timeouts);
    family(
        &mut out,
        "streembit_replay_window_entries",
        "gauge",
        "Envelopes remembered by the replay window.",
    );
    let _ = writeln!(out, "streembit_replay_window_entries {}", s.replay_entries);
    out
}

fn refusal_name(r: StoreRefusal) -> &'static str {
    match r {
        StoreRefusal::TooLarge => "too_large",
        StoreRefusal::Invalid => "invalid",
        StoreRefusal::Stale => "stale",
        StoreRefusal::PublisherQuota => "publisher_quota",
        StoreRefusal::Full => "full",
    }
}
