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

/// `YYYY-MM-DD` (UTC) of a wall-clock time, for operators: credential
/// expiry dates.
pub fn format_date(t: UnixMillis) -> String {
    let days = (t.0 / 86_400_000) as i64;
    // Days to civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The start (00:00 UTC) of a `YYYY-MM-DD` date; an error names the
/// expected form.
pub fn parse_date(s: &str) -> Result<UnixMillis, String> {
    let bad = || format!("{s:?} is not a date of the form YYYY-MM-DD");
    let mut parts = s.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Civil date to days (the inverse of `format_date`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = UnixMillis(u64::try_from(days).map_err(|_| bad())? * 86_400_000);
    // 2027-02-31 and the like do not come back as themselves.
    if format_date(t) != s.trim() {
        return Err(bad());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_round_trip() {
        assert_eq!(format_date(UnixMillis(0)), "1970-01-01");
        let t = parse_date("2027-03-01").expect("date");
        assert_eq!(t, UnixMillis(1_803_859_200_000));
        assert_eq!(format_date(t), "2027-03-01");
        assert_eq!(format_date(UnixMillis(t.0 - 1)), "2027-02-28");
        for bad in ["2027-02-30", "2027-13-01", "27-01-01", "2027-1-1x", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

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
