//! Every agent command against a running agent, in its human form and as
//! JSON.

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::cli::{stderr, stdout};

#[test]
fn status_peers_lookup_devices_metrics_human_and_json() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let cfg = a.seeded_config();
    let mut b = AgentProcess::start(&tmp.path().join("b"), &cfg);
    b.wait_published(1);
    a.wait_published(1);

    let human = |args: &[&str]| {
        let out = b.cli(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let json = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = b.cli(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    };

    let text = human(&["status"]);
    for label in [
        "network:",
        "key:",
        "node id:",
        "listen:",
        "table size:",
        "devices:",
    ] {
        assert!(text.contains(label), "status lacks {label}: {text}");
    }
    assert!(text.contains(&b.key));
    let s = json(&["status"]);
    assert_eq!(s["key"], b.key.as_str());
    assert_eq!(s["network_kind"], "public");
    assert_eq!(s["listen"][0], b.addr.as_str());
    assert!(s["table_size"].as_u64() >= Some(1));

    let text = human(&["peers"]);
    assert!(text.contains(&a.key) && text.contains(&a.addr), "{text}");
    let p = json(&["peers"]);
    assert!(p
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x["key"] == a.key.as_str())));

    let text = human(&["lookup", &a.key]);
    assert!(
        text.contains("kind:      peer") && text.contains(&a.addr),
        "{text}"
    );
    let l = json(&["lookup", &a.key]);
    assert_eq!(l["addrs"][0], a.addr.as_str());

    let text = human(&["devices"]);
    assert!(text.contains("0 devices"), "{text}");
    assert_eq!(json(&["devices"]), Value::Array(vec![]));

    let text = human(&["metrics"]);
    assert!(
        text.contains("# TYPE streembit_connections gauge"),
        "{text}"
    );
    assert!(
        text.contains("streembit_lookups_total{outcome=\"found\"}"),
        "{text}"
    );

    // A key nobody published: exit 1 with the API's reason.
    let unknown = streembit_agent::identity::Keypair::generate()
        .public()
        .to_string();
    let out = b.cli(&["lookup", &unknown]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no record"), "{}", stderr(&out));
}

/// A user who may not open the API socket is told so, and what to do,
/// not that the agent is not running (issue 20). Runs the CLI as `nobody`
/// (setpriv, root only; skipped otherwise).
#[test]
fn a_user_outside_the_group_is_told_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        eprintln!("SKIPPED: running the CLI as another user needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let a = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let bin = tmp.path().join("streembit");
    std::fs::copy(streembit_tests::harness::cli::binary(), &bin).expect("copy the binary");
    let run_dir = a.api_socket().parent().expect("runtime dir").to_owned();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["status", "--config"])
        .arg("agent.toml")
        .current_dir(a.dir())
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUNTIME_DIRECTORY")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("permission denied: add yourself to group streembit"),
        "{err}"
    );
    assert!(!err.contains("not running"), "{err}");
}
