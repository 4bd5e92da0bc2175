//! The gateway side of the device protocol (see `protocol.rs`): answers
//! `read`, applies authorized `command`s, and streams subscriptions from
//! their store-and-forward queues.
//!
//! Every stream is handled in its own task behind one bound, so a slow or
//! hostile peer costs at most its own stream; a subscription's delivery
//! reads from its queue on disk, so a slow subscriber only falls behind
//! (its oldest readings dropped and counted when its queue is full) and
//! never holds up the bus, the sealing, or another subscriber.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::board::HostedDevice;
use super::outbox::Outbox;
use super::protocol::{target_device, Answer, ErrorCode, Request};
use super::supervisor::Devices;
use crate::identity::PublicKey;
use crate::metrics::{Family, Kind as MetricKind};
use crate::node::{DeviceStream, BUSY};
use crate::transport::framing::{read_frame, write_frame};
use crate::transport::Membership;
use crate::wire::payload::value_to_json;
use crate::wire::{FromPeer, Session};

/// Requests to devices handled at once (subscriptions, once accepted, do
/// not count: their number is bounded per device).
const MAX_STREAMS: usize = 512;
/// A request must arrive this soon after its stream opens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Readings sent to a subscriber per frame at most.
const BATCH: usize = 128;
/// What a `readings` frame adds around the readings it carries: the
/// envelope's headers and signature, and a CBOR header per reading.
const FRAME_OVERHEAD: usize = 512 + 9 * BATCH;

/// Answers peers on behalf of the hosted devices.
pub(crate) struct DeviceService {
    devices: Devices,
    /// The gateway's session: opens requests to its devices, seals the
    /// devices' answers (each with its own key).
    session: Session,
    /// Who may take part: checked again before each delivery.
    membership: Membership,
    max_frame: usize,
    /// `(request kind, outcome)` → count.
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl DeviceService {
    /// A service for `devices`, opening and sealing with the gateway's
    /// `session`.
    pub(crate) fn new(devices: Devices, session: Session, membership: Membership) -> Self {
        Self {
            membership,
            max_frame: session.max_frame(),
            session,
            devices,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Serves device streams from the node until it stops sending them.
    pub(crate) async fn run(self: Arc<Self>, mut streams: mpsc::Receiver<DeviceStream>) {
        let limit = Arc::new(Semaphore::new(MAX_STREAMS));
        while let Some(mut stream) = streams.recv().await {
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                self.count("stream", "busy");
                let _ = stream.send.reset(BUSY.into());
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.handle(stream, permit).await;
            });
        }
    }

    fn count(&self, kind: &'static str, outcome: &'static str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((kind, outcome)).or_default() += 1;
        }
    }

    /// Opens a frame from `peer` to `device`; refusals are counted by
    /// reason.
    fn open(&self, device: &PublicKey, peer: &PublicKey, bytes: &[u8]) -> Option<FromPeer> {
        // Signed by someone other than the TLS-proven caller counts as
        // `sender_mismatch`.
        self.session
            .open_from_to(peer, device.node_id(), bytes)
            .map_err(|e| self.count("envelope", e.reason()))
            .ok()
    }

    fn seal(&self, device: &HostedDevice, to: &PublicKey, answer: &Answer) -> Option<Vec<u8>> {
        let (kind, payload) = answer.encode();
        let sealed = self.session.seal_as(&device.key, kind, to, &payload);
        sealed
            .map_err(|e| tracing::warn!(error = %e, "cannot seal a device answer"))
            .ok()
    }

