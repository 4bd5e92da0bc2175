//! The NAT-traversal requests peers send each other, as CBOR payloads of
//! `nat` envelopes, answered by `nat_answer` envelopes on the same stream
//! (docs/wire.md, "NAT traversal"). Keys travel as 64-hex text, socket
//! addresses as `ip:port` text.

use serde::{Deserialize, Serialize};

use crate::node::NodeError;

/// A request (envelope kind `nat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NatRequest {
    /// Which address do you see me at?
    Observe,
    /// Have another peer dial me at `addr` (its IP must be the one you
    /// see me at, so nobody can aim dials at a third party).
    DialBack {
        /// The address to test.
        addr: String,
        /// Keys the requester holds a connection to: a dial from one of
        /// them may ride on the NAT mapping that connection keeps open.
        #[serde(default)]
        exclude: Vec<String>,
        /// The `dial` the third peer is to be sent, sealed by the requester
        /// for the peer it asks (hex of a `nat` envelope): see `Dial`.
        #[serde(default)]
        token: String,
    },
    /// Dial `peer` at `addr` with a fresh handshake and say if it worked
    /// (asked by the peer serving a `dial_back`).
    Dial {
        /// Key the handshake must prove.
        peer: String,
        /// Where.
        addr: String,
        /// This same request sealed by `peer` itself for the peer that
        /// forwards it (hex): a node dials only an address the target
        /// itself asked to be dialed at, within the freshness window, once.
        /// Without it anyone connected could aim our handshakes at any
        /// ip:port, or learn whether a key answers at an internal address.
        #[serde(default)]
        token: String,
    },
    /// Relay for me: forward sessions to me while this connection lasts.
    Reserve,
    /// Open a relayed session to `target`, which holds a reservation here.
    Connect {
        /// The peer to reach.
        target: String,
    },
    /// From a relay to the target of a new session: `peer`, seen by the
    /// relay at `addr`, will dial through session `sid`.
    Incoming {
        /// The session.
        sid: u64,
        /// Who will dial.
        peer: String,
        /// Where the relay sees it (for hole punching).
        addr: String,
    },
}

/// An answer (envelope kind `nat_answer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NatAnswer {
    /// To `observe`: the address the request came from.
    Observed {
        /// `ip:port`.
        addr: String,
    },
    /// To `dial_back`: whether a third peer reached the address; `None`
    /// when no third peer was there to try.
    DialBack {
        /// The outcome, if there was a test.
        reachable: Option<bool>,
        /// Where the serving peer sees the dialer: a requester that sent
        /// to that address lately learns nothing from a success.
        #[serde(default)]
        by: Option<String>,
    },
    /// To `dial`: whether the handshake completed.
    Dialed {
        /// The outcome.
        reachable: bool,
    },
    /// To `reserve`: held, and the address the relay sees us at.
    Reserved {
        /// `ip:port`.
        addr: String,
    },
    /// To `connect`: the session, and where the relay sees the target.
    Session {
        /// Session id, for the relay frames.
        sid: u64,
        /// The target's address as the relay sees it (for hole punching).
        addr: String,
    },
    /// To `incoming`: ready.
    Ok,
    /// A refusal.
    Error {
        /// `relay_disabled`, `no_reservation`, `busy`, `bad_request`,
        /// `not_my_relay`, `unreachable`.
        code: String,
        /// Why, for people.
        message: String,
    },
}

impl NatAnswer {
    /// A refusal with `code`.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        NatAnswer::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// CBOR of a request or answer.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    // Writing these types into a Vec cannot fail.
    let _ = ciborium::into_writer(msg, &mut out);
    out
}

/// Decodes a payload the envelope layer already bounded in size.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, NodeError> {
    ciborium::from_reader(payload)
        .map_err(|e| NodeError::PeerMisbehaved(format!("bad nat payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let reqs = [
            NatRequest::Observe,
            NatRequest::DialBack {
                addr: "192.0.2.1:7470".into(),
                exclude: vec!["ab".repeat(32)],
                token: "a0".into(),
            },
            NatRequest::Incoming {
                sid: u64::MAX,
                peer: "ab".repeat(32),
                addr: "192.0.2.1:7470".into(),
            },
        ];
        for r in reqs {
            assert_eq!(decode::<NatRequest>(&encode(&r)), Ok(r));
        }
        let a = NatAnswer::DialBack {
            reachable: None,
            by: None,
        };
        assert_eq!(decode::<NatAnswer>(&encode(&a)), Ok(a));
        assert!(decode::<NatRequest>(&encode(&NatAnswer::Ok)).is_err());
        assert!(decode::<NatRequest>(b"\xff").is_err());
    }
}
