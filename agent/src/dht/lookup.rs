//! One iterative lookup as a state machine object.
//!
//! The lookup knows nothing of messages or time: [`Lookup::next`] says whom
//! to ask, [`Lookup::on_success`] / [`Lookup::on_failure`] report answers
//! and timeouts, and the `Dht` turns that into requests and deadlines.
//!
//! With `paths = 1` this is Kademlia's lookup with `alpha` requests in
//! flight. With `paths = d > 1` it runs S/Kademlia's disjoint lookups: the
//! initial candidates are dealt round-robin to d paths, and a contact
//! learned on one path is never queried by another, so one adversarial
//! node cannot steer every path.

use std::collections::BTreeSet;

use crate::identity::NodeId;

use super::contact::Contact;

/// At most this many disjoint paths (more buys nothing at k = 20).
pub(crate) const MAX_PATHS: usize = 8;

/// What a finished query cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryStats {
    /// Hop depth: a node taken from our own table is asked in round 1, a
    /// node learned from a round-r answer in round r + 1; this is the
    /// deepest round any request was sent in (the longest chain of round
    /// trips behind the result).
    pub rounds: u32,
    /// Requests sent (FIND_*, retries and STOREs).
    pub messages: u32,
    /// Distinct nodes asked.
    pub contacted: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    NotContacted,
    Waiting,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    distance: [u8; 32],
    contact: Contact,
    state: PeerState,
    round: u32,
}

/// One path's candidates, closest first.
#[derive(Clone, Debug, Default)]
struct Path {
    peers: Vec<Candidate>,
    done: bool,
}

/// What [`Lookup::next`] wants.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send a request to this contact on this path.
    Query { contact: Contact, path: u8 },
    /// Requests are in flight; nothing to send now.
    Wait,
    /// Every path has its k closest answered (or ran out of candidates).
    Done,
}

/// A lookup's progress.
///
/// Entered as `Iterating` from `Lookup::new`. It stays there while any path
/// has a candidate to ask or an answer outstanding, and moves to `Finished`
/// when every path has its k closest answered or has nobody left, or
/// when the `Dht` calls [`Lookup::finish`] because a valid value arrived.
/// `Finished` is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Iterating,
    Finished,
}

/// An iterative lookup for `target`.
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    target: NodeId,
    local: NodeId,
    k: usize,
    alpha: usize,
    paths: Vec<Path>,
    /// Ids placed on any path (only kept when there is more than one path).
    claimed: BTreeSet<NodeId>,
    /// The target's contact if anyone listed it or it answered.
    found: Option<Contact>,
    pub(crate) stats: QueryStats,
    state: State,
}

impl Lookup {
    /// A lookup seeded with `initial` (our closest contacts, or seeds).
    pub(crate) fn new(
        target: NodeId,
        local: NodeId,
        k: usize,
        alpha: usize,
        paths: usize,
        initial: Vec<Contact>,
    ) -> Self {
        let mut l = Self {
            target,
            local,
            k: k.max(1),
            alpha: alpha.max(1),
            paths: vec![Path::default(); paths.clamp(1, MAX_PATHS)],
            claimed: BTreeSet::new(),
            found: None,
            stats: QueryStats::default(),
            state: State::Iterating,
        };
        let n = l.paths.len();
        for (i, c) in initial.into_iter().enumerate() {
            l.insert(i % n, c, 1);
        }
        l
    }

    pub(crate) fn target(&self) -> &NodeId {
        &self.target
    }

