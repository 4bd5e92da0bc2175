//! What systemd and the operator see of the running agent.
//!
//! - The STATUS line (`systemctl status`): a summary an operator reads at
//!   a glance, "public, 7 peers (3 connected), 12 devices (11 online),
//!   reachable", refreshed every [`REFRESH`] and when the node reports an
//!   event, sent only when it changed. `streembit status` prints the same
//!   line ([`summary`]). Transient events (a record published, a table
//!   restored) are not STATUS: they go out as `X_STREEMBIT_EVENT=`, which
//!   systemd ignores and the tests' fake systemd reads.
//! - The reload handshake: after a reload (SIGHUP) the agent sends
//!   READY=1 and writes `<runtime dir>/reloaded` (its pid, when the reload
//!   began, the outcome). `streembit reload`, the unit's ExecReload,
//!   signals the agent and returns once a reload that began after its
//!   signal has finished, so
//!   `systemctl reload` returns only after the agent has reloaded (with
//!   `Type=notify`, systemd 252). Under `Type=notify-reload` (systemd ≥
//!   253) systemd signals and waits itself: RELOADING=1 then carries
//!   MONOTONIC_USEC, as it requires.
//! - [`notify`]: every notification, sent so that a service manager
//!   that does not read can never stall the agent.
//!
//! What this module does not do: decide anything. It reports what the
//! node and the devices say.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::api::{DeviceInfo, Status};
use crate::devices::Devices;
use crate::node::NodeHandle;

/// How often the STATUS line is recomputed without an event.
const REFRESH: Duration = Duration::from_secs(5);

/// The file the reload handshake is written to, in the runtime directory.
pub(crate) const RELOADED_FILE: &str = "reloaded";

/// The operator's one-line summary of a status and the hosted devices.
pub(crate) fn summary(s: &Status, devices: &[DeviceInfo]) -> String {
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut parts = Vec::new();
    parts.push(if s.network_kind == "private" {
        format!("private network {}", s.network)
    } else {
        s.network.clone()
    });
    parts.push(format!(
        "{} ({} connected)",
        plural(s.table_size, "peer"),
        s.connections
    ));
    let online = devices.iter().filter(|d| d.state == "online").count();
    parts.push(match devices.len() {
        0 => "no devices".to_owned(),
        n => format!("{} ({online} online)", plural(n, "device")),
    });
    parts.push(
        match s.reachability.as_str() {
            "public" => "reachable",
            "private" => "behind NAT (reached through relays)",
            _ => "reachability not known yet",
        }
        .to_owned(),
    );
    if !s.warnings.is_empty() {
        parts.push(format!(
            "{} (see streembit status)",
            plural(s.warnings.len(), "warning")
        ));
    }
    parts.join(", ")
}

/// The STATUS line's task: [`StatusLine::spawn`] starts it.
#[derive(Clone)]
pub(super) struct StatusLine {
    wake: Arc<Notify>,
    /// Appended to the summary until replaced: what the last reload
    /// refused, for instance.
    note: Arc<Mutex<Option<String>>>,
}

