//! Moving DHT messages over QUIC streams: one request per bidirectional
//! stream, answered on the same stream.
//!
//! These tasks only move bytes. Every envelope is opened (and every answer
//! sealed) by the node loop, which owns the keys, the opener and the core.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::connections::Connections;
use super::nat::{Nat, PeerAddr};
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::transport::framing::{read_frame, request, write_frame};
use crate::transport::{Connection, Membership, PeerRefusal, TransportError, VerifiedPeer};
use crate::wire::{Kind, Session};

/// What the I/O tasks tell the node loop.
pub(crate) enum Input {
    /// A peer sent a request; answer on `reply`.
    Request {
        peer: VerifiedPeer,
        bytes: Vec<u8>,
        reply: quinn::SendStream,
    },
    /// The answer to our request `rid`.
    Answer {
        peer: VerifiedPeer,
        rid: u64,
        bytes: Vec<u8>,
    },
    /// Request `rid` could not be delivered or was not answered.
    Unreachable {
        rid: u64,
        /// The peer that refused us in the handshake, and why.
        refused: Option<(PublicKey, PeerRefusal)>,
    },
    /// A new connection is up (dialed or accepted).
    Connected(Connection),
    /// Our addresses changed (reachability, relays): republish records.
    SetAddrs(Vec<String>),
}

/// One request for [`send_request`]: its kind and payload, sealed only
/// once the connection is up.
pub(crate) struct Outgoing {
    pub(crate) kind: Kind,
    pub(crate) payload: Vec<u8>,
}

/// Sends one request and reports the answer (or its absence). It is
/// sealed after the connection is up, not before: a node that has just
/// learned the network's time on that very connection (its first dial
/// waits for the answer) stamps the request with it.
pub(crate) async fn send_request(
    nat: Arc<Nat>,
    session: Arc<Session>,
    to: PublicKey,
    addrs: Vec<PeerAddr>,
    rid: u64,
    outgoing: Outgoing,
    timeout: Duration,
) {
    let inputs = nat.inputs.clone();
    let result = async {
        let conn = nat.get_or_dial(&to, &to, &addrs).await?;
        let envelope = session
            .seal(outgoing.kind, &to, &outgoing.payload)
            .map_err(|e| TransportError::Local(e.to_string()))?;
        let answer = request(&conn, &envelope, session.max_frame(), timeout).await;
        if answer.is_err() && conn.quic().close_reason().is_some() {
            nat.conns.remove(&conn);
        }
        answer.map(|a| (conn.peer(), a))
    };
    let input = match tokio::time::timeout(timeout * 2, result).await {
        Ok(Ok((peer, Some(bytes)))) => Input::Answer { peer, rid, bytes },
        Ok(Err(TransportError::Refused(why))) => Input::Unreachable {
            rid,
            refused: Some((to, why)),
        },
        Ok(Ok((_, None))) | Ok(Err(_)) | Err(_) => Input::Unreachable { rid, refused: None },
    };
    let _ = inputs.send(input).await;
}

/// Serves the streams a peer opens on `conn` until it closes: each stream
/// carries one request frame, handed to the node loop with the stream to
/// answer on.
/// Device requests may also come on a connection to the gateway itself
/// (a subscriber following many devices of one gateway uses one
/// connection): those streams go to `devices`.
/// Every stream is first put to the membership ([`Membership::still_admits`]):
/// the peer was admitted at its handshake, but the policy may have changed.
pub(crate) async fn serve_connection(
    conns: Connections,
    conn: Connection,
    max_frame: usize,
    inputs: mpsc::Sender<Input>,
    devices: Option<mpsc::Sender<DeviceStream>>,
    nat: Arc<Nat>,
    clock: Clock,
) {
    let peer = conn.peer();
    let membership = conns.endpoint().membership().clone();
    loop {
        let (mut send, mut recv) = match conn.quic().accept_bi().await {
            Ok(s) => s,
            Err(_) => break,
        };
        if membership.still_admits(&peer.key(), clock.wall()).is_err() {
            let _ = send.reset(REFUSED.into());
            continue;
        }
        let inputs = inputs.clone();
        let devices = devices.clone();
        let nat = nat.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, max_frame))
                .await
            {
                Ok(Ok(Some(bytes))) if is_device_request(&bytes, max_frame) => {
                    let Some(tx) = devices else {
                        let _ = send.reset(BUSY.into());
                        return;
                    };
                    let stream = DeviceStream {
                        device: None,
                        first: Some(bytes),
                        peer,
                        send,
                        recv,
                    };
                    if let Err(mpsc::error::TrySendError::Full(mut s)) = tx.try_send(stream) {
                        let _ = s.send.reset(BUSY.into());
                    }
                }
                Ok(Ok(Some(bytes))) if is_kind(&bytes, max_frame, &[Kind::Nat]) => {
                    nat.serve(conn, bytes, send).await;
                }
                Ok(Ok(Some(bytes))) if is_kind(&bytes, max_frame, &[Kind::Time]) => {
                    nat.time().serve(conn, bytes, send).await;
                }
                Ok(Ok(Some(bytes))) if is_kind(&bytes, max_frame, &[Kind::Revocations]) => {
                    nat.revocations().clone().serve(conn, bytes, send).await;
                }
                Ok(Ok(Some(bytes))) => {
                    let _ = inputs
                        .send(Input::Request {
                            peer,
                            bytes,
                            reply: send,
                        })
                        .await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(peer = %peer.key(), error = %e, "bad request stream"),
                Err(_) => tracing::debug!(peer = %peer.key(), "request stream timed out"),
            }
        });
    }
    conns.remove(&conn);
}

