//! Our own code, run for real: the `streembit` binary and its processes,
//! bridges started in-process, and the plumbing every test shares.
//!
//! - [`agent`]: find the built `streembit` binary and run one-shot
//!   commands in a sandbox directory with a clean environment.
//! - [`node`]: `streembit run` processes, awaited through their systemd
//!   notifications.
//! - [`bridge`]: start a bridge from TOML on the current runtime and await
//!   its readings and device statuses.
//! - [`process`]: a child process killed on drop, whose output lines can be
//!   awaited (the tests never sleep to synchronise).
//! - [`ports`]: free loopback ports.
//! - [`bench`]: the local API without the CLI, and `/proc` readings, for
//!   the bench binaries in `tests/benches/`.
//!
//! Not here: anything third-party (see [`crate::peers`]) or anything that
//! shapes the network between agents (see [`crate::labs`]).

pub mod agent;
pub mod bench;
pub mod bridge;
pub mod node;
pub mod ports;
pub mod process;
