//! Logging set-up.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp or colour:
//! journald adds its own. Colour only on a terminal, so log files and
//! pipes stay plain text. `RUST_LOG` overrides the configured level. Keys
//! are never logged: types holding secrets print as `<redacted>`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing).
pub(super) fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .without_time()
            .with_ansi(false)
            .with_target(false)
            .try_init()
    } else {
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    let _ = result;
}
