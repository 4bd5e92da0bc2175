//! MQTT devices through a broker (rumqttc).
//!
//! - `payload`: payload text/JSON → typed values, and commands → payloads.
//! - `state`: the protocol state (topic map, device status, pending
//!   commands). It takes `now` and performs no I/O, like rumqttc's
//!   `state.rs`, one step further: ours never reads the clock.
//! - `eventloop`: owns the rumqttc `EventLoop`, feeds the state, and
//!   reconnects with backoff.
//! - `tls`: rustls client configuration with the ring provider.
//!
//! Delivery: subscriptions and commands use QoS 1. Incoming messages are
//! acknowledged only after their readings are queued, and the session is
//! persistent by default, so a broker restart or a slow consumer loses no
//! QoS 1 message (at-least-once: a redelivered message can repeat a reading).

mod eventloop;
pub(crate) mod payload;
mod state;
mod tls;

pub(crate) use eventloop::run;
