//! Running queries: the lookup state machines, the requests they have in
//! flight, and what happens when answers, timeouts and failures arrive.

use crate::identity::NodeId;

use super::super::contact::Contact;
use super::super::lookup::{Lookup, Next};
use super::super::message::Message;
use super::super::output::{Event, Outcome, QueryId};
use super::super::record::{self, RecordVerifier};
use super::super::timer::Time;
use super::Dht;

/// Who started a query: only the application's queries (and bootstraps)
/// end in an [`Event`]; refreshes are the core's own business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    User,
    Bootstrap,
    Refresh,
}

/// What a query asks each node, and what it does when the lookup ends.
/// A PUT is a FIND_NODE whose end starts STOREs to the k closest.
#[derive(Clone, Debug)]
pub(super) enum Kind {
    FindNode,
    FindValue,
    Put(Vec<u8>),
}

/// Holders of a record a FIND_VALUE hears before it ends (it also ends
/// when it runs out of nodes to ask, or at `Query::settle_by`): the
/// highest sequence among them wins, so one node on the path cannot roll a
/// record back to an older one that has not expired.
///
/// What it costs: once one holder has answered, the query sends no new
/// request while others are in flight (alpha = 3 go out per round, and
/// near the key most of them hold the record), so a second holder usually
/// costs no message, only the wait for an answer already on its way. Only
/// when none of those held it does the query ask one more node at a time.
pub(super) const VALUE_HOLDERS: u32 = 2;

/// The shortest wait for a second holder once the first has answered; the
/// wait is otherwise as long as the first answer took, and never longer
/// than a request's timeout.
const MIN_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Contacts outside the routing table one lookup may ask. An honest lookup
/// in a 10,000-node network asks about 15 (docs/dht.md); this only stops a
/// lookup from being steered at a list of made-up contacts.
pub(super) const MAX_UNVERIFIED_PER_LOOKUP: u32 = 40;

/// A PUT's second phase: STOREs sent, and how they went so far.
#[derive(Clone, Debug, Default)]
pub(super) struct Storing {
    pub(super) pending: u32,
    pub(super) acks: u32,
    pub(super) refused: u32,
    pub(super) failed: u32,
}

/// A running query: the lookup state machine plus what surrounds it.
#[derive(Clone, Debug)]
pub(super) struct Query {
    pub(super) lookup: Lookup,
    pub(super) kind: Kind,
    pub(super) origin: Origin,
    pub(super) started: Time,
    /// The highest-sequence valid record found so far, and its sequence.
    pub(super) value: Option<(u64, Vec<u8>)>,
    /// Holders that answered FIND_VALUE with a valid record.
    pub(super) holders: u32,
    /// With one holder heard: when the query stops waiting for a second
    /// and returns what it has.
    pub(super) settle_by: Option<Time>,
    /// Requests sent to contacts not in the routing table (learned from
    /// NODES replies, unverified until they answer).
    pub(super) unverified: u32,
    pub(super) storing: Option<Storing>,
}

/// Why a request was sent, so its reply or timeout reaches the right
/// state machine.
#[derive(Clone, Copy, Debug)]
pub(super) enum Purpose {
    Lookup { qid: QueryId, path: u8 },
    Store { qid: QueryId },
    Evict,
}

/// An outstanding request, keyed by its rid in `Dht::requests`. A reply
/// counts only if it comes from `to` (the verified sender) with that rid.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub(super) to: Contact,
    pub(super) deadline: Time,
    pub(super) purpose: Purpose,
    pub(super) attempt: u8,
}

impl Dht {
    /// Starts a lookup from our closest contacts (plus `extra`, e.g.
    /// seeds) and sends its first requests.
    pub(super) fn start(
        &mut self,
        target: NodeId,
        kind: Kind,
        origin: Origin,
        extra: Vec<Contact>,
        now: Time,
    ) -> QueryId {
        let mut initial = self.table.closest(&target, self.cfg.k);
        for s in extra {
            if !initial.iter().any(|c| c.id() == s.id()) {
                initial.push(s);
            }
        }
        self.table.touch(&target, now);
        let lookup = Lookup::new(
            target,
            *self.local.id(),
            self.cfg.k,
            self.cfg.alpha,
            self.cfg.paths,
            initial,
        );
        let qid = QueryId(self.next_qid);
        self.next_qid += 1;
        self.queries.insert(
            qid,
            Query {
                lookup,
                kind,
                origin,
                started: now,
                value: None,
                holders: 0,
                settle_by: None,
                unverified: 0,
                storing: None,
            },
        );
        self.drive(qid, now);
        self.rearm();
        qid
    }

