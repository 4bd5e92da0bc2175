//! The local MQTT side of a gateway: the embedded broker (rumqttd) that
//! local devices and applications connect to, and the publisher that puts
//! every signed reading on it as raw COSE bytes, on
//! `<prefix>/<device key>/<point>` (docs/api.md, "MQTT").
//!
//! - `broker.rs`: the embedded broker.
//! - `publisher.rs`: signed readings to a broker (ours or another).
//! - `mod.rs`: their counters, [`MqttStats`].
//!
//! Publication is QoS 0 from a bounded feed: a broker that is slow or away
//! costs readings there (counted), never sealing, queues or the network.
//! Local consumers that need every reading subscribe to the device instead
//! (`streembit subscribe`), which is durable.
//!
//! What this module does not do: bridge MQTT devices (a bridge file's
//! `[mqtt]` bus does, through any broker, this one included), or sign
//! anything (readings arrive sealed).

mod broker;
mod publisher;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Family, Kind};

pub(crate) use broker::start_broker;
pub(crate) use publisher::spawn_publisher;

/// Counters of the publisher.
#[derive(Debug, Default)]
pub(crate) struct MqttStats {
    published: AtomicU64,
    /// The client's queue was full (broker away or slow).
    dropped_queue_full: AtomicU64,
    /// The publisher fell behind the feed.
    dropped_lagged: AtomicU64,
    /// 1 while the embedded broker runs.
    broker_running: AtomicU64,
}

impl MqttStats {
    /// Metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let mut dropped = Family::new(
            "streembit_mqtt_dropped",
            "Signed readings not published to local MQTT, by reason.",
            Kind::Counter,
        );
        dropped.push(
            &[("reason", "queue_full")],
            self.dropped_queue_full.load(Ordering::Relaxed),
        );
        dropped.push(
            &[("reason", "lagged")],
            self.dropped_lagged.load(Ordering::Relaxed),
        );
        vec![
            Family::single(
                "streembit_mqtt_published",
                "Signed readings published to local MQTT (raw COSE).",
                Kind::Counter,
                self.published.load(Ordering::Relaxed),
            ),
            dropped,
            Family::single(
                "streembit_mqtt_embedded_broker",
                "Whether the embedded MQTT broker runs (1) or not (0).",
                Kind::Gauge,
                self.broker_running.load(Ordering::Relaxed),
            ),
        ]
    }
}
