//! Every signed reading of the feed, published to a local broker as raw
//! COSE bytes, and (`plain.rs`) every verified one as SenML JSON and
//! announced to Home Assistant.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::broadcast;

use super::{plain, MqttStats, PublishTo};
use crate::daemon::verified_feed::Verified;
use crate::devices::SignedReading;

/// What else goes out besides the COSE tree.
#[derive(Debug, Clone)]
pub(crate) struct Plain {
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
    verified: broadcast::Receiver<Arc<Verified>>,
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
    if plain.senml || plain.discovery.is_some() {
        spawn_plain(
            client.clone(),
            prefix.clone(),
            verified,
            plain,
            stats.clone(),
        );
    }
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

/// Verified readings as SenML and (once per point) as Home Assistant
/// discovery messages.
fn spawn_plain(
    client: AsyncClient,
    prefix: String,
    mut verified: broadcast::Receiver<Arc<Verified>>,
    plain: Plain,
    stats: Arc<MqttStats>,
) {
    tokio::spawn(async move {
        let mut announced = plain::Announced::default();
        loop {
            let v = match verified.recv().await {
                Ok(v) => v,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.dropped_lagged.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if let Some(discovery_prefix) = &plain.discovery {
                if v.view.value.is_some() && announced.first(&v.key, &v.view.point) {
                    let (topic, config) =
                        plain::discovery(discovery_prefix, &prefix, &v.key, &v.view);
                    if client
                        .try_publish(topic, QoS::AtLeastOnce, true, config)
                        .is_ok()
                    {
                        stats.discovery_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if plain.senml {
                if let Some(pack) = plain::senml(&v.key, &v.view) {
                    let topic = plain::senml_topic(&prefix, &v.key, &v.view.point);
                    match client.try_publish(topic, QoS::AtMostOnce, false, pack) {
                        Ok(()) => stats.senml_published.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        }
    });
}
