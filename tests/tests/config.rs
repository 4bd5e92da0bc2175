//! Broken configs: each one is refused by `check-config` and by `run` with
//! exit code 2 and a message naming the file, the key and the reason.

use streembit_tests::harness::cli::{stderr, Sandbox};

const KEY: &str = "3ba7e8827665da61863cdca2792d9314838cbf2becdfa1e0c0069d92df8e0513";

/// (config text, expected key in the message, expected reason fragment)
fn cases() -> Vec<(String, &'static str, &'static str)> {
    vec![
        ("netwrok = \"acme\"\n".into(), "netwrok", "unknown field"),
        ("listen = 5\n".into(), "listen", "invalid type"),
        (
            "network = \"Bad Net\"\n".into(),
            "network",
            "invalid network id",
        ),
        (
            "listen = \"localhost\"\n".into(),
            "listen",
            "not an ip:port",
        ),
        (
            "seeds = [\"127.0.0.1:7470\"]\n".into(),
            "seeds[0]",
            "<pubkey-hex>@host:port",
        ),
        (
            format!("seeds = [\"{}@127.0.0.1:7470\"]\n", &KEY[..60]),
            "seeds[0]",
            "64 hex",
        ),
        (
            format!(
                "network = \"acme\"\nallowlist = [\"{KEY}\", \"{}\"]\n",
                KEY.to_uppercase()
            ),
            "allowlist[1]",
            "lowercase hex",
        ),
        (format!("allowlist = [\"{KEY}\"]\n"), "network", "private"),
        ("network = \"acme\"\n".into(), "allowlist", "no allowlist"),
        (
            "network = \"acme\"\nallowlist_file = \"missing-allowlist.txt\"\n".into(),
            "allowlist_file",
            "missing-allowlist.txt",
        ),
        (
            "network = \"acme\"\nallowlist_file = \"allow.txt\"\n".into(),
            "allowlist_file",
            "allow.txt:3",
        ),
        (
            "announce = [\"example.com\"]\n".into(),
            "announce[0]",
            "not an ip:port",
        ),
        (
            "listen = \"127.0.0.1:0\"\nseeds = [\n".into(),
            "",
            "expected",
        ),
        (
            "log_level = [\"debug\"]\n".into(),
            "log_level",
            "invalid type",
        ),
    ]
}

#[test]
fn every_broken_config_names_file_key_and_reason_with_exit_2() {
    let cases = cases();
    assert!(cases.len() >= 12);
    for (i, (text, key, reason)) in cases.into_iter().enumerate() {
        let sb = Sandbox::new();
        std::fs::write(
            sb.path().join("allow.txt"),
            format!("# site\n{KEY}\nnot-a-key\n"),
        )
        .expect("write");
        std::fs::write(sb.path().join("broken.toml"), &text).expect("write");
        for cmd in ["check-config", "run"] {
            let out = sb.run(&[cmd, "--config", "broken.toml"], b"");
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "case {i} `{cmd}`: {text:?} → {err}"
            );
            assert!(
                err.contains("broken.toml"),
                "case {i}: file not named: {err}"
            );
            assert!(err.contains(key), "case {i}: key {key:?} not named: {err}");
            assert!(
                err.contains(reason),
                "case {i}: reason {reason:?} missing: {err}"
            );
        }
    }
}

#[test]
fn check_config_lists_every_problem_not_only_the_first() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.path().join("broken.toml"),
        "network = \"Bad Net\"\nlisten = \"nowhere\"\nseeds = [\"x\"]\nannounce = [\"y\"]\n",
    )
    .expect("write");
    let out = sb.run(&["check-config", "--config", "broken.toml"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for key in ["`network`", "`listen`", "`seeds[0]`", "`announce[0]`"] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[test]
fn a_good_config_and_no_config_are_both_fine() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.path().join("good.toml"),
        format!("network = \"acme\"\nallowlist = [\"{KEY}\"]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write");
    let out = sb.run(&["check-config", "--config", "good.toml"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sb.run(&["check-config"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn environment_overrides_the_file_and_is_validated_too() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.path().join("agent.toml"),
        "listen = \"127.0.0.1:7470\"\n",
    )
    .expect("write");
    // A bad value from the environment is named like one from the file.
    let out = sb
        .cmd(&["check-config", "--config", "agent.toml"])
        .env("STREEMBIT_LISTEN", "nowhere")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`listen`"), "{}", stderr(&out));
    // A good one wins over the file: the state directory moves.
    let out = sb
        .cmd(&["keygen", "--config", "agent.toml"])
        .env("STREEMBIT_STATE_DIR", "from-env")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.path().join("from-env/identity.pem").exists());
}

#[test]
fn check_config_refuses_broker_accounts_that_would_let_a_device_act_as_its_bridge() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("agent.toml"), "listen = \"127.0.0.1:0\"\n").expect("write");
    std::fs::create_dir_all(sb.path().join("bridges.d")).expect("mkdir");
    let file = |device_user: &str| {
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"gw\"\nusername = \"gw\"\npassword = \"a\"\n\n\
             [[mqtt.devices]]\nname = \"plug\"\nusername = \"{device_user}\"\npassword = \"b\"\n\
             points = [ {{ name = \"p\", topic = \"t/p\", type = \"float\" }} ]\n"
        )
    };
    std::fs::write(sb.path().join("bridges.d/plug.toml"), file("gw")).expect("write");
    let out = sb.run(&["check-config", "--config", "agent.toml"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plug.toml") && err.contains("`gw`") && err.contains("never share"),
        "{err}"
    );
    // Its own account: fine; a device without one is a warning.
    std::fs::write(sb.path().join("bridges.d/plug.toml"), file("plug")).expect("write");
    let out = sb.run(&["check-config", "--config", "agent.toml"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
}
