//! One-shot `streembit` commands: the built binary, a sandbox to run it
//! in, and its output as text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `streembit` binary built next to this test executable.
///
/// `scripts/test.sh` builds it (`cargo build --workspace --bins`) before the
/// tests run; a missing binary is a setup error, said plainly.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/streembit
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let bin = profile_dir.join("streembit");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p streembit-agent --bins`",
        bin.display()
    );
    bin
}

/// A temporary working directory in which `streembit` runs with no config
/// and no inherited `STREEMBIT_*` / `STATE_DIRECTORY` variables.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh empty sandbox.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The sandbox directory (the command's working directory).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `streembit` command with the given arguments, run in the sandbox.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.args(args).current_dir(self.path());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("STREEMBIT_") || k == "STATE_DIRECTORY" || k == "RUNTIME_DIRECTORY" {
                c.env_remove(k);
            }
        }
        c
    }

    /// Runs `streembit args` with `stdin` as input and returns its output.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_input(self.cmd(args), stdin)
    }
}

/// Runs `cmd`, feeding `stdin`, and collects its output.
pub fn run_with_input(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        // A command may exit before reading everything (e.g. a usage error):
        // a broken pipe here is its answer, not ours to fail on.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

/// The command's standard output as JSON; panics (with its stderr) when
/// the command failed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `streembit keygen --out path`: a key made before the agent (or device)
/// that will use it starts, so it can go into an allowlist or a bridge
/// file first. Returns the public key.
pub fn keygen(path: &Path) -> String {
    let out = Command::new(binary())
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Standard output as trimmed text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `streembit network create NAME --admin-key ADMIN_KEY` in `sandbox`; the
/// admin's public key, read from the config lines it prints.
pub fn network_create(sandbox: &Sandbox, name: &str, admin_key: &Path) -> String {
    let path = admin_key.to_str().expect("utf-8 path");
    let created = sandbox.run(&["network", "create", name, "--admin-key", path], b"");
    assert!(created.status.success(), "{}", stderr(&created));
    stdout(&created)
        .lines()
        .find_map(|l| {
            l.strip_prefix("admins = [\"")
                .and_then(|r| r.strip_suffix("\"]"))
        })
        .expect("the admin key in the config lines")
        .to_owned()
}
