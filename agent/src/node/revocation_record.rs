//! The node's side of the DHT's copy of the revocation list
//! (`dht/revocation_record.rs`): publish the held list whenever it
//! changes, and look the network's record up after joining, so that a
//! member that was away learns the newest list from whoever holds the
//! record, even before any peer offers it (`revocation_sync.rs`).
//!
//! Counted in `streembit_revocation_dht_total{event}`: `published`,
//! `too_large` (the list does not fit a record; the exchange on connect
//! still carries it), `fetched_applied`, `fetched_not_newer`,
//! `fetched_refused`, `not_found`.
//!
//! What this module does not do: judge lists (the membership does, for
//! the store through the record verifier and here through
//! `apply_revocations`).

use std::collections::BTreeMap;

use super::in_flight::Purpose;
use super::Node;
use crate::dht::{
    revocations_key, seal_revocation_record, Outcome, WireRecordVerifier, MAX_RECORD_WIRE_BYTES,
};
use crate::metrics::{Family, Kind as MetricKind};
use crate::transport::{Membership, RevocationError};
use crate::wire::{self, Kind, NetworkId};

/// Every event label, so each is exported from 0.
const EVENTS: &[&str] = &[
    "published",
    "too_large",
    "fetched_applied",
    "fetched_not_newer",
    "fetched_refused",
    "not_found",
];

