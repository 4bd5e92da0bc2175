//! A real mosquitto broker on a free loopback port, and its clients.

use std::path::PathBuf;

use tokio::process::Command;

use crate::ports::free_port;
use crate::process::Proc;

/// A mosquitto broker with persistence, so a restart keeps QoS 1 sessions.
#[derive(Debug)]
pub struct Broker {
    /// Its port on 127.0.0.1.
    pub port: u16,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free port and waits until it listens.
    pub async fn start() -> Broker {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let mut b = Broker {
            port: free_port(),
            proc: None,
            dir,
        };
        b.run().await;
        b
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    async fn run(&mut self) {
        let conf = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nlog_dest stderr\nuser root\nlog_type all\nmax_queued_messages 100000\n",
            self.port,
            self.dir.path().display()
        );
        if let Err(e) = std::fs::write(self.conf(), conf) {
            panic!("writing mosquitto.conf: {e}");
        }
        let mut p = Proc::spawn(
            "mosquitto",
            Command::new("mosquitto").arg("-c").arg(self.conf()),
        );
        p.expect_line("mosquitto running", |l| l.contains(" running"))
            .await;
        self.proc = Some(p);
    }

    /// Stops the broker cleanly (SIGTERM, so it saves its sessions) and
    /// starts it again on the same port with the same persistence file.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// Stops the broker cleanly.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if let Some(pid) = p.pid() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
            let _ = p.wait().await;
        }
    }

    /// Publishes one message with mosquitto_pub (QoS 1) and waits for it to exit.
    pub async fn publish(&self, topic: &str, payload: &str) {
        self.publish_with(topic, payload, &[]).await;
    }

    /// Publishes one retained message: delivered to the bridge whenever it
    /// subscribes, so a test need not know when that happened.
    pub async fn publish_retained(&self, topic: &str, payload: &str) {
        self.publish_with(topic, payload, &["-r"]).await;
    }

    async fn publish_with(&self, topic: &str, payload: &str, extra: &[&str]) {
        let mut p = Proc::spawn(
            "mosquitto_pub",
            Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-q",
                    "1",
                    "-t",
                    topic,
                    "-m",
                    payload,
                ])
                .args(extra),
        );
        let code = p.wait().await;
        assert_eq!(code, Some(0), "mosquitto_pub failed: {:#?}", p.seen);
    }

    /// Publishes the contents of a file (for payloads too big for argv).
    pub async fn publish_file(&self, topic: &str, file: &std::path::Path) {
        let mut p = Proc::spawn(
            "mosquitto_pub",
            Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-q",
                    "1",
                    "-t",
                    topic,
                    "-f",
                ])
                .arg(file),
        );
        let code = p.wait().await;
        assert_eq!(code, Some(0), "mosquitto_pub failed: {:#?}", p.seen);
    }

    /// Starts mosquitto_sub on `topic` (QoS 1, printing "topic payload") and
    /// waits for its SUBACK. With `session`, a persistent session under that
    /// client id, so messages published while it is away are kept.
    pub async fn subscribe(&self, topic: &str, session: Option<&str>) -> Proc {
        // stdbuf: mosquitto_sub block-buffers stdout into a pipe.
        let mut cmd = Command::new("stdbuf");
        cmd.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-q",
            "1",
            "-v",
            "-d",
            "-t",
            topic,
        ]);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        let mut p = Proc::spawn("mosquitto_sub", &mut cmd);
        p.expect_line("SUBACK", |l| l.contains("SUBACK")).await;
        p
    }
}