    pub(crate) fn found_target(&self) -> Option<&Contact> {
        self.found.as_ref()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    pub(crate) fn finish(&mut self) {
        self.state = State::Finished;
    }

    /// Requests sent and not yet answered or failed, on every path.
    pub(crate) fn in_flight(&self) -> usize {
        self.paths
            .iter()
            .flat_map(|p| &p.peers)
            .filter(|p| p.state == PeerState::Waiting)
            .count()
    }

    fn insert(&mut self, path: usize, c: Contact, round: u32) {
        if c.id() == &self.local {
            return;
        }
        if c.id() == &self.target && self.found.is_none() {
            self.found = Some(c.clone());
        }
        let multi = self.paths.len() > 1;
        if multi && !self.claimed.insert(*c.id()) {
            return;
        }
        let distance = c.id().distance(&self.target);
        let peers = &mut self.paths[path].peers;
        match peers.binary_search_by(|p| p.distance.cmp(&distance)) {
            // Same distance means same id (XOR with the target is a bijection).
            Ok(i) => peers[i].round = peers[i].round.min(round),
            Err(i) => {
                // Nothing past 3k closest can matter once k answered; keep
                // memory bounded however much the answers list.
                let cap = self.k * 3;
                if i >= cap {
                    return;
                }
                peers.insert(
                    i,
                    Candidate {
                        distance,
                        contact: c,
                        state: PeerState::NotContacted,
                        round,
                    },
                );
                if peers.len() > cap && peers[peers.len() - 1].state != PeerState::Waiting {
                    peers.pop();
                }
            }
        }
    }

    fn position(&self, path: u8, id: &NodeId) -> Option<usize> {
        let d = id.distance(&self.target);
        self.paths
            .get(usize::from(path))?
            .peers
            .binary_search_by(|p| p.distance.cmp(&d))
            .ok()
    }

    /// The next request to send, if any. Call until it returns `Wait` or
    /// `Done`.
    pub(crate) fn next(&mut self) -> Next {
        if self.state == State::Finished {
            return Next::Done;
        }
        let (k, alpha) = (self.k, self.alpha);
        let mut waiting_any = false;
        for (pi, path) in self.paths.iter_mut().enumerate() {
            if path.done {
                continue;
            }
            let in_flight = path
                .peers
                .iter()
                .filter(|p| p.state == PeerState::Waiting)
                .count();
            let mut succeeded = 0;
            let mut waiting_before = false;
            let mut step = PathStep::Exhausted;
            for p in path.peers.iter_mut() {
                match p.state {
                    PeerState::Succeeded => {
                        succeeded += 1;
                        if succeeded >= k {
                            step = if waiting_before {
                                PathStep::Wait
                            } else {
                                PathStep::Done
                            };
                            break;
                        }
                    }
                    PeerState::Failed => {}
                    PeerState::Waiting => waiting_before = true,
                    PeerState::NotContacted => {
                        if in_flight < alpha {
                            p.state = PeerState::Waiting;
                            self.stats.rounds = self.stats.rounds.max(p.round);
                            self.stats.messages += 1;
                            self.stats.contacted += 1;
                            // `pi` < MAX_PATHS, so it fits a u8.
                            return Next::Query {
                                contact: p.contact.clone(),
                                path: u8::try_from(pi).unwrap_or(u8::MAX),
                            };
                        }
                        step = PathStep::Wait;
                        break;
                    }
                }
            }
            if step == PathStep::Exhausted {
                step = if in_flight > 0 {
                    PathStep::Wait
                } else {
                    PathStep::Done
                };
            }
            match step {
                PathStep::Done => path.done = true,
                _ => waiting_any = true,
            }
        }
        if waiting_any {
            Next::Wait
        } else {
            self.state = State::Finished;
            Next::Done
        }
    }

    /// `from` answered on `path`, listing `nodes`.
    pub(crate) fn on_success(&mut self, path: u8, from: &NodeId, nodes: Vec<Contact>) {
        let Some(i) = self.position(path, from) else {
            return;
        };
        let p = &mut self.paths[usize::from(path)].peers[i];
        if p.state != PeerState::Waiting {
            return;
        }
        p.state = PeerState::Succeeded;
        let round = p.round + 1;
        if from == &self.target && self.found.is_none() {
            self.found = Some(p.contact.clone());
        }
        for c in nodes.into_iter().take(self.k) {
            self.insert(usize::from(path), c, round);
        }
    }

    /// The request to `from` on `path` failed for good.
    pub(crate) fn on_failure(&mut self, path: u8, from: &NodeId) {
        if let Some(i) = self.position(path, from) {
            let p = &mut self.paths[usize::from(path)].peers[i];
            if p.state == PeerState::Waiting {
                p.state = PeerState::Failed;
            }
        }
    }

    /// A request is re-sent after a timeout (counted, same round).
    pub(crate) fn on_retry(&mut self) {
        self.stats.messages += 1;
    }

    /// The k closest nodes that answered, over all paths, closest first.
    pub(crate) fn closest_succeeded(&self) -> Vec<Contact> {
        let mut all: Vec<&Candidate> = self
            .paths
            .iter()
            .flat_map(|p| p.peers.iter())
            .filter(|p| p.state == PeerState::Succeeded)
            .collect();
        all.sort_by_key(|a| a.distance);
        all.into_iter()
            .take(self.k)
            .map(|p| p.contact.clone())
            .collect()
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.paths
            .iter()
            .map(|p| p.peers.len() * std::mem::size_of::<Candidate>())
            .sum::<usize>()
            + self.claimed.len() * 48
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathStep {
    Wait,
    Done,
    Exhausted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::contact::Addrs;

    fn c(i: u8) -> Contact {
        Contact::from_claimed([i; 32], Addrs::empty())
    }

    #[test]
    fn stops_when_k_closest_answered_and_respects_alpha() {
        let target = NodeId([0; 32]);
        let mut l = Lookup::new(
            target,
            NodeId([0xff; 32]),
            2,
            2,
            1,
            (1..=4).map(c).collect(),
        );
        let mut asked = Vec::new();
        while let Next::Query { contact, .. } = l.next() {
            asked.push(*contact.id());
        }
        assert_eq!(asked.len(), 2, "alpha = 2 in flight");
        for id in &asked {
            l.on_success(0, id, vec![]);
        }
        // The two closest of four answered: k = 2 are done.
        let mut sorted: Vec<NodeId> = (1..=4).map(|i| *c(i).id()).collect();
        sorted.sort_by_key(|id| id.distance(&target));
        assert_eq!(asked, sorted[..2].to_vec());
        assert!(matches!(l.next(), Next::Done));
        assert_eq!(
            l.stats,
            QueryStats {
                rounds: 1,
                messages: 2,
                contacted: 2
            }
        );
        assert!(l.is_finished());
    }

    #[test]
    fn failure_moves_on_and_answers_deepen_rounds() {
        let target = *c(7).id();
        let mut l = Lookup::new(target, NodeId([0xff; 32]), 2, 1, 1, vec![c(1)]);
        let Next::Query { contact, .. } = l.next() else {
            panic!("query")
        };
        assert_eq!(contact.id(), c(1).id());
        l.on_success(0, c(1).id(), vec![c(2), c(7)]);
        assert!(l.found_target().is_some(), "listed target counts as found");
        let Next::Query { contact, .. } = l.next() else {
            panic!("query")
        };
        assert_eq!(contact.id(), c(7).id());
        l.on_failure(0, c(7).id());
        let Next::Query { contact, .. } = l.next() else {
            panic!("query")
        };
        assert_eq!(contact.id(), c(2).id());
        l.on_success(0, c(2).id(), vec![]);
        assert!(matches!(l.next(), Next::Done));
        assert_eq!(l.stats.rounds, 2);
        assert_eq!(l.stats.contacted, 3);
    }
}
