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
//! The clock is also where the network's time lives. A node learns how far
//! its wall clock is from its authenticated peers' (the node's time sync
//! measures it) and sets [`Clock::set_offset`]; from then on
//! [`Clock::wall`] is the *network time*: what the node stamps on its
//! envelopes and readings and checks freshness against. The machine's own
//! reading stays available as [`Clock::local`], for measuring and for
//! showing the offset.
//!
//! What this module does not do: measure the offset (the node's time sync
//! does), or set the machine's clock (that is NTP's job).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use streembit_bridges::Now;

use crate::wire::UnixMillis;

/// The agent's clock: cheap to clone, shared by every shell. Clones share
/// the offset.
#[derive(Clone)]
pub struct Clock {
    source: Arc<dyn streembit_bridges::Clock>,
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::new(Arc::new(SystemSource))
    }

    /// A clock reading `source`, with no offset yet.
    pub fn new(source: Arc<dyn streembit_bridges::Clock>) -> Self {
        Self {
            source,
            offset_ms: Arc::default(),
        }
    }

    /// Network time, ms since the Unix epoch: the local wall clock
    /// corrected by the offset learned from peers (timestamps, freshness).
    pub fn wall(&self) -> UnixMillis {
        shifted(self.source.now().unix_ms, self.offset_ms())
    }

    /// The local wall clock as the machine reads it, uncorrected.
    pub fn local(&self) -> UnixMillis {
        UnixMillis(self.source.now().unix_ms)
    }

    /// Monotonic time (timeouts, rates, ages).
    pub fn instant(&self) -> std::time::Instant {
        self.source.now().instant.into_std()
    }

    /// How far the network's time is from the local wall clock, in ms
    /// (positive: the local clock is behind).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Corrects [`Clock::wall`] by `offset_ms` from now on.
    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// The bridges' time source, corrected like [`Clock::wall`]: readings
    /// are stamped with the network's time too.
    pub fn source(&self) -> Arc<dyn streembit_bridges::Clock> {
        Arc::new(self.clone())
    }
}

impl streembit_bridges::Clock for Clock {
    fn now(&self) -> Now {
        let now = self.source.now();
        Now {
            instant: now.instant,
            unix_ms: shifted(now.unix_ms, self.offset_ms()).0,
        }
    }
}

impl crate::wire::TimeSource for Clock {
    fn network_now(&self) -> UnixMillis {
        self.wall()
    }
    fn offset_ms(&self) -> i64 {
        Clock::offset_ms(self)
    }
}

fn shifted(ms: u64, offset: i64) -> UnixMillis {
    UnixMillis(if offset >= 0 {
        ms.saturating_add(offset.unsigned_abs())
    } else {
        ms.saturating_sub(offset.unsigned_abs())
    })
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("wall", &self.wall().0)
            .field("offset_ms", &self.offset_ms())
            .finish()
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
        Now {
            instant: tokio::time::Instant::now(),
            unix_ms: shifted(system_wall_ms(), self.offset_ms).0,
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
