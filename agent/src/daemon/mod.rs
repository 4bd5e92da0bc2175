//! `streembit run`: the agent as a long-running service.
//!
//! - `mod.rs`: start-up and shutdown order, signals, systemd notifications.
//! - `config.rs`: `agent.toml` and `STREEMBIT_*` environment variables
//!   (figment), and where the bridge files are: the daemon's input.
//! - `config_env.rs`: which `STREEMBIT_*` variables name a config key.
//! - `server.rs`: the local HTTP API on a Unix socket (its JSON shapes
//!   are [`crate::api`]).
//! - `routes.rs`: the API's routes, parsed from method, path and body.
//! - `console/`: the web console (pages, login, live readings, plots).
//! - `logging.rs`: tracing set-up (journald-friendly).
//! - `password.rs`: the `$7$` PBKDF2 password format (broker, console).
//! - `verified_feed.rs`: every reading verified once, for the plain
//!   outputs (SenML, Home Assistant, the console, `point_gauges.rs`).
//! - `systemd.rs`: the STATUS line and the reload handshake.
//! - `local_mqtt/`: the managed MQTT broker (mosquitto, run and confined
//!   by the agent) and the publication of signed readings to local MQTT.
//!
//! Start-up: config → logging → identity → endpoint bound → table restored
//! → API socket → READY=1. Shutdown (SIGTERM/SIGINT): STOPPING=1, the node
//! persists its table and closes every connection with a code, all within
//! 5 s.
//!
//! What this module does not do: protocol work. It wires the layers below
//! together, turns config into their settings, and answers the local API
//! by asking them (the node through its `NodeHandle`).

pub(crate) mod config;
mod config_env;
mod console;
mod local_mqtt;
pub(crate) mod logging;
mod membership;
mod password;
mod point_gauges;
pub(crate) mod routes;
mod server;
pub(crate) mod systemd;
mod verified_feed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::devices::{self, DeviceService, Devices, Outboxes, Remote, Subscriptions};
use crate::discovery::{self, Discovery};
use crate::identity::Keystore;
use crate::node::{Node, NodeConfig, NodeEvent, NodeHandle};
use crate::transport::{Endpoint, Membership, TransportConfig};
use crate::wire::{Session, TimeSource};
use config::{bridges_dir, AgentConfig};

/// A console password hashed for `[web] password_file` (PBKDF2-SHA512,
/// 210,000 rounds: a login a person types, not a broker's machine account).
pub(crate) fn password_hash(password: &str) -> String {
    password::hash(password, 210_000)
}

/// Writes `bytes` to `path`, mode 0600.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::state_file::write_atomic(path, bytes)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
}

/// Exit code for a config or identity problem (the operator's to fix).
pub(crate) const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time (socket in use, I/O).
pub(crate) const EXIT_RUNTIME: u8 = 1;

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DaemonError {
    /// Process exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
}

impl DaemonError {
    fn config(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_CONFIG,
            message: message.to_string(),
        }
    }
    fn runtime(message: impl std::fmt::Display) -> Self {
        Self {
            code: EXIT_RUNTIME,
            message: message.to_string(),
        }
    }
}

