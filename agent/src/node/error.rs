//! [`NodeError`]: what can go wrong when asking the node, or the node
//! asking a peer, with who is at fault.

use crate::transport::TransportError;
use crate::wire::SessionError;

/// Why a request to the node, or the node's request to a peer, failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The node loop is gone: the agent is shutting down.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// Too much in flight here at once (local load): try again.
    #[error("{0}")]
    Busy(&'static str),
    /// A record was found but failed a check: its publisher's fault.
    #[error("{0}")]
    InvalidRecord(String),
    /// The network failed us: no connection, a reset stream, a timeout.
    #[error("{0}")]
    Transport(String),
    /// The peer answered with something we refuse: an envelope that does
    /// not open, signed by someone else, or a malformed payload.
    #[error("{0}")]
    PeerMisbehaved(String),
    /// An address or a setting that does not parse: in a record, its
    /// publisher's fault; in the config, the operator's.
    #[error("{0}")]
    Unparsable(String),
    /// Our own side failed (sealing, a poisoned lock): a bug or a local
    /// fault, not the peer's.
    #[error("{0}")]
    Local(String),
}

impl From<TransportError> for NodeError {
    fn from(e: TransportError) -> Self {
        NodeError::Transport(e.to_string())
    }
}

impl From<SessionError> for NodeError {
    fn from(e: SessionError) -> Self {
        if e.is_local() {
            NodeError::Local(e.to_string())
        } else {
            NodeError::PeerMisbehaved(e.to_string())
        }
    }
}
