//! Incoming connections: the accept loop. A connection made to a hosted
//! device's name goes to the devices layer, counted against the same
//! connection caps as any other; any other connection joins the node's
//! cache and its request loop.
//!
//! A hosted device's name is answered only to an address that already
//! holds a verified connection to this agent, or to a relayed session
//! (see `transport::Answer`): probing for devices costs the prober a
//! handshake with the gateway first.
//!
//! What this file does not do: admission (the handshake's verifier asks
//! the transport's membership before a connection exists).

use tokio::sync::watch;

use super::rpc::{self, Input};
use super::Node;
use crate::transport::socket::is_virtual;
use crate::transport::Answer;

impl Node {
    /// Accepts connections until shutdown, each handshake in its own task.
    pub(super) fn spawn_accept_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let conns = self.conns.clone();
        let nat = self.nat.clone();
        let inputs = self.inputs_tx.clone();
        let device_streams = self.device_streams.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            loop {
                let incoming = tokio::select! {
                    i = conns.endpoint().incoming() => i,
                    _ = shutdown.changed() => None,
                };
                let Some(incoming) = incoming else { break };
                let conns = conns.clone();
                let inputs = inputs.clone();
                let device_streams = device_streams.clone();
                let clock = clock.clone();
                let nat = nat.clone();
                tokio::spawn(async move {
                    // A relayed session was opened by the relay for a
                    // client it verified; a direct address must already
                    // hold a verified connection (transport::Answer).
                    let from = incoming.remote_address();
                    let answer = if is_virtual(&from) || conns.holds_address(&from) {
                        Answer::Hosted
                    } else {
                        Answer::OwnOnly
                    };
                    let Ok(conn) = conns.endpoint().handshake(incoming, answer).await else {
                        return;
                    };
                    match conn.served_as() {
                        Some(device) if device != conns.endpoint().key() => {
                            // Counted against the same caps as any other.
                            let Some(_slot) = conns.admit_to_device(conn.peer().key()) else {
                                conn.close(
                                    super::connections::CLOSE_EVICTED,
                                    "too many connections",
                                );
                                return;
                            };
                            let membership = conns.endpoint().membership().clone();
                            rpc::serve_device_connection(
                                conn,
                                device,
                                membership,
                                clock,
                                device_streams,
                                conns.expelled(),
                            )
                            .await;
                        }
                        _ => {
                            conns.insert(conn.clone());
                            let _ = inputs.send(Input::Connected(conn.clone())).await;
                            // A peer that dials us may be one to learn the
                            // network's time from (see `time_sync.rs`).
                            if nat.time().wants_more() {
                                nat.time().sync_with(&conn).await;
                            }
                        }
                    }
                });
            }
        });
    }
}
