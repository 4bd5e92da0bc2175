//! Shared harness for the multi-process and real-peer tests in `tests/tests/`.
//!
//! - [`agent`]: find the built `streembit` binary and run it in a sandbox
//!   directory with a clean environment.
//! - [`node`]: `streembit run` processes, awaited through their systemd
//!   notifications.
//! - [`bench`]: the local API without the CLI, and `/proc` readings, for
//!   the bench binaries in `tests/benches/`.
//! - [`python`]: run the third-party Python peers in `tests/py/`.

pub mod agent;
pub mod bench;
pub mod node;
pub mod python;
