//! Every signed reading of the feed, published to a local broker as raw
//! COSE bytes, and (`plain.rs`) verified as SenML JSON and announced to
//! Home Assistant.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::broadcast;

use super::{plain, MqttStats, PublishTo};
use crate::devices::{verify_reading, SignedReading};
use crate::wire::NetworkId;

/// What else goes out besides the COSE tree.
#[derive(Debug, Clone)]
pub(crate) struct Plain {
    /// The network readings are verified for.
    pub network: NetworkId,
    /// SenML JSON on `<prefix>/senml/…`.
    pub senml: bool,
    /// Home Assistant discovery under this prefix.
    pub discovery: Option<String>,
}

/// Publishes every reading of `feed` to the broker `to`.
pub(crate) fn spawn_publisher(
    to: PublishTo,
    prefix: String,
    client_id: String,
    mut feed: broadcast::Receiver<SignedReading>,
    plain: Plain,
    stats: Arc<MqttStats>,
) {
    let broker = to.addr;
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    if let Some((user, password)) = to.login {
        options.set_credentials(user, password);
    }
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
        let mut announced = plain::Announced::default();
        loop {
            match feed.recv().await {
                Ok(r) => {
                    let topic = format!("{prefix}/{}/{}", r.device, r.point);
                    match client.try_publish(topic, QoS::AtMostOnce, false, r.envelope.to_vec()) {
                        Ok(()) => stats.published.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed),
                    };
                    if plain.senml || plain.discovery.is_some() {
                        publish_plain(&client, &prefix, &plain, &r, &mut announced, &stats);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.dropped_lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// The reading, verified with its device key, as SenML and (once per
/// point) as a Home Assistant discovery message.
fn publish_plain(
    client: &AsyncClient,
    prefix: &str,
    plain: &Plain,
    r: &SignedReading,
    announced: &mut plain::Announced,
    stats: &MqttStats,
) {
    let view = match verify_reading(&r.envelope, &r.device, &plain.network, r.envelope.len()) {
        Ok(v) => v,
        Err(e) => {
            stats.not_verified.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(device = %r.device, error = %e, "reading not republished: it does not verify");
            return;
        }
    };
    if let Some(discovery_prefix) = &plain.discovery {
        if view.value.is_some() && announced.first(&r.device, &r.point) {
            let (topic, config) = plain::discovery(discovery_prefix, prefix, &r.device, &view);
            if client
                .try_publish(topic, QoS::AtLeastOnce, true, config)
                .is_ok()
            {
                stats.discovery_published.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if plain.senml {
        if let Some(pack) = plain::senml(&r.device, &view) {
            let topic = plain::senml_topic(prefix, &r.device, &r.point);
            match client.try_publish(topic, QoS::AtMostOnce, false, pack) {
                Ok(()) => stats.senml_published.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}
