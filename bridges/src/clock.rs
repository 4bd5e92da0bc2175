//! The one place the event loops read time.
//!
//! Protocol state never reads a clock: it takes a [`Now`] argument, so tests
//! can drive it with any time they like (STYLE.md, "time is an argument").

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::reading::UnixMillis;

/// A point in time as the protocol state sees it: a monotonic instant for
/// scheduling and timeouts, and wall-clock milliseconds for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (tokio's, so paused test time works too).
    pub instant: Instant,
    /// Milliseconds since the Unix epoch, stamped on readings.
    pub unix_ms: UnixMillis,
}

/// Where event loops get the time. Defaults to [`SystemClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Now;
}

/// The system clock: tokio's `Instant::now()` and `SystemTime::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Now {
            instant: Instant::now(),
            unix_ms,
        }
    }
}
