//! Reachable behind NAT, with no central service: reachability detection,
//! relays, and hole punching.
//!
//! - `protocol.rs`: the `nat` requests and `nat_answer` answers.
//! - `service.rs`: [`Nat`], serving those requests (observer, dial-back
//!   tester, relay, relayed target) and asking them.
//! - `dial.rs`: [`Dialer`], dialing a peer by its record's addresses,
//!   direct or through a relay, and upgrading a relayed connection to a
//!   hole-punched one.
//! - `metrics.rs`: their counters as metric families.
//! - `reach.rs`: the task that finds out whether this node is reachable and,
//!   if not, holds relay reservations and publishes them as its addresses.
//!
//! How it fits together: a node behind NAT asks peers which address they
//! see it at and has a *third* peer dial it back there. If no dial-back
//! succeeds it reserves a slot at a relay (any reachable node configured
//! with `relay = true`) over a QUIC connection it keeps open, and publishes
//! `relay:<relay key>@<relay address>` instead of its own address. A peer
//! that finds such an address asks the relay to `connect`; the relay tells
//! the target (`incoming`) and forwards UDP frames of the session between
//! the two (transport/socket.rs), so one end-to-end QUIC connection, whose
//! TLS proves the target's key and checks the allowlist, runs through it.
//! Both sides learn the other's address as the relay sees it: the target
//! sends probes there to open its NAT while the dialer dials it directly,
//! and when that handshake completes the direct connection replaces the
//! relayed one.

mod dial;
mod metrics;
pub(crate) mod protocol;
mod reach;
mod service;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

pub(crate) use dial::Dialer;
pub use protocol::{decode, encode, NatAnswer, NatRequest};
pub(crate) use reach::spawn_reachability;
pub(crate) use service::Nat;

use super::NodeError;
use crate::identity::PublicKey;
use crate::transport::relay::RelayLimits;

/// One address of a peer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddr {
    /// Dial it here.
    Direct(SocketAddr),
    /// Reach it through the relay `relay` at `addr` (text form
    /// `relay:<64 hex>@<ip:port>`).
    Relay {
        /// The relay's key.
        relay: PublicKey,
        /// The relay's address.
        addr: SocketAddr,
    },
}

impl FromStr for PeerAddr {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Self, NodeError> {
        let bad = |e: &dyn fmt::Display| NodeError::Unparsable(format!("{s:?}: {e}"));
        if let Some(rest) = s.strip_prefix("relay:") {
            let (key, addr) = rest
                .split_once('@')
                .ok_or_else(|| bad(&"expected relay:<key>@<ip:port>"))?;
            return Ok(PeerAddr::Relay {
                relay: key.parse().map_err(|e| bad(&e))?,
                addr: addr.parse().map_err(|e| bad(&e))?,
            });
        }
        s.parse().map(PeerAddr::Direct).map_err(|e| bad(&e))
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Direct(a) => write!(f, "{a}"),
            PeerAddr::Relay { relay, addr } => write!(f, "relay:{relay}@{addr}"),
        }
    }
}

/// The addresses of a record that this node can use (others are skipped).
pub(crate) fn parse_addrs<'a>(list: impl IntoIterator<Item = &'a str>) -> Vec<PeerAddr> {
    list.into_iter().filter_map(|a| a.parse().ok()).collect()
}

/// How a node decides whether it is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReachMode {
    /// Find out (observed addresses and dial-backs).
    #[default]
    Auto,
    /// Trust the announced addresses (a node with a public address or a
    /// port forward).
    Public,
    /// Always go through relays.
    Private,
}

impl FromStr for ReachMode {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Self, NodeError> {
        match s {
            "auto" => Ok(ReachMode::Auto),
            "public" => Ok(ReachMode::Public),
            "private" => Ok(ReachMode::Private),
            other => Err(NodeError::Unparsable(format!(
                "{other:?} is not one of \"auto\", \"public\", \"private\""
            ))),
        }
    }
}

/// What this node found out about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Reachability {
    /// Not tested yet, or no third peer could test it: the announced
    /// addresses are published.
    #[default]
    Unknown,
    /// A third peer dialed us at these addresses.
    Public(Vec<SocketAddr>),
    /// Dial-backs failed: reachable through relays only.
    Private,
}

impl Reachability {
    /// `unknown`, `public` or `private`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public(_) => "public",
            Reachability::Private => "private",
        }
    }
}

/// NAT settings of a node.
#[derive(Debug, Clone, Default)]
pub struct NatConfig {
    /// How reachability is decided.
    pub mode: ReachMode,
    /// Relay for others within these limits (`None`: no relaying).
    pub relay: Option<RelayLimits>,
    /// Relays held at once when behind NAT.
    pub max_relays: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_round_trip_and_fit_a_record() {
        let key = crate::identity::Keypair::from_seed(&[1; 32]).public();
        for a in [
            PeerAddr::Direct("192.0.2.1:7470".parse().expect("addr")),
            PeerAddr::Relay {
                relay: key,
                addr: "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .expect("addr"),
            },
        ] {
            let text = a.to_string();
            assert!(text.len() <= crate::dht::MAX_ADDR_LEN, "{text}");
            assert_eq!(text.parse::<PeerAddr>(), Ok(a));
        }
        assert!("relay:zz@1.2.3.4:5".parse::<PeerAddr>().is_err());
        assert_eq!(parse_addrs(["nonsense", "10.0.0.1:1"]).len(), 1);
    }
}