/// How long shutdown may take before we stop waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Runs the agent in the foreground until SIGTERM or SIGINT.
pub(crate) fn run(config_path: Option<&std::path::Path>) -> Result<(), DaemonError> {
    let config = AgentConfig::load(config_path).map_err(DaemonError::config)?;
    logging::init(&config.log_level);
    let ignored = config::unknown_env_vars();
    if !ignored.is_empty() {
        tracing::warn!("{}", config::unknown_env_warning(&ignored));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DaemonError::runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(serve(config, config_path.map(|p| p.to_owned())))
}

/// What `streembit check-config` checks: the agent config and every
/// bridge file. A summary when all is well, else every problem, each
/// naming its file, key and reason; warnings (a device file absent now)
/// either way.
pub(crate) fn check_config(path: Option<&std::path::Path>) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    if let Err(e) = AgentConfig::load(path) {
        problems.extend(e.0);
    }
    let dir = bridges_dir(path);
    let mut loaded = devices::load_dir(&dir);
    problems.extend(loaded.errors());
    // The accounts the agent's MQTT broker would be given.
    if let Ok(c) = AgentConfig::load(path) {
        let (bad, warnings) = local_mqtt::check_accounts(&c.mqtt, &loaded);
        problems.extend(bad);
        loaded.warnings.extend(warnings);
    }
    if !problems.is_empty() {
        problems.extend(loaded.warnings.iter().map(|w| format!("warning: {w}")));
        return Err(problems);
    }
    let devices: usize = loaded.good.iter().map(|b| b.bus.device_names().len()).sum();
    let mut summary = format!(
        "config OK ({} bridge files, {devices} devices in {})",
        loaded.good.len(),
        dir.display()
    );
    let budget = AgentConfig::load(path)
        .map(|c| c.dht.max_devices_per_gateway)
        .unwrap_or(crate::dht::DEFAULT_MAX_DEVICES_PER_GATEWAY);
    for w in loaded
        .warnings
        .iter()
        .chain(&device_budget_warning(devices, budget))
    {
        summary.push_str(&format!("\nwarning: {w}"));
    }
    Ok(summary)
}

/// Near the device records peers keep per gateway: beyond them, devices
/// are not findable.
fn device_budget_warning(devices: usize, budget: usize) -> Option<String> {
    crate::api::near_limit(
        "devices hosted here",
        devices,
        budget,
        "peers keep at most that many device records of one gateway ([dht] max_devices_per_gateway, on every agent); more are not findable",
    )
}

