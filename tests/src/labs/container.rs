//! A Debian 12 machine with systemd as PID 1, for the tests of the unit
//! and the package under a real service manager.
//!
//! `scripts/debian-root.sh` debootstraps the root once and caches it in
//! the target directory; each [`Container`] boots a copy of it with
//! `systemd-nspawn -b --register=no --keep-unit --private-network` (no
//! machined, no host systemd needed; the only network is the container's
//! own loopback), and runs commands in it with `nsenter` into the
//! container's PID 1, as root, with a clean environment.
//!
//! Root only, and it needs systemd-nspawn and debootstrap: elsewhere
//! [`Container::boot`] prints `SKIPPED:` and the reason and returns
//! `None`. On a machine that has them, a failure to boot is a test failure.
//! The copy is deleted on drop unless the test failed (then it is kept,
//! with the console log, beside the cached root for a look).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long booting to `running` may take.
const BOOT: Duration = Duration::from_secs(120);

/// Why this machine cannot boot the container, if it cannot.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Some("not running as root (debootstrap and systemd-nspawn need it)".into());
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!(
                "`{tool}` not installed (Debian package {package}; \
                 scripts/install-test-deps.sh installs it)"
            ));
        }
    }
    None
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// A booted container.
pub struct Container {
    /// The copy of the root it runs on (files can be put in from here).
    pub root: PathBuf,
    dir: PathBuf,
    nspawn: Child,
    leader: u32,
}

impl Container {
    /// Boots a fresh copy of the cached Debian root, named `name`; waits
    /// until systemd reports the system running. `None` (reason printed)
    /// where the machine cannot.
    pub fn boot(name: &str) -> Option<Container> {
        Self::boot_root(name, &[])
    }

    /// [`Container::boot`] on the root variant `scripts/debian-root.sh`
    /// makes with `root_args` (`--systemd-backports`: systemd 254).
    pub fn boot_root(name: &str, root_args: &[&str]) -> Option<Container> {
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: cannot boot systemd in a container: {why}");
            return None;
        }
        let started = Instant::now();
        let out = Command::new(repo().join("scripts/debian-root.sh"))
            .args(root_args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/debian-root.sh");
        assert!(out.status.success(), "scripts/debian-root.sh failed");
        let cached = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(PathBuf::from)
            .expect("debian-root.sh names the root");
        eprintln!(
            "Debian root ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let dir = target_dir().join("systemd-container").join(name);
        if dir.exists() {
            rm_rf(&dir);
        }
        std::fs::create_dir_all(&dir).expect("container dir");
        let root = dir.join("root");
        let copied = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&cached)
            .arg(&root)
            .status()
            .expect("cp");
        assert!(copied.success(), "copying {} failed", cached.display());

        let console = std::fs::File::create(dir.join("console.log")).expect("console log");
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--quiet",
                "--boot",
                "--register=no",
                "--keep-unit",
                "--private-network",
                &format!("--machine={name}"),
                "--directory",
            ])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("console"))
            .stderr(console)
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut me = Container {
            root,
            dir,
            leader: 0,
            nspawn,
        };
        me.leader = me.await_leader();
        let deadline = Instant::now() + BOOT;
        loop {
            let state = me.exec("systemctl is-system-running --wait");
            let said = String::from_utf8_lossy(&state.stdout).trim().to_owned();
            if said == "running" {
                break;
            }
            if said == "degraded" {
                panic!(
                    "the container booted degraded:\n{}",
                    me.sh_lenient("systemctl --failed --no-pager; journalctl -b -p err --no-pager")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `running` within {BOOT:?} ({said}); console:\n{}",
                me.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "container {name} booted (systemd {}) in {:.1} s",
            me.sh("systemctl --version | head -n 1 | cut -d' ' -f2"),
            started.elapsed().as_secs_f64()
        );
        Some(me)
    }

    /// The container's PID 1: the child of the nspawn process.
    fn await_leader(&mut self) -> u32 {
        let deadline = Instant::now() + BOOT;
        let pid = self.nspawn.id();
        loop {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn exited ({status}); console:\n{}",
                    self.console()
                );
            }
            let children = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok())
                        .collect::<Vec<_>>()
                })
                .find(|child| {
                    std::fs::read_to_string(format!("/proc/{child}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                });
            if let Some(leader) = children {
                return leader;
            }
            assert!(Instant::now() < deadline, "no systemd in the container");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` with `sh -c` inside the container as root.
    pub fn exec(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["--target", &self.leader.to_string(), "--all", "--"])
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "LANG=C.UTF-8",
                "TERM=dumb",
                "SYSTEMD_PAGER=",
                "/bin/sh",
                "-c",
                script,
            ])
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs `script`; panics with its output unless it succeeds. Returns
    /// standard output, trimmed.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(
            out.status.success(),
            "in the container: `{script}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Standard output and error of `script`, whatever its exit status.
    pub fn sh_lenient(&self, script: &str) -> String {
        let out = self.exec(script);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Polls `script` until it succeeds, for at most `within`; returns its
    /// output, or panics with the last output and `what`.
    pub fn wait_for(&self, what: &str, within: Duration, script: &str) -> String {
        let deadline = Instant::now() + within;
        loop {
            let out = self.exec(script);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last `{script}`:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Copies a host file into the container at `to` (an absolute path).
    pub fn put(&self, from: &Path, to: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Writes `text` into the container at `to` (an absolute path).
    pub fn write(&self, to: &str, text: &str) {
        let dest = self.root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, text).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    }

    fn console(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM: nspawn asks the container's systemd to power off.
        let _ = Command::new("kill")
            .args(["-TERM", &self.nspawn.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !matches!(self.nspawn.try_wait(), Ok(Some(_))) {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        if std::thread::panicking() {
            eprintln!("container kept for a look: {}", self.dir.display());
        } else {
            rm_rf(&self.dir);
        }
    }
}

fn rm_rf(dir: &Path) {
    let _ = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status();
}
