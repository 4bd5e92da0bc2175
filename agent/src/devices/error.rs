//! [`DevicesError`]: what goes wrong with hosted devices, and whose fault
//! it is: the operator's (a name or value), the bus's, or this machine's.

use streembit_bridges::{BridgeError, CommandError};

use crate::identity::IdentityError;

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
