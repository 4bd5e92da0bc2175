//! When a device counts as offline, and how long to wait before asking a
//! silent device again.
//!
//! Pure state: every method takes the time as an argument.

use std::time::Duration;

use crate::clock::Now;
use crate::status::{DeviceState, DeviceStatus};

/// Limits for one device's health, from the bridge file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthPolicy {
    /// Consecutive failed polls before the device is marked offline.
    pub(crate) offline_after: u32,
    /// Normal poll interval.
    pub(crate) interval: Duration,
    /// Upper bound of the retry delay for an offline device.
    pub(crate) backoff_max: Duration,
}

/// Why an exchange failed, which decides how soon the device is offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The device did not answer, or the link to it broke (timeout, I/O
    /// error, garbage): one more failure towards `offline_after`, since
    /// a device may miss an answer and be fine. The offline reason gets the
    /// count appended.
    Device(String),
    /// The bus itself is not there: its device file cannot be opened
    /// (absent, not permitted). No device on it can answer and waiting
    /// tells nothing more, so the device is offline at once, with the
    /// reason as it is (`/dev/ttyUSB0 absent`). Retries still follow the
    /// backoff, so an absent bus costs one open attempt per retry.
    Bus(String),
}

/// What one exchange with a device (a poll, a command) says about its
/// health, as the poller saw it; the loop feeds it to [`Health::record`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contact {
    /// The last time the device answered during the exchange (an exception
    /// is an answer: the device is alive).
    pub(crate) answered: Option<Now>,
    /// The exchange failed and stopped there: why, and when.
    pub(crate) failed: Option<(Failure, Now)>,
}

impl Contact {
    /// The device answered at `now`.
    pub(crate) fn answered(now: Now) -> Self {
        Contact {
            answered: Some(now),
            failed: None,
        }
    }

    /// The exchange failed at `now`, for `why`.
    pub(crate) fn failed(why: Failure, now: Now) -> Self {
        Contact {
            answered: None,
            failed: Some((why, now)),
        }
    }
}

/// Health of one device: counts failures and says when to poll next.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    policy: HealthPolicy,
    status: DeviceStatus,
}

impl Health {
    pub(crate) fn new(policy: HealthPolicy) -> Self {
        Health {
            policy,
            status: DeviceStatus::starting(),
        }
    }

    pub(crate) fn status(&self) -> &DeviceStatus {
        &self.status
    }

    /// Takes in one exchange: its answers, then its failure, in the order
    /// they happened. Returns the delay before the next poll: the normal
    /// interval unless the exchange failed (see [`on_failure`](Self::on_failure)).
    pub(crate) fn record(&mut self, contact: Contact) -> Duration {
        if let Some(now) = contact.answered {
            self.on_success(now);
        }
        match contact.failed {
            Some((Failure::Device(reason), now)) => self.on_failure(&reason, now),
            Some((Failure::Bus(reason), now)) => self.on_bus_down(reason, now),
            None => self.policy.interval,
        }
    }

    /// The device answered (even with an exception: it is alive).
    pub(crate) fn on_success(&mut self, now: Now) {
        self.status = DeviceStatus {
            state: DeviceState::Online,
            last_success: Some(now.unix_ms),
            consecutive_failures: 0,
        };
    }

    /// The device did not answer (timeout, I/O error, garbage). Returns the
    /// delay before the next poll: the normal interval while it is still
    /// online, then an exponential backoff capped at `backoff_max`, so a
    /// dead device costs its line little time.
    #[must_use]
    pub(crate) fn on_failure(&mut self, reason: &str, now: Now) -> Duration {
        let failures = self.status.consecutive_failures.saturating_add(1);
        if failures < self.policy.offline_after {
            self.status.consecutive_failures = failures;
            return self.policy.interval;
        }
        self.go_offline(format!("{reason} ({failures} consecutive failures)"), now)
    }

    /// The device's bus cannot be opened (see [`Failure::Bus`]): offline at
    /// once with `reason` as it is. Returns the delay before the next poll,
    /// the same as for a failure: the interval until `offline_after`
    /// failures, then the backoff.
    #[must_use]
    pub(crate) fn on_bus_down(&mut self, reason: String, now: Now) -> Duration {
        self.go_offline(reason, now)
    }

