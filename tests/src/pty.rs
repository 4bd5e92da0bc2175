//! A serial line in software: two pseudo-terminals joined by `socat`.

use std::path::PathBuf;

use tokio::process::Command;

use crate::process::Proc;

/// Two PTYs whose data `socat` copies both ways. Killed on drop.
#[derive(Debug)]
pub struct PtyPair {
    /// One end (give it to the bridge).
    pub a: PathBuf,
    /// The other end (give it to the peer).
    pub b: PathBuf,
    _socat: Proc,
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
        PtyPair {
            a,
            b,
            _socat: socat,
            _dir: dir,
        }
    }
}
