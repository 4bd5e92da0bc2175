//! Completions and the man page are generated from the clap definition.

use streembit_tests::harness::cli::{stdout, Sandbox};

#[test]
fn man_page_and_completions_cover_every_command() {
    let sb = Sandbox::new();
    let man = stdout(&sb.run(&["man"], b""));
    assert!(
        man.starts_with(".ie") || man.contains(".TH streembit"),
        "{}",
        &man[..80.min(man.len())]
    );
    for cmd in [
        "keygen",
        "sign",
        "verify",
        "run",
        r"check\-config",
        "status",
        "lookup",
    ] {
        assert!(man.contains(cmd), "man page lacks {cmd}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.run(&["completions", shell], b"");
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(
            text.contains("streembit") && text.contains("check-config"),
            "{shell}"
        );
    }
    assert_eq!(sb.run(&["completions", "tcsh"], b"").status.code(), Some(2));
}

#[test]
fn agent_commands_say_plainly_when_the_agent_is_not_running() {
    let sb = Sandbox::new();
    for cmd in [
        &["status"][..],
        &["peers"],
        &["metrics"],
        &["lookup", &"a".repeat(64)],
    ] {
        let out = sb.run(cmd, b"");
        assert_eq!(out.status.code(), Some(3), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("agent not running") && err.contains("api.sock"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

/// `docs/streembit.1` is what `streembit man` prints: the from-source
/// install and the Yocto recipe install it (a cross build cannot run the
/// binary to make it). After a CLI change:
/// `cargo run -p streembit-agent -- man > docs/streembit.1`.
#[test]
fn the_committed_man_page_is_current() {
    let sb = Sandbox::new();
    let man = sb.run(&["man"], b"");
    assert!(man.status.success());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/streembit.1");
    let committed = std::fs::read(&path).expect("docs/streembit.1");
    assert!(
        committed == man.stdout,
        "docs/streembit.1 is stale: run `cargo run -p streembit-agent -- man > docs/streembit.1`"
    );
}
