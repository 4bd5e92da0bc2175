//! `STREEMBIT_*` environment variables (issue 20): one that names a config
//! key sets it; one that names none is ignored with a warning naming it,
//! for every command (it used to fail them all, `sign --key` included).
//! The config file stays strict: an unknown key in it is an error.

use streembit_tests::harness::cli::{keygen, run_with_input, stderr, stdout, Sandbox};

#[test]
fn an_unknown_variable_is_a_warning_naming_it_not_a_failure() {
    let sb = Sandbox::new();
    keygen(&sb.path().join("k.pem"));
    let mut cmd = sb.cmd(&["sign", "--kind", "note", "--key", "k.pem", "--hex"]);
    cmd.env("STREEMBIT_NO_SUCH_KEY", "1")
        .env("STREEMBIT_DHT__NOPE", "2");
    let out = run_with_input(cmd, b"hello");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("warning")
            && err.contains("STREEMBIT_DHT__NOPE")
            && err.contains("STREEMBIT_NO_SUCH_KEY"),
        "{err}"
    );

    let mut cmd = sb.cmd(&["check-config"]);
    cmd.env("STREEMBIT_NO_SUCH_KEY", "1");
    let out = run_with_input(cmd, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("STREEMBIT_NO_SUCH_KEY"));
}

#[test]
fn known_variables_still_set_their_keys_and_files_stay_strict() {
    let sb = Sandbox::new();
    // A known key from the environment still applies (and is checked).
    let mut cmd = sb.cmd(&["check-config"]);
    cmd.env("STREEMBIT_NAT__REACHABILITY", "sideways");
    let out = run_with_input(cmd, b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nat.reachability"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let mut cmd = sb.cmd(&["check-config"]);
    cmd.env("STREEMBIT_MQTT__EMBEDDED", "false");
    assert!(run_with_input(cmd, b"").status.success());

    // An unknown key in the file is an error naming file and key.
    std::fs::write(sb.path().join("agent.toml"), "no_such_key = 1\n").expect("write");
    let out = sb.run(&["check-config", "--config", "agent.toml"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("agent.toml") && err.contains("no_such_key"),
        "{err}"
    );
}
