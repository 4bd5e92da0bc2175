//! Every signed reading of the feed, published to a local broker as raw
//! COSE bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::broadcast;

use super::{MqttStats, PublishTo};
use crate::devices::SignedReading;

/// Publishes every reading of `feed` to the broker `to`.
pub(crate) fn spawn_publisher(
    to: PublishTo,
    prefix: String,
    client_id: String,
    mut feed: broadcast::Receiver<SignedReading>,
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
