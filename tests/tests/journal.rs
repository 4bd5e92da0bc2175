//! The agent's log as journald reads it (issue 20): when stderr is the
//! journal's stream (`JOURNAL_STREAM` names its device and inode), every
//! line starts with its sd-daemon priority (`<3>` error, `<4>` warning,
//! `<6>` info), one event is one line (a multi-line error is joined), and
//! the embedded broker's reports of ordinary client disconnects are no
//! errors. Here stderr is a file whose device and inode the test puts in
//! `JOURNAL_STREAM`, which is what systemd does with its stream socket.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::binary;
use streembit_tests::harness::ports::free_port;

/// `dev:ino` of `path`, as systemd writes JOURNAL_STREAM.
fn journal_stream(path: &Path) -> String {
    let m = std::fs::metadata(path).expect("stat");
    format!("{}:{}", m.dev(), m.ino())
}

/// Every line carries a priority prefix; returns the lines.
fn prefixed_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        assert!(
            l.len() > 3 && l.starts_with('<') && l.as_bytes()[2] == b'>',
            "a line without its priority: {l:?}\nin:\n{text}"
        );
    }
    lines
}

#[test]
fn under_the_journal_every_line_has_its_priority_and_one_event_is_one_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("a");
    std::fs::create_dir_all(dir.join("bridges.d")).expect("mkdir");
    let log = dir.join("agent.log");
    std::fs::write(&log, "").expect("create the log");
    let mqtt = free_port();
    let mut a = AgentProcess::builder(
        &dir,
        // Anonymous clients allowed (read only): the probes below connect.
        &format!("listen = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nallow_anonymous = true\n"),
    )
    .env("JOURNAL_STREAM", &journal_stream(&log))
    .env("STREEMBIT_NOT_A_KEY", "1")
    // The harness turns the embedded broker off by default.
    .env("STREEMBIT_MQTT__EMBEDDED", "true")
    .spawn();

    // Clients of the broker come and go: ordinary disconnects (their
    // anonymous publish is dropped, silently for MQTT 3.1.1).
    for i in 0..3 {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &mqtt.to_string()])
            .args(["-i", &format!("probe{i}"), "-t", "probe", "-m", "x"])
            .output()
            .expect("mosquitto_pub (scripts/install-test-deps.sh installs it)");
        assert!(out.status.success(), "{out:?}");
    }

    // A broken bridge file on reload: one error, one line.
    std::fs::write(dir.join("bridges.d/broken.toml"), "[modbus_tcp\nhost = 1\n").expect("write");
    a.signal("HUP");
    a.wait_for("the reload", |m| {
        m.contains("READY=1") && m.contains("reload")
    });
    eventually("the refusal logged", || a.log().contains("broken.toml"));

    let text = a.log();
    let lines = prefixed_lines(&text);
    let warning = lines
        .iter()
        .find(|l| l.contains("STREEMBIT_NOT_A_KEY"))
        .unwrap_or_else(|| panic!("no warning naming the unknown variable:\n{text}"));
    assert!(warning.starts_with("<4>"), "{warning}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("agent running")),
        "{text}"
    );
    let refused: Vec<&&str> = lines.iter().filter(|l| l.contains("broken.toml")).collect();
    assert_eq!(refused.len(), 1, "one event, one line:\n{text}");
    assert!(refused[0].starts_with("<3>"), "{}", refused[0]);
    assert!(
        refused[0].contains(" ⏎ "),
        "the TOML error's lines joined: {}",
        refused[0]
    );
    // The only error is the refused file: the broker's disconnects are not.
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("<3>")).collect();
    assert_eq!(errors.len(), 1, "errors:\n{errors:#?}");
    assert!(
        !text.contains("is already gone") && !text.contains("router-drop"),
        "the broker's disconnect chatter:\n{text}"
    );
}

#[test]
fn a_config_error_at_start_is_one_error_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("agent.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nnetwork\n").expect("write");
    let log = tmp.path().join("err.log");
    let file = std::fs::File::create(&log).expect("log");
    let status = Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", journal_stream(&log))
        .env_remove("NOTIFY_SOCKET")
        .stderr(file)
        .status()
        .expect("run");
    assert_eq!(status.code(), Some(2));
    let text = std::fs::read_to_string(&log).expect("read");
    let lines = prefixed_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("<3>streembit: "), "{text}");
    assert!(lines[0].contains("agent.toml"), "{text}");

    // Not under the journal (JOURNAL_STREAM names another file): as is.
    let other = tmp.path().join("other");
    std::fs::write(&other, "").expect("write");
    let out = Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", journal_stream(&other))
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("streembit: "), "{err}");
}
