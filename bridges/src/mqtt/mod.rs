//! MQTT devices through a broker (rumqttc).
//!
//! - `config`: the `[mqtt]` table and its checks (re-exported from
//!   [`crate::config`]).
//! - `payload`: payload text/JSON → typed values, and commands → payloads.
//! - `state`: the protocol state (topic map, device status, pending
//!   commands). It takes `now` and performs no I/O, like rumqttc's
//!   `state.rs`, one step further: ours never reads the clock.
//! - `eventloop`: owns the rumqttc `EventLoop`, feeds the state, and
//!   reconnects with backoff. It takes the same `BusIo` as every bus, but
//!   not the shared polling loop: the broker says when something happened.
//! - `tls`: rustls client configuration with the ring provider.
//!
//! Delivery: subscriptions and commands use QoS 1. Incoming messages are
//! acknowledged only after their readings are queued, and the session is
//! persistent by default, so a broker restart or a slow consumer loses no
//! QoS 1 message (at-least-once: a redelivered message can repeat a reading).
//!
//! This file only ties the table to the bus contract (`BusConfig`). What
//! the folder does not do: run a broker (the agent embeds one), or poll.

pub(crate) mod config;
mod eventloop;
pub(crate) mod payload;
mod state;
mod tls;

use crate::bus::{point_writers, BusConfig, BusIo, BusTask, Errors};
use config::MqttBus;

impl BusConfig for MqttBus {
    fn device_names(&self) -> Vec<&str> {
        self.devices.iter().map(|d| d.name.as_str()).collect()
    }

    fn writers(&self, device: &str, point: &str) -> Vec<String> {
        self.devices
            .iter()
            .find(|d| d.name == device)
            .and_then(|d| {
                d.points
                    .iter()
                    .find(|p| p.name == point)
                    .map(|p| point_writers(p.access, p.writers.as_ref(), &d.writers))
            })
            .unwrap_or_default()
    }

    fn point_names(&self, device: &str) -> Vec<String> {
        self.devices
            .iter()
            .find(|d| d.name == device)
            .map(|d| d.points.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    }

    fn validate(&self, path: &str, errs: &mut Errors) {
        self.check(path, errs);
    }

    fn start(&self, io: BusIo) -> BusTask {
        Box::pin(eventloop::run(self.clone(), io))
    }
}
