//! Time as a value and the core's small table of timers.
//!
//! The core never reads a clock: every input carries `now`, and
//! [`Dht::poll_timeout`](super::Dht::poll_timeout) answers the earliest
//! [`Time`] at which the shell must call `handle_timeout`. Keeping the timers
//! in a fixed table keyed by an enum (as quinn-proto's `connection/timer.rs`
//! does) makes that answer a scan of five slots.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time: milliseconds on the shell's clock.
///
/// The node shell passes Unix milliseconds (the clock that also dates signed
/// envelopes, so record expiry and message time agree); the simulator
/// passes virtual milliseconds since its start. The core only compares and
/// adds, so either works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// Milliseconds since the clock's epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_sub(ms))
    }
}

/// The kinds of deadline the core keeps. Each has one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The earliest deadline of an outstanding request (lookups, pings,
    /// stores); the per-request deadlines live in `Dht::deadlines`.
    Request = 0,
    /// The earliest moment a bucket has gone `refresh_interval` without a
    /// lookup into its range.
    Refresh = 1,
    /// The earliest moment one of our own records is due for republishing
    /// (TTL/2 after it was published).
    Republish = 2,
    /// The earliest expiry of a stored record.
    Expire = 3,
    /// Bootstrap again: the last one ended with an empty table.
    Rejoin = 4,
    /// The earliest moment a FIND_VALUE holding one record stops waiting
    /// for a second holder (`Query::settle_by`).
    Settle = 5,
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable {
    slots: [Option<Time>; 6],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Time>) {
        self.slots[timer as usize] = at;
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Time> {
        self.slots.iter().flatten().min().copied()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Time) -> bool {
        self.slots[timer as usize].is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_earliest_and_due_respects_now() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Refresh, Some(Time(50)));
        t.set(Timer::Request, Some(Time(20)));
        assert_eq!(t.next(), Some(Time(20)));
        assert!(t.is_due(Timer::Request, Time(20)));
        assert!(!t.is_due(Timer::Refresh, Time(49)));
        t.set(Timer::Request, None);
        assert_eq!(t.next(), Some(Time(50)));
        assert_eq!(Time(5) + Duration::from_secs(1), Time(1005));
        assert_eq!(Time(5).since(Time(9)), Duration::ZERO);
    }
}
