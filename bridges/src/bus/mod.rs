//! The contract between the bridge and its buses, owned by neither side.
//!
//! `bridge` builds a [`BusIo`] and spawns what `config::Bus::start` gives
//! it; the bus folders (`modbus`, `i2c`, `mqtt`) implement [`BusConfig`]
//! for their tables and run on a `BusIo`. Neither side imports the other:
//! both import this module, the way quinn-proto keeps the events its
//! endpoint and connections exchange in `shared.rs`.
//!
//! - `io`: [`BusIo`], what every bus task receives and emits: readings out,
//!   command requests in, the status board and the clock.
//! - `config`: [`BusConfig`], what every bus's table answers (device names,
//!   point names, writers, validation, device files, its event loop);
//!   [`DevicePath`];
//!   [`Access`], the `r`/`rw` of a point on any bus.
//! - `validate`: collecting every problem of a file with its key path, and
//!   the checks all buses share (names, writers, scale).
//! - `device_file`: the reason a serial port or I2C bus cannot be opened
//!   (`/dev/ttyUSB0 absent`, permission denied and its fix, busy), the same
//!   words on every bus that opens a device file.
//!
//! What it does not do: no I/O, no task, no protocol, and it knows no bus
//! by name: `config::Bus` is the one place that lists them.

mod config;
mod device_file;
mod io;
mod validate;

pub(crate) use config::{point_writers, BusConfig, BusTask};
pub use config::{Access, DevicePath};
pub(crate) use device_file::cannot_open;
pub(crate) use io::{BusIo, CommandRequest, Reply};
pub(crate) use validate::{check_named_list, check_names, check_writers, Errors};

/// Test helper for the bus folders: the one table of a bridge file text,
/// validated as `BridgeFile` would, without naming `BridgeFile` (which
/// sits above them).
#[cfg(test)]
pub(crate) fn parse_table<T>(text: &str) -> T
where
    T: serde::de::DeserializeOwned + BusConfig,
{
    let mut file: std::collections::BTreeMap<String, T> =
        toml::from_str(text).expect("a bridge file with one table");
    let (name, bus) = file.pop_first().expect("one table");
    let mut errs = Errors::default();
    bus.validate(&name, &mut errs);
    if let Err(errs) = errs.finish() {
        panic!("invalid {name}: {errs:#?}");
    }
    bus
}
