//! Streembit device bridges: Modbus RTU/TCP, I2C and MQTT buses turned into
//! [`Reading`]s, and [`Command`]s applied back to the devices.
//!
//! # Using it (the agent's side)
//!
//! ```no_run
//! # async fn demo(text: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use streembit_bridges::{BridgeFile, BridgeHandle, BridgeOptions, Command, Value};
//!
//! // 1. Parse and validate a bridge file (all errors at once, with key paths).
//! let bus = BridgeFile::from_toml_str(text)
//!     .and_then(BridgeFile::into_bus)
//!     .map_err(|errs| format!("{} problems, first: {}", errs.len(), errs[0]))?;
//! // 2. Start it on a tokio runtime: a handle and a bounded stream of readings.
//! let (bridge, mut readings) =
//!     BridgeHandle::start(bus, &tokio::runtime::Handle::current(), BridgeOptions::default());
//! // 3. Readings: good values, or point errors (an exception, NaN, bad JSON).
//! while let Some(r) = readings.recv().await {
//!     println!("{}.{} = {:?} {:?} at {}", r.device, r.point, r.value, r.quality, r.timestamp);
//!     # break;
//! }
//! // 4. Commands: one result per command (after the agent checked `writers`).
//! bridge
//!     .command(Command { device: "meter".into(), point: "relay".into(), value: Value::Bool(true) })
//!     .await?;
//! // 5. Status per device: online, offline with reason, last success.
//! for (name, st) in bridge.status() {
//!     println!("{name}: {:?}, last ok {:?}", st.state, st.last_success);
//! }
//! // 6. Reload: validate the new file first (keep the old bridge if it is
//! //    bad), then stop the old one; `stop` returns once its port is closed.
//! bridge.stop().await;
//! # Ok(()) }
//! ```
//!
//! Timestamps are milliseconds since the Unix epoch. Only the event loops
//! read the clock (through [`Clock`]); protocol state takes the time as an
//! argument.
//!
//! # Module map
//!
//! - [`config`]: bridge file types (`serde`, `deny_unknown_fields`) and
//!   validation that reports every problem with its key path.
//! - `bridge`: [`BridgeHandle`], the running bridge (start, commands, status).
//! - `reading`, `value`, `status`, `error`: the data types the agent sees.
//!   Errors come in two layers: [`BridgeError`] (the link failed) and
//!   [`PointError`] (the device said no or sent nonsense), like
//!   tokio-modbus's `Result<Result<T, ExceptionCode>, Error>`.
//! - [`modbus`]: RTU and TCP, one task per line or host; request coalescing,
//!   timeouts, retries, offline after N failures with backoff.
//! - [`i2c`]: BME280/BMP280, SHT3x and ADS1115 over embedded-hal 1.0.
//! - [`mqtt`]: rumqttc, topics and JSON pointers mapped to points; protocol
//!   state (`mqtt::state`) split from its event loop.
//! - `health`, `schedule`, `clock`: pure helpers that take `now`.
//! - `scaling`: raw bus numbers to engineering values (scale, offset).
//!
//! # What this crate does not do
//!
//! No cryptography, no identities, no network peers: it never depends on the
//! agent. `writers` in bridge files are validated as 64-character lowercase
//! hex strings and handed to the agent ([`config::Bus::writers`]); the
//! bridge does not check who sent a command. It does not persist readings,
//! does not load files from disk by itself (the agent reads `bridges.d/`),
//! and does not run an MQTT broker.

pub mod config;
pub mod i2c;
pub mod modbus;
pub mod mqtt;

#[doc(hidden)]
pub mod fuzzing;

mod bridge;
mod bus;
mod clock;
mod error;
mod poll;
mod reading;
mod scaling;
mod status;
mod value;

pub use bridge::{BridgeHandle, BridgeOptions, Readings};
pub use clock::{Clock, Now, SystemClock};
pub use config::{BridgeFile, Bus, ConfigError, DevicePath};
pub use error::{BridgeError, CommandError, PointError};
pub use reading::{Command, Quality, Reading, UnixMillis};
pub use status::{DeviceState, DeviceStatus, StatusMap};
pub use value::Value;
