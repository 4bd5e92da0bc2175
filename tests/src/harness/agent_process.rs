//! Running real `streembit run` processes and awaiting what they announce.
//!
//! Each agent gets its own `NOTIFY_SOCKET`, a Unix datagram socket the
//! harness listens on, exactly as systemd would. Tests wait for READY=1 and
//! STATUS= lines (joined, published) instead of sleeping.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::cli::{binary, json};
use crate::harness::process::wrapped;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(90);

/// `RUST_LOG` unless a test sets its own: debug for the agent, so a failed
/// test's `agent.log` says what the agent was doing.
const DEFAULT_LOG: &str = "info,streembit_agent=debug";

/// One agent process with its own directory, config and notify socket.
///
/// Start one with [`AgentProcess::start`] (the harness defaults) or, for
/// anything else, [`AgentProcess::builder`].
pub struct AgentProcess {
    dir: PathBuf,
    child: Option<Child>,
    notify: UnixDatagram,
    /// Variables set on top of the harness defaults, kept for restarts.
    env: Vec<(String, String)>,
    /// Every notification received, in order.
    pub seen: Vec<String>,
    /// The UDP address it listens on (from its READY status).
    pub addr: String,
    /// Its public key.
    pub key: String,
    /// Wall time from starting the process to its READY=1, for the last
    /// (re)start.
    pub ready_in: Duration,
    /// A command the agent runs under (e.g. `ip netns exec NS`), or empty.
    wrapper: Vec<String>,
}

/// What to start an agent with: its directory and `agent.toml`, and what
/// differs from the harness defaults. Made by [`AgentProcess::builder`];
/// nothing runs until [`spawn`](Self::spawn).
///
/// The defaults, which `env` overrides:
/// - `RUST_LOG=info,streembit_agent=debug`, logged to `agent.log`;
/// - `STREEMBIT_MQTT__EMBEDDED=false`: many agents run at once, so none
///   takes the MQTT port unless a test asks for it;
/// - `STREEMBIT_NAT__REACHABILITY=public`: no dial-backs unless a test is
///   about NAT, as loopback agents are reachable as announced;
/// - `STREEMBIT_DISCOVERY__MDNS=false`: agents of different tests share
///   the machine, and must not find each other on its LAN unless a test
///   is about LAN discovery;
/// - `STREEMBIT_WEB__ENABLED=false`: the console's port is one per
///   machine;
/// - no inherited `STATE_DIRECTORY` or `RUNTIME_DIRECTORY`, so the state
///   stays in the agent's directory; its own `NOTIFY_SOCKET`.
#[must_use = "nothing runs until spawn()"]
pub struct AgentBuilder {
    dir: PathBuf,
    config: String,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
}

impl AgentBuilder {
    /// `RUST_LOG` for the process (benchmarks run with `warn` so logging
    /// does not weigh on figures).
    pub fn log(self, rust_log: &str) -> Self {
        self.env("RUST_LOG", rust_log)
    }

    /// One environment variable, set after the defaults so it overrides
    /// them; a later call for the same key wins.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// [`env`](Self::env) for each pair, in order.
    pub fn envs(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// Runs the agent under `prefix` (a command such as `ip netns exec
    /// NS`, which execs it in place, so the pid and notify socket stay the
    /// agent's).
    pub fn wrapper(mut self, prefix: Vec<String>) -> Self {
        self.wrapper = prefix;
        self
    }

    /// Creates the directory, writes `agent.toml`, binds the notify
    /// socket, starts `streembit run` and waits for READY=1; the address
    /// and key are known when this returns.
    pub fn spawn(self) -> AgentProcess {
        std::fs::create_dir_all(&self.dir).expect("agent dir");
        std::fs::write(self.dir.join("agent.toml"), &self.config).expect("write config");
        let sock = self.dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).expect("bind notify socket");
        let mut me = AgentProcess {
            dir: self.dir,
            child: None,
            notify,
            env: self.env,
            seen: Vec::new(),
            addr: String::new(),
            key: String::new(),
            ready_in: Duration::ZERO,
            wrapper: self.wrapper,
        };
        me.launch();
        me
    }
}

