//! Every signed reading this agent has, as it arrives: its own devices'
//! (sealed here) and its subscriptions' (received and verified), for local
//! consumers such as the MQTT publisher.
//!
//! A broadcast channel with a fixed capacity: a consumer that falls behind
//! loses the oldest readings (and counts them), and never slows sealing or
//! delivery. Durable delivery is what subscriptions are for.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::identity::PublicKey;

/// Readings a slow consumer may fall behind by before it loses some.
const CAPACITY: usize = 4096;

/// One signed reading.
#[derive(Debug, Clone)]
pub(crate) struct SignedReading {
    /// The device that signed it.
    pub device: PublicKey,
    /// Its point.
    pub point: String,
    /// The COSE_Sign1 envelope, verifiable with the device key alone.
    pub envelope: Arc<Vec<u8>>,
}

/// The feed's sending side; clones share one channel.
#[derive(Debug, Clone)]
pub(crate) struct Feed(broadcast::Sender<SignedReading>);

impl Default for Feed {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Feed {
    /// Offers a reading to whoever listens (nobody is fine).
    pub(crate) fn send(&self, reading: SignedReading) {
        let _ = self.0.send(reading);
    }

    /// A new listener, from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SignedReading> {
        self.0.subscribe()
    }
}