    /// Sends what the query wants to send; finishes it when it is done.
    pub(super) fn drive(&mut self, qid: QueryId, now: Time) {
        loop {
            let Some(q) = self.queries.get_mut(&qid) else {
                return;
            };
            if let Some(s) = &q.storing {
                if s.pending == 0 {
                    self.finish(qid, now);
                }
                return;
            }
            // A record in hand: wait for the answers already on their way
            // before asking anyone new, then ask one node at a time.
            let settling = matches!(q.kind, Kind::FindValue) && q.value.is_some();
            if settling && !q.lookup.is_finished() && q.lookup.in_flight() > 0 {
                return;
            }
            match q.lookup.next() {
                Next::Query { contact, path } => {
                    if !self.table.contains(contact.id()) {
                        // A contact somebody told us about: anyone can list
                        // a victim's address under made-up keys, so each
                        // lookup dials only so many (the shell also limits
                        // dials per address, node-wide).
                        if q.unverified >= MAX_UNVERIFIED_PER_LOOKUP {
                            self.counters.unverified_skipped += 1;
                            q.lookup.on_failure(path, contact.id());
                            continue;
                        }
                        q.unverified += 1;
                    }
                    let target = *q.lookup.target();
                    let msg = match q.kind {
                        Kind::FindValue => Message::FindValue {
                            rid: 0,
                            key: target,
                        },
                        Kind::FindNode | Kind::Put(_) => Message::FindNode { rid: 0, target },
                    };
                    self.request(now, contact, Purpose::Lookup { qid, path }, msg, 0);
                    if settling {
                        return;
                    }
                }
                Next::Wait => return,
                Next::Done => {
                    let Kind::Put(record) = &q.kind else {
                        self.finish(qid, now);
                        return;
                    };
                    let record = record.clone();
                    let targets = q.lookup.closest_succeeded();
                    q.storing = Some(Storing {
                        pending: targets.len() as u32,
                        ..Storing::default()
                    });
                    q.lookup.stats.messages += targets.len() as u32;
                    for c in targets {
                        let msg = Message::Store {
                            rid: 0,
                            record: record.clone(),
                        };
                        self.request(now, c, Purpose::Store { qid }, msg, 0);
                    }
                }
            }
        }
    }

    /// Ends a query: reports it (unless it is a refresh) and, after a
    /// bootstrap, schedules the join refresh or a rejoin.
    pub(super) fn finish(&mut self, qid: QueryId, now: Time) {
        let Some(mut q) = self.queries.remove(&qid) else {
            return;
        };
        q.lookup.finish();
        match q.origin {
            Origin::Refresh => return,
            // Refreshes need randomness: mark them due, so `poll_timeout`
            // asks for `handle_timeout` (which brings an RNG) right away.
            Origin::Bootstrap if self.table.is_empty() => {
                self.rejoin_at = Some(now + self.cfg.rejoin_after)
            }
            Origin::Bootstrap => {
                if self.cfg.refresh_on_join {
                    self.table.mark_join_refresh(now);
                }
                self.schedule_seed_retry(now);
            }
            Origin::User => {}
        }
        let outcome = match (q.kind, q.storing) {
            (Kind::Put(_), Some(s)) => Outcome::Stored {
                acks: s.acks,
                refused: s.refused,
                failed: s.failed,
            },
            (Kind::FindValue, _) => Outcome::Value {
                record: q.value.map(|(_, bytes)| bytes),
            },
            _ => Outcome::Nodes {
                closest: q.lookup.closest_succeeded(),
                target: q.lookup.found_target().cloned(),
            },
        };
        self.events.push_back(Event::QueryFinished {
            id: qid,
            target: *q.lookup.target(),
            outcome,
            stats: q.lookup.stats,
            elapsed: now.since(q.started),
        });
    }

