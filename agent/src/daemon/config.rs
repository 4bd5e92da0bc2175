//! Agent configuration: built-in defaults < the config file < `STREEMBIT_*`
//! environment variables (figment; nested keys with `__`, e.g.
//! `STREEMBIT_NAT__REACHABILITY=private`).
//!
//! The file is strict: an unknown key is an error naming it. The
//! environment is not: a `STREEMBIT_*` variable that names no key is
//! ignored with a warning naming it ([`unknown_env_vars`]), because any
//! process may inherit one meant for something else, and it must not stop
//! every command (`sign --key` included).
//!
//! With no file at all the agent still runs: state in `$STATE_DIRECTORY`
//! (set by systemd) or `./.streembit`, on the public network, listening on
//! UDP [`DEFAULT_PORT`]. Every problem found is reported, each naming the
//! file, the key and the reason.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::wire::NetworkId;

use super::config_env::{is_config_key, ENV_PREFIX};
pub(crate) use super::config_env::{unknown_env_vars, unknown_env_warning};
pub(crate) use super::console::WebSection;
pub(crate) use super::point_gauges::MetricsSection;
pub(crate) use crate::discovery::{DiscoverySection, Seed};

/// Where the agent reads its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/streembit/agent.toml";
/// The agent's default UDP port.
pub(crate) const DEFAULT_PORT: u16 = 7470;

/// Where bridge files live for an agent config at `config`: `bridges.d/`
/// beside it. With no explicit config, beside the default config path.
pub(crate) fn bridges_dir(config: Option<&Path>) -> PathBuf {
    let base = config.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    base.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("bridges.d")
}

/// The agent's configuration file, `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// State directory (keys, routing table). Default: `$STATE_DIRECTORY`
    /// or `./.streembit`.
    pub state_dir: Option<PathBuf>,
    /// Runtime directory (the API socket). Default: `$RUNTIME_DIRECTORY` or
    /// `<state>/run`.
    pub runtime_dir: Option<PathBuf>,
    /// Network id: `public` or the name of a private network.
    pub network: String,
    /// UDP address to listen on.
    pub listen: String,
    /// Addresses to announce in our peer record (default: the bound
    /// address, with 0.0.0.0 replaced by 127.0.0.1 only when nothing else
    /// is known — set this on real deployments).
    pub announce: Vec<String>,
    /// Peers to join through: `"<pubkey-hex>@host:port"`.
    pub seeds: Vec<String>,
    /// DNS names whose TXT records each hold a seed (`<key>@host:port`),
    /// looked up at start and every hour.
    pub seeds_dns: Vec<String>,
    /// Public keys admitted on a private network.
    pub allowlist: Vec<String>,
    /// A file of public keys (one per line, `#` comments) admitted on a
    /// private network, in addition to `allowlist`.
    pub allowlist_file: Option<PathBuf>,
    /// Admin keys of a private network: the holders of a credential signed
    /// by `admin_threshold` of them are members (no list needed).
    pub admins: Vec<String>,
    /// How many of `admins` must sign a credential or a revocation list.
    pub admin_threshold: usize,
    /// This agent's own credential (`streembit member issue` writes it),
    /// presented in every handshake.
    pub credential_file: Option<PathBuf>,
    /// Log level when `RUST_LOG` is not set.
    pub log_level: String,
    /// Store-and-forward: the most each subscriber's queue of a hosted
    /// device holds on disk, in bytes; when full, the oldest readings are
    /// dropped (and counted).
    pub outbox_max_bytes: u64,
    /// The most subscribers one hosted device accepts.
    pub max_subscribers_per_device: usize,
    /// Days a subscription to a hosted device lives without a sign of its
    /// subscriber (a subscribe, an acknowledgement, an open stream); then
    /// its queue is deleted and its slot freed.
    pub subscription_expiry_days: u64,
    /// The most each of this agent's subscription inboxes holds on disk,
    /// in bytes; when full, the oldest readings are dropped (and counted).
    pub inbox_max_bytes: u64,
    /// The local MQTT side: the local broker (mosquitto, run by the agent)
    /// and where signed readings are published.
    pub mqtt: MqttConfig,
    /// `[nat]`: reachability, relaying for others, hole punching.
    pub nat: NatSection,
    /// `[dht]`: what this agent keeps for others.
    pub dht: DhtSection,
    /// `[discovery]`: finding agents on the LAN (mDNS).
    pub discovery: DiscoverySection,
    /// `[web]`: the web console.
    pub web: WebSection,
    /// `[metrics]`: what `/metrics` exports beyond the agent's own.
    pub metrics: MetricsSection,
    /// For tests and demonstrations only: run as if the machine's wall
    /// clock were off by this many ms (negative: behind). The agent then
    /// learns the network's time from its peers, as a gateway with a wrong
    /// clock does in the field.
    pub simulate_clock_offset_ms: i64,
}

