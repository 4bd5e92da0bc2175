//! Devices: the bridges this gateway runs and the devices behind them,
//! each a peer with its own key; and this agent as a client of devices
//! hosted anywhere.
//!
//! Hosted here:
//! - `files.rs`: `bridges.d/*.toml`, validated together (names unique
//!   across files, serial and I2C device paths present).
//! - `supervisor.rs`: [`Devices`], the running bridges: started, replaced
//!   and stopped as their files change; the operator's own writes.
//! - `collector.rs`: each reading sealed by its device's own key, queued
//!   for subscribers, fed to local consumers and put on the board.
//! - `board.rs`: what every device last said, as the API shows it.
//! - `reading.rs`: a reading on the wire, sealed and verified; its
//!   sequence numbers.
//! - `sequence.rs`: each device's sequence reservation on disk, so
//!   sequences never go back across restarts or clock steps.
//! - `feed.rs`: every signed reading as it is made or received, for local
//!   consumers.
//! - `outbox.rs`: store-and-forward queues, one per (device, subscriber).
//!
//! On the network:
//! - `protocol.rs`: what peers ask a device (`read`, `command`,
//!   `subscribe`) and what it answers, as signed payloads.
//! - `service.rs`: the gateway side of that protocol: answers, the
//!   `writers` check, subscription streams.
//! - `remote.rs`: the calling side: read and write devices of other
//!   gateways, verifying every answer with the device key.
//! - `subscriber.rs`: this agent's subscriptions and their inboxes.
//! - `error.rs`: [`DevicesError`], and whose fault it is.
//!
//! Each device gets its own Ed25519 key in the keystore the first time it
//! is seen, named by the device name only, so renaming or reordering bridge
//! files never changes an identity.
//!
//! What this module does not do: talk to buses (the bridges crate does),
//! decide who may connect (the transport's membership does), or find
//! where a device is (it asks the node).

mod board;
mod collector;
mod error;
mod feed;
mod files;
mod outbox;
mod protocol;
mod reading;
mod remote;
mod sequence;
mod service;
mod subscriber;
mod supervisor;

pub(crate) use error::{DevicesError, ProtocolError};
pub(crate) use feed::SignedReading;
pub(crate) use files::{load_dir, Loaded, LoadedBridge};
pub use outbox::Outboxes;
pub(crate) use outbox::SYNC_EVERY;
pub use reading::{next_seq, seal_reading, verify_reading, verify_readings};
pub(crate) use remote::{Remote, RemoteError};
pub(crate) use service::DeviceService;
pub(crate) use subscriber::Subscriptions;
pub(crate) use supervisor::Devices;