    /// A reply arrived from a verified `from`: match it to its request and
    /// feed the state machine that asked.
    pub(super) fn on_reply<V: RecordVerifier + ?Sized>(
        &mut self,
        now: Time,
        from: &Contact,
        msg: Message,
        verifier: &mut V,
    ) {
        let rid = msg.rid();
        match self.requests.get(&rid) {
            Some(p) if p.to.id() == from.id() => {}
            _ => {
                self.counters.unsolicited_replies += 1;
                return;
            }
        }
        let Some(p) = self.requests.remove(&rid) else {
            return;
        };
        self.deadlines.remove(&(p.deadline, rid));
        match (p.purpose, msg) {
            (Purpose::Evict, Message::Pong { .. }) => self.table.on_ping_result(from.id(), true),
            (Purpose::Lookup { qid, path }, Message::Nodes { nodes, .. }) => {
                if let Some(q) = self.queries.get_mut(&qid) {
                    if matches!(q.kind, Kind::FindValue) {
                        self.counters.mismatched_replies += 1;
                        q.lookup.on_failure(path, from.id());
                    } else {
                        q.lookup.on_success(path, from.id(), nodes);
                    }
                    self.drive(qid, now);
                }
            }
            (Purpose::Lookup { qid, path }, Message::Value { record, nodes, .. }) => {
                let Some(q) = self.queries.get_mut(&qid) else {
                    return;
                };
                match (record, &q.kind) {
                    (_, Kind::FindNode | Kind::Put(_)) => {
                        self.counters.mismatched_replies += 1;
                        q.lookup.on_failure(path, from.id());
                    }
                    (Some(bytes), Kind::FindValue)
                        if q.value.as_ref().is_some_and(|(_, held)| *held == bytes) =>
                    {
                        // The same bytes as a record already checked.
                        q.lookup.on_success(path, from.id(), nodes);
                        q.holders += 1;
                        if q.holders >= VALUE_HOLDERS {
                            q.lookup.finish();
                        }
                    }
                    (Some(bytes), Kind::FindValue) => {
                        match record::check(verifier, &bytes, Some(q.lookup.target()), now) {
                            Ok(v) => {
                                // Not the first valid record: the highest
                                // sequence of several holders (VALUE_HOLDERS).
                                q.lookup.on_success(path, from.id(), nodes);
                                if q.value.as_ref().is_none_or(|(seq, _)| v.seq > *seq) {
                                    q.value = Some((v.seq, bytes));
                                }
                                q.holders += 1;
                                if q.holders >= VALUE_HOLDERS {
                                    q.lookup.finish();
                                } else if q.settle_by.is_none() {
                                    let waited = now.since(q.started).max(MIN_SETTLE);
                                    q.settle_by = Some(now + waited.min(self.cfg.request_timeout));
                                }
                            }
                            Err(_) => {
                                self.counters.bad_records += 1;
                                q.lookup.on_failure(path, from.id());
                            }
                        }
                    }
                    (None, Kind::FindValue) => q.lookup.on_success(path, from.id(), nodes),
                }
                self.drive(qid, now);
            }
            (Purpose::Store { qid }, Message::Stored { result, .. }) => {
                if let Some(s) = self.queries.get_mut(&qid).and_then(|q| q.storing.as_mut()) {
                    s.pending = s.pending.saturating_sub(1);
                    match result {
                        Ok(()) => s.acks += 1,
                        Err(_) => s.refused += 1,
                    }
                }
                self.drive(qid, now);
            }
            (purpose, _) => {
                self.counters.mismatched_replies += 1;
                let p = Pending { purpose, ..p };
                self.on_failed(now, p, false);
            }
        }
    }

    /// A request failed (timeout, unreachable, nonsense reply). `retry`
    /// allows re-sending a lookup request up to `Config::request_retries`
    /// times.
    pub(super) fn on_failed(&mut self, now: Time, p: Pending, retry: bool) {
        match p.purpose {
            Purpose::Evict => self.table.on_ping_result(p.to.id(), false),
            Purpose::Lookup { qid, path } => {
                let Some(q) = self.queries.get_mut(&qid) else {
                    let _ = self.table.on_failure(p.to.id(), self.cfg.max_failures);
                    return;
                };
                if retry
                    && p.attempt < self.cfg.request_retries
                    && !q.lookup.is_finished()
                    && q.settle_by.is_none()
                {
                    q.lookup.on_retry();
                    let target = *q.lookup.target();
                    let msg = match q.kind {
                        Kind::FindValue => Message::FindValue {
                            rid: 0,
                            key: target,
                        },
                        _ => Message::FindNode { rid: 0, target },
                    };
                    self.request(now, p.to, p.purpose, msg, p.attempt + 1);
                    return;
                }
                q.lookup.on_failure(path, p.to.id());
                let _ = self.table.on_failure(p.to.id(), self.cfg.max_failures);
                self.drive(qid, now);
            }
            Purpose::Store { qid } => {
                if let Some(s) = self.queries.get_mut(&qid).and_then(|q| q.storing.as_mut()) {
                    s.pending = s.pending.saturating_sub(1);
                    s.failed += 1;
                }
                self.drive(qid, now);
            }
        }
    }
}
