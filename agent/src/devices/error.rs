//! [`DevicesError`]: what goes wrong with hosted devices, and whose fault
//! it is: the operator's (a name or value), the bus's, or this machine's.

use streembit_bridges::{BridgeError, CommandError};

use crate::identity::{IdentityError, PublicKey};
use crate::wire::{Kind, WireError};

/// Why a device-protocol message or a reading was refused. Always the far
/// side's doing (or someone's in between): a gateway that signed a
/// reading with its own key, a request that is not a CBOR map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The envelope does not open (signature, network, format).
    #[error(transparent)]
    Envelope(#[from] WireError),
    /// Another kind of message than the exchange expects.
    #[error("expected {expected}, got {got}")]
    UnexpectedKind {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: Kind,
    },
    /// A reading signed by another key than its device's.
    #[error("reading signed by {got}, not by the device {device}")]
    WrongSigner {
        /// The device it must come from.
        device: Box<PublicKey>,
        /// Who signed it.
        got: Box<PublicKey>,
    },
    /// The payload is not what its kind says it is.
    #[error("{0}")]
    Malformed(String),
}

impl ProtocolError {
    pub(super) fn malformed(why: impl Into<String>) -> Self {
        ProtocolError::Malformed(why.into())
    }
}

/// Why a hosted-device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevicesError {
    /// No hosted device of that name or key (the caller's mistake).
    #[error("no device {0:?}")]
    NoDevice(String),
    /// A value the bus cannot take (the caller's mistake).
    #[error("{0}")]
    BadValue(String),
    /// The device's bridge is not running (its file was removed or broke).
    #[error("bridge {0} is not running")]
    BridgeNotRunning(String),
    /// The bridge would not take the command (busy, stopped).
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// The device or its link refused or failed the command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The bridge went away before answering.
    #[error("the bridge stopped before answering")]
    NoAnswer,
    /// A device in a bridge file cannot get its identity (a bad name, or
    /// the key file cannot be read or written).
    #[error("{bridge}: device {device}: {source}")]
    Identity {
        /// The bridge file.
        bridge: String,
        /// The device name.
        device: String,
        /// Why.
        source: IdentityError,
    },
    /// The disk refused (an inbox or a queue could not be opened).
    #[error("{what}: {source}")]
    Io {
        /// What was being opened.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A subscriber's queue could not be made (the device has as many
    /// subscribers as it may, or the disk refused).
    #[error("{0}")]
    Queue(String),
    /// A lock was poisoned by a panic elsewhere (a bug here).
    #[error("device state unavailable")]
    Poisoned,
}
