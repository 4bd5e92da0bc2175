//! A serial line in software: two pseudo-terminals joined by `socat`.

use std::path::PathBuf;

use tokio::process::Command;

use crate::harness::process::Proc;

/// Two PTYs whose data `socat` copies both ways, at two fixed paths (the
/// links socat makes). Killed on drop.
#[derive(Debug)]
pub struct PtyPair {
    /// One end (give it to the bridge).
    pub a: PathBuf,
    /// The other end (give it to the peer).
    pub b: PathBuf,
    /// `None` while the line is unplugged.
    socat: Option<Proc>,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    /// Starts socat and waits until both links exist.
    pub async fn new() -> PtyPair {
        let mut pair = Self::unplugged();
        pair.reopen().await;
        pair
    }

    /// The two paths, with nothing there yet: a gateway that boots with its
    /// USB serial adapter unplugged. [`reopen`](Self::reopen) plugs it in.
    pub fn unplugged() -> PtyPair {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        PtyPair {
            a: dir.path().join("a"),
            b: dir.path().join("b"),
            socat: None,
            _dir: dir,
        }
    }

    /// Closes the line: both links vanish, then socat and its PTYs, as when
    /// a USB serial adapter is pulled. (Links first: a link left behind
    /// could point at a PTY number another test's socat gets next.)
    pub async fn close(&mut self) {
        let _ = std::fs::remove_file(&self.a);
        let _ = std::fs::remove_file(&self.b);
        if let Some(mut socat) = self.socat.take() {
            socat.kill().await;
        }
    }

    /// A new pair of PTYs under the same two paths (the adapter is plugged
    /// in, or back); returns once both links exist.
    pub async fn reopen(&mut self) {
        self.socat = Some(Self::spawn_socat(&self.a, &self.b).await);
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
