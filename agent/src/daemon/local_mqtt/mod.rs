//! The local MQTT side of a gateway: the managed broker (the system's
//! mosquitto, run by the agent) that local devices and applications
//! connect to, and the publisher that puts every signed reading on it as
//! raw COSE bytes, on `<prefix>/<device key>/<point>` (docs/api.md,
//! "MQTT").
//!
//! - `accounts.rs`: who may log in and publish or read what, made from the
//!   bridge files (mosquitto's password and ACL files).
//! - `mosquitto.rs`: running, supervising and reloading mosquitto.
//! - `publisher.rs`: signed readings to a broker (ours or another).
//! - `plain.rs`: the same readings, verified, as SenML JSON, and Home
//!   Assistant MQTT discovery for their points.
//! - `mod.rs`: [`LocalMqtt`], what the daemon starts, reloads and stops,
//!   and the counters, [`MqttStats`].
//!
//! Publication is QoS 0 from a bounded feed: a broker that is slow or away
//! costs readings there (counted), never sealing, queues or the network.
//! Local consumers that need every reading subscribe to the device instead
//! (`streembit subscribe`), which is durable.
//!
//! What this module does not do: bridge MQTT devices (a bridge file's
//! `[mqtt]` bus does, through any broker, this one included), sign
//! anything (readings arrive sealed), or police a broker of your own
//! (`embedded = false`): its accounts and ACLs are yours.

mod accounts;
mod mosquitto;
mod plain;
mod publisher;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::devices::{Loaded, LoadedBridge, SignedReading};
use crate::metrics::{Family, Kind};

use super::config::MqttConfig;
use accounts::{broker_files, BrokerPolicy};
use mosquitto::ManagedBroker;
pub(crate) use publisher::spawn_publisher;

