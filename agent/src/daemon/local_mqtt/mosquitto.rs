//! The managed broker: the system's mosquitto, run as the agent's child
//! on a config the agent writes, supervised (restarted with backoff when
//! it dies, killed when the agent stops) and reloaded with SIGHUP.
//!
//! Why mosquitto and not an embedded broker: the embedded one (rumqttd)
//! had no per-client topic rights, so any local process could publish a
//! device's readings and the gateway signed them with the device's key.
//! mosquitto's `password_file` and `acl_file` confine every client to its
//! own topics (`accounts.rs`).
//!
//! mosquitto reads only the generated `mosquitto.conf`: no
//! `/etc/mosquitto`, no persistence, its log on stderr, which the agent
//! reads to count refusals (`debug` is on only so that denied publishes
//! are seen; packet chatter stays at the agent's debug level).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::accounts::{BrokerFiles, BrokerPolicy};
use super::MqttStats;

/// Why the managed broker did not start or reload.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    /// No mosquitto on this machine: the operator's to fix.
    #[error(
        "[mqtt] embedded = true runs the system's mosquitto, and no mosquitto was found in PATH, /usr/sbin or /usr/local/sbin; install it (apt install mosquitto) or set [mqtt] embedded = false and run a broker of your own"
    )]
    Missing,
    /// Its address is taken (another broker already runs?).
    #[error("cannot listen on {addr}: {source} (another MQTT broker running? set [mqtt] listen, or embedded = false to use it)")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing its files in the state directory failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It did not start or exited at once; its last words.
    #[error("mosquitto did not start: {0}")]
    Start(String),
}

