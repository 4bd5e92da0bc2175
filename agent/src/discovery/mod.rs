//! How an agent learns where peers are, besides the DHT: seeds written in
//! the config, seeds published in DNS, and agents announcing themselves
//! on the LAN.
//!
//! - `seed.rs`: a seed as written, `<key>@host:port`, and resolving it.
//! - `dns_seeds.rs`: `seeds_dns`: TXT records holding seeds, looked up at
//!   start and every hour.
//! - `announcement.rs`: what an agent announces on its LAN (DNS-SD over
//!   mDNS, `_streembit._udp`) and reading a peer's announcement.
//! - `intake.rs`: which announced peers are dialed, how many per minute,
//!   and what is remembered: all bounded, every announcement counted.
//! - `lan.rs`: the mDNS responder and browser (the mdns-sd crate) wired
//!   to the intake and the node.
//!
//! Everything found is handed to the node ([`NodeHandle::introduce`]),
//! which dials it as it would a seed and remembers the source for
//! `status`.
//!
//! What this module does not do: admit anyone. Discovery only says where
//! to dial; the dial proves the key in the TLS handshake, and on a private
//! network membership admits or refuses it as any other peer.

mod announcement;
mod dns_seeds;
mod intake;
mod lan;
mod seed;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::{Discovered, DiscoveredAgent};
use crate::clock::Clock;
use crate::identity::PublicKey;
use crate::metrics::{Family, Kind};
use crate::node::NodeHandle;
use crate::wire::NetworkId;
pub(crate) use seed::Seed;

/// `[discovery]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySection {
    /// Announce this agent on the LAN and dial the agents of the same
    /// network announced there (DNS-SD over mDNS, UDP port 5353).
    pub mdns: bool,
    /// New LAN peers dialed per minute at most (a flood of announcements
    /// costs no more).
    pub max_new_per_minute: u32,
}

impl Default for DiscoverySection {
    fn default() -> Self {
        Self {
            mdns: true,
            max_new_per_minute: 30,
        }
    }
}

/// Whether `name` can be looked up as a `seeds_dns` entry.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    let labels_ok = name
        .trim_end_matches('.')
        .split('.')
        .all(|l| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_graphic()));
    if name.len() > 253 || !labels_ok || !name.contains('.') {
        return Err(format!(
            "{name:?} is not a DNS name (e.g. \"_streembit._udp.example.org\")"
        ));
    }
    Ok(())
}

/// What the agent starts discovery with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// This agent's key.
    pub key: PublicKey,
    /// Its network.
    pub network: NetworkId,
    /// The UDP address its endpoint is bound to.
    pub bound: SocketAddr,
    /// The keys of the configured seeds (never dialed from the LAN).
    pub seeds: Vec<PublicKey>,
    /// `seeds_dns`.
    pub seeds_dns: Vec<String>,
    /// `[discovery]`.
    pub section: DiscoverySection,
    /// Where the time is read.
    pub clock: Clock,
}

/// Discovery at work: what `streembit discover` and `/metrics` read.
#[derive(Clone)]
pub(crate) struct Discovery {
    lan: Result<Arc<Mutex<intake::Intake>>, String>,
    dns: Arc<dns_seeds::DnsStats>,
    dns_names: usize,
    clock: Clock,
}

impl Discovery {
    /// Starts DNS seeding and LAN discovery as configured. Neither can
    /// stop the agent: a failure is logged and shown by `discover`.
    pub(crate) fn start(
        settings: &Settings,
        node: NodeHandle,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let dns = Arc::new(dns_seeds::DnsStats::default());
        if !settings.seeds_dns.is_empty() {
            tokio::spawn(dns_seeds::run(
                settings.seeds_dns.clone(),
                node.clone(),
                dns.clone(),
                shutdown.clone(),
            ));
        }
        let lan = if settings.section.mdns {
            lan::start(settings, node, shutdown).inspect_err(|e| {
                tracing::warn!("LAN discovery off: {e}");
            })
        } else {
            Err("LAN discovery is off (`[discovery] mdns = false`)".to_owned())
        };
        Self {
            lan,
            dns,
            dns_names: settings.seeds_dns.len(),
            clock: settings.clock.clone(),
        }
    }

    /// The agents heard on the LAN, `connected` telling which this agent
    /// has a connection to; an error saying why when LAN discovery is off.
    pub(crate) fn discovered(
        &self,
        connected: impl Fn(&PublicKey) -> bool,
    ) -> Result<Discovered, String> {
        let intake = self.lan.as_ref().map_err(Clone::clone)?;
        let intake = intake.lock().map_err(|_| "discovery state poisoned")?;
        let now = self.clock.instant();
        let agents = intake
            .seen()
            .into_iter()
            .map(|(key, s)| DiscoveredAgent {
                key: key.to_string(),
                network: s.network.describe(),
                same_network: intake.is_ours(&s.network),
                addrs: s.addrs.iter().map(ToString::to_string).collect(),
                connected: connected(&key),
                last_seen_s: now.saturating_duration_since(s.last).as_secs(),
            })
            .collect();
        Ok(Discovered { agents })
    }

    /// Metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        if self.dns_names > 0 {
            out.extend(self.dns.families());
        }
        out.push(Family::single(
            "streembit_discovery_mdns_up",
            "1 while LAN discovery (mDNS) runs.",
            Kind::Gauge,
            u64::from(self.lan.is_ok()),
        ));
        let Ok(intake) = &self.lan else {
            return out;
        };
        let Ok(intake) = intake.lock() else {
            return out;
        };
        let mut f = Family::new(
            "streembit_discovery_announcements",
            "LAN announcements heard, by outcome: dialed, known (unchanged), own, other_network, configured_seed (never dialed from the LAN), deferred (over the per-minute limit), dropped_rate_limited, malformed_*, dial_dropped.",
            Kind::Counter,
        );
        for (outcome, n) in intake.outcomes() {
            f.push(&[("outcome", outcome)], *n);
        }
        out.push(f);
        out.push(Family::single(
            "streembit_discovery_lan_peers",
            "Agents heard on the LAN and remembered (bounded).",
            Kind::Gauge,
            intake.seen().len() as u64,
        ));
        out.push(Family::single(
            "streembit_discovery_browser_restarts",
            "Times the mDNS browser was dropped (its event queue filled: a flood) and started again.",
            Kind::Counter,
            intake.browser_restarts(),
        ));
        out.push(Family::single(
            "streembit_discovery_deferred",
            "LAN announcements waiting for the per-minute limit (bounded).",
            Kind::Gauge,
            intake.deferred() as u64,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_checked() {
        assert!(check_dns_name("_streembit._udp.example.org").is_ok());
        assert!(check_dns_name("seeds.example.org.").is_ok());
        for bad in ["", "localhost", "a..b", "has space.org", &"x".repeat(64)] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
    }
}