    /// Counts one more failure and marks the device offline for `reason`
    /// (keeping when it first went offline); returns the next delay.
    fn go_offline(&mut self, reason: String, now: Now) -> Duration {
        let failures = self.status.consecutive_failures.saturating_add(1);
        self.status.consecutive_failures = failures;
        let since = match &self.status.state {
            DeviceState::Offline { since, .. } => *since,
            _ => now.unix_ms,
        };
        self.status.state = DeviceState::Offline { reason, since };
        let doublings = failures.saturating_sub(self.policy.offline_after).min(16);
        let backoff = self.policy.interval.saturating_mul(1 << doublings);
        backoff.min(self.policy.backoff_max.max(self.policy.interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn now(ms: u64) -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: ms,
        }
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            offline_after: 3,
            interval: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        }
    }

    #[test]
    fn offline_after_n_failures_then_backoff_then_recovery() {
        let mut h = Health::new(policy());
        assert_eq!(h.status().state, DeviceState::Starting);
        h.on_success(now(5));
        assert!(h.status().is_online());
        assert_eq!(h.on_failure("timeout", now(10)), Duration::from_millis(100));
        assert_eq!(h.on_failure("timeout", now(20)), Duration::from_millis(100));
        assert!(h.status().is_online(), "two failures are not yet offline");
        assert_eq!(h.on_failure("timeout", now(30)), Duration::from_millis(100));
        assert!(matches!(
            h.status().state,
            DeviceState::Offline { since: 30, .. }
        ));
        assert_eq!(h.on_failure("timeout", now(40)), Duration::from_millis(200));
        assert_eq!(h.on_failure("timeout", now(50)), Duration::from_millis(400));
        for _ in 0..40 {
            let _ = h.on_failure("timeout", now(60));
        }
        assert_eq!(
            h.on_failure("timeout", now(70)),
            Duration::from_millis(1000)
        );
        assert!(matches!(
            h.status().state,
            DeviceState::Offline { since: 30, .. }
        ));
        h.on_success(now(80));
        assert!(h.status().is_online());
        assert_eq!(h.status().last_success, Some(80));
        assert_eq!(h.status().consecutive_failures, 0);
    }

    /// An absent bus takes the device offline at its first failed poll,
    /// with the reason as given; the retries keep the failure policy's
    /// pace (interval, then backoff) and the device recovers as usual.
    #[test]
    fn a_bus_that_cannot_be_opened_is_offline_at_once() {
        let mut h = Health::new(policy());
        let absent = || Failure::Bus("/dev/ttyUSB0 absent".into());
        let delay = h.record(Contact::failed(absent(), now(10)));
        assert_eq!(delay, Duration::from_millis(100));
        assert_eq!(
            h.status().state,
            DeviceState::Offline {
                reason: "/dev/ttyUSB0 absent".into(),
                since: 10
            }
        );
        assert_eq!(h.status().consecutive_failures, 1);
        let delays: Vec<u64> = (0..5)
            .map(|i| {
                let d = h.record(Contact::failed(absent(), now(20 + i)));
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            })
            .collect();
        assert_eq!(delays, [100, 100, 200, 400, 800]);
        assert!(matches!(
            h.status().state,
            DeviceState::Offline { since: 10, .. }
        ));
        // Unplugged while it ran: a device failure first, then the bus.
        let mut h = Health::new(policy());
        h.on_success(now(5));
        let _ = h.record(Contact::failed(Failure::Device("timed out".into()), now(6)));
        assert!(h.status().is_online());
        let _ = h.record(Contact::failed(absent(), now(7)));
        assert_eq!(
            h.status().state,
            DeviceState::Offline {
                reason: "/dev/ttyUSB0 absent".into(),
                since: 7
            }
        );
        h.record(Contact::answered(now(8)));
        assert!(h.status().is_online());
        assert_eq!(h.status().consecutive_failures, 0);
    }
}
