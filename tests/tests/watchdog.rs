//! The systemd watchdog protocol catches a frozen agent (issue 10, item 4).
//!
//! The harness plays systemd: it owns the agent's `NOTIFY_SOCKET` and sets
//! `WATCHDOG_USEC`. A SIGSTOPped agent cannot pet the watchdog, so systemd
//! would declare it hung after `WatchdogSec`; after SIGCONT the pings come
//! back by themselves.

use std::time::Duration;

use streembit_tests::harness::agent_process::{AgentProcess, WAIT};

/// WatchdogSec of the fake systemd: pings every half of it.
const WATCHDOG: Duration = Duration::from_millis(400);

fn is_ping(m: &str) -> bool {
    m.lines().any(|l| l == "WATCHDOG=1")
}

/// The process state letter from /proc (`T` when stopped by a signal).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (by polling /proc, the only place the kernel reports it) until
/// the process is or is not stopped.
fn await_state(pid: u32, stopped: bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while (state(pid) == Some('T')) != stopped {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never became {}",
            if stopped { "stopped" } else { "running" }
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_stopped_agent_stops_petting_the_watchdog_and_resumes_after_sigcont() {
    let tmp = tempfile::tempdir().expect("tmp");
    let usec = WATCHDOG.as_micros().to_string();
    let mut a = AgentProcess::builder(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n")
        .env("WATCHDOG_USEC", &usec)
        .spawn();
    let pid = a.pid().expect("running");

    // Alive: pings arrive, one after another.
    for _ in 0..3 {
        let before = a.seen.len();
        a.wait_for("a fresh WATCHDOG=1", is_ping);
        a.seen.truncate(before);
    }

    a.signal("STOP");
    await_state(pid, true);
    // Pings sent before the stop may still sit in the socket.
    a.drain_notifications();
    // Systemd's verdict: no ping for several whole WatchdogSec periods is a
    // hung service. A stopped process cannot send, so this cannot flake.
    let during = a.notifications_within(WATCHDOG * 5);
    assert!(
        !during.iter().any(|m| is_ping(m)),
        "a stopped agent pinged: {during:?}"
    );

    a.signal("CONT");
    await_state(pid, false);
    a.seen.clear();
    a.wait_for("WATCHDOG=1 after SIGCONT", is_ping);
    // And the agent is whole: its API answers.
    let out = a.cli(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
