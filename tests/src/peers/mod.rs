//! Third-party peers the agent and its bridges are tested against: real
//! implementations, not models, so interoperability is measured, not
//! assumed.
//!
//! - [`mosquitto`]: a real mosquitto broker, `mosquitto_pub` and
//!   `mosquitto_sub`.
//! - [`pymodbus`]: the pymodbus server of `tests/py/modbus_server.py`,
//!   driven over stdin.
//! - [`modbus_checks`]: the Modbus assertions shared by the RTU and TCP
//!   tests, against that server.
//! - [`python`]: run the third-party Python peers in `tests/py/`.
//! - [`pty`]: a `socat` pseudo-terminal pair (a serial line in software).
//! - [`plug`]: an MQTT plug on a gateway's embedded broker, fed with
//!   `mosquitto_pub` and read from another agent (NAT test and bench, the
//!   embedded-broker test).
//!
//! Not here: starting our own agents or bridges (see [`crate::harness`]);
//! these peers only stand on the far side of them. None is installed by
//! the tests: `scripts/install-test-deps.sh` does that.

pub mod modbus_checks;
pub mod mosquitto;
pub mod plug;
pub mod pty;
pub mod pymodbus;
pub mod python;