/// Where mosquitto may be: sbin is not in every user's PATH.
fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// `setpriv --pdeathsig KILL`, if this machine has one that can: the
/// kernel then kills mosquitto when the agent dies, even by SIGKILL (the
/// agent forbids `unsafe`, so it cannot call prctl between fork and exec
/// itself). Without it, kill-on-drop and systemd's cgroup still stop it.
async fn pdeathsig_wrapper() -> Option<PathBuf> {
    let setpriv = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("setpriv"))
        .find(|p| p.is_file())?;
    let ok = Command::new(&setpriv)
        .args(["--pdeathsig", "KILL", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    ok.then_some(setpriv)
}

/// The running broker, as its owner sees it.
#[derive(Debug)]
pub(crate) struct ManagedBroker {
    dir: PathBuf,
    /// The live child's pid, 0 between lives.
    pid: Arc<AtomicU32>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// mosquitto.conf for `policy`, naming files in `dir`.
fn conf(dir: &Path, policy: &BrokerPolicy, root: bool) -> String {
    let mut c = String::from(
        "# Written by the Streembit agent at every start; edits are lost.\n\
         per_listener_settings false\n\
         persistence false\n\
         log_dest stderr\n\
         log_timestamp false\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type debug\n\
         connection_messages true\n\
         max_packet_size 262144\n",
    );
    c.push_str(&format!("allow_anonymous {}\n", policy.allow_anonymous));
    c.push_str(&format!("password_file {}\n", dir.join("passwd").display()));
    c.push_str(&format!("acl_file {}\n", dir.join("acl").display()));
    if root {
        // Run as root, mosquitto would switch to the `mosquitto` user,
        // which cannot read our 0600 files.
        c.push_str("user root\n");
    }
    c.push_str(&format!(
        "listener {} {}\n",
        policy.listen.port(),
        policy.listen.ip()
    ));
    c
}

/// Writes `text` to `dir/name`, mode 0600, replacing it atomically (a
/// reload never sees half a file).
fn write_private(dir: &Path, name: &str, text: &str) -> Result<(), BrokerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| BrokerError::Write {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Writes the account files into `dir` (0600).
pub(crate) fn write_files(dir: &Path, files: &BrokerFiles) -> Result<(), BrokerError> {
    write_private(dir, "passwd", &files.passwd)?;
    write_private(dir, "acl", &files.acl)
}

impl ManagedBroker {
    /// Writes conf and account files into `dir` (0700), starts mosquitto
    /// and waits until it accepts connections.
    pub(crate) async fn start(
        dir: &Path,
        policy: &BrokerPolicy,
        files: &BrokerFiles,
        stats: Arc<MqttStats>,
    ) -> Result<Self, BrokerError> {
        let binary = find_mosquitto().ok_or(BrokerError::Missing)?;
        // Bound once first, so a port in use is a clear error here rather
        // than a line in mosquitto's log.
        drop(
            std::net::TcpListener::bind(policy.listen).map_err(|source| BrokerError::Listen {
                addr: policy.listen,
                source,
            })?,
        );
        {
            use std::os::unix::fs::DirBuilderExt;
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
            made.map_err(|source| BrokerError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
        let root = rustix::process::geteuid().is_root();
        write_private(dir, "mosquitto.conf", &conf(dir, policy, root))?;
        write_files(dir, files)?;
        let mut cmd = match pdeathsig_wrapper().await {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        cmd.arg("-c")
            .arg(dir.join("mosquitto.conf"))
            // mosquitto speaks sd_notify too: its READY=1 is not ours.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let (last_words_tx, mut last_words) = watch::channel(String::new());
        let mut child = spawn(&mut cmd, &stats, &last_words_tx)?;
        // Up as soon as it accepts a connection; dead if it exits first.
        let up = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if tokio::net::TcpStream::connect(policy.listen).await.is_ok() {
                    return Ok(());
                }
                if let Ok(Some(status)) = child.try_wait() {
                    // Give the stderr reader its last lines.
                    let _ = tokio::time::timeout(Duration::from_millis(500), last_words.changed())
                        .await;
                    let said = last_words.borrow().clone();
                    return Err(BrokerError::Start(format!("{status}: {said}")));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match up {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(BrokerError::Start(format!(
                    "not listening on {} after 10 s",
                    policy.listen
                )))
            }
        }
        stats.broker_running.store(1, Ordering::Relaxed);
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(
            child,
            cmd,
            pid.clone(),
            stopped,
            stats,
            last_words_tx,
        ));
        Ok(Self {
            dir: dir.to_owned(),
            pid,
            stop,
            task,
        })
    }

    /// Rewrites the account files and has mosquitto re-read them (SIGHUP:
    /// clients stay connected; the new rights apply to their next packet).
    pub(crate) fn reload(&self, files: &BrokerFiles) -> Result<(), BrokerError> {
        write_files(&self.dir, files)?;
        let pid = self.pid.load(Ordering::Relaxed);
        // Between two lives the next one reads the new files anyway.
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
        }
        Ok(())
    }

    /// Stops mosquitto and its supervisor.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn spawn(
    cmd: &mut Command,
    stats: &Arc<MqttStats>,
    last_words: &watch::Sender<String>,
) -> Result<Child, BrokerError> {
    let mut child = cmd.spawn().map_err(|e| BrokerError::Start(e.to_string()))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_log(
            BufReader::new(stderr),
            stats.clone(),
            last_words.clone(),
        ));
    }
    Ok(child)
}

/// Restarts mosquitto whenever it dies (1 s, doubling to 60 s; back to
/// 1 s after a minute up), until `stop`.
async fn supervise(
    mut child: Child,
    mut cmd: Command,
    pid: Arc<AtomicU32>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<MqttStats>,
    last_words: watch::Sender<String>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        // A minute up is a healthy life: the next death starts over at 1 s.
        let mut healthy = std::pin::pin!(tokio::time::sleep(Duration::from_secs(60)));
        let mut was_healthy = false;
        let status = loop {
            tokio::select! {
                s = child.wait() => break s,
                () = &mut healthy, if !was_healthy => {
                    was_healthy = true;
                    backoff = Duration::from_secs(1);
                }
                _ = stop.changed() => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    stats.broker_running.store(0, Ordering::Relaxed);
                    return;
                }
            }
        };
        pid.store(0, Ordering::Relaxed);
        stats.broker_running.store(0, Ordering::Relaxed);
        stats.broker_restarts.fetch_add(1, Ordering::Relaxed);
        let said = last_words.borrow().clone();
        match status {
            Ok(s) => {
                tracing::error!(status = %s, last = %said, retry_in = ?backoff, "mosquitto (the agent's MQTT broker) died; restarting")
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "lost mosquitto (the agent's MQTT broker); restarting")
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
            match spawn(&mut cmd, &stats, &last_words) {
                Ok(c) => {
                    child = c;
                    pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                    stats.broker_running.store(1, Ordering::Relaxed);
                    tracing::info!("mosquitto restarted");
                    break;
                }
                Err(e) => {
                    stats.broker_restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, retry_in = ?backoff, "cannot restart mosquitto");
                }
            }
        }
    }
}

