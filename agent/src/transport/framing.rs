//! Messages on QUIC streams: one signed envelope per frame, a 4-byte
//! big-endian length first, checked against the cap before the body is read.
//!
//! A request is one bidirectional stream: the requester writes one frame
//! and finishes its side; the responder answers with one frame (or none,
//! for messages that need no answer) and finishes.

use std::time::Duration;

use super::connection::Connection;
use super::TransportError;

/// Writes one frame.
pub async fn write_frame(send: &mut quinn::SendStream, body: &[u8]) -> Result<(), TransportError> {
    let len = u32::try_from(body.len())
        .map_err(|_| TransportError::Local("frame longer than 4 GiB".into()))?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| TransportError::Stream(e.to_string()))?;
    send.write_all(body)
        .await
        .map_err(|e| TransportError::Stream(e.to_string()))
}

/// Reads one frame of at most `max` bytes. The length prefix is checked
/// before any of the body is buffered, so a peer announcing 4 GiB costs us
/// four bytes. `Ok(None)`: the stream ended cleanly before a frame began.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<Vec<u8>>, TransportError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(TransportError::Stream(e.to_string())),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        let _ = recv.stop(FRAME_TOO_LARGE.into());
        return Err(TransportError::FrameTooLarge { len, max });
    }
    // Grown as bytes arrive rather than allocated at the announced length:
    // what a peer makes us hold is then bounded by what it actually sent
    // (flow control), not by how many streams announce a large frame.
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    while body.len() < len {
        let start = body.len();
        body.resize(start + (len - start).min(READ_CHUNK), 0);
        recv.read_exact(&mut body[start..])
            .await
            .map_err(|e| TransportError::Stream(e.to_string()))?;
    }
    Ok(Some(body))
}

const READ_CHUNK: usize = 8 * 1024;

/// Stream error code sent when a frame exceeds the cap.
pub(crate) const FRAME_TOO_LARGE: u32 = 0x10;

/// Sends `request` on a new stream and waits for one answer frame, all
/// within `timeout`. `Ok(None)`: the peer closed the stream without
/// answering.
pub async fn request(
    conn: &Connection,
    request: &[u8],
    max_answer: usize,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, TransportError> {
    let exchange = async {
        let (mut send, mut recv) = conn
            .quic()
            .open_bi()
            .await
            .map_err(|e| TransportError::Closed(e.to_string()))?;
        write_frame(&mut send, request).await?;
        send.finish()
            .map_err(|e| TransportError::Stream(e.to_string()))?;
        read_frame(&mut recv, max_answer).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Err(e)) => Err(conn.refused_by_peer().unwrap_or(e)),
        Ok(answered) => answered,
        Err(_) => Err(TransportError::TimedOut),
    }
}
