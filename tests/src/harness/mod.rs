//! Our own code, run for real: the `streembit` binary and its processes,
//! bridges started in-process, and the plumbing every test shares.
//!
//! - [`cli`]: find the built `streembit` binary, run one-shot commands in
//!   a sandbox directory with a clean environment, make keys before an
//!   agent starts, and read a command's output as text or JSON.
//! - [`agent_process`]: `streembit run` processes, started through one
//!   builder and awaited through their systemd notifications; polling for
//!   state only the agent's CLI shows.
//! - [`bridge`]: start a bridge from TOML on the current runtime and await
//!   its readings and device statuses.
//! - [`process`]: a child process killed on drop, whose output lines can be
//!   awaited (the tests never sleep to synchronise), and a program run
//!   under a command prefix such as `ip netns exec`.
//! - [`ports`]: free loopback ports.
//! - [`bench`](mod@bench): the local API without the CLI, and `/proc` readings, for
//!   the bench binaries in `tests/benches/`.
//!
//! Not here: anything third-party (see [`crate::peers`]) or anything that
//! shapes the network between agents (see [`crate::labs`]).

pub mod agent_process;
pub mod bench;
pub mod bridge;
pub mod cli;
pub mod ports;
pub mod process;
