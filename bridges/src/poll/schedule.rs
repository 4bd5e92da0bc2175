//! Which device of a line is due next.
//!
//! One line polls its devices in turn; each device has its own interval and
//! due time. Pure state: the event loop passes the time in.

use std::time::Duration;

use tokio::time::Instant;

/// Due times of the devices of one line, by index.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    due: Vec<Instant>,
}

impl Schedule {
    /// Every device due at `start`.
    pub(crate) fn new(devices: usize, start: Instant) -> Self {
        Schedule {
            due: vec![start; devices],
        }
    }

    /// The device due soonest (earliest due time, lowest index on a tie),
    /// and when; `None` for a line without devices.
    #[must_use]
    pub(crate) fn next(&self) -> Option<(usize, Instant)> {
        self.due
            .iter()
            .enumerate()
            .min_by_key(|(i, t)| (**t, *i))
            .map(|(i, t)| (i, *t))
    }

    /// Device `idx` was polled; it is next due `delay` after its previous
    /// due time, but never in the past, so a late line does not burst to
    /// catch up and a fast device does not starve the others.
    pub(crate) fn polled(&mut self, idx: usize, delay: Duration, now: Instant) {
        if let Some(t) = self.due.get_mut(idx) {
            let next = *t + delay;
            *t = if next < now { now } else { next };
        }
    }

    /// Device `idx` is due now unless it already was: after a successful
    /// write, so the new value is read back at once instead of at the
    /// device's next turn (which [`polled`](Self::polled), never moving a
    /// due time earlier, would leave it at). Devices that were due earlier
    /// still go first.
    pub(crate) fn due_now(&mut self, idx: usize, now: Instant) {
        if let Some(t) = self.due.get_mut(idx) {
            *t = (*t).min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_take_turns_by_due_time() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, t0);
        assert_eq!(s.next(), Some((0, t0)));
        s.polled(0, Duration::from_millis(100), t0);
        assert_eq!(s.next(), Some((1, t0)));
        s.polled(1, Duration::from_millis(50), t0);
        assert_eq!(s.next(), Some((1, t0 + Duration::from_millis(50))));
        // A line that fell behind does not schedule in the past.
        let late = t0 + Duration::from_secs(10);
        s.polled(1, Duration::from_millis(50), late);
        assert_eq!(s.next(), Some((0, t0 + Duration::from_millis(100))));
        s.polled(0, Duration::from_millis(100), late);
        assert_eq!(s.next(), Some((0, late)));
        assert_eq!(Schedule::new(0, t0).next(), None);
    }

    #[test]
    fn due_now_moves_a_due_time_earlier_never_later() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut s = Schedule::new(2, t0);
        s.polled(0, hour, t0);
        s.polled(1, hour * 2, t0);
        assert_eq!(s.next(), Some((0, t0 + hour)));
        let write = t0 + Duration::from_secs(5);
        s.due_now(1, write);
        assert_eq!(s.next(), Some((1, write)));
        // Already due earlier: it keeps its place.
        s.due_now(1, t0 + hour * 3);
        assert_eq!(s.next(), Some((1, write)));
        s.due_now(7, write);
    }
}