/// Counters of the broker and the publisher.
#[derive(Debug, Default)]
pub(crate) struct MqttStats {
    published: AtomicU64,
    /// The client's queue was full (broker away or slow).
    dropped_queue_full: AtomicU64,
    /// The publisher fell behind the feed.
    dropped_lagged: AtomicU64,
    /// 1 while the managed broker runs.
    broker_running: AtomicU64,
    /// Times mosquitto died (or could not be restarted).
    broker_restarts: AtomicU64,
    /// Clients mosquitto refused at login (its log says so).
    refused_login: AtomicU64,
    /// Publishes mosquitto dropped by the ACL (its log says so).
    refused_publish: AtomicU64,
    /// Readings published as SenML JSON.
    senml_published: AtomicU64,
    /// Points announced to Home Assistant.
    discovery_published: AtomicU64,
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
        let mut refused = Family::new(
            "streembit_mqtt_broker_refused",
            "What the managed broker (mosquitto) refused, by reason: a login without valid credentials, a publish outside the account's topics.",
            Kind::Counter,
        );
        refused.push(
            &[("reason", "login")],
            self.refused_login.load(Ordering::Relaxed),
        );
        refused.push(
            &[("reason", "publish")],
            self.refused_publish.load(Ordering::Relaxed),
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
                "Whether the managed MQTT broker (mosquitto) runs (1) or not (0).",
                Kind::Gauge,
                self.broker_running.load(Ordering::Relaxed),
            ),
            Family::single(
                "streembit_mqtt_broker_restarts",
                "Times the managed MQTT broker (mosquitto) died and was restarted.",
                Kind::Counter,
                self.broker_restarts.load(Ordering::Relaxed),
            ),
            refused,
            Family::single(
                "streembit_mqtt_senml_published",
                "Verified readings also published as SenML JSON.",
                Kind::Counter,
                self.senml_published.load(Ordering::Relaxed),
            ),
            Family::single(
                "streembit_mqtt_discovery_published",
                "Points announced to Home Assistant (MQTT discovery).",
                Kind::Counter,
                self.discovery_published.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// Where signed readings go, and with which account.
#[derive(Debug, Clone)]
pub(crate) struct PublishTo {
    /// The broker.
    pub addr: SocketAddr,
    /// Username and password (the agent's own, on the managed broker).
    pub login: Option<(String, String)>,
}

/// The managed broker, if it runs, and the bridge files its accounts come
/// from (a file refused on reload keeps its accounts, as its bridge keeps
/// running).
#[derive(Debug)]
pub(crate) struct LocalMqtt {
    /// Where the publisher publishes, if anywhere.
    pub publish_to: Option<PublishTo>,
    broker: Option<(ManagedBroker, BrokerPolicy)>,
    files: BTreeMap<String, LoadedBridge>,
}

impl LocalMqtt {
    /// Starts the managed broker if `[mqtt] embedded`, with accounts from
    /// `bridges`. A missing mosquitto, or accounts that contradict each
    /// other, are the operator's to fix: an error. A port in use is
    /// reported and the agent runs on without the broker, as before.
    pub(crate) async fn start(
        config: &MqttConfig,
        state_dir: &Path,
        bridges: &Loaded,
        stats: &Arc<MqttStats>,
    ) -> Result<Self, String> {
        use std::net::ToSocketAddrs;
        let resolve = |a: &str| a.to_socket_addrs().ok().and_then(|mut i| i.next());
        let mut this = Self {
            publish_to: config
                .publish_to
                .as_deref()
                .and_then(resolve)
                .map(|addr| PublishTo { addr, login: None }),
            broker: None,
            files: bridges
                .good
                .iter()
                .map(|b| (b.name.clone(), b.clone()))
                .collect(),
        };
        if !config.embedded {
            return Ok(this);
        }
        let listen = resolve(&config.listen)
            .ok_or_else(|| format!("key `mqtt.listen`: `{}` is no address", config.listen))?;
        let policy = BrokerPolicy {
            listen,
            topic_prefix: config.topic_prefix.clone(),
            agent_password: accounts::random_password(),
            allow_anonymous: config.allow_anonymous,
            discovery_prefix: config
                .homeassistant_discovery
                .then(|| config.homeassistant_prefix.clone()),
        };
        let files = broker_files(this.files.values(), &policy).map_err(|p| p.join("\n"))?;
        for w in &files.warnings {
            tracing::warn!("{w}");
        }
        let dir = state_dir.join("mosquitto");
        match ManagedBroker::start(&dir, &policy, &files, stats.clone()).await {
            Ok(broker) => {
                tracing::info!(listen = %listen, dir = %dir.display(), "MQTT broker (mosquitto) running");
                if this.publish_to.is_none() {
                    this.publish_to = Some(PublishTo {
                        addr: listen,
                        login: Some((
                            accounts::AGENT_USER.to_owned(),
                            policy.agent_password.clone(),
                        )),
                    });
                }
                this.broker = Some((broker, policy));
                Ok(this)
            }
            Err(e @ mosquitto::BrokerError::Listen { .. }) => {
                tracing::warn!("MQTT broker not started: {e}");
                Ok(this)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The bridge files changed (SIGHUP): good files replace their
    /// accounts, broken ones keep theirs, removed ones lose them. Problems
    /// (accounts that contradict each other) keep the running files.
    pub(crate) fn reload(&mut self, bridges: &Loaded) -> Vec<String> {
        let Some((broker, policy)) = &self.broker else {
            return Vec::new();
        };
        let mut next = self.files.clone();
        next.retain(|name, _| bridges.broken.contains_key(name));
        next.extend(bridges.good.iter().map(|b| (b.name.clone(), b.clone())));
        let files = match broker_files(next.values(), policy) {
            Ok(f) => f,
            Err(problems) => {
                return problems
                    .into_iter()
                    .map(|p| format!("MQTT broker accounts kept: {p}"))
                    .collect()
            }
        };
        for w in &files.warnings {
            tracing::warn!("{w}");
        }
        if let Err(e) = broker.reload(&files) {
            return vec![format!("MQTT broker accounts kept: {e}")];
        }
        self.files = next;
        Vec::new()
    }

    /// Stops the managed broker, if it runs.
    pub(crate) async fn stop(self) {
        if let Some((broker, _)) = self.broker {
            broker.stop().await;
        }
    }
}

/// What `check-config` says of the accounts the broker would get from
/// `bridges` (none when `[mqtt] embedded = false`): problems, warnings.
pub(crate) fn check_accounts(config: &MqttConfig, bridges: &Loaded) -> (Vec<String>, Vec<String>) {
    use std::net::ToSocketAddrs;
    let listen = config
        .listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next());
    let Some(listen) = listen.filter(|_| config.embedded) else {
        return (Vec::new(), Vec::new());
    };
    let policy = BrokerPolicy {
        listen,
        topic_prefix: config.topic_prefix.clone(),
        agent_password: String::new(),
        allow_anonymous: config.allow_anonymous,
        discovery_prefix: None,
    };
    match broker_files(&bridges.good, &policy) {
        Ok(files) => (Vec::new(), files.warnings),
        Err(problems) => (problems, Vec::new()),
    }
}

/// Signed readings to local MQTT, if there is somewhere to publish.
pub(crate) fn publish(
    local: &LocalMqtt,
    config: &MqttConfig,
    client_id: String,
    feed: tokio::sync::broadcast::Receiver<SignedReading>,
    verified: tokio::sync::broadcast::Receiver<Arc<super::verified_feed::Verified>>,
    stats: Arc<MqttStats>,
) {
    let prefix = &config.topic_prefix;
    let plain = publisher::Plain {
        senml: config.senml,
        discovery: config
            .homeassistant_discovery
            .then(|| config.homeassistant_prefix.clone()),
    };
    if let Some(to) = &local.publish_to {
        spawn_publisher(
            to.clone(),
            prefix.to_owned(),
            client_id,
            feed,
            verified,
            plain,
            stats,
        );
        tracing::info!(broker = %to.addr, prefix = %prefix, "publishing signed readings to local MQTT");
    }
}
