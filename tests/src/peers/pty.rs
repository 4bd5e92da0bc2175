//! A serial line in software: two pseudo-terminals joined by `socat`.

use std::path::PathBuf;

use tokio::process::Command;

use crate::harness::process::Proc;

/// Two PTYs whose data `socat` copies both ways. Killed on drop.
#[derive(Debug)]
pub struct PtyPair {
    /// One end (give it to the bridge).
    pub a: PathBuf,
    /// The other end (give it to the peer).
    pub b: PathBuf,
    socat: Proc,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    /// Starts socat and waits until both links exist.
    pub async fn new() -> PtyPair {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let socat = Self::spawn_socat(&a, &b).await;
        PtyPair {
            a,
            b,
            socat,
            _dir: dir,
        }
    }

    /// Closes the line: socat exits, both PTYs and their links vanish, as
    /// when a USB serial adapter is pulled.
    pub async fn close(&mut self) {
        self.socat.kill().await;
        let _ = std::fs::remove_file(&self.a);
        let _ = std::fs::remove_file(&self.b);
    }

    /// A new pair of PTYs under the same two paths (the adapter is back).
    pub async fn reopen(&mut self) {
        self.socat = Self::spawn_socat(&self.a, &self.b).await;
    }

    async fn spawn_socat(a: &std::path::Path, b: &std::path::Path) -> Proc {
        let mut socat = Proc::spawn(
            "socat",
            Command::new("socat")
                .arg("-d")
                .arg("-d")
                .arg(format!("pty,raw,echo=0,link={}", a.display()))
                .arg(format!("pty,raw,echo=0,link={}", b.display())),
        );
        socat
            .expect_line("starting data transfer loop", |l| {
                l.contains("starting data transfer loop")
            })
            .await;
        socat
    }
}
