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
//! // 5. Status per device: online, offline with reason (`/dev/ttyUSB0 absent`
//! //    while the adapter is unplugged: the bridge keeps trying), last success.
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
//! Arrows point down; no module imports one above it.
//!
//! - `bridge`: [`BridgeHandle`], the running bridge (start, commands,
//!   status). It builds a bus's channels and spawns the bus; it knows no
//!   bus by name.
//! - [`config`]: [`BridgeFile`] and [`Bus`], the one place that lists the
//!   buses (one variant each) and names their tables; every problem of a
//!   file with its key path; [`Bus::device_paths`] for the gateway.
//! - The bus folders, one per kind of bus, each with its table
//!   (`config.rs`) and its half of the contract:
//!   - [`modbus`]: RTU and TCP, one task per line or host; request
//!     coalescing, timeouts, retries, reopening the port.
//!   - [`i2c`]: BME280/BMP280, SHT3x and ADS1115 over embedded-hal 1.0.
//!   - [`mqtt`]: rumqttc, topics and JSON pointers mapped to points;
//!     protocol state (`mqtt::state`) split from its event loop.
//! - `poll`: the one polling loop of Modbus and I2C (schedule, health and
//!   backoff, offline marking, commands between polls, status, readings)
//!   and the `Poller` trait they implement.
//! - `bus`: the contract owned by neither `bridge` nor the buses: `BusIo`
//!   (readings out, commands in, status board, clock) and `BusConfig`
//!   (what every table answers), plus the checks all tables share and the
//!   words for a device file that cannot be opened (`/dev/ttyUSB0 absent`).
//! - `reading`, `value`, `status`, `error`, `clock`: the data types the
//!   agent sees. Errors come in two layers: [`BridgeError`] (the link
//!   failed) and [`PointError`] (the device said no or sent nonsense), like
//!   tokio-modbus's `Result<Result<T, ExceptionCode>, Error>`.
//! - `scaling`: raw bus numbers to engineering values (scale, offset).
//!
//! Adding a bus is a folder plus a variant of [`Bus`]; `bridges/README.md`
//! says what goes where.
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