async fn serve(
    config: AgentConfig,
    config_path: Option<std::path::PathBuf>,
) -> Result<(), DaemonError> {
    let state_dir = config.state_dir();
    let clock = match config.simulate_clock_offset_ms {
        0 => Clock::system(),
        offset_ms => {
            tracing::warn!(
                offset_ms,
                "simulate_clock_offset_ms: running on a deliberately wrong clock"
            );
            Clock::new(Arc::new(crate::clock::OffsetClock { offset_ms }))
        }
    };
    // Bridge files are config too: a broken one stops the start (exit 2);
    // on reload it only keeps its previous version running.
    let bridges_dir = bridges_dir(config_path.as_deref());
    let loaded_bridges = devices::load_dir(&bridges_dir);
    let problems = loaded_bridges.errors();
    if !problems.is_empty() {
        return Err(DaemonError::config(problems.join("\n")));
    }
    let key = Arc::new(
        Keystore::new(&state_dir)
            .gateway()
            .map_err(DaemonError::config)?,
    );
    let network = config.network_id().map_err(DaemonError::config)?;
    let (membership, own_credential) =
        membership::build(&config, &network, &key.public(), &state_dir)?;
    if let Some(w) = own_credential
        .as_ref()
        .and_then(|o| membership::expiry_warning(&o.credential, clock.wall()))
    {
        tracing::warn!("{w}");
    }
    let listen = config.listen_addr().map_err(DaemonError::config)?;
    let nat = config.nat.node_config().map_err(DaemonError::config)?;
    let mut transport = TransportConfig::new(listen, network.clone());
    transport.relay = nat.relay.clone();
    transport.clock = clock.clone();
    transport.credential = own_credential.as_ref().map(|o| o.bytes.clone());
    let own_credential = own_credential.map(Arc::new);
    let endpoint = Arc::new(
        Endpoint::bind(key.clone(), membership.clone(), &transport)
            .map_err(DaemonError::runtime)?,
    );
    let bound = endpoint.local_addr().map_err(DaemonError::runtime)?;

    let mut node_cfg = NodeConfig::new(network.clone(), state_dir.clone());
    node_cfg.announce = announce_addrs(&config, bound);
    node_cfg.nat = nat;
    node_cfg.clock = clock.clone();
    node_cfg.dht.store.max_devices_per_gateway = config.dht.max_devices_per_gateway;
    for seed in config.seeds() {
        match seed.resolve() {
            Ok(addr) if seed.key != key.public() => node_cfg.seeds.push((seed.key, addr)),
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}; seed skipped"),
        }
    }
    let discovery_settings = discovery::Settings {
        key: key.public(),
        network: network.clone(),
        bound,
        seeds: config.seeds().iter().map(|s| s.key).collect(),
        seeds_dns: config.seeds_dns.clone(),
        section: config.discovery.clone(),
        clock: clock.clone(),
    };

    let (events_tx, mut events_rx) = mpsc::channel(64);
    let wire = node_cfg.wire.clone();
    let mut node = Node::new(key.clone(), endpoint.clone(), node_cfg, events_tx);
    let handle = node.handle();
    let socket = config.api_socket();
    let listener = server::bind(&socket).map_err(|e| {
        DaemonError::runtime(format!(
            "cannot bind the API socket {}: {e}",
            socket.display()
        ))
    })?;

    let outboxes = Arc::new(Outboxes::open(
        &state_dir.join("outbox"),
        config.outbox_max_bytes,
        config.max_subscribers_per_device,
        Duration::from_secs(config.subscription_expiry_days.saturating_mul(86_400)),
        clock.clone(),
    ));
    // The broker first: local MQTT devices in the bridge files connect to
    // it, with the accounts their files give them.
    let mqtt_stats = Arc::new(local_mqtt::MqttStats::default());
    let mut local_mqtt =
        local_mqtt::LocalMqtt::start(&config.mqtt, &state_dir, &loaded_bridges, &mqtt_stats)
            .await
            .map_err(DaemonError::config)?;
    let devices = Devices::new(
        Keystore::new(&state_dir),
        network.clone(),
        outboxes.clone(),
        clock.clone(),
        &state_dir.join("seq"),
    );
    let problems = devices.apply(loaded_bridges).await;
    if !problems.is_empty() {
        devices.stop_all().await;
        local_mqtt.stop().await;
        return Err(DaemonError::config(problems.join("\n")));
    }
    if devices.count() > 0 {
        tracing::info!(devices = devices.count(), dir = %bridges_dir.display(), "bridges started");
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // One session per protocol, each with its own replay window.
    let time: Arc<dyn TimeSource> = Arc::new(clock.clone());
    let session = || Session::new(key.clone(), network.clone(), wire.clone(), time.clone());
    let service = Arc::new(DeviceService::new(
        devices.clone(),
        session(),
        membership.clone(),
    ));
    let (device_streams_tx, device_streams_rx) = mpsc::channel(256);
    node.serve_devices(device_streams_tx);
    tokio::spawn(service.clone().run(device_streams_rx));
    let remote = Arc::new(Remote::new(
        session(),
        network.clone(),
        node.dialer(),
        handle.clone(),
    ));
    let node_task = tokio::spawn(node.run(shutdown_rx.clone()));
    let discovery = Discovery::start(&discovery_settings, handle.clone(), shutdown_rx.clone());
    membership::spawn_removals(&membership, handle.clone(), devices.clone());
    host_devices(&handle, &devices, own_credential.as_deref()).await;
    let subscriptions = Subscriptions::start(
        remote.clone(),
        devices.feed().clone(),
        &state_dir.join("inbox"),
        config.inbox_max_bytes,
        clock.clone(),
    );
    let id = key.public().to_string();
    let verified = verified_feed::VerifiedFeed::start(devices.feed().subscribe(), network.clone());
    let gauges =
        point_gauges::PointGauges::start(&config.metrics, verified.subscribe(), verified.lagged());
    local_mqtt::publish(
        &local_mqtt,
        &config.mqtt,
        format!("streembit-{}", &id[..16]),
        devices.feed().subscribe(),
        verified.subscribe(),
        mqtt_stats.clone(),
    );
    {
        let outboxes = outboxes.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(devices::SYNC_EVERY);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                outboxes.sync_all();
                ticks += 1;
                if ticks % 60 == 1 {
                    outboxes.expire();
                }
            }
        });
    }
    let console = console::bind(&config.web, &state_dir).await;
    let api_ctx = server::Context {
        node: handle.clone(),
        devices: devices.clone(),
        service,
        remote,
        subscriptions: subscriptions.clone(),
        mqtt: mqtt_stats,
        device_budget: config.dht.max_devices_per_gateway,
        membership: membership.clone(),
        network: network.clone(),
        credential: own_credential.clone(),
        clock: clock.clone(),
        discovery,
        console_url: console.as_ref().map(|c| c.url.clone()),
        verified: verified.clone(),
        gauges,
        console: Default::default(),
    };
    if let Some(c) = console {
        tracing::info!(url = %c.url.split('#').next().unwrap_or(""), "web console: `streembit console` prints its login URL");
        tokio::spawn(console::serve(
            c,
            api_ctx.clone(),
            state_dir.clone(),
            clock.clone(),
            verified.subscribe(),
            shutdown_rx.clone(),
        ));
    }
    let api_task = tokio::spawn(server::serve(listener, api_ctx, shutdown_rx.clone()));

    tracing::info!(key = %key.public(), listen = %bound, network = %network, api = %socket.display(), "agent running");
    // The first STATUS names the bound address (the tests read it); the
    // summary replaces it at once.
    systemd::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("listening on {bound}, network {network}")),
    ]);

    // From here on STATUS is the operator's summary, kept current.
    let status_line = systemd::StatusLine::spawn(
        handle.clone(),
        devices.clone(),
        config.dht.max_devices_per_gateway,
        shutdown_rx.clone(),
    );
    let mut reloads = systemd::Reloads::new(config.runtime_dir(), status_line.clone());
    // Pets start only once READY=1 went out: systemd (and the tests) see
    // READY, STATUS, then WATCHDOG, in that order.
    if let Some(period) = watchdog_period() {
        tokio::spawn(watchdog(period, handle.clone(), shutdown_rx));
    }
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(config_path.as_deref(), &membership, &handle, &devices, &mut local_mqtt, &bridges_dir, own_credential.as_deref(), &mut reloads).await,
            Some(event) = events_rx.recv() => {
                report(&event);
                status_line.refresh();
            }
        }
    }

    tracing::info!("shutting down");
    systemd::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        devices.stop_all().await;
        let _ = node_task.await;
        let _ = api_task.await;
    })
    .await;
    local_mqtt.stop().await;
    outboxes.sync_all();
    subscriptions.sync_all();
    server::remove(&socket);
    Ok(())
}

