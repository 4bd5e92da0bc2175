//! The network's time: how far this node's wall clock is from its
//! authenticated peers', measured and applied to the node's [`Clock`].
//!
//! Gateways boot with wrong clocks (no RTC, no NTP in the building). Every
//! envelope is stamped and checked for freshness, so a node whose clock is
//! off by more than the skew window would be refused by everyone and
//! refuse everyone. Instead, a node asks its peers for their time over the
//! connections it has anyway (docs/wire.md, "Time"):
//!
//! ```text
//! time         { "c": bstr(16) challenge }
//! time_answer  { "c": bstr(16) the same challenge, "t": uint ms, the peer's time,
//!                "u": uint ms, how long the peer has been running }
//! ```
//!
//! Both kinds are exempt from the freshness and replay checks (a node whose
//! clock is wrong must be able to ask); the answer is fresh because it
//! echoes a challenge only the asker knew, and authentic because the peer
//! signed it and the connection proved the peer's key. The offset sample is
//! `t - (sent + rtt / 2)` on the local clock.
//!
//! Whose time: a vote. The node's own clock is one vote, each peer's latest
//! sample another, and the offset is their median, so one lying peer among
//! three cannot move it. With an even count the two middle votes may
//! disagree: the one more votes agree with wins, and if as many — nothing
//! in two clocks says which is wrong — the vote of whoever has been
//! running longer, so a newcomer defers to the network it joins. A gateway that boots after a power cut with a wrong
//! clock takes the time of its seed, or of the subscriber that reconnects
//! to it; a seed does not take the time of each gateway that dials it. The
//! offset is applied to the [`Clock`] (every stamp, every freshness check
//! and every reading then uses the network's time), and peers answer with
//! the network's time as they know it, so a corrected node passes it on.
//!
//! When: right after a connection is made (dialed or accepted), while
//! fewer than [`WANTED_PEERS`] peers have answered (a first dial waits for
//! the answer, so that the first request already carries the network's
//! time), and every [`RESYNC`] with a few connected peers.
//!
//! What this module does not do: set the machine's clock (NTP's job; the
//! offset is shown and warned about instead), or defend against a majority
//! of lying peers (a node trusts the time of most of the peers it talks
//! to, as it trusts their routing).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coset::cbor::Value;
use tokio::sync::Semaphore;

use super::rpc;
use super::NodeError;
use crate::api::offset_text;
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::metrics::{Family, Kind as MetricKind};
use crate::transport::framing::request;
use crate::transport::Connection;
use crate::wire::{Kind, Session};

/// Peers whose answer the median is taken over.
pub(super) const WANTED_PEERS: usize = 5;
/// Re-measure this often.
pub(super) const RESYNC: Duration = Duration::from_secs(600);
/// A sample older than this no longer counts.
const SAMPLE_TTL: Duration = Duration::from_secs(3600);
/// An answer taking longer than this says too little about the time.
const MAX_RTT: Duration = Duration::from_secs(4);
/// How long to wait for an answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// The offset is moved only when the median moved by more than this (the
/// samples jitter by the round trip).
const HYSTERESIS_MS: i64 = 250;
/// Time requests answered at once.
const MAX_ANSWERING: usize = 16;

/// One peer's latest measurement.
#[derive(Debug, Clone, Copy)]
struct Sample {
    offset_ms: i64,
    at: Instant,
    /// How long the peer had been running, in ms.
    uptime_ms: u64,
}

/// This node's side of the time exchange, asking and answering.
pub(crate) struct TimeSync {
    session: Session,
    clock: Clock,
    /// The warning threshold: the freshness window.
    skew_ms: u64,
    samples: Mutex<BTreeMap<PublicKey, Sample>>,
    answering: Arc<Semaphore>,
    started: Instant,
    asked: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    served: AtomicU64,
    refused: AtomicU64,
}