impl AgentProcess {
    /// An agent in `dir` (created) with `config` as its `agent.toml`, to be
    /// adjusted and then [spawned](AgentBuilder::spawn).
    pub fn builder(dir: &Path, config: &str) -> AgentBuilder {
        AgentBuilder {
            dir: dir.to_owned(),
            config: config.to_owned(),
            env: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    /// Starts an agent with the harness defaults (see [`AgentBuilder`])
    /// and waits for READY=1.
    pub fn start(dir: &Path, config: &str) -> Self {
        Self::builder(dir, config).spawn()
    }

    /// Starts the process (again) with the kept settings and waits for
    /// READY=1; reads its address from the READY status and its key
    /// through the CLI.
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .expect("log file");
        let started = Instant::now();
        let child = wrapped(&self.wrapper, binary())
            .args(["run", "--config", "agent.toml"])
            .current_dir(&self.dir)
            .env("NOTIFY_SOCKET", self.dir.join("notify.sock"))
            .env("RUST_LOG", DEFAULT_LOG)
            .env("STREEMBIT_MQTT__EMBEDDED", "false")
            .env("STREEMBIT_NAT__REACHABILITY", "public")
            .env("STREEMBIT_DISCOVERY__MDNS", "false")
            .env("STREEMBIT_WEB__ENABLED", "false")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn streembit run");
        self.child = Some(child);
        let status = self.wait_for("READY", |m| m.contains("READY=1"));
        self.ready_in = started.elapsed();
        self.addr = status
            .lines()
            .find_map(|l| l.strip_prefix("STATUS=listening on "))
            .and_then(|rest| rest.split(',').next())
            .expect("READY carries the listen address")
            .to_owned();
        self.key = crate::harness::cli::stdout(&self.cli(&["id"]));
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The local API socket (the default runtime directory under the
    /// default state directory, relative to the agent's directory).
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join(".streembit").join("run").join("api.sock")
    }

    /// The agent's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This agent as a seed entry: `<key>@<addr>`.
    pub fn seed(&self) -> String {
        format!("{}@{}", self.key, self.addr)
    }

    /// The config of an agent on loopback that joins through this one.
    pub fn seeded_config(&self) -> String {
        format!("listen = \"127.0.0.1:0\"\nseeds = [\"{}\"]\n", self.seed())
    }

    /// Waits for a notification matching `pred`; returns it. Fails the test
    /// (with everything seen and the log's tail) after [`WAIT`].
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(m) = self.seen.iter().find(|m| pred(m)) {
            return m.clone();
        }
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let log = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{}: no {what} within {WAIT:?}; saw {:?}\nlog tail:\n{}",
                    self.dir.display(),
                    self.seen,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            self.notify.set_read_timeout(Some(left)).expect("timeout");
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if pred(&msg) {
                    return msg;
                }
            }
        }
    }

    /// Every notification that arrives within `window` (also kept in
    /// [`AgentProcess::seen`]). For checks that something does *not*
    /// happen: a watchdog's silence is only defined over a period.
    pub fn notifications_within(&mut self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            self.notify.set_read_timeout(Some(left)).expect("timeout");
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                got.push(msg);
            }
        }
    }

    /// Notifications already queued on the socket, without waiting.
    pub fn drain_notifications(&mut self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        self.notify.set_nonblocking(true).expect("nonblocking");
        while let Ok(n) = self.notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(msg.clone());
            got.push(msg);
        }
        self.notify.set_nonblocking(false).expect("blocking");
        got
    }

    /// Waits until its peer record is stored at `acks` nodes or more.
    pub fn wait_published(&mut self, acks: u32) {
        self.wait_for(&format!("publish with ≥{acks} acks"), |m| {
            m.lines()
                .filter_map(|l| l.split("acks=").nth(1))
                .filter_map(|a| a.trim().parse::<u32>().ok())
                .any(|a| a >= acks)
        });
    }

    /// Waits for the agent to announce a relayed address (it holds a
    /// reservation at a relay); returns it.
    pub fn wait_relayed(&mut self) -> String {
        let status = self.wait_for("a relayed address", |m| m.contains("announcing relay:"));
        status
            .split_whitespace()
            .find(|w| w.starts_with("relay:"))
            .expect("relay address")
            .to_owned()
    }

    /// The path (`direct`, `relayed`) of the agent's open connection to
    /// `key`, if any.
    pub fn path_to(&self, key: &str) -> Option<String> {
        let status = json(&self.cli(&["status", "--json"]));
        status["links"]
            .as_array()?
            .iter()
            .find(|l| l["key"] == key)
            .and_then(|l| l["path"].as_str().map(str::to_owned))
    }

    /// Runs a CLI command against this agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--config", "agent.toml"]);
        Command::new(binary())
            .args(&all)
            .current_dir(&self.dir)
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .output()
            .expect("run CLI")
    }

    /// `GET /metrics` value of one series (`name{labels}` exactly as
    /// exported), or 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        let out = self.cli(&["metrics"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// Waits until this gateway holds a queue for `subscriber`'s
    /// subscription to `device`. A subscription takes the readings made
    /// from then on, and `streembit subscribe` returns before the gateway
    /// has heard of it: a reading made in between is not the
    /// subscription's, so tests that count readings wait for this first.
    pub fn wait_subscriber(&self, device: &str, subscriber: &str) {
        let series =
            format!("streembit_outbox_readings{{device=\"{device}\",subscriber=\"{subscriber}\"}}");
        eventually("the subscription's queue at the gateway", || {
            String::from_utf8_lossy(&self.cli(&["metrics"]).stdout).contains(&series)
        });
    }

    /// The keys in its routing table.
    pub fn peers(&self) -> Vec<String> {
        let out = self.cli(&["peers", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["key"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &c.id().to_string()])
                .status();
        }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// SIGTERM and wait for the exit; returns how long it took. An agent
    /// still running [`WAIT`] later is killed and the test fails: a hang
    /// at shutdown is a bug, not something to wait out.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            while matches!(c.try_wait(), Ok(None)) {
                if started.elapsed() > WAIT {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "the agent in {} did not exit within {WAIT:?} of SIGTERM; its log ends:\n{}",
                        self.dir.display(),
                        self.log().lines().rev().take(20).collect::<Vec<_>>().join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        started.elapsed()
    }

    /// Starts the process again (same directory, possibly new config).
    pub fn restart(&mut self, config: Option<&str>) {
        self.kill();
        if let Some(c) = config {
            std::fs::write(self.dir.join("agent.toml"), c).expect("write config");
        }
        self.seen.clear();
        self.launch();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway's directory `<root>/gw` with its bridge files (`(file name,
/// TOML)`) in `bridges.d/`, ready for [`AgentProcess::start`].
pub fn gateway_dir(root: &Path, bridges: &[(&str, &str)]) -> PathBuf {
    let dir = root.join("gw");
    std::fs::create_dir_all(dir.join("bridges.d")).expect("bridges.d");
    for (name, toml) in bridges {
        std::fs::write(dir.join("bridges.d").join(name), toml).expect("bridge file");
    }
    dir
}

/// Polls until `pred` holds, for state that lives in an agent and has no
/// event to await from outside; panics naming `what` after [`WAIT`].
pub fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
