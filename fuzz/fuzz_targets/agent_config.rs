//! The `agent.toml` parser (figment over the defaults, then every check
//! that reads only the text) on arbitrary text: never panics, and a config
//! it accepts, written back as TOML, parses to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streembit_agent::internals::daemon::AgentConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AgentConfig::from_toml_str(text, "agent.toml") {
        Ok(cfg) => {
            let written = toml::to_string(&cfg).expect("a parsed config serializes");
            let again = AgentConfig::from_toml_str(&written, "agent.toml")
                .unwrap_or_else(|e| panic!("own output refused: {e}\n{written}"));
            assert_eq!(again, cfg);
        }
        Err(e) => {
            // Every message names the file it is about.
            assert!(!e.0.is_empty());
            assert!(e.0.iter().all(|m| !m.is_empty()));
        }
    }
});
