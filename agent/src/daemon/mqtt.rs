//! The local MQTT side of a gateway: the embedded broker (rumqttd) that
//! local devices and applications connect to, and the publisher that puts
//! every signed reading on it as raw COSE bytes, on
//! `<prefix>/<device key>/<point>` (docs/api.md, "MQTT").
//!
//! Publication is QoS 0 from a bounded feed: a broker that is slow or away
//! costs readings there (counted), never sealing, queues or the network.
//! Local consumers that need every reading subscribe to the device instead
//! (`streembit subscribe`), which is durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::broadcast;

use crate::devices::SignedReading;
use crate::metrics::{Family, Kind};

/// Counters of the publisher.
#[derive(Debug, Default)]
pub struct MqttStats {
    published: AtomicU64,
    /// The client's queue was full (broker away or slow).
    dropped_queue_full: AtomicU64,
    /// The publisher fell behind the feed.
    dropped_lagged: AtomicU64,
    broker_running: AtomicU64,
}

impl MqttStats {
    /// Metric families.
    pub fn families(&self) -> Vec<Family> {
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

/// Starts the embedded broker on `listen` in its own threads (rumqttd
/// runs its own runtimes). The address is bound once first, so a port in
/// use is a clear error here rather than a log line from inside rumqttd.
pub fn start_broker(listen: SocketAddr, stats: &MqttStats) -> Result<(), String> {
    drop(
        std::net::TcpListener::bind(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?,
    );
    let mut v4 = HashMap::new();
    v4.insert(
        "local".to_owned(),
        rumqttd::ServerSettings {
            name: "mqtt-local".to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 10_000,
                max_payload_size: 256 * 1024,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = rumqttd::Config {
        id: 0,
        // Small segments: a gateway keeps little history in the broker.
        router: rumqttd::RouterConfig {
            max_connections: 256,
            max_outgoing_packet_count: 200,
            max_segment_size: 256 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the broker thread: {e}"))?;
    stats.broker_running.store(1, Ordering::Relaxed);
    Ok(())
}

/// Publishes every reading of `feed` to the broker at `broker`.
pub fn spawn_publisher(
    broker: SocketAddr,
    prefix: String,
    client_id: String,
    mut feed: broadcast::Receiver<SignedReading>,
    stats: Arc<MqttStats>,
) {
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                tracing::debug!(broker = %broker, error = %e, "local MQTT connection lost; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(r) => {
                    let topic = format!("{prefix}/{}/{}", r.device, r.point);
                    match client.try_publish(topic, QoS::AtMostOnce, false, r.envelope.to_vec()) {
                        Ok(()) => stats.published.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed),
                    };
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.dropped_lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
