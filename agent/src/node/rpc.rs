//! Moving DHT messages over QUIC streams: one request per bidirectional
//! stream, answered on the same stream.
//!
//! These tasks only move bytes. Every envelope is opened (and every answer
//! sealed) by the node loop, which owns the keys, the opener and the core.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::connections::Connections;
use crate::identity::PublicKey;
use crate::transport::framing::{read_frame, request, write_frame};
use crate::transport::{Connection, VerifiedPeer};

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
    Unreachable { rid: u64 },
    /// A new connection is up (dialed or accepted).
    Connected(Connection),
}

/// Sends one sealed request and reports the answer (or its absence).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_request(
    conns: Connections,
    to: PublicKey,
    addrs: Vec<SocketAddr>,
    rid: u64,
    envelope: Vec<u8>,
    max_answer: usize,
    timeout: Duration,
    inputs: mpsc::Sender<Input>,
) {
    let result = async {
        let (conn, fresh) = conns.get_or_dial(&to, &addrs).await?;
        if fresh {
            let _ = inputs.send(Input::Connected(conn.clone())).await;
        }
        let answer = request(&conn, &envelope, max_answer, timeout).await;
        if answer.is_err() && conn.quic().close_reason().is_some() {
            conns.remove(&conn);
        }
        answer.map(|a| (conn.peer(), a))
    };
    let input = match tokio::time::timeout(timeout * 2, result).await {
        Ok(Ok((peer, Some(bytes)))) => Input::Answer { peer, rid, bytes },
        Ok(Ok((_, None))) | Ok(Err(_)) | Err(_) => Input::Unreachable { rid },
    };
    let _ = inputs.send(input).await;
}

/// Serves the streams a peer opens on `conn` until it closes: each stream
/// carries one request frame, handed to the node loop with the stream to
/// answer on.
pub(crate) async fn serve_connection(
    conns: Connections,
    conn: Connection,
    max_frame: usize,
    inputs: mpsc::Sender<Input>,
) {
    let peer = conn.peer();
    loop {
        let (send, mut recv) = match conn.quic().accept_bi().await {
            Ok(s) => s,
            Err(_) => break,
        };
        let inputs = inputs.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, max_frame))
                .await
            {
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

/// Writes an answer frame and finishes the stream.
pub(crate) async fn answer(mut reply: quinn::SendStream, envelope: Vec<u8>) {
    if write_frame(&mut reply, &envelope).await.is_ok() {
        let _ = reply.finish();
    }
}
