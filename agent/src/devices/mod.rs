//! Devices hosted by this gateway: the bridge files that describe them, the
//! running bridges, each device's own identity and its latest readings.
//!
//! - `files.rs`: `bridges.d/*.toml`, validated together (names unique
//!   across files, serial and I2C device paths present).
//! - `registry.rs`: [`Devices`], the running bridges and their board.
//! - `signing.rs`: every reading sealed by its device's own key.
//! - `protocol.rs`: what peers ask a device (`read`, `command`,
//!   `subscribe`) and what it answers, as signed payloads.
//! - `service.rs`: the gateway side of that protocol: answers, the
//!   `writers` check, subscription streams.
//! - `outbox.rs`: store-and-forward queues, one per (device, subscriber).
//! - `remote.rs`: the calling side: read and write devices of other
//!   gateways, verifying every answer with the device key.
//! - `subscriber.rs`: this agent's subscriptions and their inboxes.
//! - `feed.rs`: every signed reading as it arrives, for local consumers.
//!
//! Each device gets its own Ed25519 key in the keystore the first time it
//! is seen, named by the device name only, so renaming or reordering bridge
//! files never changes an identity.

mod feed;
mod files;
mod outbox;
pub mod protocol;
mod registry;
mod remote;
mod service;
mod signing;
mod subscriber;

pub use feed::{Feed, SignedReading};
pub use files::{bridges_dir, load_dir, Loaded, LoadedBridge};
pub use outbox::{Outboxes, SYNC_EVERY};
pub use registry::{DeviceInfo, Devices, Hosted, PointReading};
pub use remote::{Remote, RemoteError};
pub use service::DeviceService;
pub use signing::{next_seq, seal_reading};
pub use subscriber::{InboxEntry, SubscriptionInfo, Subscriptions};
