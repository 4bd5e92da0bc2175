//! Passing revocation lists on, with no server: every member keeps the
//! newest list and hands it to every peer that has an older one.
//!
//! On each new connection, and on each open connection whenever the list
//! held changes, a node *offers* its sequence (`revocations` request,
//! `{"q": seq}`). The answer is the answerer's whole signed list when it
//! is newer, or an empty frame. When the offer is newer than what the
//! answerer holds, the answerer offers back on the same connection, and
//! so pulls the list. A list is applied only if the membership accepts it
//! (this network, enough admin signatures, a higher sequence); applying
//! it changes the held sequence, which makes this node offer it to all its
//! peers in turn: a flood that ends where everyone holds the newest.
//!
//! What this module does not do: judge lists or close connections (the
//! membership and whoever watches its removals do).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coset::cbor::Value;

use super::connections::Connections;
use super::time_sync::{decode, encode, uint_field};
use crate::metrics::{Family, Kind as MetricKind};
use crate::transport::framing::{request, write_frame};
use crate::transport::{Connection, Membership, RevocationError};
use crate::wire::membership::MAX_REVOCATIONS_BYTES;
use crate::wire::{Kind, Session};

/// How long an offer waits for its answer (a whole list may be large).
const OFFER_TIMEOUT: Duration = Duration::from_secs(20);

/// Offers answered at once; more are refused (a peer cannot make us send
/// large lists without bound).
const MAX_ANSWERING: usize = 8;

/// The revocation exchange of one node.
pub(crate) struct RevocationSync {
    session: Session,
    membership: Membership,
    conns: Connections,
    answering: Arc<tokio::sync::Semaphore>,
    offers: AtomicU64,
    lists_sent: AtomicU64,
    applied: AtomicU64,
    /// Lists received and not applied, by reason.
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl RevocationSync {
    pub(crate) fn new(session: Session, conns: Connections) -> Arc<Self> {
        let membership = conns.endpoint().membership().clone();
        Arc::new(Self {
            session,
            membership,
            conns,
            answering: Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING)),
            offers: AtomicU64::new(0),
            lists_sent: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            refused: Mutex::default(),
        })
    }

    /// Whether this network has revocation lists at all (admin keys).
    pub(crate) fn enabled(&self) -> bool {
        self.membership.authority().is_some()
    }

    /// Offers to every open connection each time the held list changes,
    /// until the node goes away.
    pub(crate) fn spawn_flood(self: &Arc<Self>) {
        if !self.enabled() {
            return;
        }
        let me = self.clone();
        let mut updates = self.membership.revocation_updates();
        tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                for conn in me.conns.live() {
                    let me = me.clone();
                    tokio::spawn(async move { me.offer(conn).await });
                }
            }
        });
    }

    /// Offers our sequence on `conn` and applies a newer list if the peer
    /// answers with one.
    pub(crate) async fn offer(self: Arc<Self>, conn: Connection) {
        if !self.enabled() {
            return;
        }
        let peer = conn.peer().key();
        let seq = self.membership.revocation_seq();
        let payload = encode(&[("q", Value::from(seq))]);
        let Ok(env) = self.session.seal(Kind::Revocations, &peer, &payload) else {
            return;
        };
        self.offers.fetch_add(1, Ordering::Relaxed);
        // The answer is the signed list itself (it proves itself), up to
        // the list's own cap, checked before reading it.
        match request(&conn, &env, MAX_REVOCATIONS_BYTES, OFFER_TIMEOUT).await {
            Ok(Some(list)) if !list.is_empty() => self.receive(&list, &peer.to_string()),
            Ok(_) => {}
            Err(e) => tracing::debug!(peer = %peer, error = %e, "revocation offer not answered"),
        }
    }

    /// Answers an offer: our list if newer, else nothing; and pulls theirs
    /// if it is newer than ours.
    pub(crate) async fn serve(
        self: Arc<Self>,
        conn: Connection,
        first: Vec<u8>,
        mut reply: quinn::SendStream,
    ) {
        let peer = conn.peer().key();
        let Ok(_permit) = self.answering.clone().try_acquire_owned() else {
            self.refuse("busy");
            return;
        };
        let theirs = self
            .session
            .open_from(&peer, &first)
            .ok()
            .and_then(|f| f.expect(Kind::Revocations).ok())
            .and_then(|f| decode(f.payload()).ok())
            .and_then(|map| uint_field(&map, "q"));
        let Some(theirs) = theirs else {
            self.refuse("bad_offer");
            return;
        };
        let ours = self.membership.revocations();
        let answer: &[u8] = if ours.seq > theirs { &ours.bytes } else { &[] };
        if write_frame(&mut reply, answer).await.is_ok() {
            let _ = reply.finish();
            if !answer.is_empty() {
                self.lists_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if theirs > ours.seq && self.enabled() {
            tokio::spawn(self.clone().offer(conn));
        }
    }

    fn receive(&self, list: &[u8], from: &str) {
        match self.membership.apply_revocations(list) {
            Ok(newly) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    from,
                    seq = self.membership.revocation_seq(),
                    revoked_now = newly.len(),
                    "revocation list applied"
                );
            }
            // A race with another peer's copy: nothing to do.
            Err(RevocationError::NotNewer { .. }) => {}
            Err(e) => {
                self.refuse(match e {
                    RevocationError::NotSaved { .. } => "not_saved",
                    RevocationError::Untrusted => "untrusted",
                    RevocationError::WrongNetwork(_) => "wrong_network",
                    _ => "malformed",
                });
                tracing::warn!(from, error = %e, "revocation list from a peer refused");
            }
        }
    }

    fn refuse(&self, reason: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// The exchange as metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut refused = Family::new(
            "streembit_revocation_lists_refused",
            "Revocation lists (or offers) from peers not applied, by reason.",
            MetricKind::Counter,
        );
        if let Ok(m) = self.refused.lock() {
            for (reason, n) in m.iter() {
                refused.push(&[("reason", reason)], *n);
            }
        }
        vec![
            Family::single(
                "streembit_revocation_seq",
                "Sequence of the newest revocation list this node holds (0: none).",
                MetricKind::Gauge,
                self.membership.revocation_seq(),
            ),
            Family::single(
                "streembit_revocation_offers",
                "Revocation sequences offered to peers.",
                MetricKind::Counter,
                get(&self.offers),
            ),
            Family::single(
                "streembit_revocation_lists_sent",
                "Revocation lists handed to peers that held an older one.",
                MetricKind::Counter,
                get(&self.lists_sent),
            ),
            Family::single(
                "streembit_revocation_lists_applied",
                "Newer revocation lists received from peers and applied.",
                MetricKind::Counter,
                get(&self.applied),
            ),
            refused,
        ]
    }
}