/// `[dht]`: the limits of what this agent keeps for other peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhtSection {
    /// Device records kept per gateway for the devices it hosts: the
    /// devices one gateway can make findable through this agent.
    pub max_devices_per_gateway: usize,
}

impl Default for DhtSection {
    fn default() -> Self {
        Self {
            max_devices_per_gateway: crate::dht::DEFAULT_MAX_DEVICES_PER_GATEWAY,
        }
    }
}

/// `[nat]`: how this agent is reached behind NAT, and whether it relays
/// for others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatSection {
    /// `auto` (find out with dial-backs), `public` (trust `announce`), or
    /// `private` (always through relays).
    pub reachability: String,
    /// Relay for peers behind NAT (only on a reachable node).
    pub relay: bool,
    /// Relayed sessions at once, all peers together.
    pub relay_max_sessions: usize,
    /// Sustained bytes per second per relayed session.
    pub relay_bytes_per_sec: u64,
    /// Relays to hold a reservation at when behind NAT.
    pub max_relays: usize,
}

impl Default for NatSection {
    fn default() -> Self {
        let limits = crate::transport::relay::RelayLimits::default();
        Self {
            reachability: "auto".to_owned(),
            relay: false,
            relay_max_sessions: limits.max_sessions,
            relay_bytes_per_sec: limits.bytes_per_sec,
            max_relays: 2,
        }
    }
}

impl NatSection {
    /// The node's NAT settings (validated at load).
    pub fn node_config(&self) -> Result<crate::node::NatConfig, ConfigError> {
        let mode = self
            .reachability
            .parse()
            .map_err(|e| ConfigError::one(format!("key `nat.reachability`: {e}")))?;
        let relay = self.relay.then(|| crate::transport::relay::RelayLimits {
            max_sessions: self.relay_max_sessions,
            bytes_per_sec: self.relay_bytes_per_sec,
            burst_bytes: self.relay_bytes_per_sec.max(64 * 1024),
            ..Default::default()
        });
        Ok(crate::node::NatConfig {
            mode,
            relay,
            max_relays: self.max_relays.max(1),
        })
    }
}

/// `[mqtt]`: the local broker and the publication of signed readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Run a local MQTT broker for local devices and applications: the
    /// system's mosquitto, started, confined and supervised by the agent.
    /// Every client logs in with an account from the bridge files and may
    /// publish only on its own topics.
    pub embedded: bool,
    /// Where that broker listens (TCP, no TLS: keep it on loopback or a
    /// trusted LAN; passwords cross it in the clear).
    pub listen: String,
    /// Let clients without credentials connect to that broker. They may
    /// then read every topic and publish on none. Default false.
    pub allow_anonymous: bool,
    /// Publish every signed reading (raw COSE) to this broker; default:
    /// the embedded one, when it runs.
    pub publish_to: Option<String>,
    /// Topic prefix: readings go to `<prefix>/<device key>/<point>`.
    pub topic_prefix: String,
    /// Also publish every verified reading as SenML JSON (RFC 8428) on
    /// `<prefix>/senml/<device key>/<point>`, for tools without COSE.
    pub senml: bool,
    /// Announce every point to Home Assistant (MQTT discovery, retained
    /// config messages under `homeassistant_prefix`).
    pub homeassistant_discovery: bool,
    /// Home Assistant's discovery prefix.
    pub homeassistant_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            listen: "127.0.0.1:1883".to_owned(),
            allow_anonymous: false,
            publish_to: None,
            topic_prefix: "streembit".to_owned(),
            senml: true,
            homeassistant_discovery: false,
            homeassistant_prefix: "homeassistant".to_owned(),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            runtime_dir: None,
            network: "public".to_owned(),
            listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            announce: Vec::new(),
            seeds: Vec::new(),
            seeds_dns: Vec::new(),
            allowlist: Vec::new(),
            allowlist_file: None,
            admins: Vec::new(),
            admin_threshold: 1,
            credential_file: None,
            log_level: "info".to_owned(),
            outbox_max_bytes: 8 * 1024 * 1024,
            max_subscribers_per_device: 16,
            subscription_expiry_days: 30,
            inbox_max_bytes: 16 * 1024 * 1024,
            mqtt: MqttConfig::default(),
            nat: NatSection::default(),
            dht: DhtSection::default(),
            discovery: DiscoverySection::default(),
            web: WebSection::default(),
            metrics: MetricsSection::default(),
            simulate_clock_offset_ms: 0,
        }
    }
}

