//! The one place the agent reads the time.
//!
//! Gateways boot with wrong clocks (no RTC, no NTP in the building), so
//! what the agent does with the wall clock has to be testable with a wrong
//! one: every shell (node, devices, transport) takes a [`Clock`] and asks
//! it, and protocol state (the DHT core, the replay window, envelope
//! freshness) takes the time it is handed. A test builds an agent on an
//! [`OffsetClock`] to see what a clock 10 minutes fast does.
//!
//! The time source is the bridges crate's [`streembit_bridges::Clock`]:
//! the bus loops stamp readings with the same clock that seals them.
//!
//! What this module does not do: agree a time with peers or correct the
//! clock. It only makes the clock an argument.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use streembit_bridges::Now;

use crate::wire::UnixMillis;

/// The agent's clock: cheap to clone, shared by every shell.
#[derive(Clone)]
pub struct Clock(Arc<dyn streembit_bridges::Clock>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemSource))
    }

    /// A clock reading `source`.
    pub fn new(source: Arc<dyn streembit_bridges::Clock>) -> Self {
        Self(source)
    }

    /// Wall-clock time, ms since the Unix epoch (timestamps, freshness).
    pub fn wall(&self) -> UnixMillis {
        UnixMillis(self.0.now().unix_ms)
    }

    /// Monotonic time (timeouts, rates, ages).
    pub fn instant(&self) -> std::time::Instant {
        self.0.now().instant.into_std()
    }

    /// The source, for the bridges' event loops.
    pub fn source(&self) -> Arc<dyn streembit_bridges::Clock> {
        self.0.clone()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Clock").field(&self.wall().0).finish()
    }
}

/// The system's clocks: `SystemTime` for the wall, tokio's `Instant` for
/// monotonic time (so paused test time works too).
#[derive(Debug, Clone, Copy, Default)]
struct SystemSource;

impl streembit_bridges::Clock for SystemSource {
    fn now(&self) -> Now {
        Now {
            instant: tokio::time::Instant::now(),
            unix_ms: system_wall_ms(),
        }
    }
}

fn system_wall_ms() -> u64 {
    // A clock before 1970 reads as 0 rather than failing: the agent must
    // run (and show the offset) whatever the clock says.
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The system clock shifted by a fixed amount: a gateway whose wall clock
/// is wrong. Monotonic time is not shifted (it has no meaning to be wrong
/// about).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    /// Added to the wall clock, in ms (negative: the clock is behind).
    pub offset_ms: i64,
}

impl streembit_bridges::Clock for OffsetClock {
    fn now(&self) -> Now {
        let wall = system_wall_ms();
        let unix_ms = if self.offset_ms >= 0 {
            wall.saturating_add(self.offset_ms.unsigned_abs())
        } else {
            wall.saturating_sub(self.offset_ms.unsigned_abs())
        };
        Now {
            instant: tokio::time::Instant::now(),
            unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_is_wrong_by_its_offset() {
        let system = Clock::system();
        let fast = Clock::new(Arc::new(OffsetClock { offset_ms: 600_000 }));
        let slow = Clock::new(Arc::new(OffsetClock {
            offset_ms: -600_000,
        }));
        let (s, f, w) = (system.wall(), fast.wall(), slow.wall());
        // Read in that order, so each is at least its offset from the
        // system clock read before it.
        assert!(f.0 >= s.0 + 600_000, "{f:?} vs {s:?}");
        assert!(w.0 + 600_000 >= s.0 && w.0 < f.0 - 600_000, "{w:?}");
        let far_behind = Clock::new(Arc::new(OffsetClock {
            offset_ms: i64::MIN,
        }));
        assert_eq!(far_behind.wall(), UnixMillis(0));
    }
}
