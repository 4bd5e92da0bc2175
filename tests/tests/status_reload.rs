//! What `systemctl status` and `systemctl reload` see (issue 20), with the
//! harness playing systemd: STATUS is the operator's summary, kept current
//! and not overwritten by passing events; `streembit status` prints the
//! same line; `streembit reload` (the unit's ExecReload) returns only once
//! the agent has reloaded, and RELOADING=1 carries MONOTONIC_USEC as
//! systemd ≥ 253's Type=notify-reload requires.

use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::cli::{stderr, stdout};

/// The value of the last `KEY=` line in the notifications seen so far.
fn last(a: &AgentProcess, key: &str) -> Option<String> {
    a.seen
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix(key))
        .next_back()
        .map(str::to_owned)
}

#[test]
fn status_is_the_summary_and_the_cli_says_the_same() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let cfg = a.seeded_config();
    let mut b = AgentProcess::start(&tmp.path().join("b"), &cfg);
    // Passing events are X_STREEMBIT_EVENT, not STATUS.
    b.wait_published(1);
    let summary = b.wait_for("the summary with its peer", |m| {
        m.lines()
            .any(|l| l.starts_with("STATUS=public, 1 peer (1 connected), no devices, "))
    });
    assert!(summary.contains("reachab"), "{summary}");
    for m in &b.seen {
        for l in m.lines().filter(|l| l.starts_with("STATUS=")) {
            assert!(
                l.starts_with("STATUS=listening on ") || l.starts_with("STATUS=public, "),
                "a passing event in STATUS: {l}"
            );
        }
    }
    assert!(
        b.seen.iter().any(|m| m.contains("X_STREEMBIT_EVENT=")),
        "{:?}",
        b.seen
    );
    let status = last(&b, "STATUS=").expect("STATUS");
    let out = b.cli(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().next(), Some(status.as_str()));
    a.terminate();
}

#[test]
fn reload_returns_once_the_agent_has_reloaded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("a");
    let mut a = AgentProcess::start(&dir, "listen = \"127.0.0.1:0\"\n");
    for _ in 0..5 {
        a.drain_notifications();
        a.seen.clear();
        let out = a.cli(&["reload"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "reloaded: 0 devices");
        // By the time it returned, the agent had said RELOADING=1 (with
        // the monotonic time) and READY=1: both wait in the socket.
        let said = a.drain_notifications().join("\n");
        let reloading = said.find("RELOADING=1").expect(&said);
        let ready = said.rfind("READY=1").expect(&said);
        assert!(reloading < ready, "{said}");
        let usec = said
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC with RELOADING=1: {said}"));
        assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{usec}");
    }

    // A broken bridge file: reload says so and fails; the note stays in
    // STATUS after the summary until a good reload.
    std::fs::create_dir_all(dir.join("bridges.d")).expect("mkdir");
    std::fs::write(dir.join("bridges.d/bad.toml"), "[mqtt]\nhots = 1\n").expect("write");
    let out = a.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
    a.wait_for("the summary with the reload note", |m| {
        m.lines()
            .any(|l| l.starts_with("STATUS=public, ") && l.contains("previous versions kept"))
    });
    std::fs::remove_file(dir.join("bridges.d/bad.toml")).expect("rm");
    assert!(a.cli(&["reload"]).status.success());

    // No agent: a plain message, exit code 3.
    a.terminate();
    let out = a.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}