/// What one line of mosquitto's log is to the agent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogLine {
    /// A client refused at CONNECT: bad or no credentials.
    NotAuthorised,
    /// A PUBLISH on a topic its account may not publish on, dropped.
    PublishDenied,
    /// Something wrong with the broker itself.
    Error,
    /// Worth a warning.
    Warning,
    /// Routine: clients coming and going, packets.
    Chatter,
}

/// Classifies a line (mosquitto 2.0, `log_timestamp false`).
pub(crate) fn classify(line: &str) -> LogLine {
    if line.ends_with("disconnected, not authorised.") {
        LogLine::NotAuthorised
    } else if line.starts_with("Denied PUBLISH") {
        LogLine::PublishDenied
    } else if line.starts_with("Error") {
        LogLine::Error
    } else if line.starts_with("Warning") {
        LogLine::Warning
    } else {
        LogLine::Chatter
    }
}

/// Reads mosquitto's stderr to its end: counts refusals, logs at the
/// agent's levels, keeps the last line for a death report.
async fn read_log<R: tokio::io::AsyncBufRead + Unpin>(
    reader: R,
    stats: Arc<MqttStats>,
    last_words: watch::Sender<String>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match classify(&line) {
            LogLine::NotAuthorised => {
                stats.refused_login.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "mosquitto", "{line} (client refused: no or wrong credentials)");
            }
            LogLine::PublishDenied => {
                stats.refused_publish.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "mosquitto", "{line}");
            }
            LogLine::Error => tracing::error!(target: "mosquitto", "{line}"),
            LogLine::Warning => tracing::warn!(target: "mosquitto", "{line}"),
            LogLine::Chatter => tracing::debug!(target: "mosquitto", "{line}"),
        }
        last_words.send_replace(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_chatter() {
        assert_eq!(
            classify("Client <unknown> disconnected, not authorised."),
            LogLine::NotAuthorised
        );
        assert_eq!(
            classify("Denied PUBLISH from plug (d0, q0, r0, m0, 'streembit/x', ... (1 bytes))"),
            LogLine::PublishDenied
        );
        assert_eq!(
            classify("Error: Unable to open pwfile \"/x\"."),
            LogLine::Error
        );
        assert_eq!(
            classify("Warning: Mosquitto should not be run as root/administrator."),
            LogLine::Warning
        );
        assert_eq!(classify("Client plug disconnected."), LogLine::Chatter);
    }

    #[test]
    fn the_conf_names_only_our_files_and_listener() {
        let policy = BrokerPolicy {
            listen: "127.0.0.1:1883".parse().expect("addr"),
            topic_prefix: "streembit".to_owned(),
            agent_password: String::new(),
            allow_anonymous: false,
            discovery_prefix: None,
        };
        let c = conf(Path::new("/s/mosquitto"), &policy, false);
        for want in [
            "per_listener_settings false\n",
            "persistence false\n",
            "allow_anonymous false\n",
            "password_file /s/mosquitto/passwd\n",
            "acl_file /s/mosquitto/acl\n",
            "listener 1883 127.0.0.1\n",
        ] {
            assert!(c.contains(want), "{want:?} in\n{c}");
        }
        assert!(!c.contains("include_dir") && !c.contains("user root"));
        assert!(conf(Path::new("/s"), &policy, true).contains("user root\n"));
    }
}