/// SIGHUP: re-read the bridge files (and the MQTT broker's accounts made
/// from them) and the config's allowlist and admin keys. A broken bridge file is reported
/// (log, metric, STATUS) and its running version kept; peers removed from
/// the allowlist lose their connection; a broken config keeps the old
/// allowlist.
#[allow(clippy::too_many_arguments)]
async fn reload(
    path: Option<&std::path::Path>,
    membership: &Membership,
    node: &NodeHandle,
    devices: &Devices,
    local_mqtt: &mut local_mqtt::LocalMqtt,
    bridges_dir: &std::path::Path,
    own: Option<&membership::OwnCredential>,
    reloads: &mut systemd::Reloads,
) {
    reloads.started();
    let loaded = devices::load_dir(bridges_dir);
    // Accounts first, so a new bridge's devices can log in at once.
    let mut problems = local_mqtt.reload(&loaded);
    problems.extend(devices.apply(loaded).await);
    host_devices(node, devices, own).await;
    for p in &problems {
        tracing::error!("bridge file refused on reload, previous version kept: {p}");
    }
    let status = if problems.is_empty() {
        format!("reloaded: {} devices", devices.count())
    } else {
        format!(
            "reload: {} bridge file problems, previous versions kept",
            problems.len()
        )
    };
    match AgentConfig::load(path).and_then(|c| Ok((c.allowlist()?, c.authority()))) {
        Ok((keys, authority)) if membership.is_private() => {
            // What the removed keys hold is closed by the removals task.
            let removed = membership.replace_allowlist(keys);
            let unsigned = membership.replace_authority(authority);
            tracing::info!(
                removed = removed.len(),
                no_longer_signed = unsigned.len(),
                "allowlist and admin keys reloaded"
            );
        }
        Ok(_) => tracing::info!("reload: public network, nothing to apply"),
        Err(e) => {
            tracing::error!("reload refused, keeping the running config: {e}");
            problems.push(format!("config refused, running one kept: {e}"));
        }
    }
    reloads.finished(status, problems);
}

