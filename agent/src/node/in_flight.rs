//! The node's DHT queries in flight, each tagged with what it is for, and
//! what the node does when the core says one finished or a record is due
//! for republishing.
//!
//! One map instead of a field per purpose (libp2p-kad's `QueryInfo`): a
//! finished query is routed by a `match` on its [`Purpose`], and a new
//! purpose is one variant, not a new field and another branch of an
//! if/else chain.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{queries, Node, NodeError, NodeEvent, REPUBLISH_SPACING};
use crate::api::LookupAnswer;
use crate::dht::{revocations_key, Addrs, Event, Outcome, PeerRecord, QueryId};
use crate::identity::PublicKey;

/// The longest wait between republishes of a record held too narrowly.
pub(super) const MAX_REPUBLISH_SPACING: Duration = Duration::from_secs(600);

/// How republishing an under-replicated record backs off.
#[derive(Debug, Clone, Copy)]
pub(super) struct Republish {
    /// Wait this long after the last publish.
    pub(super) spacing: Duration,
    /// The holders wanted when the spacing last started over.
    pub(super) wanted: u32,
}

impl Default for Republish {
    fn default() -> Self {
        Self {
            spacing: REPUBLISH_SPACING,
            wanted: 0,
        }
    }
}

/// Where a user lookup's answer goes.
pub(super) type LookupReply = oneshot::Sender<Result<Option<LookupAnswer>, NodeError>>;

/// What a query in flight is for.
pub(super) enum Purpose {
    /// Joining through the seeds (or the restored table), at start.
    Bootstrap,
    /// Joining through a peer heard of outside the DHT (`learned.rs`);
    /// `was_alone`: the table was empty when it started.
    Introduced { was_alone: bool },
    /// Storing our own peer record of sequence `seq`.
    Publish { seq: u64 },
    /// Storing the network's revocation record (`revocation_record.rs`).
    RevocationPublish,
    /// Looking the network's revocation record up, after joining.
    RevocationFetch,
    /// Storing a hosted device's record.
    DevicePublish(PublicKey),
    /// A lookup someone asked for through a [`super::NodeHandle`].
    Lookup {
        key: PublicKey,
        reply: LookupReply,
        started: Instant,
    },
}

/// Queries in flight, by id.
#[derive(Default)]
pub(super) struct InFlight(HashMap<QueryId, Purpose>);

impl InFlight {
    pub(super) fn insert(&mut self, id: QueryId, purpose: Purpose) {
        self.0.insert(id, purpose);
    }

    fn any(&self, f: impl Fn(&Purpose) -> bool) -> bool {
        self.0.values().any(f)
    }

    pub(super) fn joining(&self) -> bool {
        self.any(|p| matches!(p, Purpose::Bootstrap))
    }

    pub(super) fn device_publishes(&self) -> usize {
        self.0
            .values()
            .filter(|p| matches!(p, Purpose::DevicePublish(_)))
            .count()
    }

    pub(super) fn publishing(&self) -> bool {
        self.any(|p| matches!(p, Purpose::Publish { .. }))
    }

    pub(super) fn lookups(&self) -> usize {
        self.0
            .values()
            .filter(|p| matches!(p, Purpose::Lookup { .. }))
            .count()
    }

    /// Forgets our peer record's publication in flight: its completion is
    /// then ignored (it carried addresses no longer ours).
    fn abandon_publish(&mut self) {
        self.0.retain(|_, p| !matches!(p, Purpose::Publish { .. }));
    }
}

