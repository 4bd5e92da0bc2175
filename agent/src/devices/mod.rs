//! Devices hosted by this gateway: the bridge files that describe them, the
//! running bridges, each device's own identity and its latest readings.
//!
//! - `files.rs`: `bridges.d/*.toml`, validated together (names unique
//!   across files, serial and I2C device paths present).
//! - `registry.rs`: [`Devices`], the running bridges and their board.
//! - `signing.rs`: every reading sealed by its device's own key.
//!
//! Each device gets its own Ed25519 key in the keystore the first time it
//! is seen, named by the device name only, so renaming or reordering bridge
//! files never changes an identity.

mod files;
mod registry;
mod signing;

pub use files::{bridges_dir, load_dir, Loaded, LoadedBridge};
pub use registry::{DeviceInfo, Devices, PointReading};
