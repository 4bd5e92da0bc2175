//! Every signed reading this agent has, checked once against its device's
//! key and handed on as [`Verified`]: the shape the plain outputs read
//! (SenML and Home Assistant on local MQTT, the console's plots and live
//! page, the per-point gauges), so each reading is verified once, not once
//! per output.
//!
//! A reading that does not verify is dropped here and counted
//! (`streembit_readings_not_verified_total`): the plain outputs carry only
//! what a device signed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::api::ReadingView;
use crate::devices::{verify_reading, SignedReading};
use crate::identity::PublicKey;
use crate::metrics::{Family, Kind};
use crate::wire::NetworkId;

/// Verified readings buffered for a slow consumer (which then skips).
const CAPACITY: usize = 1024;

/// A reading whose device signature verified.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// The device that signed it.
    pub key: PublicKey,
    /// The reading.
    pub view: ReadingView,
}

/// The verified feed: subscribe for readings from now on.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedFeed {
    tx: broadcast::Sender<Arc<Verified>>,
    not_verified: Arc<AtomicU64>,
    lagged: Lagged,
}

/// Readings a slow consumer of a feed skipped (it fell behind by more
/// than the channel holds): shared by every consumer, so none is silent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lagged(Arc<AtomicU64>);

impl Lagged {
    /// The next item of `rx`, counting what falling behind skipped;
    /// `None` once the sender is gone. Cancel-safe, as `recv` is.
    pub(crate) async fn recv<T: Clone>(&self, rx: &mut broadcast::Receiver<T>) -> Option<T> {
        loop {
            match rx.recv().await {
                Ok(v) => return Some(v),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.0.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl VerifiedFeed {
    /// Verifies every reading of `feed` for `network` and passes it on.
    pub(crate) fn start(mut feed: broadcast::Receiver<SignedReading>, network: NetworkId) -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let me = Self {
            tx: tx.clone(),
            not_verified: Arc::default(),
            lagged: Lagged::default(),
        };
        let not_verified = me.not_verified.clone();
        let lagged = me.lagged.clone();
        tokio::spawn(async move {
            while let Some(r) = lagged.recv(&mut feed).await {
                match verify_reading(&r.envelope, &r.device, &network, r.envelope.len()) {
                    Ok(view) => {
                        let _ = tx.send(Arc::new(Verified {
                            key: r.device,
                            view,
                        }));
                    }
                    Err(e) => {
                        not_verified.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(device = %r.device, error = %e, "reading dropped from the plain outputs: it does not verify");
                    }
                }
            }
        });
        me
    }

    /// Readings from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Verified>> {
        self.tx.subscribe()
    }

    /// Where consumers count the readings they skip.
    pub(crate) fn lagged(&self) -> Lagged {
        self.lagged.clone()
    }

    /// Metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        vec![
            Family::single(
                "streembit_readings_not_verified",
                "Readings whose device signature did not verify: kept out of SenML, Home Assistant, the console and the point gauges.",
                Kind::Counter,
                self.not_verified.load(Ordering::Relaxed),
            ),
            Family::single(
                "streembit_readings_skipped_lagging",
                "Readings the console's history or the point gauges skipped because they fell behind the verified feed.",
                Kind::Counter,
                self.lagged.0.load(Ordering::Relaxed),
            ),
        ]
    }
}