    /// Handles one stream; `permit` is held while a request is read and
    /// answered. A subscription gives it back once accepted: those are
    /// bounded by `max_subscribers_per_device` instead, and last.
    async fn handle(&self, mut s: DeviceStream, permit: tokio::sync::OwnedSemaphorePermit) {
        let first = match s.first.take() {
            Some(bytes) => bytes,
            None => {
                match tokio::time::timeout(REQUEST_TIMEOUT, read_frame(&mut s.recv, self.max_frame))
                    .await
                {
                    Ok(Ok(Some(bytes))) => bytes,
                    _ => return,
                }
            }
        };
        // On a connection to the gateway, the request names its device;
        // opening it then checks that it was signed for that device.
        let Some(target) = s.device.or_else(|| target_device(&first, self.max_frame)) else {
            self.count("envelope", "no_device");
            return;
        };
        s.device = Some(target);
        let Some(opened) = self.open(&target, &s.peer.key(), &first) else {
            return;
        };
        let kind = opened.kind().name();
        let Some(device) = self.devices.by_key(&target) else {
            self.count(kind, ErrorCode::NotFound.name());
            return;
        };
        let caller = s.peer.key();
        let request = match Request::decode(opened.kind(), opened.payload()) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .finish(
                        &mut s,
                        &device,
                        Answer::error(ErrorCode::BadRequest, e.to_string()),
                        kind,
                    )
                    .await;
            }
        };
        let answer = match request {
            Request::Read { point } => self.read(&device, point.as_deref()),
            Request::Command { point, value } => {
                self.command(&device, &caller, &point, value).await
            }
            Request::Subscribe { after, cancel } => {
                if cancel {
                    self.devices.outboxes().cancel(&target, &caller);
                    self.count(kind, "cancelled");
                    let _ = s.send.finish();
                    return;
                }
                match self.devices.outboxes().subscribe(&target, &caller) {
                    Ok(outbox) => {
                        self.count(kind, "ok");
                        drop(permit);
                        return self.deliver(s, outbox, after).await;
                    }
                    Err((code, message)) => Answer::error(code, message),
                }
            }
        };
        self.finish(&mut s, &device, answer, kind).await;
    }

    /// Sends the one answer of a request and counts its outcome.
    async fn finish(
        &self,
        s: &mut DeviceStream,
        device: &HostedDevice,
        answer: Answer,
        kind: &'static str,
    ) {
        let outcome = match &answer {
            Answer::Error { code, .. } => ErrorCode::from_name(code)
                .unwrap_or(ErrorCode::DeviceError)
                .name(),
            _ => "ok",
        };
        self.count(kind, outcome);
        if let Some(env) = self.seal(device, &s.peer.key(), &answer) {
            if write_frame(&mut s.send, &env).await.is_ok() {
                let _ = s.send.finish();
            }
        }
    }

    fn read(&self, device: &HostedDevice, point: Option<&str>) -> Answer {
        let mut list = Vec::new();
        let mut size = 64;
        for env in self.devices.latest_sealed(&device.name, point) {
            // Stay under the envelope cap: the caller asks per point for more.
            size += env.len() + 4;
            if size > self.max_frame {
                break;
            }
            list.push(env.as_ref().clone());
        }
        if list.is_empty() {
            if let Some(p) = point {
                return Answer::error(
                    ErrorCode::NotFound,
                    format!("no reading of point {p:?} yet"),
                );
            }
        }
        Answer::Readings(list)
    }

    async fn command(
        &self,
        device: &HostedDevice,
        caller: &PublicKey,
        point: &str,
        value: coset::cbor::Value,
    ) -> Answer {
        let caller_hex = caller.to_string();
        if !self
            .devices
            .writers(&device.name, point)
            .iter()
            .any(|w| w.eq_ignore_ascii_case(&caller_hex))
        {
            tracing::info!(device = %device.name, point, caller = %caller_hex, "command refused: not a writer");
            return Answer::error(
                ErrorCode::NotAuthorized,
                format!("{caller_hex} may not write {}/{point}", device.name),
            );
        }
        let json = value_to_json(value.clone());
        match self.devices.write(&device.name, point, &json).await {
            Ok(()) => Answer::CommandResult {
                point: point.to_owned(),
                value,
            },
            Err(e) => Answer::error(ErrorCode::DeviceError, e.to_string()),
        }
    }

    /// Streams `outbox` from `after` until the subscriber goes away or a
    /// newer stream of the same subscriber takes over; the subscriber's
    /// acknowledgements (later `subscribe` frames) trim the queue.
    async fn deliver(&self, s: DeviceStream, outbox: Arc<Outbox>, after: u64) {
        outbox.ack(after);
        let generation = outbox.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // Wake an older stream of the same subscriber so it sees it is
        // superseded and ends.
        outbox.wake.notify_waiters();
        let DeviceStream {
            device,
            peer,
            mut send,
            mut recv,
            ..
        } = s;
        let Some(device) = device else {
            return;
        };
        let caller = peer.key();
        let Some(hosted) = self.devices.by_key(&device) else {
            return;
        };
        let acks = async {
            while let Ok(Some(bytes)) = read_frame(&mut recv, self.max_frame).await {
                if let Some(opened) = self.open(&device, &caller, &bytes) {
                    if let Ok(Request::Subscribe { after, .. }) =
                        Request::decode(opened.kind(), opened.payload())
                    {
                        outbox.ack(after);
                        outbox.touch(self.session.now().0);
                    }
                }
            }
        };
        let sending = async {
            let mut sent = after;
            loop {
                if outbox.generation.load(Ordering::SeqCst) != generation {
                    return;
                }
                // Bounded by bytes, so the frame fits the subscriber's
                // frame cap whatever the readings' sizes.
                let room = self.max_frame.saturating_sub(FRAME_OVERHEAD);
                let batch = outbox.read_after(sent, BATCH, room);
                if batch.is_empty() {
                    // An open stream is a subscriber alive, even when its
                    // device is quiet and there is nothing to acknowledge.
                    outbox.touch(self.session.now().0);
                    tokio::select! {
                        _ = outbox.wake.notified() => {}
                        // A safety net for a wake taken by a stream that
                        // was just superseded.
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                // One frame per batch: the device's own readings inside a
                // `readings` envelope the device signs for the subscriber,
                // which verifies the burst in one batch check.
                let last = batch.last().map_or(sent, |(seq, _)| *seq);
                let answer = Answer::Readings(batch.into_iter().map(|(_, env)| env).collect());
                let Some(frame) = self.seal(&hosted, &caller, &answer) else {
                    return;
                };
                if frame.len() > self.max_frame {
                    // One reading too large for any frame (the read returns
                    // at least one): it can never reach the subscriber.
                    // Skipped and counted, or the stream would stall on it.
                    outbox.skip_oversize(last);
                    sent = last;
                    continue;
                }
                // Checked before each delivery: the membership may have
                // changed since the subscription (and the handshake).
                if self
                    .membership
                    .still_admits(&caller, self.session.now())
                    .is_err()
                {
                    self.count("subscribe", "not_admitted");
                    return;
                }
                if write_frame(&mut send, &frame).await.is_err() {
                    return;
                }
                sent = last;
            }
        };
        tokio::select! {
            _ = acks => {}
            _ = sending => {}
        }
    }

    /// Device protocol metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let mut f = Family::new(
            "streembit_device_requests",
            "Requests from peers to hosted devices, by kind and outcome.",
            MetricKind::Counter,
        );
        if let Ok(c) = self.counts.lock() {
            for ((kind, outcome), n) in c.iter() {
                f.push(&[("kind", kind), ("outcome", outcome)], *n);
            }
        }
        vec![f]
    }
}
