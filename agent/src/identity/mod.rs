//! Who a participant is: Ed25519 keys, the node ids derived from them, and
//! the keystore that keeps secret keys on disk.
//!
//! - [`key`]: [`Keypair`], [`PublicKey`] (64-hex text form) and [`NodeId`]
//!   (SHA-256 of the public key, the DHT keyspace position).
//! - [`batch`]: several signatures checked at once, as strictly as one.
//! - [`keystore`]: the gateway key and per-device keys under the state
//!   directory, written atomically with mode 0600 in 0700 directories.
//!
//! What this module does not do: sign messages (that is `wire`'s job,
//! which borrows a [`Keypair`]), or decide who may join (the transport's
//! membership does).

pub mod batch;
mod key;
mod keystore;

pub use key::{Keypair, NodeId, PublicKey};
pub use keystore::{DeviceName, KeyFile, Keystore};

use std::path::PathBuf;

/// Why a key could not be parsed, created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A public key's text form is not 64 lowercase hex characters.
    #[error("invalid public key {input:?}: {reason}")]
    BadPublicKey {
        /// What was given, shortened for display.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A device name is not `[a-z0-9_-]{1,64}`.
    #[error("invalid device name {0:?}: use 1 to 64 of a-z, 0-9, '_' and '-'")]
    BadDeviceName(String),
    /// The key file exists and may be read by group or others.
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}"
    )]
    InsecurePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Refused to replace an existing key.
    #[error("key file {0} already exists; refusing to overwrite it (use --force to replace the identity)")]
    AlreadyExists(PathBuf),
    /// The file is not a PKCS#8 PEM Ed25519 private key.
    #[error("key file {path} is not a PKCS#8 PEM Ed25519 private key: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint (never contains key bytes).
        reason: String,
    },
    /// Reading or writing the key file or its directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
