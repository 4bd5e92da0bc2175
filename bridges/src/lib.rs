//! Streembit device bridges: Modbus, I2C and MQTT buses turned into
//! `Reading`s, and `Command`s applied back to the bus.
//!
//! This crate contains no cryptography and never depends on the agent: a
//! bridge only speaks to devices. The agent decides identity and signing.