impl TimeSync {
    /// The exchange for the node whose `session` signs and opens it; the
    /// offset goes to `clock`; `skew_ms` is the freshness window (an offset
    /// beyond it is warned about).
    pub(crate) fn new(session: Session, clock: Clock, skew_ms: u64) -> Self {
        let started = clock.instant();
        Self {
            session,
            clock,
            skew_ms,
            samples: Mutex::new(BTreeMap::new()),
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
            started,
            asked: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Peers with a sample young enough to vote.
    pub(crate) fn peers(&self) -> usize {
        let now = self.clock.instant();
        self.samples
            .lock()
            .map(|s| {
                s.values()
                    .filter(|x| now.saturating_duration_since(x.at) < SAMPLE_TTL)
                    .count()
            })
            .unwrap_or(0)
    }

    /// How long this node has been running, in ms.
    fn uptime_ms(&self) -> u64 {
        let up = self.clock.instant().saturating_duration_since(self.started);
        u64::try_from(up.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether another peer's answer would still count toward the median.
    pub(crate) fn wants_more(&self) -> bool {
        self.peers() < WANTED_PEERS
    }

    /// Whether `peer` answered recently enough not to ask it again.
    fn knows(&self, peer: &PublicKey) -> bool {
        let now = self.clock.instant();
        self.samples.lock().is_ok_and(|s| {
            s.get(peer)
                .is_some_and(|x| now.saturating_duration_since(x.at) < RESYNC)
        })
    }

    /// Asks the peer of `conn` for its time, unless it answered lately, and
    /// folds the answer into the offset. Failures are counted, never
    /// fatal: a peer of an older version does not know the exchange.
    pub(crate) async fn sync_with(&self, conn: &Connection) {
        if self.knows(&conn.peer().key()) {
            return;
        }
        self.asked.fetch_add(1, Ordering::Relaxed);
        match self.ask(conn).await {
            Ok((offset_ms, uptime_ms)) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                self.record(conn.peer().key(), offset_ms, uptime_ms);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %conn.peer().key(), error = %e, "time exchange failed");
            }
        }
    }

    /// One exchange: the peer's offset from our local clock and how long
    /// it has been running, in ms.
    async fn ask(&self, conn: &Connection) -> Result<(i64, u64), NodeError> {
        let peer = conn.peer().key();
        let mut challenge = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut challenge);
        let payload = encode(&[("c", Value::Bytes(challenge.to_vec()))]);
        let env = self.session.seal(Kind::Time, &peer, &payload)?;
        let sent = self.clock.local();
        let started = self.clock.instant();
        let bytes = request(conn, &env, self.session.max_frame(), ASK_TIMEOUT)
            .await?
            .ok_or_else(|| NodeError::Transport(format!("{peer} does not answer time requests")))?;
        let rtt = self.clock.instant().saturating_duration_since(started);
        let answer = self
            .session
            .open_from(&peer, &bytes)?
            .expect(Kind::TimeAnswer)?;
        let map = decode(answer.payload())?;
        if bytes_field(&map, "c") != Some(&challenge[..]) {
            return Err(NodeError::PeerMisbehaved(
                "time answer for another challenge".into(),
            ));
        }
        let their = uint_field(&map, "t")
            .ok_or_else(|| NodeError::PeerMisbehaved("time answer without \"t\"".into()))?;
        if rtt > MAX_RTT {
            return Err(NodeError::Transport(format!(
                "time answer took {} ms",
                rtt.as_millis()
            )));
        }
        // An older peer without `u` counts as just started.
        let uptime_ms = uint_field(&map, "u").unwrap_or(0);
        let midpoint = i128::from(sent.0) + (rtt.as_millis() as i128) / 2;
        let offset = i128::from(their) - midpoint;
        let offset =
            i64::try_from(offset).map_err(|_| NodeError::PeerMisbehaved("absurd time".into()))?;
        Ok((offset, uptime_ms))
    }

    /// Keeps `peer`'s sample and moves the clock's offset to the vote's
    /// median.
    fn record(&self, peer: PublicKey, offset_ms: i64, uptime_ms: u64) {
        let now = self.clock.instant();
        let median = {
            let Ok(mut samples) = self.samples.lock() else {
                return;
            };
            samples.retain(|_, s| now.saturating_duration_since(s.at) < SAMPLE_TTL);
            samples.insert(
                peer,
                Sample {
                    offset_ms,
                    at: now,
                    uptime_ms,
                },
            );
            // Bounded: the oldest go first.
            while samples.len() > 4 * WANTED_PEERS {
                let oldest = samples.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| *k);
                match oldest {
                    Some(k) => samples.remove(&k),
                    None => break,
                };
            }
            let mut votes: Vec<(i64, u64)> = samples
                .values()
                .map(|s| (s.offset_ms, s.uptime_ms))
                .collect();
            votes.push((0, self.uptime_ms()));
            (median(&mut votes), samples.len())
        };
        self.apply(median.0, median.1);
    }

    fn apply(&self, median_ms: i64, peers: usize) {
        let current = self.clock.offset_ms();
        if (median_ms - current).abs() <= HYSTERESIS_MS {
            return;
        }
        self.clock.set_offset(median_ms);
        let shown = offset_text(median_ms);
        if median_ms.unsigned_abs() > self.skew_ms {
            tracing::warn!(
                offset_ms = median_ms,
                peers,
                "this node's clock is {shown} its peers' (median of {peers}); it stamps and \
                 checks messages with the peers' time from now on. Fix the clock: enable NTP \
                 (`timedatectl set-ntp true`) or fit a real-time clock"
            );
        } else {
            tracing::info!(offset_ms = median_ms, peers, "clock is {shown} its peers'");
        }
    }

