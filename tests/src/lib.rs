//! Shared harness for the multi-process and real-peer tests in `tests/tests/`
//! and the bench binaries in `tests/benches/`.
//!
//! The crate is grouped by what a test talks to:
//!
//! - [`harness`]: our own code under test, run for real: `streembit`
//!   commands in a sandbox, `streembit run` processes awaited through
//!   their systemd notifications, bridges started in-process, child
//!   processes killed on drop, free ports, bench readings from `/proc`.
//! - [`peers`]: the third-party peers we test against: mosquitto and its
//!   clients, pymodbus, the Python COSE peer, a `socat` serial line, an
//!   MQTT plug, and the Modbus checks run against pymodbus.
//! - [`labs`]: the network a test runs in: namespace hosts with loss and
//!   partitions, namespace NAT routers, a lossy UDP proxy on loopback, and
//!   a hostile peer made of the agent's own parts.
//!
//! Tests import items by their full path (`streembit_tests::harness::...`),
//! so a reader sees which of the three a test leans on; there are no
//! re-exports at the root.
//!
//! What this crate does not do: it asserts nothing about the agent beyond
//! what a helper needs to go on (the tests in `tests/tests/` do that); it
//! does not sleep to synchronise (a wait ends on an event where there is
//! one, and polls state visible only from outside against a deadline that
//! only fails a hung test); and it skips nothing silently: a missing tool
//! is a failure naming `scripts/install-test-deps.sh`, except the
//! root-only namespace labs, which print `SKIPPED:` and the reason.

pub mod harness;
pub mod labs;
pub mod peers;
