//! `STREEMBIT_*` environment variables: which of them name a config key.
//! The config reads only those (figment's `Env` provider, filtered); any
//! other is ignored with a warning naming it, because a process may
//! inherit one meant for something else and it must not stop every
//! command.

use super::config::AgentConfig;

/// The prefix of the environment variables that set config keys.
pub(super) const ENV_PREFIX: &str = "STREEMBIT_";

/// Whether `key` (dotted, any case: `mqtt.embedded`) names a key of
/// [`AgentConfig`] or one of its sections.
pub(super) fn is_config_key(key: &str) -> bool {
    let Ok(mut value) = serde_json::to_value(AgentConfig::default()) else {
        return false;
    };
    for part in key.to_ascii_lowercase().split('.') {
        match value.get_mut(part) {
            Some(v) => value = v.take(),
            None => return false,
        }
    }
    true
}

/// The `STREEMBIT_*` environment variables that name no config key
/// (sorted): the config ignores them, and the agent and the CLI warn.
pub(crate) fn unknown_env_vars() -> Vec<String> {
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|key| !is_config_key(&key.replace("__", ".")))
        })
        .collect();
    unknown.sort();
    unknown
}

/// The warning about [`unknown_env_vars`].
pub(crate) fn unknown_env_warning(names: &[String]) -> String {
    format!(
        "ignoring environment variable{} {}: no such config key \
         (config keys are {ENV_PREFIX}<KEY> or {ENV_PREFIX}<SECTION>__<KEY>, \
         e.g. {ENV_PREFIX}NAT__REACHABILITY)",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_are_known_by_their_dotted_path() {
        for key in [
            "listen",
            "NETWORK",
            "mqtt.embedded",
            "nat.reachability",
            "dht.max_devices_per_gateway",
            "state_dir",
            "mqtt",
        ] {
            assert!(is_config_key(key), "{key}");
        }
        for key in ["dht.k", "bogus", "mqtt.embedded.x", "listen.port", ""] {
            assert!(!is_config_key(key), "{key}");
        }
    }
}
