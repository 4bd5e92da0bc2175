//! Answering the [`super::NodeHandle`]: status, peers, lookups, metrics,
//! hosting and forgetting.

use std::time::Duration;

use crate::api::{near_limit, offset_text, Link, LookupAnswer, Peer, Status};
use crate::dht::{DeviceRecord, Outcome, PeerRecord, QueryStats, MAX_RECORD_WIRE_BYTES};
use crate::identity::PublicKey;
use crate::metrics::{self, Family};
use crate::transport::socket::Path;
use crate::wire::{self, Kind, NetworkId};

use super::handle::Query;
use super::in_flight::Purpose;
use super::metrics::{families, Snapshot};
use super::{Node, NodeError, CLOSE_NOT_ALLOWED, MAX_USER_LOOKUPS};

impl Node {
    pub(super) fn handle_query(&mut self, query: Query) {
        match query {
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Query::Peers(reply) => {
                let peers = self
                    .dht
                    .table()
                    .iter()
                    .map(|c| Peer {
                        key: hex::encode(c.key_bytes()),
                        addrs: c.addrs().iter().map(str::to_owned).collect(),
                        learned: PublicKey::from_bytes(c.key_bytes())
                            .map(|k| self.learned.source(&k).label())
                            .unwrap_or("dht")
                            .to_owned(),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Query::Lookup(key, reply) => {
                if self.in_flight.lookups() >= MAX_USER_LOOKUPS {
                    let _ = reply.send(Err(NodeError::Busy(
                        "too many lookups in flight; try again",
                    )));
                    return;
                }
                // A record we hold (for others, or our own) answers at once:
                // a lookup only asks other nodes.
                let local = self
                    .dht
                    .store()
                    .get(&key.node_id(), self.now())
                    .map(<[u8]>::to_vec)
                    .or_else(|| {
                        (key == self.key.public())
                            .then(|| self.own_record.clone())
                            .flatten()
                    })
                    .or_else(|| self.hosted_record(&key));
                if let Some(record) = local {
                    *self.counters.lookups.entry("found").or_default() += 1;
                    let outcome = Outcome::Value {
                        record: Some(record),
                    };
                    let _ = reply.send(lookup_answer(
                        &key,
                        &outcome,
                        &QueryStats::default(),
                        Duration::ZERO,
                        &self.cfg.network,
                    ));
                    return;
                }
                let started = self.clock.instant();
                let qid = self.dht.find_value(key.node_id(), self.now());
                self.in_flight.insert(
                    qid,
                    Purpose::Lookup {
                        key,
                        reply,
                        started,
                    },
                );
            }
            Query::Host(devices, reply) => {
                self.host(devices);
                let _ = reply.send(());
            }
            Query::Forget(key, reply) => {
                self.conns
                    .drop_peer(&key, CLOSE_NOT_ALLOWED, "removed from the allowlist");
                // Relayed sessions it is an end of, as client or target.
                if let Some(f) = self.conns.endpoint().paths().forwarder() {
                    f.close_peer(&key);
                }
                let known = self.dht.forget(&key.node_id());
                let _ = reply.send(known);
            }
            Query::Introduce(key, addrs, source, reply) => {
                let _ = reply.send(self.introduce(key, &addrs, source));
            }
            Query::Metrics(reply) => {
                let membership = self.conns.endpoint().membership();
                let mut families = families(&Snapshot {
                    node: &self.counters,
                    dht: self.dht.counters(),
                    refusals: membership.refusals(),
                    stream_refusals: membership.stream_refusals(),
                    connections: self.conns.len(),
                    device_connections: self.conns.device_connections(),
                    table_size: self.dht.table().len(),
                    records_stored: self.dht.store().len(),
                    replay_entries: self.session.replay_entries(),
                    dials_refused: self.dial_budget.refused(),
                });
                families.extend(self.nat.families());
                families.extend(self.nat.time().families());
                families.extend(self.nat.revocations().families());
                families.push(learned_family(&self.table_by_source()));
                families.push(self.revocation_record.family());
                let _ = reply.send(families);
            }
        }
    }

    fn status(&self) -> Status {
        let endpoint = self.conns.endpoint();
        Status {
            network: self.cfg.network.to_string(),
            network_kind: if endpoint.membership().is_private() {
                "private"
            } else {
                "public"
            }
            .to_owned(),
            key: self.key.public().to_string(),
            node_id: self.key.node_id().to_string(),
            listen: endpoint
                .local_addr()
                .map(|a| vec![a.to_string()])
                .unwrap_or_default(),
            uptime_s: self
                .clock
                .instant()
                .saturating_duration_since(self.started)
                .as_secs(),
            connections: self.conns.len(),
            table_size: self.dht.table().len(),
            table_by_source: self.table_by_source(),
            records_stored: self.dht.store().len(),
            devices: 0,
            reachability: self.nat.reachability().name().to_owned(),
            clock_offset_ms: self.clock.offset_ms(),
            clock_peers: self.nat.time().peers(),
            warnings: self.warnings(),
            addrs: self.dht.local().addrs().iter().map(str::to_owned).collect(),
            links: self
                .conns
                .live()
                .iter()
                .map(|c| {
                    let (path, addr) = match endpoint.path_of(c) {
                        Path::Direct => ("direct", c.peer().addr()),
                        Path::Relayed { relay } => ("relayed", relay),
                    };
                    Link {
                        key: c.peer().key().to_string(),
                        path: path.to_owned(),
                        addr: addr.to_string(),
                        learned: self.learned.source(&c.peer().key()).label().to_owned(),
                    }
                })
                .collect(),
        }
    }
}

impl Node {
    /// What `status` should say is wrong or near a limit here.
    fn warnings(&self) -> Vec<String> {
        let store = self.dht.store();
        let mut w: Vec<String> = [
            near_limit(
                "records kept for others",
                store.len(),
                store.config().max_records,
                "the store refuses more (counted in streembit_dht_stores_total)",
            ),
            near_limit(
                "connections",
                self.conns.len(),
                self.cfg.max_connections,
                "the least recently used are closed first",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let offset = self.clock.offset_ms();
        if offset.unsigned_abs() > self.cfg.wire.skew_ms {
            w.push(format!(
                "the local clock is {} the network's: fix it (enable NTP, or fit a real-time clock)",
                offset_text(offset)
            ));
        }
        w
    }
}

/// Routing-table contacts by how they were learned, as a gauge.
fn learned_family(counts: &std::collections::BTreeMap<String, usize>) -> Family {
    let mut f = Family::new(
        "streembit_peers_learned",
        "Routing-table contacts by how this agent first learned of them: seed (config), dns (seeds_dns), mdns (LAN announcement) or dht.",
        metrics::Kind::Gauge,
    );
    for (source, n) in counts {
        f.push(&[("source", source)], *n as u64);
    }
    f
}

/// Turns a finished FIND_VALUE into the API's answer.
pub(super) fn lookup_answer(
    key: &PublicKey,
    outcome: &Outcome,
    stats: &QueryStats,
    elapsed: Duration,
    network: &NetworkId,
) -> Result<Option<LookupAnswer>, NodeError> {
    let invalid = NodeError::InvalidRecord;
    let Outcome::Value {
        record: Some(bytes),
    } = outcome
    else {
        return Ok(None);
    };
    // The core verified the record already; open it again to read it.
    let opened = wire::open_published(bytes, network, MAX_RECORD_WIRE_BYTES)
        .map_err(|e| invalid(format!("record failed verification: {e}")))?;
    if opened.sender() != *key {
        return Err(invalid("record is not signed by this key".into()));
    }
    let (kind, addrs, seq, gateway) = match opened.kind() {
        Kind::PeerRecord => {
            let r: PeerRecord = ciborium::from_reader(opened.payload())
                .map_err(|e| invalid(format!("malformed peer record: {e}")))?;
            ("peer", r.addrs, r.seq, None)
        }
        Kind::DeviceRecord => {
            let r = DeviceRecord::open(opened.payload(), key, network)
                .map_err(|e| invalid(format!("device record refused: {e}")))?;
            ("device", r.addrs, r.seq, Some(r.gateway.to_string()))
        }
        other => return Err(invalid(format!("a {other} is not a record"))),
    };
    Ok(Some(LookupAnswer {
        key: key.to_string(),
        kind: kind.into(),
        addrs: addrs.iter().map(str::to_owned).collect(),
        seq,
        gateway,
        rounds: stats.rounds,
        messages: stats.messages,
        elapsed_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::Addrs;
    use crate::identity::Keypair;
    use crate::wire::UnixMillis;

    #[test]
    fn a_found_record_reports_the_time_the_node_spent() {
        let key = Keypair::from_seed(&[5; 32]);
        let network: NetworkId = "public".parse().expect("network id");
        let record = PeerRecord {
            seq: 7,
            ttl_secs: 60,
            addrs: Addrs::new(&["127.0.0.1:7470"]).expect("addrs"),
        };
        let bytes = record
            .seal(&key, &network, UnixMillis(1_800_000_000_000), 1)
            .expect("seal");
        let outcome = Outcome::Value {
            record: Some(bytes),
        };
        let stats = QueryStats {
            rounds: 2,
            messages: 5,
            contacted: 5,
        };
        let answer = lookup_answer(
            &key.public(),
            &outcome,
            &stats,
            Duration::from_micros(1234),
            &network,
        )
        .expect("valid record")
        .expect("found");
        assert_eq!(answer.elapsed_us, 1234);
        assert_eq!(answer.seq, 7);
        // Answers from an agent without the field still decode.
        let mut json = serde_json::to_value(&answer).expect("json");
        json.as_object_mut().expect("object").remove("elapsed_us");
        let old: LookupAnswer = serde_json::from_value(json).expect("decode");
        assert_eq!(old.elapsed_us, 0);
    }
}
