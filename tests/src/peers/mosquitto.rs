//! A real mosquitto broker on a free loopback port, and its clients.

use std::path::PathBuf;

use tokio::process::Command;

use crate::harness::ports::free_port;
use crate::harness::process::Proc;

/// A mosquitto broker with persistence, so a restart keeps QoS 1 sessions.
#[derive(Debug)]
pub struct Broker {
    /// Its port on 127.0.0.1.
    pub port: u16,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
    /// With TLS and a password: the CA file and the credentials.
    secure: Option<Secure>,
}

/// What a client needs for a TLS broker with a password file.
#[derive(Debug, Clone)]
pub struct Secure {
    /// The test CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// The one user.
    pub user: String,
    /// Its password.
    pub password: String,
}

/// Runs a command to completion, panicking with its output on failure.
async fn must(what: &str, cmd: &mut Command) {
    match cmd.output().await {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{what}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Runs one `mosquitto_pub` to its end; panics with its output unless it
/// exits 0 (it has then handed its QoS 1 message to the broker).
async fn run_pub(cmd: &mut Command) {
    let mut p = Proc::spawn("mosquitto_pub", cmd);
    let code = p.wait().await;
    assert_eq!(code, Some(0), "mosquitto_pub failed: {:#?}", p.seen);
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
            secure: None,
        };
        b.run().await;
        b
    }

    /// Starts a broker that speaks only TLS (a certificate for 127.0.0.1
    /// signed by a fresh test CA, made with openssl) and wants `user` and
    /// `password`.
    pub async fn start_secure(user: &str, password: &str) -> Broker {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        must(
            "CA",
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=streembit-test-ca",
                ])
                .args(ec)
                .current_dir(d)
                .args(["-keyout", "ca.key", "-out", "ca.pem"]),
        )
        .await;
        must(
            "server key",
            Command::new("openssl")
                .args(["req", "-subj", "/CN=localhost"])
                .args(ec)
                .current_dir(d)
                .args(["-keyout", "server.key", "-out", "server.csr"]),
        )
        .await;
        if let Err(e) = std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        ) {
            panic!("san.ext: {e}");
        }
        must(
            "server cert",
            Command::new("openssl").current_dir(d).args([
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "san.ext",
                "-out",
                "server.pem",
            ]),
        )
        .await;
        must(
            "password file",
            Command::new("mosquitto_passwd")
                .current_dir(d)
                .args(["-c", "-b", "passwd", user, password]),
        )
        .await;
        let mut b = Broker {
            port: free_port(),
            proc: None,
            secure: Some(Secure {
                ca: d.join("ca.pem"),
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            dir,
        };
        b.run().await;
        b
    }

    /// The CA and credentials of a broker made by [`start_secure`](Self::start_secure).
    pub fn secure(&self) -> Option<&Secure> {
        self.secure.as_ref()
    }

    /// Client arguments for TLS and the password, if the broker wants them.
    fn client_args(&self) -> Vec<String> {
        match &self.secure {
            Some(s) => vec![
                "--cafile".into(),
                s.ca.display().to_string(),
                "-u".into(),
                s.user.clone(),
                "-P".into(),
                s.password.clone(),
            ],
            None => Vec::new(),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    async fn run(&mut self) {
        let mut conf = format!(
            "listener {} 127.0.0.1\npersistence true\npersistence_location {}/\nlog_dest stderr\nuser root\nlog_type all\nmax_queued_messages 100000\n",
            self.port,
            self.dir.path().display()
        );
        match &self.secure {
            None => conf.push_str("allow_anonymous true\n"),
            Some(_) => {
                let d = self.dir.path().display();
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {d}/passwd\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
                ));
            }
        }
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
        run_pub(self.mosquitto_pub(topic).args(["-m", payload]).args(extra)).await;
    }

    /// `mosquitto_pub` at QoS 1 on `topic` of this broker (with its TLS
    /// and credentials, if any); the caller adds the message.
    fn mosquitto_pub(&self, topic: &str) -> Command {
        let mut c = Command::new("mosquitto_pub");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
        ])
        .args(self.client_args());
        c
    }

    /// Publishes each of `payloads` as its own message, in order, from one
    /// mosquitto_pub connection (`-l`: one message per stdin line).
    pub async fn publish_lines(&self, topic: &str, payloads: &[String]) {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .mosquitto_pub(topic)
            .arg("-l")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn mosquitto_pub");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut text = payloads.join("\n");
        text.push('\n');
        stdin.write_all(text.as_bytes()).await.expect("write lines");
        drop(stdin);
        let status = child.wait().await.expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub -l failed: {status}");
    }

    /// Publishes the contents of a file (for payloads too big for argv).
    pub async fn publish_file(&self, topic: &str, file: &std::path::Path) {
        run_pub(self.mosquitto_pub(topic).arg("-f").arg(file)).await;
    }

    /// Starts mosquitto_sub on `topic` (QoS 1, printing "topic payload") and
    /// waits for its SUBACK. With `session`, a persistent session under that
    /// client id, so messages published while it is away are kept.
    pub async fn subscribe(&self, topic: &str, session: Option<&str>) -> Proc {
        let port = self.port.to_string();
        let mut args = vec!["-p", &port, "-q", "1", "-v", "-d", "-t", topic];
        if let Some(id) = session {
            args.extend(["-c", "-i", id]);
        }
        let client = self.client_args();
        args.extend(client.iter().map(String::as_str));
        mosquitto_sub(&args).await
    }
}

/// Starts `mosquitto_sub -h 127.0.0.1 args…` (args name the port, topic
/// and options; include `-d` so it prints its SUBACK) and waits for the
/// SUBACK. For any broker on loopback, the agent's embedded one too.
pub async fn mosquitto_sub(args: &[&str]) -> Proc {
    // stdbuf: mosquitto_sub block-buffers stdout into a pipe.
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1"])
        .args(args);
    let mut p = Proc::spawn("mosquitto_sub", &mut cmd);
    p.expect_line("SUBACK", |l| l.contains("SUBACK")).await;
    p
}
