//! Logging set-up.
//!
//! Under systemd, when stderr is the journal's stream (`JOURNAL_STREAM`
//! names its device and inode), every line starts with its syslog priority
//! as sd-daemon(3) defines it (`<3>` error, `<4>` warning, `<6>` info,
//! `<7>` debug), so `journalctl -p warning` finds the agent's warnings; one
//! event is one line, hence one journal entry (a multi-line message, such
//! as a TOML error with its caret, is joined with ` ⏎ `); no timestamp or
//! colour: journald adds its own. Elsewhere, lines carry a timestamp, and
//! colour only on a terminal, so log files and pipes stay plain text.
//!
//! The managed MQTT broker's (mosquitto's) log arrives under the target
//! `mosquitto`, already at the agent's levels (`local_mqtt/mosquitto.rs`):
//! clients coming and going are debug (`RUST_LOG=info,mosquitto=debug`
//! shows them).
//!
//! `RUST_LOG` overrides the configured level. Keys are never logged: types
//! holding secrets print as `<redacted>`.

use std::fmt;
use std::io::Write;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing).
pub(super) fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = journal_stream();
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!journal && std::io::stderr().is_terminal())
        .event_format(Line { journal })
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` is set and
/// names stderr's device and inode (a child whose stderr was redirected
/// inherits the variable, but not the stream).
pub(crate) fn journal_stream() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => stream.to_str() == Some(&format!("{}:{}", m.dev(), m.ino())),
        // No /proc: trust the variable.
        Err(_) => true,
    }
}

/// `text` as one journal entry at `priority`: the sd-daemon prefix, and
/// its lines joined into one.
pub(crate) fn journal_line(priority: u8, text: &str) -> String {
    format!("<{priority}>{}", one_line(text))
}

/// The lines of `text`, trimmed, empty ones dropped, joined with ` ⏎ `.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(" ⏎ ");
        }
        out.push_str(line);
    }
    out
}

/// The syslog priority of a level (sd-daemon(3)).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The line format: `<N>LEVEL [target: ]message fields` under the journal,
/// `time LEVEL target: message fields` elsewhere.
struct Line {
    journal: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut text = String::new();
        ctx.format_fields(Writer::new(&mut text), event)?;
        let level = *meta.level();
        let target = meta.target();
        if self.journal {
            // The agent's own modules need no name in the journal.
            let from = if target.starts_with("streembit") {
                String::new()
            } else {
                format!("{target}: ")
            };
            let line = journal_line(priority(level), &format!("{level} {from}{text}"));
            return writeln!(writer, "{line}");
        }
        SystemTime.format_time(&mut writer)?;
        let (on, off) = match (writer.has_ansi_escapes(), level) {
            (false, _) => ("", ""),
            (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
            (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
            (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
            (true, _) => ("\x1b[34m", "\x1b[0m"),
        };
        writeln!(writer, " {on}{level:>5}{off} {target}: {text}")
    }
}

/// A message printed without the subscriber (the CLI's errors and
/// warnings, the agent's failure to start): under the journal, one entry
/// at `priority`; elsewhere as it is.
pub(crate) fn print_stderr(priority: u8, text: &str) {
    let line = if journal_stream() {
        journal_line(priority, text)
    } else {
        text.to_owned()
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_sd_daemons() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }

    #[test]
    fn a_multi_line_message_is_one_line() {
        let toml = "TOML parse error at line 1, column 7\n  |\n1 | listen\n  |       ^\nexpected `.`, `=`\n";
        let line = journal_line(3, toml);
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            line,
            "<3>TOML parse error at line 1, column 7 ⏎ | ⏎ 1 | listen ⏎ |       ^ ⏎ expected `.`, `=`"
        );
        assert_eq!(journal_line(6, "one line"), "<6>one line");
    }
}