/// Config problems, each naming file, key and reason; all of them, not
/// only the first.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    pub(super) fn one(msg: impl std::fmt::Display) -> Self {
        Self(vec![msg.to_string()])
    }
}

impl AgentConfig {
    /// Loads defaults < `path` (optional when not given explicitly) <
    /// `STREEMBIT_*` environment, then validates everything.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError::one(format!(
                    "{}: config file not found",
                    p.display()
                )))
            }
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            // The default file is optional: no config at all is a valid setup.
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_PATH))
            }
            None => {}
        }
        let figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .split("__")
                .filter(|key| is_config_key(key.as_str())),
        );
        let config: AgentConfig = figment
            .extract()
            .map_err(|e| ConfigError(e.into_iter().map(|e| describe(&e)).collect()))?;
        let origin = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_owned());
        config.validate(&origin)?;
        Ok(config)
    }

    /// Parses `text` as an `agent.toml` over the defaults and runs every
    /// check that needs nothing but the text: no environment, no files (an
    /// `allowlist_file` is not opened). The fuzz target drives the parser
    /// through this, which is why it stays free of side effects; `origin`
    /// names the file in messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: AgentConfig = Figment::from(Serialized::defaults(AgentConfig::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(e.into_iter().map(|e| describe(&e)).collect()))?;
        let errors = config.text_errors(origin);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(errors))
        }
    }

    /// Every semantic check; `origin` names the file in messages.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut errors = self.text_errors(origin);
        errors.extend(self.membership_file_errors(origin));
        // Names are resolved only here (DNS is a side effect), and only
        // for addresses whose shape passed the text checks.
        for (key, addr) in [
            ("mqtt.listen", Some(&self.mqtt.listen)),
            ("mqtt.publish_to", self.mqtt.publish_to.as_ref()),
        ] {
            let Some(a) = addr else { continue };
            let shaped = a
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if shaped
                && a.to_socket_addrs()
                    .map(|mut i| i.next().is_none())
                    .unwrap_or(true)
            {
                errors.push(format!(
                    "{origin}: key `{key}`: {a:?} is not a host:port address"
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The checks that read nothing but the config values themselves.
    fn text_errors(&self, origin: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let mut err =
            |key: &str, reason: String| errors.push(format!("{origin}: key `{key}`: {reason}"));
        if let Err(reason) = self.network.parse::<NetworkId>() {
            err("network", reason);
        }
        if let Err(e) = self.listen.parse::<SocketAddr>() {
            err(
                "listen",
                format!("{:?} is not an ip:port address ({e})", self.listen),
            );
        }
        for (i, a) in self.announce.iter().enumerate() {
            if a.parse::<SocketAddr>().is_err() {
                err(
                    &format!("announce[{i}]"),
                    format!("{a:?} is not an ip:port address"),
                );
            }
        }
        if let Err(e) = self.nat.reachability.parse::<crate::node::ReachMode>() {
            err("nat.reachability", e.to_string());
        }
        for (i, s) in self.seeds.iter().enumerate() {
            if let Err(reason) = Seed::parse(s) {
                err(&format!("seeds[{i}]"), reason);
            }
        }
        for (i, name) in self.seeds_dns.iter().enumerate() {
            if let Err(reason) = crate::discovery::check_dns_name(name) {
                err(&format!("seeds_dns[{i}]"), reason);
            }
        }
        if let Err(reason) = self.web.addr() {
            err("web.listen", reason);
        }
        if self.discovery.max_new_per_minute == 0 {
            err(
                "discovery.max_new_per_minute",
                "must be at least 1 (set `discovery.mdns = false` to turn LAN discovery off)"
                    .into(),
            );
        }
        for (key, v) in [
            ("outbox_max_bytes", self.outbox_max_bytes),
            ("inbox_max_bytes", self.inbox_max_bytes),
        ] {
            if v < 64 * 1024 {
                err(key, format!("{v} is below the minimum of 65536 bytes"));
            }
        }
        for (key, addr) in [
            ("mqtt.listen", Some(&self.mqtt.listen)),
            ("mqtt.publish_to", self.mqtt.publish_to.as_ref()),
        ] {
            // The shape here; whether the host resolves is `validate`'s.
            if let Some(a) = addr {
                if a.rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    err(key, format!("{a:?} is not a host:port address"));
                }
            }
        }
        let prefix = &self.mqtt.topic_prefix;
        if prefix.is_empty() || prefix.contains(['+', '#', '\0']) || prefix.ends_with('/') {
            err(
                "mqtt.topic_prefix",
                format!("{prefix:?} must be a non-empty topic without wildcards or a trailing '/'"),
            );
        }
        if self.max_subscribers_per_device == 0 {
            err("max_subscribers_per_device", "must be at least 1".into());
        }
        errors.extend(self.membership_errors(origin));
        errors
    }

    /// The state directory this config resolves to.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            // systemd joins several StateDirectory= entries with ':'.
            .or_else(|| first_of_env("STATE_DIRECTORY"))
            .unwrap_or_else(|| PathBuf::from(".streembit"))
    }

    /// The runtime directory (API socket).
    pub fn runtime_dir(&self) -> PathBuf {
        self.runtime_dir
            .clone()
            .or_else(|| first_of_env("RUNTIME_DIRECTORY"))
            .unwrap_or_else(|| self.state_dir().join("run"))
    }

    /// The API socket path.
    pub fn api_socket(&self) -> PathBuf {
        self.runtime_dir().join("api.sock")
    }

    /// The network id, validated.
    pub fn network_id(&self) -> Result<NetworkId, ConfigError> {
        self.network
            .parse()
            .map_err(|reason| ConfigError::one(format!("key `network`: {reason}")))
    }

    /// Seeds, parsed (validated at load).
    pub fn seeds(&self) -> Vec<Seed> {
        self.seeds
            .iter()
            .filter_map(|s| Seed::parse(s).ok())
            .collect()
    }

    /// The listen address (validated at load).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e| ConfigError::one(format!("key `listen`: {e}")))
    }
}

