//! Third-party peers written in Python, in `tests/py/`.
//!
//! They are installed by `scripts/install-test-deps.sh`; a missing module is
//! a test failure with the fix in the message, never a silent skip.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a script in `tests/py/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(name)
}

/// Fails the test, naming the fix, unless every one of `modules` imports.
pub fn require(modules: &[&str]) {
    for m in modules {
        let ok = Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "python3 module {m} is missing: run ./scripts/install-test-deps.sh"
        );
    }
}

/// `python3 tests/py/<name> args…`, after checking its modules import.
pub fn command(name: &str, args: &[&str], modules: &[&str]) -> Command {
    require(modules);
    let mut c = Command::new("python3");
    c.arg(script(name)).args(args);
    c
}

/// Runs a Python peer with `stdin` as input.
pub fn run(name: &str, args: &[&str], modules: &[&str], stdin: &[u8]) -> Output {
    crate::harness::cli::run_with_input(command(name, args, modules), stdin)
}
