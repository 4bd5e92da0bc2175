//! Subscriptions of this agent to remote devices, and their inboxes.
//!
//! A subscription is a directory `<state>/inbox/<device key>/` holding a
//! journal of the readings received, so it survives restarts. One task per
//! subscription keeps a stream open to the device, saying from which
//! sequence on it wants readings (the last one in its inbox); the gateway
//! sends everything after it from its store-and-forward queue, in order.
//! Readings come in batches (`readings` envelopes the device signs for us),
//! verified with one batch signature check; each reading is checked
//! against the device key and appended to the inbox
//! unless its sequence is not above the last one (a duplicate, dropped and
//! counted), and acknowledged in batches. An inbox is bounded: when full,
//! its oldest readings are dropped and counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::feed::{Feed, SignedReading};
use super::protocol::{Answer, Request};
use super::reading::verify_readings;
use super::remote::{Remote, RemoteError};
use super::DevicesError;
use crate::api::{InboxEntry, SubscriptionInfo};
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::journal::Journal;
use crate::metrics::{Family, Kind};
use crate::transport::framing::{read_frame, write_frame};

/// Acknowledge after this many new readings, or when the stream goes idle.
const ACK_EVERY: u64 = 64;
const ACK_IDLE: Duration = Duration::from_millis(200);
/// Flush inboxes to the disk this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Stats {
    connected: bool,
    received: u64,
    duplicates: u64,
    behind: u64,
    rejected: u64,
    last_error: Option<String>,
}

struct Subscription {
    journal: Mutex<Journal>,
    stats: Mutex<Stats>,
    stop: watch::Sender<bool>,
}

/// Every subscription of this agent.
#[derive(Clone)]
pub(crate) struct Subscriptions {
    remote: Arc<Remote>,
    feed: Feed,
    clock: Clock,
    root: PathBuf,
    max_bytes: u64,
    subs: Arc<Mutex<BTreeMap<PublicKey, Arc<Subscription>>>>,
}

