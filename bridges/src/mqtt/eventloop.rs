//! The MQTT event loop: owns the rumqttc `EventLoop`, feeds [`MqttState`],
//! and reconnects with exponential backoff.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing as Out, Packet, QoS, Transport,
};
use tokio::time::Instant;

use super::config::MqttBus;
use super::state::{MqttState, Outgoing};
use super::tls::client_config;
use crate::bus::BusIo;
use crate::error::BridgeError;
use crate::status::StatusBoard;

/// Largest packet rumqttc accepts. A bigger one would drop the connection
/// and, being unacknowledged, come back forever; below it, `max_payload`
/// turns oversize messages into point errors. Brokers should cap messages
/// (mosquitto `message_size_limit`) at or below this.
const MAX_PACKET: usize = 16 * 1024 * 1024;
/// Requests rumqttc buffers (commands, acks, subscriptions).
const CLIENT_QUEUE: usize = 1024;

fn options(bus: &MqttBus) -> Result<MqttOptions, BridgeError> {
    let mut o = MqttOptions::new(&bus.client_id, &bus.host, bus.port);
    o.set_keep_alive(Duration::from_secs(u64::from(bus.keep_alive_s.max(5))))
        .set_clean_session(bus.clean_session)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(user) = &bus.username {
        o.set_credentials(user, bus.password.as_deref().unwrap_or(""));
    }
    if let Some(tls) = &bus.tls {
        let config = client_config(tls)?;
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    Ok(o)
}

fn publish(client: &AsyncClient, state: &mut MqttState, out: Outgoing) {
    if let Err(e) = client.try_publish(out.topic, QoS::AtLeastOnce, out.retain, out.payload) {
        state.handle_rejected(BridgeError::Io(format!("mqtt client queue: {e}")));
    }
}

fn push_status(state: &MqttState, board: &StatusBoard) {
    for (name, st) in state.statuses() {
        board.set(name, st.clone());
    }
}

/// Runs the bridge until the readings receiver is dropped.
pub(crate) async fn run(bus: MqttBus, io: BusIo) {
    let BusIo {
        readings,
        mut commands,
        status: board,
        clock,
    } = io;
    let mut state = MqttState::new(&bus);
    let opts = match options(&bus) {
        Ok(o) => o,
        Err(e) => {
            // A configuration that cannot even build (missing CA file):
            // report it on every device and refuse commands until stopped.
            state.handle_disconnected(&e.to_string(), clock.now());
            push_status(&state, &board);
            while let Some((_, reply)) = commands.recv().await {
                let _ = reply.send(Err(e.clone().into()));
            }
            return;
        }
    };
    let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(opts, CLIENT_QUEUE);
    let min = Duration::from_millis(bus.reconnect_min_ms);
    let max = Duration::from_millis(bus.reconnect_max_ms);
    let mut backoff = min;
    let mut retry_at: Option<Instant> = None;
    let mut commands_open = true;
    loop {
        let wait = retry_at.unwrap_or_else(|| clock.now().instant);
        tokio::select! {
            biased;
            () = readings.closed() => return,
            req = commands.recv(), if commands_open => match req {
                Some((cmd, reply)) => {
                    if let Some(out) = state.handle_command(cmd, reply) {
                        publish(&client, &mut state, out);
                    }
                }
                None => commands_open = false,
            },
            () = tokio::time::sleep_until(wait), if retry_at.is_some() => retry_at = None,
            ev = eventloop.poll(), if retry_at.is_none() => {
                let now = clock.now();
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        backoff = min;
                        let subs = state.subscriptions().into_iter().map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
                        if let Err(e) = client.try_subscribe_many(subs) {
                            tracing::warn!("mqtt subscribe: {e}");
                        }
                        for out in state.handle_connected(ack.session_present, now) {
                            publish(&client, &mut state, out);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let batch = state.handle_publish(&p.topic, &p.payload, now);
                        for r in batch {
                            if readings.send(r).await.is_err() {
                                return;
                            }
                        }
                        // Acknowledge only once the readings are queued.
                        if let Err(e) = client.try_ack(&p) {
                            tracing::warn!("mqtt ack: {e}; the broker will redeliver");
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => state.handle_puback(a.pkid),
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        if s.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                            tracing::warn!("mqtt: the broker refused a subscription");
                        }
                    }
                    Ok(Event::Outgoing(Out::Publish(pkid))) => state.handle_outgoing_publish(pkid),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("mqtt connection: {e}; retrying in {backoff:?}");
                        state.handle_disconnected(&e.to_string(), now);
                        retry_at = Some(now.instant + backoff);
                        backoff = (backoff * 2).min(max);
                    }
                }
                push_status(&state, &board);
            }
        }
    }
}