impl Node {
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::QueryFinished {
                id, outcome, stats, ..
            } => match self.in_flight.0.remove(&id) {
                Some(Purpose::Bootstrap) => {
                    let contacts = self.dht.table().len();
                    tracing::info!(contacts, "joined");
                    // Persist right away: a crash before the first periodic
                    // save would otherwise lose what joining taught us.
                    self.persist();
                    let _ = self.events.try_send(NodeEvent::Joined { contacts });
                    self.publish_record();
                    self.publish_all_devices();
                    self.fetch_revocations();
                }
                // An agent alone until now has just joined: as after a
                // bootstrap. One that joins another group of peers (two
                // LAN islands meeting) stores its own record there too;
                // device records follow on their republish schedule.
                Some(Purpose::Introduced { was_alone }) => {
                    let contacts = self.dht.table().len();
                    if contacts == 0 {
                        return;
                    }
                    tracing::info!(contacts, "joined through a peer found outside the DHT");
                    self.persist();
                    if was_alone {
                        let _ = self.events.try_send(NodeEvent::Joined { contacts });
                        self.publish_all_devices();
                    }
                    self.publish_record();
                }
                Some(Purpose::RevocationPublish) => {}
                Some(Purpose::RevocationFetch) => self.on_revocations_found(&outcome),
                Some(Purpose::Publish { seq }) => {
                    if let Outcome::Stored { acks, .. } = &outcome {
                        self.published_acks = *acks;
                        tracing::info!(seq, acks, "peer record published");
                        let _ = self
                            .events
                            .try_send(NodeEvent::Published { seq, acks: *acks });
                    }
                }
                Some(Purpose::DevicePublish(device)) => {
                    if let Outcome::Stored { acks, .. } = &outcome {
                        tracing::debug!(device = %device, acks, "device record published");
                        let _ = self.events.try_send(NodeEvent::DevicePublished {
                            device,
                            acks: *acks,
                        });
                    }
                    self.pump_device_publishes();
                }
                Some(Purpose::Lookup {
                    key,
                    reply,
                    started,
                }) => {
                    let elapsed = self.clock.instant().saturating_duration_since(started);
                    let mut answer =
                        queries::lookup_answer(&key, &outcome, &stats, elapsed, &self.cfg.network);
                    // Nothing found while peers refused our handshakes: the
                    // refusal, not "no record", is what the asker must see
                    // (a member removed or revoked).
                    if let (Ok(None), Some((at, why))) = (&answer, &self.last_refusal) {
                        if *at >= started {
                            answer = Err(NodeError::Transport(format!("refused by peers: {why}")));
                        }
                    }
                    let label = match &answer {
                        Ok(Some(_)) => "found",
                        Ok(None) => "not_found",
                        Err(_) => "invalid",
                    };
                    *self.counters.lookups.entry(label).or_default() += 1;
                    let _ = reply.send(answer);
                }
                None => {}
            },
            Event::RepublishDue { key } if key == self.key.node_id() => self.publish_record(),
            Event::RepublishDue { key } if key == revocations_key(&self.cfg.network) => {
                self.publish_revocations()
            }
            Event::RepublishDue { key } => {
                let device = self.hosted.keys().find(|k| k.node_id() == key).copied();
                if let Some(device) = device {
                    self.publish_device(&device);
                }
            }
        }
    }

    /// Seals a fresh peer record (higher sequence) and publishes it.
    pub(super) fn publish_record(&mut self) {
        if self.in_flight.publishing() {
            return;
        }
        let now_ms = self.clock.wall();
        self.record_seq = self.record_seq.saturating_add(1).max(now_ms.0);
        let record = PeerRecord {
            seq: self.record_seq,
            ttl_secs: self.cfg.record_ttl.as_secs(),
            addrs: self.dht.local().addrs().clone(),
        };
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let sealed = record.seal(
            &self.key,
            &self.cfg.network,
            now_ms,
            u64::from_le_bytes(nonce),
        );
        match sealed.map_err(|e| e.to_string()).and_then(|bytes| {
            self.own_record = Some(bytes.clone());
            self.dht
                .publish(bytes, now_ms.into(), &mut self.verifier)
                .map_err(|e| e.to_string())
        }) {
            Ok(q) => {
                self.in_flight.insert(
                    q,
                    Purpose::Publish {
                        seq: self.record_seq,
                    },
                );
                self.last_publish = Some(self.clock.instant());
            }
            Err(e) => tracing::warn!(error = %e, "cannot publish our peer record"),
        }
    }

    /// Our addresses changed (found behind NAT, relays changed): records
    /// with the new ones replace the old at once.
    pub(super) fn set_addrs(&mut self, addrs: &[String]) {
        let Ok(addrs) = Addrs::new(addrs) else {
            tracing::warn!(?addrs, "addresses over the record's limits ignored");
            return;
        };
        if addrs == *self.dht.local().addrs() {
            return;
        }
        tracing::info!(?addrs, "announcing new addresses");
        let text = addrs.iter().map(str::to_owned).collect();
        let _ = self.events.try_send(NodeEvent::Announcing { addrs: text });
        self.dht.set_local_addrs(addrs);
        // A publish in flight carries the old addresses: start over.
        self.in_flight.abandon_publish();
        self.publish_record();
        self.publish_all_devices();
    }

    /// Until our record is held by as many nodes as we know (up to k),
    /// publish again as the table grows. The spacing doubles with each
    /// try that leaves it short (up to [`MAX_REPUBLISH_SPACING`]) and starts
    /// over when the table grows or the record is held widely enough: a
    /// peer that ignores STOREs cannot keep every node near it publishing
    /// every 2 s for ever.
    pub(super) fn maybe_republish(&mut self) {
        // Also the backstop of the device pace: a publication ends only
        // with its query, and every query ends (RPC timeouts).
        self.pump_device_publishes();
        if self.in_flight.joining() || self.in_flight.publishing() {
            return;
        }
        let want = self.dht.table().len().min(self.cfg.dht.k) as u32;
        if self.published_acks >= want || want > self.republish.wanted {
            self.republish = Republish {
                spacing: REPUBLISH_SPACING,
                wanted: want,
            };
        }
        let now = self.clock.instant();
        let spaced = self
            .last_publish
            .is_none_or(|t| now.saturating_duration_since(t) >= self.republish.spacing);
        if self.published_acks < want && spaced {
            self.publish_record();
            // Device records went out with the same (smaller) view.
            self.publish_all_devices();
            self.republish.spacing = (self.republish.spacing * 2).min(MAX_REPUBLISH_SPACING);
        }
    }
}
