//! Child processes for real-peer tests: killed on drop, output awaitable.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The generous limit for anything a test awaits: it only fails a test that
/// would otherwise hang, it never paces one.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running child whose stdout and stderr lines arrive on a channel.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with piped stdio; the child is killed when dropped.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                panic!("cannot start {name} ({cmd:?}): {e}; run scripts/install-test-deps.sh")
            }
        };
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(out).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    let _ = tx.send(l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut r = BufReader::new(err).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    let _ = tx.send(format!("stderr: {l}"));
                }
            });
        }
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred` (up to [`PATIENCE`]) and returns it.
    pub async fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Ok(None) => panic!(
                    "{} exited before printing {what}; output: {:#?}",
                    self.name, self.seen
                ),
                Err(_) => panic!(
                    "{} did not print {what} in {PATIENCE:?}; output: {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Like [`expect_line`](Self::expect_line), but a matching line that an
    /// earlier wait already consumed counts too.
    pub async fn find_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        self.expect_line(what, pred).await
    }

    /// Writes one line to the child's stdin.
    pub async fn send_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            panic!("{}: stdin closed", self.name)
        };
        let data = format!("{line}\n");
        if let Err(e) = stdin.write_all(data.as_bytes()).await {
            panic!(
                "{}: writing {line:?}: {e}; output: {:#?}",
                self.name, self.seen
            );
        }
        let _ = stdin.flush().await;
    }

    /// Kills the child and waits until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the child to exit by itself and returns its status code.
    pub async fn wait(&mut self) -> Option<i32> {
        self.stdin = None;
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(Ok(s)) => s.code(),
            _ => panic!("{} did not exit; output: {:#?}", self.name, self.seen),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// `program` run under `wrapper`, a command prefix such as `ip netns exec
/// NS` that execs it in place (so the pid is the program's); with an empty
/// wrapper, `program` itself. Arguments for `program` go on the result.
pub fn wrapped(wrapper: &[String], program: impl AsRef<OsStr>) -> std::process::Command {
    match wrapper.split_first() {
        Some((prefix, args)) => {
            let mut c = std::process::Command::new(prefix);
            c.args(args).arg(program);
            c
        }
        None => std::process::Command::new(program),
    }
}
