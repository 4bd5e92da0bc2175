//! Shared harness for the multi-process and real-peer tests in `tests/tests/`.
//!
//! - [`agent`]: find the built `streembit` binary and run it in a sandbox
//!   directory with a clean environment.
//! - [`node`]: `streembit run` processes, awaited through their systemd
//!   notifications.
//! - [`bench`]: the local API without the CLI, and `/proc` readings, for
//!   the bench binaries in `tests/benches/`.
//! - [`hostile`]: a hostile peer made of the agent's library parts
//!   (replays, forgeries, STORE floods, handshake floods).
//! - [`python`]: run the third-party Python peers in `tests/py/`.
//! - [`process`]: a child process killed on drop, whose output lines can be
//!   awaited (the tests never sleep to synchronise).
//! - [`netns`]: test hosts in network namespaces on a bridge, with
//!   iptables loss and partitions (root only; skips otherwise).
//! - [`natlab`]: hosts behind endpoint-independent or symmetric NAT routers
//!   on a public bridge, all in namespaces (root only; skips otherwise).
//! - [`plug`]: an MQTT plug on a gateway's embedded broker, fed with
//!   `mosquitto_pub` and read from another agent (NAT test and bench).
//! - [`ports`]: free loopback ports.
//! - [`relay`]: a userspace UDP relay adding delay, jitter and loss on
//!   loopback (no `netem` on this kernel).
//! - [`pty`]: a `socat` pseudo-terminal pair (a serial line in software).
//! - [`pymodbus`]: the pymodbus server of `tests/py/modbus_server.py`.
//! - [`mosquitto`]: a real mosquitto broker, `mosquitto_pub` and `mosquitto_sub`.
//! - [`bridge`]: helpers to start a bridge and await readings and status.
//! - [`modbus_checks`]: the Modbus assertions shared by the RTU and TCP tests.

pub mod agent;
pub mod bench;
pub mod bridge;
pub mod hostile;
pub mod modbus_checks;
pub mod mosquitto;
pub mod natlab;
pub mod netns;
pub mod node;
pub mod plug;
pub mod ports;
pub mod process;
pub mod pty;
pub mod pymodbus;
pub mod python;
pub mod relay;