fn first_of_env(var: &str) -> Option<PathBuf> {
    std::env::var(var).ok().and_then(|v| {
        v.split(':')
            .next()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    })
}

/// One figment error as `file: key `k`: reason`.
fn describe(e: &figment::Error) -> String {
    let source = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| s.to_string())
        .unwrap_or_else(|| "config".to_owned());
    let key = if e.path.is_empty() {
        String::new()
    } else {
        format!(" key `{}`:", e.path.join("."))
    };
    format!("{source}:{key} {}", e.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn validation_reports_every_problem() {
        let cfg = AgentConfig {
            network: "Bad Net".into(),
            listen: "nowhere".into(),
            seeds: vec!["x".into()],
            allowlist: vec!["y".into()],
            ..AgentConfig::default()
        };
        let errs = cfg.validate("agent.toml").expect_err("invalid").0;
        for key in ["`network`", "`listen`", "`seeds[0]`", "`allowlist[0]`"] {
            assert!(
                errs.iter().any(|e| e.contains(key)),
                "{key} not in {errs:?}"
            );
        }
        assert!(errs.iter().all(|e| e.starts_with("agent.toml: key")));
    }

    #[test]
    fn text_parses_without_opening_files() {
        let text = "network = \"acme\"\nallowlist_file = \"/nonexistent/allowlist\"\n";
        let cfg = AgentConfig::from_toml_str(text, "t.toml").expect("parses");
        assert_eq!(
            cfg.allowlist_file.as_deref(),
            Some(Path::new("/nonexistent/allowlist"))
        );
        // The full check opens the file, and fails.
        assert!(cfg.validate("t.toml").is_err());
        let errs = AgentConfig::from_toml_str("listen = 5", "t.toml")
            .expect_err("wrong type")
            .0;
        assert!(errs.iter().any(|e| e.contains("`listen`")), "{errs:?}");
    }

    #[test]
    fn private_networks_need_a_name_and_a_list() {
        let k = Keypair::from_seed(&[1; 32]).public().to_string();
        let public_with_list = AgentConfig {
            allowlist: vec![k.clone()],
            ..AgentConfig::default()
        };
        assert!(public_with_list.validate("f").is_err());
        let named_without_list = AgentConfig {
            network: "acme".into(),
            ..AgentConfig::default()
        };
        assert!(named_without_list.validate("f").is_err());
        let good = AgentConfig {
            network: "acme".into(),
            allowlist: vec![k],
            ..AgentConfig::default()
        };
        assert!(good.validate("f").is_ok() && good.is_private());
    }
}
