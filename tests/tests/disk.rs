//! A state directory that fills up or turns read-only under a running
//! gateway (issue 10, item 6): the failed write is logged with its cause and
//! counted (`streembit_state_write_errors_total`), the agent keeps serving
//! its API and the network, and what was stored before (identity, routing
//! table) is byte for byte what it was, with no temporary file left over.
//!
//! A full or read-only file system needs a mount of its own: the test
//! mounts a 256 KiB tmpfs as the state directory, which takes root. Run as
//! any other user, it says so and passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use streembit_tests::harness::agent_process::AgentProcess;

const METRIC: &str = "streembit_state_write_errors_total";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A tmpfs mounted for the test's life; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount tmpfs at {}", at.display());
        Tmpfs(at.to_owned())
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {opts} {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system refuses: it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = [0u8; 4096];
    let mut written = 0usize;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len();
        assert!(written < 64 << 20, "the tmpfs never filled");
    }
    // Blocks the page cache still holds count too: settle them.
    let _ = f.sync_all();
}

/// Everything the state directory holds that must survive: name → bytes.
fn stored(state: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(state)
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file() && e.file_name() != "filler")
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("read stored file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn full_or_read_only_state_dir_is_logged_counted_and_harmless() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs for a full/read-only state directory needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut seed = AgentProcess::start(&tmp.path().join("seed"), "listen = \"127.0.0.1:0\"\n");
    let state = tmp.path().join("b-state");
    let fs = Tmpfs::mount(&state, "256k");
    let config = format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nruntime_dir = \"{}\"\nseeds = [\"{}@{}\"]\n",
        state.display(),
        tmp.path().join("b-run").display(),
        seed.key,
        seed.addr
    );
    // A first life with room: identity and routing table are written.
    let mut b = AgentProcess::start(&tmp.path().join("b"), &config);
    b.wait_for("joined", |m| m.contains("joined:"));
    b.terminate();
    let before = stored(&state);
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["identity.pem", "routing-table.bin"], "{names:?}");

    for (case, hint) in [("full", "is full"), ("read-only", "read-only file system")] {
        match case {
            "full" => fill(&state.join("filler")),
            _ => {
                std::fs::remove_file(state.join("filler")).expect("remove filler");
                fs.remount("ro");
            }
        }
        // Joining persists the table at once; here that write fails.
        b.restart(None);
        b.wait_for("joined", |m| m.contains("joined:"));
        let errors = b.metric(METRIC);
        assert!(errors >= 1, "{case}: {METRIC} = {errors}");
        let log = b.log();
        assert!(
            log.lines()
                .any(|l| l.contains("cannot persist the routing table") && l.contains(hint)),
            "{case}: no clear error in the log"
        );
        // Still serving: the local API answers and the network still works.
        let status = b.cli(&["status", "--json"]);
        assert!(status.status.success(), "{case}: status failed");
        let peers = b.peers();
        assert!(peers.contains(&seed.key), "{case}: seed not in {peers:?}");
        b.wait_published(1);
        let found = seed.cli(&["lookup", &b.key, "--json"]);
        assert!(found.status.success(), "{case}: the seed cannot find b");
        // SIGTERM persists once more, and fails once more.
        b.terminate();
        assert_eq!(stored(&state), before, "{case}: stored files changed");
    }
    fs.remount("rw");
    seed.terminate();
}
