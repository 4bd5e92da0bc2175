//! The contract between the bridge and its buses, owned by neither side.
//!
//! `bridge` builds a [`BusIo`] and spawns a bus's task; the bus folders
//! (`modbus`, `i2c`, `mqtt`) take one and run. Neither side imports the
//! other: both import this module, the way quinn-proto keeps its endpoint
//! and connection events in `shared.rs`.
//!
//! - `io`: [`BusIo`], what every bus task receives and emits: readings out,
//!   command requests in, the status board and the clock.
//!
//! What it does not do: no I/O, no task, no protocol. It names the types
//! that cross between the handle and a bus, nothing more.

mod io;

pub(crate) use io::{BusIo, CommandRequest, Reply};