/// Counts of the DHT copy's events.
#[derive(Debug)]
pub(super) struct RecordCounters(BTreeMap<&'static str, u64>);

impl Default for RecordCounters {
    fn default() -> Self {
        Self(EVENTS.iter().map(|e| (*e, 0)).collect())
    }
}

impl RecordCounters {
    fn count(&mut self, event: &'static str) {
        *self.0.entry(event).or_default() += 1;
    }

    /// The metric family.
    pub(super) fn family(&self) -> Family {
        let mut f = Family::new(
            "streembit_revocation_dht",
            "The revocation list's copy in the DHT: published (our list stored under the network's key), too_large (a list over one record; passed on by the exchange on connect only), fetched_applied / fetched_not_newer / fetched_refused (the copy found after joining), not_found.",
            MetricKind::Counter,
        );
        for (event, n) in &self.0 {
            f.push(&[("event", event)], *n);
        }
        f
    }
}

/// The record verifier of a node on `network`: on a private network, it
/// also keeps the network's revocation record when the list inside is
/// signed by enough of `membership`'s admins.
pub(super) fn verifier(network: &NetworkId, membership: &Membership) -> WireRecordVerifier {
    let v = WireRecordVerifier::new(network.clone());
    if !membership.is_private() {
        return v;
    }
    let membership = membership.clone();
    v.with_revocations(std::sync::Arc::new(move |list: &[u8]| {
        membership.check_revocations(list).ok()
    }))
}

impl Node {
    /// Publishes the list held (if any) as the network's revocation
    /// record; the core republishes it at half its lifetime.
    pub(super) fn publish_revocations(&mut self) {
        let held = self.conns.endpoint().membership().revocations();
        if held.seq == 0 || held.bytes.is_empty() {
            return;
        }
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let now = self.clock.wall();
        let sealed = match seal_revocation_record(
            &self.key,
            &self.cfg.network,
            &held.bytes,
            now,
            u64::from_le_bytes(nonce),
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot seal the revocation record");
                return;
            }
        };
        if sealed.len() > MAX_RECORD_WIRE_BYTES {
            self.revocation_record.count("too_large");
            tracing::debug!(
                bytes = sealed.len(),
                "revocation list larger than a DHT record: passed on by the exchange on connect only"
            );
            return;
        }
        match self.dht.publish(sealed, now.into(), &mut self.verifier) {
            Ok(q) => {
                self.in_flight.insert(q, Purpose::RevocationPublish);
                self.revocation_record.count("published");
            }
            Err(e) => tracing::warn!(error = %e, "cannot publish the revocation record"),
        }
    }

    /// Looks the network's revocation record up (after joining).
    pub(super) fn fetch_revocations(&mut self) {
        if !self.conns.endpoint().membership().is_private() {
            return;
        }
        let q = self
            .dht
            .find_value(revocations_key(&self.cfg.network), self.now());
        self.in_flight.insert(q, Purpose::RevocationFetch);
    }

    /// The lookup's record, applied if it holds a newer list.
    pub(super) fn on_revocations_found(&mut self, outcome: &Outcome) {
        let Outcome::Value {
            record: Some(bytes),
        } = outcome
        else {
            self.revocation_record.count("not_found");
            return;
        };
        let opened = match wire::open_published(bytes, &self.cfg.network, MAX_RECORD_WIRE_BYTES) {
            Ok(o) if o.kind() == Kind::RevocationRecord => o,
            _ => {
                self.revocation_record.count("fetched_refused");
                return;
            }
        };
        let membership = self.conns.endpoint().membership().clone();
        let event = match membership.apply_revocations(opened.payload()) {
            Ok(newly) => {
                tracing::info!(
                    seq = membership.revocation_seq(),
                    newly_out = newly.len(),
                    "revocation list applied (from the DHT)"
                );
                "fetched_applied"
            }
            Err(RevocationError::NotNewer { .. }) => "fetched_not_newer",
            Err(e) => {
                tracing::warn!(error = %e, "the DHT's revocation record was refused");
                "fetched_refused"
            }
        };
        self.revocation_record.count(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::{RecordError, RecordVerifier, Time};
    use crate::identity::Keypair;
    use crate::transport::Authority;
    use crate::wire::membership::Revocations;
    use crate::wire::UnixMillis;

    fn key(seed: u8) -> Keypair {
        Keypair::from_seed(&[seed; 32])
    }

    fn list(network: &str, seq: u64, admin: &Keypair, revoked: usize) -> Vec<u8> {
        Revocations {
            network: network.into(),
            seq,
            issued: UnixMillis(2),
            revoked: (0..revoked).map(|i| key(100 + i as u8).public()).collect(),
        }
        .sign(&[admin])
    }

    #[test]
    fn only_a_list_the_admins_signed_is_kept_under_the_networks_key() {
        let (admin, member, stranger) = (key(1), key(2), key(3));
        let acme: NetworkId = "acme".parse().expect("network");
        let authority = Authority::new(vec![admin.public()], 1).expect("authority");
        let membership = Membership::private(&acme, [], Some(authority));
        let mut v = verifier(&acme, &membership);
        let now = UnixMillis(10_000);
        let record =
            |list: &[u8]| seal_revocation_record(&member, &acme, list, now, 7).expect("seal");
        let good = v
            .verify(&record(&list("acme", 5, &admin, 3)), Time::from(now))
            .expect("kept");
        assert_eq!(good.seq, 5);
        assert_eq!(good.owner, member.public());
        assert_eq!(good.key(), revocations_key(&acme));
        assert_ne!(good.key(), member.public().node_id());
        // Signed by someone else, or for another network: not kept.
        for bad in [list("acme", 6, &stranger, 1), list("other", 6, &admin, 1)] {
            assert_eq!(
                v.verify(&record(&bad), Time::from(now)),
                Err(RecordError::BadSignature)
            );
        }
        // A public network keeps no such record at all.
        let mut public = verifier(&NetworkId::public(), &Membership::public());
        let on_public = seal_revocation_record(
            &member,
            &NetworkId::public(),
            &list("public", 1, &admin, 1),
            now,
            1,
        )
        .expect("seal");
        assert_eq!(
            public.verify(&on_public, Time::from(now)),
            Err(RecordError::WrongContext)
        );
        // About 90 revoked keys fit a record; more go by the exchange only.
        let fits = record(&list("acme", 7, &admin, 90));
        assert!(fits.len() <= MAX_RECORD_WIRE_BYTES, "{}", fits.len());
        let too_big = record(&list("acme", 8, &admin, 120));
        assert!(too_big.len() > MAX_RECORD_WIRE_BYTES);
    }
}
