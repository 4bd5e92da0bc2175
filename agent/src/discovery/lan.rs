//! LAN discovery: the mdns-sd responder announces this agent, its browser
//! hears the others, and each announcement goes through the intake to
//! the node.
//!
//! mdns-sd runs its own thread (no async runtime of its own) and hands
//! events over a channel; this task reads them, so nothing here blocks
//! the runtime. Its socket is UDP 5353 on every non-loopback interface,
//! shared (SO_REUSEADDR/SO_REUSEPORT) with any other responder on the
//! machine (avahi); it reads the interfaces through a netlink socket.
//!
//! An agent listening on loopback only is not announced (nobody on the
//! LAN could reach it) but still hears the others. One bound to a
//! concrete address announces that address; one bound to 0.0.0.0 or ::
//! announces the addresses of its interfaces, kept current as they
//! change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::watch;

use super::announcement::{self, NetworkTag, SERVICE_TYPE};
use super::intake::{Dial, Intake, IntakeLimits, MAX_SEEN, RELEASE_EVERY};
use super::Settings;
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::node::{NodeHandle, Source};

/// Starts announcing and browsing; the intake the API and metrics read.
pub(super) fn start(
    settings: &Settings,
    node: NodeHandle,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<Mutex<Intake>>, String> {
    let daemon =
        ServiceDaemon::new().map_err(|e| format!("cannot open the mDNS socket (UDP 5353): {e}"))?;
    announce(&daemon, settings)?;
    let events = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| format!("cannot browse {SERVICE_TYPE}: {e}"))?;
    let intake = Arc::new(Mutex::new(Intake::new(
        settings.key,
        NetworkTag::of(&settings.network),
        settings.seeds.iter().copied(),
        IntakeLimits {
            per_minute: settings.section.max_new_per_minute.max(1),
        },
        settings.clock.instant(),
    )));
    tokio::spawn(run(
        daemon,
        events,
        intake.clone(),
        node,
        settings.clock.clone(),
        shutdown,
    ));
    Ok(intake)
}

/// Registers this agent's service, unless it listens on loopback only.
fn announce(daemon: &ServiceDaemon, settings: &Settings) -> Result<(), String> {
    let ip = settings.bound.ip();
    if ip.is_loopback() {
        tracing::info!(
            listen = %settings.bound,
            "listening on loopback: not announced on the LAN (LAN agents are still heard)"
        );
        return Ok(());
    }
    let key = settings.key.to_string();
    // A DNS label holds 63 bytes: the instance and host names carry the
    // key's first 16 hex digits, the TXT record the whole key.
    let name = format!("streembit-{}", &key[..16]);
    let host = format!("{name}.local.");
    let txt = announcement::txt(&settings.key, &settings.network);
    let port = settings.bound.port();
    let info = if ip.is_unspecified() {
        ServiceInfo::new(SERVICE_TYPE, &name, &host, "", port, &txt[..])
            .map(ServiceInfo::enable_addr_auto)
    } else {
        ServiceInfo::new(SERVICE_TYPE, &name, &host, ip, port, &txt[..])
    }
    .map_err(|e| format!("cannot build our announcement: {e}"))?;
    daemon
        .register(info)
        .map_err(|e| format!("cannot announce on the LAN: {e}"))?;
    tracing::info!(service = SERVICE_TYPE, name = %name, "announced on the LAN");
    Ok(())
}

/// Reads mDNS events until shutdown; lets deferred announcements through
/// every [`RELEASE_EVERY`].
///
/// This loop never waits on the node: mdns-sd drops a browser whose event
/// queue (1,000) fills, so the queue is drained as fast as it fills, and
/// dials go to a task of their own. If the browser is dropped all the
/// same (a flood faster than this loop), it is started again, at most once
/// a second, and counted: mdns-sd then replays what its cache holds.
async fn run(
    daemon: ServiceDaemon,
    mut events: mdns_sd::Receiver<ServiceEvent>,
    intake: Arc<Mutex<Intake>>,
    node: NodeHandle,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let dials = spawn_dialer(node);
    let mut release = tokio::time::interval(RELEASE_EVERY);
    let mut names = HashMap::new();
    loop {
        let verdicts = tokio::select! {
            event = events.recv_async() => match event {
                Ok(event) => heard(&intake, &mut names, event, clock.instant()),
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    match daemon.browse(SERVICE_TYPE) {
                        Ok(again) => {
                            events = again;
                            if let Ok(mut i) = intake.lock() {
                                i.browser_restarted();
                            }
                            tracing::warn!("LAN browser dropped (its queue filled: a flood of announcements?); started again");
                            Vec::new()
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the mDNS thread stopped: LAN discovery ends");
                            break;
                        }
                    }
                }
            },
            _ = release.tick() => match intake.lock() {
                Ok(mut i) => i.release(clock.instant()),
                Err(_) => Vec::new(),
            },
            _ = shutdown.changed() => break,
        };
        for dial in verdicts {
            // The intake lets at most its per-minute rate through, so this
            // queue only fills if the node stops answering: then counted.
            if dials.try_send(dial).is_err() {
                if let Ok(mut i) = intake.lock() {
                    i.dial_dropped();
                }
            }
        }
    }
    // Says goodbye on the LAN (a TTL-0 announcement), so peers forget us
    // at once instead of after the records' TTL.
    let _ = daemon.shutdown();
}

/// The task that hands LAN peers to the node, one at a time.
fn spawn_dialer(node: NodeHandle) -> tokio::sync::mpsc::Sender<Dial> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Dial>(64);
    tokio::spawn(async move {
        while let Some((key, addrs)) = rx.recv().await {
            tracing::debug!(peer = %key, addrs = ?addrs, "dialing an agent found on the LAN");
            if node.introduce(key, addrs, Source::Mdns).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// What to do with one event from the browser. `names` maps service
/// instance names to the keys they announced, so that a withdrawn
/// announcement is forgotten (bounded as the intake's list is).
fn heard(
    intake: &Mutex<Intake>,
    names: &mut HashMap<String, PublicKey>,
    event: ServiceEvent,
    now: Instant,
) -> Vec<Dial> {
    let Ok(mut intake) = intake.lock() else {
        return Vec::new();
    };
    match event {
        ServiceEvent::ServiceResolved(service) => {
            let parsed = announcement::parse(
                |k| service.get_property_val_str(k),
                service.get_port(),
                service
                    .get_addresses()
                    .iter()
                    .map(|a| a.to_ip_addr())
                    .collect::<Vec<IpAddr>>(),
            );
            match parsed {
                Ok(a) => {
                    if names.len() >= 2 * MAX_SEEN {
                        names.clear();
                    }
                    names.insert(service.get_fullname().to_owned(), a.key);
                    intake.offer(a, now).into_iter().collect()
                }
                Err(why) => {
                    tracing::debug!(name = %service.get_fullname(), reason = why.label(), "LAN announcement dropped");
                    intake.malformed(why);
                    Vec::new()
                }
            }
        }
        ServiceEvent::ServiceRemoved(_, fullname) => {
            if let Some(key) = names.remove(&fullname) {
                intake.forget(&key);
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}
