//! The embedded MQTT broker (rumqttd) local devices and applications
//! connect to when no other broker is configured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::MqttStats;

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    /// Its address is taken or not ours (another broker already runs?).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No thread for it (this machine is out of resources).
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the embedded broker on `listen` in its own threads (rumqttd
/// runs its own runtimes). The address is bound once first, so a port in
/// use is a clear error here rather than a log line from inside rumqttd.
pub(crate) fn start_broker(listen: SocketAddr, stats: &MqttStats) -> Result<(), BrokerError> {
    drop(
        std::net::TcpListener::bind(listen).map_err(|source| BrokerError::Listen {
            addr: listen,
            source,
        })?,
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
        .map_err(BrokerError::Thread)?;
    stats.broker_running.store(1, Ordering::Relaxed);
    Ok(())
}
