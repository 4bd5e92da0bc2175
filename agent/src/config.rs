//! Agent configuration: built-in defaults < the config file < `STREEMBIT_*`
//! environment variables (figment).
//!
//! With no file at all the agent still runs: state in `$STATE_DIRECTORY`
//! (set by systemd) or `./.streembit`, on the public network.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::wire::NetworkId;

/// Where the agent reads its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/streembit/agent.toml";

/// The agent's configuration file, `agent.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// State directory (keys, routing table). Default: `$STATE_DIRECTORY`
    /// or `./.streembit`.
    pub state_dir: Option<PathBuf>,
    /// Network id: `public` or the name of a private network.
    pub network: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            network: "public".to_owned(),
        }
    }
}

/// A config problem, naming the file and key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl AgentConfig {
    /// Loads defaults < `path` (if it exists; an explicitly given path must
    /// exist) < `STREEMBIT_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError(format!(
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
        let figment = figment.merge(Env::prefixed("STREEMBIT_").split("__"));
        let config: AgentConfig = figment.extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| describe(&e))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        config.network_id()?;
        Ok(config)
    }

    /// The state directory this config resolves to.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            // systemd joins several StateDirectory= entries with ':'.
            .or_else(|| {
                std::env::var("STATE_DIRECTORY")
                    .ok()
                    .and_then(|v| v.split(':').next().map(PathBuf::from))
            })
            .unwrap_or_else(|| PathBuf::from(".streembit"))
    }

    /// The network id, validated.
    pub fn network_id(&self) -> Result<NetworkId, ConfigError> {
        self.network
            .parse()
            .map_err(|reason| ConfigError(format!("key `network`: {reason}")))
    }
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