impl Subscriptions {
    /// Reopens the subscriptions under `root` and starts their streams.
    /// Needs a tokio runtime.
    pub(crate) fn start(
        remote: Arc<Remote>,
        feed: Feed,
        root: &Path,
        max_bytes: u64,
        clock: Clock,
    ) -> Self {
        let me = Self {
            remote,
            feed,
            clock,
            root: root.to_owned(),
            max_bytes,
            subs: Arc::default(),
        };
        let existing: Vec<PublicKey> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for device in existing {
            if let Err(e) = me.add(&device) {
                tracing::warn!(device = %device, error = %e, "subscription not resumed");
            }
        }
        let subs = me.subs.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_EVERY);
            loop {
                tick.tick().await;
                let list: Vec<Arc<Subscription>> = match subs.lock() {
                    Ok(m) => m.values().cloned().collect(),
                    Err(_) => break,
                };
                for s in list {
                    if let Ok(mut j) = s.journal.lock() {
                        if let Err(e) = j.sync() {
                            tracing::warn!(error = %e, "cannot sync an inbox");
                        }
                    }
                }
            }
        });
        me
    }

    /// Subscribes to `device` (nothing happens if already subscribed).
    pub(crate) fn add(&self, device: &PublicKey) -> Result<(), DevicesError> {
        let mut subs = self.subs.lock().map_err(|_| DevicesError::Poisoned)?;
        if subs.contains_key(device) {
            return Ok(());
        }
        let journal = Journal::open(&self.root.join(device.to_string()), self.max_bytes).map_err(
            |source| DevicesError::Io {
                what: "cannot open the inbox",
                source,
            },
        )?;
        let (stop, stopped) = watch::channel(false);
        let sub = Arc::new(Subscription {
            journal: Mutex::new(journal),
            stats: Mutex::default(),
            stop,
        });
        subs.insert(*device, sub.clone());
        tokio::spawn(follow(
            self.remote.clone(),
            self.feed.clone(),
            self.clock.clone(),
            *device,
            sub,
            stopped,
        ));
        Ok(())
    }

    /// Ends the subscription to `device`: tells its gateway (best effort)
    /// and deletes the inbox. `false` if there was none.
    pub(crate) async fn remove(&self, device: &PublicKey) -> bool {
        let sub = self.subs.lock().ok().and_then(|mut m| m.remove(device));
        let Some(sub) = sub else {
            return false;
        };
        let _ = sub.stop.send(true);
        if let Ok(env) = self.remote.seal(
            device,
            &Request::Subscribe {
                after: 0,
                cancel: true,
            },
        ) {
            if let Ok(conn) = self.remote.connect(device).await {
                if let Ok((mut send, _recv)) = conn.quic().open_bi().await {
                    let _ = write_frame(&mut send, &env).await;
                    let _ = send.finish();
                }
            }
        }
        let dir = sub.journal.lock().map(|j| j.dir().to_owned());
        if let Ok(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        true
    }

    /// Every subscription.
    pub(crate) fn list(&self) -> Vec<SubscriptionInfo> {
        let Ok(subs) = self.subs.lock() else {
            return Vec::new();
        };
        subs.iter()
            .map(|(device, s)| {
                let (last_seq, held, dropped) = s
                    .journal
                    .lock()
                    .map(|j| (j.last_seq(), j.len(), j.dropped()))
                    .unwrap_or_default();
                let st = s.stats.lock();
                let st = st.as_deref();
                SubscriptionInfo {
                    device: device.to_string(),
                    connected: st.is_ok_and(|s| s.connected),
                    last_seq,
                    held,
                    received: st.map_or(0, |s| s.received),
                    duplicates: st.map_or(0, |s| s.duplicates),
                    behind: st.map_or(0, |s| s.behind),
                    rejected: st.map_or(0, |s| s.rejected),
                    dropped,
                    last_error: st.ok().and_then(|s| s.last_error.clone()),
                }
            })
            .collect()
    }

    /// Up to `limit` received readings of `device` after sequence `after`;
    /// `None` if not subscribed.
    pub(crate) fn inbox(
        &self,
        device: &PublicKey,
        after: u64,
        limit: usize,
    ) -> Option<Vec<InboxEntry>> {
        let sub = self.subs.lock().ok()?.get(device)?.clone();
        let records = sub
            .journal
            .lock()
            .ok()?
            .read_after(after, limit, 8 * 1024 * 1024)
            .ok()?;
        // Each record: 8 bytes of arrival time, then the envelope. All of a
        // page's envelopes are checked with one batch verification.
        let (times, envelopes): (Vec<u64>, Vec<Vec<u8>>) = records
            .into_iter()
            .filter_map(|(_, body)| {
                let (ms, env) = body.split_at_checked(8)?;
                Some((u64::from_be_bytes(ms.try_into().ok()?), env.to_vec()))
            })
            .unzip();
        let checked = verify_readings(
            &envelopes,
            device,
            self.remote.network(),
            self.remote.max_frame(),
        );
        Some(
            times
                .into_iter()
                .zip(checked)
                .filter_map(|(received_ms, reading)| {
                    Some(InboxEntry {
                        received_ms,
                        reading: reading.ok()?,
                    })
                })
                .collect(),
        )
    }

    /// Subscription metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let mut received = Family::new(
            "streembit_subscription_readings",
            "Readings from subscribed devices, by outcome.",
            Kind::Counter,
        );
        for s in self.list() {
            for (outcome, n) in [
                ("received", s.received),
                ("duplicate", s.duplicates),
                ("behind", s.behind),
                ("rejected", s.rejected),
                ("dropped", s.dropped),
            ] {
                received.push(&[("device", &s.device), ("outcome", outcome)], n);
            }
        }
        vec![received]
    }

    /// Flushes every inbox (shutdown).
    pub(crate) fn sync_all(&self) {
        if let Ok(subs) = self.subs.lock() {
            for s in subs.values() {
                if let Ok(mut j) = s.journal.lock() {
                    let _ = j.sync();
                }
            }
        }
    }
}

fn bump(sub: &Subscription, f: impl FnOnce(&mut Stats)) {
    if let Ok(mut st) = sub.stats.lock() {
        f(&mut st);
    }
}