impl StatusLine {
    /// Starts refreshing STATUS; stops at shutdown.
    pub(super) fn spawn(
        node: NodeHandle,
        devices: Devices,
        device_budget: usize,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let me = Self {
            wake: Arc::new(Notify::new()),
            note: Arc::default(),
        };
        let task = me.clone();
        tokio::spawn(async move {
            let mut last = String::new();
            loop {
                if let Ok(Ok(mut s)) = tokio::time::timeout(REFRESH, node.status()).await {
                    s.devices = devices.count();
                    s.warnings
                        .extend(super::device_budget_warning(s.devices, device_budget));
                    let mut line = summary(&s, &devices.list());
                    if let Some(note) = task.note.lock().ok().and_then(|n| n.clone()) {
                        line.push_str("; ");
                        line.push_str(&note);
                    }
                    if line != last {
                        notify(&[sd_notify::NotifyState::Status(&line)]);
                        last = line;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH) => {}
                    _ = task.wake.notified() => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
        me
    }

    /// Recomputes the line now (something changed).
    pub(super) fn refresh(&self) {
        self.wake.notify_one();
    }

    /// Sets (or clears) the note after the summary, and refreshes.
    pub(super) fn set_note(&self, note: Option<String>) {
        if let Ok(mut n) = self.note.lock() {
            *n = note;
        }
        self.refresh();
    }
}

/// The reloads of this process: systemd's RELOADING=1 / READY=1 around
/// each, and the handshake file after it.
pub(super) struct Reloads {
    /// When the reload under way began (CLOCK_MONOTONIC, µs).
    started_usec: u64,
    runtime_dir: PathBuf,
    line: StatusLine,
}

impl Reloads {
    pub(super) fn new(runtime_dir: PathBuf, line: StatusLine) -> Self {
        Self {
            started_usec: 0,
            runtime_dir,
            line,
        }
    }

    /// A reload begins. systemd ≥ 253 (`Type=notify-reload`) wants the
    /// monotonic time with RELOADING=1, to tell this reload from an
    /// earlier one; older versions ignore it.
    pub(super) fn started(&mut self) {
        let mut states = vec![sd_notify::NotifyState::Reloading];
        if let Some(now) = monotonic_usec() {
            self.started_usec = now;
            states.push(sd_notify::NotifyState::MonotonicUsec(now.into()));
        }
        notify(&states);
    }

    /// A reload ended: READY=1 with its outcome as STATUS, the handshake
    /// file for `streembit reload`, and the problems, if any, kept after
    /// the summary until the next reload.
    pub(super) fn finished(&mut self, outcome: String, problems: Vec<String>) {
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&outcome),
        ]);
        self.line
            .set_note((!problems.is_empty()).then(|| outcome.clone()));
        let done = Reloaded {
            pid: std::process::id(),
            started_usec: self.started_usec,
            outcome,
            problems,
        };
        if let Err(e) = done.write(&self.runtime_dir) {
            tracing::warn!(
                "cannot write {}: {e}; `streembit reload` will wait in vain",
                Reloaded::path(&self.runtime_dir).display()
            );
        }
    }
}

/// CLOCK_MONOTONIC now, in µs (what systemd's MONOTONIC_USEC is).
pub(crate) fn monotonic_usec() -> Option<u64> {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(sd_notify::NotifyState::MonotonicUsec(usec)) => u64::try_from(usec).ok(),
        _ => None,
    }
}

/// What `<runtime dir>/reloaded` says: which agent process finished a
/// reload, when that reload began, and its outcome. A reload that began
/// after a signal was sent is that signal's reload (or a later one):
/// this is how `streembit reload` tells it from one already under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// The agent's process id.
    pub pid: u32,
    /// When the reload began: CLOCK_MONOTONIC, µs.
    pub started_usec: u64,
    /// The outcome, as STATUS said it.
    pub outcome: String,
    /// Every problem the reload found (bridge files refused, config kept).
    pub problems: Vec<String>,
}

impl Reloaded {
    /// The file in `runtime_dir`.
    pub(crate) fn path(runtime_dir: &Path) -> PathBuf {
        runtime_dir.join(RELOADED_FILE)
    }

    /// Reads the file; `None` if absent or not in this format.
    pub(crate) fn read(runtime_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(Self::path(runtime_dir)).ok()?;
        let mut lines = text.lines();
        let (pid, started) = lines.next()?.split_once(' ')?;
        Some(Self {
            pid: pid.parse().ok()?,
            started_usec: started.parse().ok()?,
            outcome: lines.next()?.to_owned(),
            problems: lines.map(str::to_owned).collect(),
        })
    }

