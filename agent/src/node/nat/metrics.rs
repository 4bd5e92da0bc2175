//! NAT traversal and relaying as metric families.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Nat;
use crate::metrics::{Family, Kind};

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Nat {
    /// Reachability, dial-backs, relayed connections, hole punches, and,
    /// on a relay, what it forwarded and refused.
    pub(crate) fn families(&self) -> Vec<Family> {
        let c = &self.counters;
        let paths = self.endpoint.paths();
        let sc = paths.counters();
        let state = self.reachability();
        let mut reach = Family::new(
            "streembit_reachability",
            "1 for this node's reachability: unknown, public, or private (behind NAT, through relays).",
            Kind::Gauge,
        );
        for name in ["unknown", "public", "private"] {
            reach.push(&[("state", name)], u64::from(state.name() == name));
        }
        let mut families = vec![
            reach,
            Family::new(
                "streembit_dial_backs",
                "Dial-back tests of our own addresses, by outcome.",
                Kind::Counter,
            )
            .with(&[("outcome", "reachable")], get(&c.dial_back_reachable))
            .with(&[("outcome", "unreachable")], get(&c.dial_back_unreachable)),
            Family::single(
                "streembit_dial_backs_for_others",
                "Dial-backs this node ran for other peers.",
                Kind::Counter,
                get(&c.dials_for_others),
            ),
            Family::single(
                "streembit_relays_held",
                "Relays holding a reservation for this node.",
                Kind::Gauge,
                self.relays().len() as u64,
            ),
            Family::new(
                "streembit_relayed_dials",
                "Connections dialed through a relay, by outcome.",
                Kind::Counter,
            )
            .with(
                &[("outcome", "ok")],
                get(&c.relayed_dials).saturating_sub(get(&c.relayed_dial_failures)),
            )
            .with(&[("outcome", "failed")], get(&c.relayed_dial_failures)),
            Family::new(
                "streembit_holepunch",
                "Hole punches after a relayed connection, by outcome.",
                Kind::Counter,
            )
            .with(&[("outcome", "direct")], get(&c.holepunch_direct))
            .with(&[("outcome", "failed")], get(&c.holepunch_failed)),
            Family::single(
                "streembit_relayed_sessions_incoming",
                "Relayed sessions announced to this node as their target.",
                Kind::Counter,
                get(&c.incoming_sessions),
            ),
            {
                let mut refused = Family::new(
                    "streembit_nat_requests_refused",
                    "NAT-traversal requests refused, by the error code answered \
                     (undecodable: none could be).",
                    Kind::Counter,
                );
                if let Ok(by_code) = c.refused.lock() {
                    for (code, n) in by_code.iter() {
                        refused.push(&[("code", code.as_str())], *n);
                    }
                }
                refused
            },
            Family::new(
                "streembit_udp_frames",
                "Non-QUIC datagrams on the socket, by kind.",
                Kind::Counter,
            )
            .with(&[("kind", "relayed_in")], get(&sc.relayed_in))
            .with(&[("kind", "relayed_out")], get(&sc.relayed_out))
            .with(&[("kind", "punch")], get(&sc.punches_received))
            .with(&[("kind", "dropped")], get(&sc.dropped)),
        ];
        if let Some(f) = paths.forwarder() {
            let r = f.counters();
            families.extend([
                Family::single(
                    "streembit_relay_reservations",
                    "Peers holding a reservation at this relay.",
                    Kind::Gauge,
                    self.reservations() as u64,
                ),
                Family::single(
                    "streembit_relay_sessions",
                    "Relayed sessions open at this relay.",
                    Kind::Gauge,
                    f.sessions(self.clock.instant()) as u64,
                ),
                Family::single(
                    "streembit_relay_sessions_opened",
                    "Relayed sessions opened at this relay.",
                    Kind::Counter,
                    get(&r.opened),
                ),
                Family::new(
                    "streembit_relay_sessions_refused",
                    "Relayed sessions refused, by limit.",
                    Kind::Counter,
                )
                .with(&[("reason", "full")], get(&r.refused_full))
                .with(&[("reason", "peer_limit")], get(&r.refused_peer_limit)),
                Family::single(
                    "streembit_relay_packets",
                    "Datagrams this relay forwarded.",
                    Kind::Counter,
                    get(&r.packets),
                ),
                Family::single(
                    "streembit_relay_bytes",
                    "Bytes this relay forwarded (frames, header included).",
                    Kind::Counter,
                    get(&r.bytes),
                ),
                Family::new(
                    "streembit_relay_dropped",
                    "Datagrams this relay dropped, by reason.",
                    Kind::Counter,
                )
                .with(&[("reason", "rate_limited")], get(&r.dropped_rate))
                .with(&[("reason", "unknown_session")], get(&r.dropped_unknown))
                .with(&[("reason", "wrong_source")], get(&r.dropped_wrong_source)),
            ]);
        }
        families
    }
}