/// How long the daemon waits for the node to host devices or forget a
/// peer before it goes on.
const NODE_ANSWER: Duration = Duration::from_secs(5);

/// Tells the node which devices it hosts (TLS identities, device records).
/// On a private network each device presents a credential signed by this
/// gateway, which peers accept only from a gateway: say so if we are not.
async fn host_devices(
    node: &NodeHandle,
    devices: &Devices,
    own: Option<&membership::OwnCredential>,
) {
    membership::warn_if_devices_refused(own, devices.count());
    let _ = tokio::time::timeout(NODE_ANSWER, node.host(devices.keypairs())).await;
}

/// A node event for the log and the tests' fake systemd: a custom
/// notification field (systemd ignores `X_` fields), not STATUS, which
/// stays the operator's summary.
fn report(event: &NodeEvent) {
    let text = match event {
        NodeEvent::Restored { contacts } => format!("restored {contacts} contacts"),
        NodeEvent::Joined { contacts } => format!("joined: {contacts} contacts"),
        NodeEvent::Published { seq, acks } => format!("published seq={seq} acks={acks}"),
        NodeEvent::Announcing { addrs } => format!("announcing {}", addrs.join(" ")),
        NodeEvent::DevicePublished { device, acks } => {
            format!("device {device} record stored at {acks} nodes")
        }
    };
    tracing::debug!("{text}");
    systemd::notify(&[sd_notify::NotifyState::Custom(&format!(
        "X_STREEMBIT_EVENT={text}"
    ))]);
}

/// Half of systemd's `WatchdogSec` (`WATCHDOG_USEC`), if it asked for pings
/// (and, when `WATCHDOG_PID` is set, asked this process).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pets the watchdog only when the node loop answers a status query, so a
/// stuck loop (not just a live process) makes systemd restart us.
async fn watchdog(period: Duration, node: NodeHandle, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match tokio::time::timeout(period, node.status()).await {
            Ok(Ok(_)) => systemd::notify(&[sd_notify::NotifyState::Watchdog]),
            Ok(Err(_)) => return,
            Err(_) => tracing::warn!("node loop did not answer in time; not petting the watchdog"),
        }
    }
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| DaemonError::runtime(format!("cannot install signal handler: {e}")))
}

/// The addresses to put in our peer record: configured ones; else the
/// bound one when it is a concrete address; else (bound to 0.0.0.0 or ::)
/// the addresses of this machine's interfaces with the bound port, so
/// that agents on the LAN can reach it with nothing configured.
fn announce_addrs(config: &AgentConfig, bound: SocketAddr) -> Vec<SocketAddr> {
    let configured: Vec<SocketAddr> = config
        .announce
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if !configured.is_empty() {
        return configured;
    }
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut found: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4() || bound.is_ipv6())
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    found.sort();
    found.dedup();
    found.truncate(crate::dht::MAX_ADDRS);
    if found.is_empty() {
        tracing::warn!(
            "listening on {bound} and no interface has an address yet: set `announce` to the \
             address peers should dial; until then our record lists no address"
        );
    } else {
        tracing::info!(
            addrs = ?found,
            "listening on {bound}: announcing the interfaces' addresses (set `announce` to choose)"
        );
    }
    found
}