    /// Writes the file whole (a temporary file renamed over it), readable
    /// by the group: members of `streembit` may run `streembit reload`.
    pub(super) fn write(&self, runtime_dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut text = format!(
            "{} {}\n{}\n",
            self.pid,
            self.started_usec,
            one_line(&self.outcome)
        );
        for p in &self.problems {
            text.push_str(&one_line(p));
            text.push('\n');
        }
        let path = Self::path(runtime_dir);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o640))?;
        std::fs::rename(&tmp, &path)
    }
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// How long one notification may wait for room in the service manager's
/// socket before it is given up (a shutdown must not hang on it).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// One datagram to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
/// namespace), waiting at most [`NOTIFY_TIMEOUT`] for room: the sd_notify
/// crate's own send blocks without bound when nobody reads the socket.
fn send_notification(msg: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(&path))?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(NOTIFY_TIMEOUT))?;
    socket.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

/// Sends to systemd (or a test's socket) when `NOTIFY_SOCKET` is set.
///
/// The send itself blocks when the socket's queue is full (a busy systemd,
/// or a reader that does not read), so it runs on a thread of its own
/// behind a bounded queue: the agent's runtime never waits on it. When
/// even that queue is full, the notification is dropped and logged. READY,
/// STOPPING and RELOADING are sent at once (rare, and they must not be lost
/// or overtaken), waiting at most [`NOTIFY_TIMEOUT`].
pub(crate) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
    use std::sync::OnceLock;
    static QUEUE: OnceLock<Option<SyncSender<String>>> = OnceLock::new();
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel::<String>(64);
        std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                for msg in rx {
                    if let Err(e) = send_notification(&msg) {
                        tracing::debug!(error = %e, "sd_notify failed");
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    let msg = states
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    // The state changes a service manager acts on go at once, in order
    // with the process's life (a queued STOPPING could be lost at exit).
    if ["READY=1", "STOPPING=1", "RELOADING=1"]
        .iter()
        .any(|s| msg.starts_with(s))
    {
        if let Err(e) = send_notification(&msg) {
            tracing::warn!(error = %e, notification = %msg, "systemd notification not delivered");
        }
        return;
    }
    match queue.as_ref().map(|q| q.try_send(msg)) {
        Some(Ok(())) => {}
        Some(Err(TrySendError::Full(m))) => {
            tracing::debug!(notification = %m, "notification dropped: the service manager is not reading")
        }
        _ => tracing::debug!("no notification thread"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        serde_json::from_value(serde_json::json!({
            "network": "public", "network_kind": "public", "key": "k", "node_id": "n",
            "listen": ["0.0.0.0:7470"], "uptime_s": 1, "connections": 3, "table_size": 7,
            "records_stored": 0, "devices": 0, "reachability": "public",
        }))
        .expect("status")
    }

    fn device(state: &str) -> DeviceInfo {
        serde_json::from_value(serde_json::json!({
            "name": "d", "bridge": "b.toml", "key": "k", "state": state, "points": {},
        }))
        .expect("device")
    }

    #[test]
    fn the_summary_reads_at_a_glance() {
        let mut s = status();
        let devices: Vec<DeviceInfo> = (0..12)
            .map(|i| device(if i == 0 { "offline: timeout" } else { "online" }))
            .collect();
        assert_eq!(
            summary(&s, &devices),
            "public, 7 peers (3 connected), 12 devices (11 online), reachable"
        );
        s.network = "acme".into();
        s.network_kind = "private".into();
        s.table_size = 1;
        s.reachability = "unknown".into();
        s.warnings = vec!["clock".into()];
        assert_eq!(
            summary(&s, &[]),
            "private network acme, 1 peer (3 connected), no devices, \
             reachability not known yet, 1 warning (see streembit status)"
        );
    }

    #[test]
    fn the_reload_file_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(Reloaded::read(dir.path()), None);
        let r = Reloaded {
            pid: 42,
            started_usec: 3,
            outcome: "reload: 1 bridge file problems".into(),
            problems: vec!["a.toml: key `x`:\nunknown".into()],
        };
        r.write(dir.path()).expect("write");
        let back = Reloaded::read(dir.path()).expect("read");
        assert_eq!(back.problems, ["a.toml: key `x`: unknown"]);
        assert_eq!((back.pid, back.started_usec), (42, 3));
    }
}