    /// Answers one `time` request a peer opened a stream with.
    pub(crate) async fn serve(&self, conn: Connection, first: Vec<u8>, reply: quinn::SendStream) {
        let peer = conn.peer().key();
        let Ok(_permit) = self.answering.clone().try_acquire_owned() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let challenge = self
            .session
            .open_from(&peer, &first)
            .and_then(|f| f.expect(Kind::Time))
            .map_err(NodeError::from)
            .and_then(|f| decode(f.payload()))
            .and_then(|map| {
                bytes_field(&map, "c")
                    .filter(|c| c.len() == 16)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        NodeError::PeerMisbehaved("time request without a challenge".into())
                    })
            });
        let challenge = match challenge {
            Ok(c) => c,
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %peer, error = %e, "time request refused");
                return;
            }
        };
        let payload = encode(&[
            ("c", Value::Bytes(challenge)),
            ("t", Value::Integer(self.clock.wall().0.into())),
            ("u", Value::Integer(self.uptime_ms().into())),
        ]);
        match self.session.seal(Kind::TimeAnswer, &peer, &payload) {
            Ok(env) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                rpc::answer(reply, env).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot seal a time answer"),
        }
    }

    /// The offset and the exchanges as metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            Family::real(
                "streembit_clock_offset_seconds",
                "How far the network's time (the median of peers' answers) is from this node's wall clock; positive: the local clock is behind.",
                self.clock.offset_ms() as f64 / 1000.0,
            ),
            Family::single(
                "streembit_clock_peers",
                "Peers whose time answer the offset is the median of.",
                MetricKind::Gauge,
                self.peers() as u64,
            ),
            Family::new(
                "streembit_time_exchanges",
                "Time exchanges, asked by this node (answered, failed) and answered for others (served, refused).",
                MetricKind::Counter,
            )
            .with(&[("outcome", "answered")], get(&self.answered))
            .with(&[("outcome", "failed")], get(&self.failed))
            .with(&[("outcome", "served")], get(&self.served))
            .with(&[("outcome", "refused")], get(&self.refused)),
        ]
    }
}

/// Votes within this of each other agree (round trips jitter).
const AGREE_MS: i64 = 2_000;

/// The median offset of `(offset_ms, uptime_ms)` votes. Of two middle
/// votes, the one more votes agree with; if as many, the one of whoever
/// has been running longer.
fn median(votes: &mut [(i64, u64)]) -> i64 {
    votes.sort_unstable();
    let n = votes.len();
    let support = |x: i64| votes.iter().filter(|v| (v.0 - x).abs() <= AGREE_MS).count();
    match n {
        0 => 0,
        _ if n % 2 == 1 => votes[n / 2].0,
        _ => {
            let (a, b) = (votes[n / 2 - 1], votes[n / 2]);
            match support(a.0).cmp(&support(b.0)) {
                std::cmp::Ordering::Greater => a.0,
                std::cmp::Ordering::Less => b.0,
                std::cmp::Ordering::Equal if a.1 >= b.1 => a.0,
                std::cmp::Ordering::Equal => b.0,
            }
        }
    }
}

pub(super) fn encode(fields: &[(&str, Value)]) -> Vec<u8> {
    let map = Value::Map(
        fields
            .iter()
            .map(|(k, v)| (Value::Text((*k).to_owned()), v.clone()))
            .collect(),
    );
    let mut out = Vec::with_capacity(48);
    // Writing into a Vec cannot fail.
    let _ = coset::cbor::into_writer(&map, &mut out);
    out
}

pub(super) fn decode(payload: &[u8]) -> Result<Vec<(Value, Value)>, NodeError> {
    let mut rest = payload;
    let v: Value = coset::cbor::from_reader(&mut rest)
        .map_err(|e| NodeError::PeerMisbehaved(format!("bad payload: {e}")))?;
    if !rest.is_empty() {
        return Err(NodeError::PeerMisbehaved("bytes after the payload".into()));
    }
    v.into_map()
        .map_err(|_| NodeError::PeerMisbehaved("the time payload is not a map".into()))
}

fn field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn bytes_field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a [u8]> {
    field(map, name)?.as_bytes().map(Vec::as_slice)
}

pub(super) fn uint_field(map: &[(Value, Value)], name: &str) -> Option<u64> {
    field(map, name)?
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clocks: the longer-running one wins; three: the majority, a
    /// lone liar notwithstanding.
    #[test]
    fn the_median_vote_defers_to_the_longer_running_clock() {
        // A gateway just booted (up 1 s) with a seed up an hour, 2 h ahead.
        assert_eq!(median(&mut [(0, 1_000), (7_200_000, 3_600_000)]), 7_200_000);
        // The seed's view of that gateway: it keeps its own time.
        assert_eq!(median(&mut [(0, 3_600_000), (-7_200_000, 1_000)]), 0);
        // Two peers agree, one lies and claims the longest run: the two
        // win over our clock and the liar.
        assert_eq!(
            median(&mut [
                (0, 10),
                (600_000, 5),
                (600_100, 7),
                (-99_999_999, 1_000_000)
            ]),
            600_000
        );
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn payloads_round_trip_and_garbage_is_the_peers_fault() {
        let bytes = encode(&[
            ("c", Value::Bytes(vec![7; 16])),
            ("t", Value::Integer(5.into())),
        ]);
        let map = decode(&bytes).expect("decodes");
        assert_eq!(bytes_field(&map, "c"), Some(&[7u8; 16][..]));
        assert_eq!(uint_field(&map, "t"), Some(5));
        for bad in [&b"\xff"[..], &b"\x01"[..], &[0xa0, 0x00][..]] {
            assert!(matches!(decode(bad), Err(NodeError::PeerMisbehaved(_))));
        }
    }
}
