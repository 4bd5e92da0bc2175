//! The Modbus slave address, as a newtype (tokio-modbus `Slave` habit).

use std::fmt;

/// A Modbus unit id (slave address on a serial line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(u8);

impl UnitId {
    /// The broadcast address 0: slaves act but never answer, so it is
    /// never polled.
    #[must_use]
    pub const fn broadcast() -> Self {
        UnitId(0)
    }

    /// The unit id TCP devices without sub-units commonly ignore.
    #[must_use]
    pub const fn tcp_device() -> Self {
        UnitId(255)
    }

    /// A unit id from its number.
    #[must_use]
    pub const fn new(id: u8) -> Self {
        UnitId(id)
    }

    /// True for ids a serial slave may have (1..=247).
    #[must_use]
    pub const fn is_serial_slave(self) -> bool {
        self.0 >= 1 && self.0 <= 247
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl From<UnitId> for tokio_modbus::Slave {
    fn from(u: UnitId) -> Self {
        tokio_modbus::Slave(u.0)
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unit {}", self.0)
    }
}