/// Keeps a stream to `device` open until stopped, reconnecting with
/// backoff.
async fn follow(
    remote: Arc<Remote>,
    feed: Feed,
    clock: Clock,
    device: PublicKey,
    sub: Arc<Subscription>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let result = tokio::select! {
            r = session(&remote, &feed, &clock, &device, &sub) => r,
            _ = stopped.changed() => return,
        };
        if let Ok(mut st) = sub.stats.lock() {
            st.connected = false;
            st.last_error = result.err().map(|e| e.to_string());
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

/// One stream: subscribe from the inbox's last sequence, take readings,
/// acknowledge them.
async fn session(
    remote: &Remote,
    feed: &Feed,
    clock: &Clock,
    device: &PublicKey,
    sub: &Subscription,
) -> Result<(), RemoteError> {
    let unreachable = |e: String| RemoteError::Unreachable(e);
    let conn = remote.connect_gateway(device).await?;
    let (mut send, mut recv) = conn
        .quic()
        .open_bi()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut last = sub.journal.lock().map(|j| j.last_seq()).unwrap_or(0);
    // Readings received and not yet acknowledged.
    let mut pending = 0u64;
    // The first `subscribe` is the same message as an acknowledgement: "I
    // hold everything up to `last`".
    acknowledge(remote, device, &mut send, last).await?;
    if let Ok(mut st) = sub.stats.lock() {
        st.connected = true;
    }
    loop {
        // The read stays alive while an idle acknowledgement goes out: a
        // frame read is not cancel-safe (a half-read frame would be lost).
        let read = read_frame(&mut recv, remote.max_frame());
        tokio::pin!(read);
        let frame = loop {
            if pending == 0 {
                break (&mut read).await;
            }
            tokio::select! {
                f = &mut read => break f,
                _ = tokio::time::sleep(ACK_IDLE) => {
                    acknowledge(remote, device, &mut send, last).await?;
                    pending = 0;
                }
            }
        };
        match frame {
            Ok(Some(bytes)) => {
                // A batch of the device's readings, or its signed refusal.
                let list = match remote.open_answer(device, &bytes)? {
                    Answer::Readings(list) => list,
                    other => {
                        return Err(RemoteError::Invalid(format!("unexpected {other:?}")));
                    }
                };
                let checked = verify_readings(&list, device, remote.network(), remote.max_frame());
                let received_ms = clock.wall().0.to_be_bytes();
                for (env, r) in list.into_iter().zip(checked) {
                    let r = match r {
                        Ok(r) => r,
                        Err(reason) => {
                            tracing::warn!(device = %device, reason = %reason, "reading refused");
                            bump(sub, |s| s.rejected += 1);
                            continue;
                        }
                    };
                    if r.seq <= last {
                        if holds(sub, r.seq, &env) {
                            bump(sub, |s| s.duplicates += 1);
                        } else {
                            // Not something we have: the gateway numbered
                            // it below what it sent before. Refused (the
                            // inbox is in sequence order), never silently.
                            tracing::warn!(device = %device, seq = r.seq, last, "reading numbered below the inbox's last, and not in it: refused and counted as behind");
                            bump(sub, |s| s.behind += 1);
                        }
                        continue;
                    }
                    let mut body = Vec::with_capacity(8 + env.len());
                    body.extend_from_slice(&received_ms);
                    body.extend_from_slice(&env);
                    sub.journal
                        .lock()
                        .map_err(|_| RemoteError::Invalid("inbox poisoned".into()))?
                        .append(r.seq, &body)
                        .map_err(|e| RemoteError::Invalid(format!("inbox: {e}")))?;
                    last = r.seq;
                    pending += 1;
                    bump(sub, |s| s.received += 1);
                    feed.send(SignedReading {
                        device: *device,
                        point: r.point,
                        envelope: Arc::new(env),
                    });
                }
                if pending >= ACK_EVERY {
                    acknowledge(remote, device, &mut send, last).await?;
                    pending = 0;
                }
            }
            Ok(None) => return Err(unreachable("the gateway ended the stream".into())),
            Err(e) => return Err(unreachable(e.to_string())),
        }
    }
}

/// Whether the inbox holds reading `seq` with exactly these bytes.
fn holds(sub: &Subscription, seq: u64, envelope: &[u8]) -> bool {
    let Ok(journal) = sub.journal.lock() else {
        return false;
    };
    journal
        .read_after(seq.saturating_sub(1), 1, 1 << 20)
        .ok()
        .and_then(|records| records.into_iter().next())
        .is_some_and(|(s, body)| s == seq && body.get(8..) == Some(envelope))
}

/// Tells the gateway we hold every reading up to `last`.
async fn acknowledge(
    remote: &Remote,
    device: &PublicKey,
    send: &mut quinn::SendStream,
    last: u64,
) -> Result<(), RemoteError> {
    let ack = remote.seal(
        device,
        &Request::Subscribe {
            after: last,
            cancel: false,
        },
    )?;
    write_frame(send, &ack)
        .await
        .map_err(|e| RemoteError::Unreachable(e.to_string()))
}