/// A stream a peer opened to a device this gateway hosts: the devices
/// layer reads, answers and (for subscriptions) keeps it.
pub(crate) struct DeviceStream {
    /// The hosted device the peer dialed (its TLS identity served it);
    /// `None` on a connection to the gateway itself, where the request
    /// names the device.
    pub device: Option<PublicKey>,
    /// The first frame, when the node already read it to route the stream.
    pub first: Option<Vec<u8>>,
    /// The peer, proven by its certificate and admitted by the membership.
    pub peer: VerifiedPeer,
    /// Our half.
    pub send: quinn::SendStream,
    /// The peer's half.
    pub recv: quinn::RecvStream,
}

/// Serves a connection a peer made to a hosted device: every stream goes
/// to the devices layer. These connections never carry DHT traffic (their
/// proven key is the device's, not the peer's node), so they stay out of
/// the connection cache.
pub(crate) async fn serve_device_connection(
    conn: Connection,
    device: PublicKey,
    membership: Membership,
    clock: Clock,
    streams: Option<mpsc::Sender<DeviceStream>>,
    expelled: tokio::sync::broadcast::Receiver<PublicKey>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let peer = conn.peer();
    // Closes the connection if the peer is no longer admitted.
    let expel = || match membership.still_admits(&peer.key(), clock.wall()) {
        Ok(_) => false,
        Err(refusal) => {
            conn.close(super::CLOSE_NOT_ALLOWED, refusal.explain());
            true
        }
    };
    let mut expelled = Some(expelled);
    loop {
        let dropped = async {
            match expelled.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let (send, recv) = tokio::select! {
            accepted = conn.quic().accept_bi() => match accepted {
                Ok(pair) => pair,
                Err(_) => break,
            },
            // A key was dropped (left the membership), or we missed some:
            // check ours again, and close at once if it is out.
            dropped = dropped => {
                let ours = match dropped {
                    Ok(key) => key == peer.key(),
                    Err(RecvError::Lagged(_)) => true,
                    // The node is going away: nothing more to watch.
                    Err(RecvError::Closed) => {
                        expelled = None;
                        false
                    }
                };
                if ours && expel() {
                    break;
                }
                continue;
            }
        };
        // Checked per stream: the membership may have changed since the
        // handshake.
        if expel() {
            break;
        }
        let Some(tx) = &streams else {
            conn.close(super::CLOSE_NOT_ALLOWED, "this agent serves no devices");
            break;
        };
        let stream = DeviceStream {
            device: Some(device),
            first: None,
            peer,
            send,
            recv,
        };
        if let Err(mpsc::error::TrySendError::Full(s)) = tx.try_send(stream) {
            // Busy: refuse the stream rather than queue without bound.
            let mut s = s;
            let _ = s.send.reset(BUSY.into());
        }
    }
}

fn is_device_request(bytes: &[u8], max: usize) -> bool {
    is_kind(bytes, max, &[Kind::Read, Kind::Command, Kind::Subscribe])
}

/// Whether the (unverified) kind of an envelope is one of `kinds`: only to
/// route the stream; whoever it goes to opens and checks it.
fn is_kind(bytes: &[u8], max: usize, kinds: &[Kind]) -> bool {
    crate::wire::peek_unverified(bytes, max).is_some_and(|(k, _)| kinds.contains(&k))
}

/// Stream reset code when the devices layer has no room for a new stream.
pub(crate) const BUSY: u32 = 0x11;
/// Stream reset code when the peer is no longer admitted.
pub(super) const REFUSED: u32 = 0x12;

/// Writes an answer frame and finishes the stream.
pub(crate) async fn answer(mut reply: quinn::SendStream, envelope: Vec<u8>) {
    if write_frame(&mut reply, &envelope).await.is_ok() {
        let _ = reply.finish();
    }
}
