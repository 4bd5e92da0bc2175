//! `streembit reload`: the running agent re-reads its bridge files and
//! allowlist, and the command returns once it has, printing the outcome.
//!
//! It is the unit's `ExecReload=`, so `systemctl reload streembit` returns
//! only after the reload (a bare `kill -HUP` returns at once: systemd 252
//! then reports the reload done before the agent even began). The agent
//! is found through its API socket (the peer credentials of a connection
//! name its pid), or `--pid` ($MAINPID). The handshake is the file
//! `<runtime dir>/reloaded` that the agent writes after each reload
//! (`daemon::systemd::Reloaded`): this command waits for one that began
//! after its signal.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::agent_client::cannot_connect;
use super::{Failure, ReloadArgs, EXIT_INVALID, EXIT_NOT_RUNNING};
use crate::clock::Clock;
use crate::daemon::config::AgentConfig;
use crate::daemon::systemd::{monotonic_usec, Reloaded};

/// How often the handshake file is looked at.
const POLL: Duration = Duration::from_millis(20);

pub(super) fn reload(args: &ReloadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = AgentConfig::load(args.config.config.as_deref()).map_err(Failure::config)?;
    let runtime = config.runtime_dir();
    let pid = match args.pid {
        Some(pid) => pid,
        None => agent_pid(&config.api_socket())?,
    };
    let sent = monotonic_usec()
        .ok_or_else(|| Failure::usage("cannot read the monotonic clock".to_owned()))?;
    signal_hup(pid)?;
    let clock = Clock::system();
    let deadline = clock.instant() + Duration::from_secs(args.timeout);
    loop {
        if let Some(done) =
            Reloaded::read(&runtime).filter(|r| r.pid == pid && r.started_usec >= sent)
        {
            writeln!(out, "{}", done.outcome).map_err(Failure::usage)?;
            if done.problems.is_empty() {
                return Ok(());
            }
            return Err(Failure {
                code: EXIT_INVALID,
                message: done.problems.join("\n"),
            });
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Failure {
                code: EXIT_NOT_RUNNING,
                message: format!("the agent (pid {pid}) exited during the reload"),
            });
        }
        if clock.instant() > deadline {
            return Err(Failure {
                code: EXIT_INVALID,
                message: format!(
                    "the agent (pid {pid}) did not finish reloading within {} s \
                     (no new {})",
                    args.timeout,
                    Reloaded::path(&runtime).display()
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The pid of the process serving the API socket (SO_PEERCRED).
fn agent_pid(socket: &Path) -> Result<u32, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start I/O runtime: {e}")))?;
    let cred = rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        stream.peer_cred()
    });
    let cred = cred.map_err(|e| cannot_connect(socket, &e))?;
    cred.pid()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| Failure::usage("the API socket does not name its process".to_owned()))
}

/// SIGHUP to `pid`, by the shell's `kill` (POSIX sh is everywhere; this
/// crate forbids unsafe code and carries no signal crate).
fn signal_hup(pid: u32) -> Result<(), Failure> {
    let out = std::process::Command::new("sh")
        .args(["-c", "kill -s HUP \"$1\"", "sh", &pid.to_string()])
        .output()
        .map_err(|e| Failure::usage(format!("cannot run sh to signal the agent: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Failure {
        code: EXIT_INVALID,
        message: format!(
            "cannot signal the agent (pid {pid}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}
