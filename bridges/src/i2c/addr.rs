//! The 7-bit I2C address, as a newtype (tokio-modbus `Slave` habit).

use std::fmt;

/// A 7-bit I2C device address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct I2cAddr(u8);

impl I2cAddr {
    /// An address; `None` above 0x7F or in the reserved ranges
    /// 0x00..=0x07 and 0x78..=0x7F.
    #[must_use]
    pub const fn new(addr: u8) -> Option<Self> {
        if addr >= 0x08 && addr <= 0x77 {
            Some(I2cAddr(addr))
        } else {
            None
        }
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for I2cAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}
