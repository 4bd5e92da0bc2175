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

/// What one exchange with a device (a poll, a command) says about its
/// health, as the poller saw it; the loop feeds it to [`Health::record`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contact {
    /// The last time the device answered during the exchange (an exception
    /// is an answer: the device is alive).
    pub(crate) answered: Option<Now>,
    /// The link failed (timeout, I/O error, garbage) and the exchange
    /// stopped there: why, and when.
    pub(crate) failed: Option<(String, Now)>,
}

impl Contact {
    /// The device answered at `now`.
    pub(crate) fn answered(now: Now) -> Self {
        Contact {
            answered: Some(now),
            failed: None,
        }
    }

    /// The link failed at `now`, for `reason`.
    pub(crate) fn failed(reason: String, now: Now) -> Self {
        Contact {
            answered: None,
            failed: Some((reason, now)),
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
            Some((reason, now)) => self.on_failure(&reason, now),
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
        self.status.consecutive_failures = failures;
        if failures < self.policy.offline_after {
            return self.policy.interval;
        }
        let since = match &self.status.state {
            DeviceState::Offline { since, .. } => *since,
            _ => now.unix_ms,
        };
        self.status.state = DeviceState::Offline {
            reason: format!("{reason} ({failures} consecutive failures)"),
            since,
        };
        let doublings = (failures - self.policy.offline_after).min(16);
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
}
