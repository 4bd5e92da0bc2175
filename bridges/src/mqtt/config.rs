//! `[mqtt]` table: one broker and the devices that publish through it.

use serde::Deserialize;

use crate::bus::{check_named_list, check_writers, Access, Errors};

/// One MQTT broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttBus {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (1883, or 8883 with TLS).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Client id; keep it stable so the broker keeps our QoS 1 session.
    pub client_id: String,
    /// Username, if the broker wants one. The agent's managed broker
    /// (`[mqtt] embedded = true`) wants one, and lets this account read the
    /// devices' topics and publish on their command topics, nothing else.
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<String>,
    /// TLS; plain TCP when absent.
    pub tls: Option<MqttTls>,
    /// Keep-alive, seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u16,
    /// Start a fresh session on every connect. Default false: the broker
    /// keeps our subscriptions and queues QoS 1 messages while we are away.
    #[serde(default)]
    pub clean_session: bool,
    /// First reconnect delay, ms (doubles up to `reconnect_max_ms`).
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Largest payload accepted, bytes; larger ones become point errors.
    #[serde(default = "default_max_payload")]
    pub max_payload: usize,
    /// Devices.
    pub devices: Vec<MqttDevice>,
}

/// TLS settings (rustls with the ring provider).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file of the CA certificates to trust; the system roots if absent.
    pub ca_file: Option<String>,
    /// PEM certificate chain for client authentication.
    pub client_cert_file: Option<String>,
    /// PEM private key for client authentication.
    pub client_key_file: Option<String>,
}

/// One device behind the broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttDevice {
    /// Device name, unique in the file.
    pub name: String,
    /// Public keys allowed to write this device's `rw` points.
    #[serde(default)]
    pub writers: Vec<String>,
    /// The account the device's own MQTT client logs in with on the
    /// agent's managed broker, which then lets it publish only on this
    /// device's point and availability topics and read only its command
    /// topics: what the gateway signs with the device's key is then what
    /// this device said. Not used with a broker of your own.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// Availability (last-will) topic; without it the device counts as
    /// online while the broker connection is up.
    pub availability: Option<Availability>,
    /// Points.
    pub points: Vec<MqttPoint>,
}

/// A device's availability topic (Tasmota `tele/<t>/LWT`, Shelly `online`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    /// Topic.
    pub topic: String,
    /// Payload meaning online.
    #[serde(default = "default_online")]
    pub online: String,
    /// Payload meaning offline.
    #[serde(default = "default_offline")]
    pub offline: String,
}

/// How a payload (or the JSON value a pointer selects) becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadType {
    /// true/false, or the text on/off/true/false/1/0 (any case).
    Bool,
    /// A whole number.
    Int,
    /// A number (scale and offset apply).
    Float,
    /// Text.
    String,
}

/// One point: a topic, optionally a JSON pointer into its payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttPoint {
    /// Point name, unique in its device.
    pub name: String,
    /// Topic the value arrives on (no wildcards).
    pub topic: String,
    /// RFC 6901 JSON pointer, e.g. `/ENERGY/Power`; when absent the whole
    /// payload is the value, as text.
    pub pointer: Option<String>,
    /// Value type.
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    /// Engineering value = value × scale + offset (numeric types).
    pub scale: Option<f64>,
    /// See `scale`.
    pub offset: Option<f64>,
    /// Unit.
    pub unit: Option<String>,
    /// "r" (default) or "rw"; rw needs `command`.
    #[serde(default)]
    pub access: Access,
    /// Where and how commands for this point are published.
    pub command: Option<MqttCommand>,
    /// Writers for this point only, replacing the device's list.
    pub writers: Option<Vec<String>>,
}

/// How a command's value is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandFormat {
    /// The value as text (bools as `on`/`off` payloads).
    #[default]
    Text,
    /// The value as JSON.
    Json,
}

/// Command topic of an `rw` point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttCommand {
    /// Topic (Tasmota `cmnd/<t>/POWER`, Shelly `shellies/<id>/relay/0/command`).
    pub topic: String,
    /// Payload format.
    #[serde(default)]
    pub format: CommandFormat,
    /// Text payload for `true`.
    #[serde(default = "default_on")]
    pub on: String,
    /// Text payload for `false`.
    #[serde(default = "default_off")]
    pub off: String,
    /// Publish retained.
    #[serde(default)]
    pub retain: bool,
}

fn default_port() -> u16 {
    1883
}
fn default_keep_alive() -> u16 {
    30
}
fn default_reconnect_min() -> u64 {
    100
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_max_payload() -> usize {
    64 * 1024
}
fn default_online() -> String {
    "Online".to_owned()
}
fn default_offline() -> String {
    "Offline".to_owned()
}
fn default_on() -> String {
    "ON".to_owned()
}
fn default_off() -> String {
    "OFF".to_owned()
}

fn check_topic(errs: &mut Errors, path: &str, topic: &str) {
    // Control characters would also break the broker's ACL file, one
    // topic per line.
    if topic.is_empty() || topic.contains(['#', '+']) || topic.chars().any(char::is_control) {
        errs.push(
            path,
            "a topic must be non-empty, without wildcards or control characters",
        );
    }
}

/// A username goes into the managed broker's password file
/// (`name:hash`) and ACL file (`user name`), one per line.
fn check_account(errs: &mut Errors, path: &str, username: Option<&str>, password: Option<&str>) {
    if password.is_some() && username.is_none() {
        errs.push(&format!("{path}.password"), "a password needs a username");
    }
    if let Some(u) = username {
        errs.check(
            !u.is_empty()
                && !u.contains(':')
                && !u.chars().any(|c| c.is_control() || c.is_whitespace()),
            &format!("{path}.username"),
            "must be non-empty, without ':', spaces or control characters",
        );
    }
    if let Some(p) = password {
        errs.check(
            !p.chars().any(char::is_control),
            &format!("{path}.password"),
            "must not contain control characters",
        );
    }
}

impl MqttBus {
    /// See [`BusConfig::validate`](crate::bus::BusConfig::validate).
    pub(super) fn check(&self, path: &str, errs: &mut Errors) {
        errs.check(
            !self.host.is_empty(),
            &format!("{path}.host"),
            "must not be empty",
        );
        errs.check(self.port > 0, &format!("{path}.port"), "must not be 0");
        errs.check(
            !self.client_id.is_empty() && self.client_id.len() <= 23 * 4,
            &format!("{path}.client_id"),
            "must be 1..=92 characters",
        );
        check_account(
            errs,
            path,
            self.username.as_deref(),
            self.password.as_deref(),
        );
        if let Some(t) = &self.tls {
            if t.client_cert_file.is_some() != t.client_key_file.is_some() {
                errs.push(
                    &format!("{path}.tls"),
                    "client_cert_file and client_key_file go together",
                );
            }
        }
        errs.check(
            self.reconnect_min_ms >= 1 && self.reconnect_min_ms <= self.reconnect_max_ms,
            &format!("{path}.reconnect_min_ms"),
            "must be at least 1 and at most reconnect_max_ms",
        );
        errs.check(
            self.max_payload >= 1,
            &format!("{path}.max_payload"),
            "must be positive",
        );
        check_named_list(
            errs,
            &format!("{path}.devices"),
            "device",
            self.devices.iter().map(|d| d.name.as_str()),
        );
        for (i, d) in self.devices.iter().enumerate() {
            let dp = format!("{path}.devices[{i}]");
            check_writers(errs, &format!("{dp}.writers"), &d.writers);
            check_account(errs, &dp, d.username.as_deref(), d.password.as_deref());
            if let Some(a) = &d.availability {
                check_topic(errs, &format!("{dp}.availability.topic"), &a.topic);
            }
            check_named_list(
                errs,
                &format!("{dp}.points"),
                "point",
                d.points.iter().map(|p| p.name.as_str()),
            );
            for (j, p) in d.points.iter().enumerate() {
                let pp = format!("{dp}.points[{j}]");
                check_topic(errs, &format!("{pp}.topic"), &p.topic);
                if let Some(ptr) = &p.pointer {
                    errs.check(
                        ptr.is_empty() || ptr.starts_with('/'),
                        &format!("{pp}.pointer"),
                        "a JSON pointer is empty or starts with '/'",
                    );
                }
                let numeric = matches!(p.payload_type, PayloadType::Int | PayloadType::Float);
                errs.scaling(&pp, p.scale, p.offset, numeric, "int and float");
                match (p.access, &p.command) {
                    (Access::ReadWrite, None) => {
                        errs.push(
                            &format!("{pp}.command"),
                            "an rw point needs a command topic",
                        );
                    }
                    (Access::Read, Some(_)) => {
                        errs.push(
                            &format!("{pp}.command"),
                            "a command on a read-only point; set access = \"rw\"",
                        );
                    }
                    (_, Some(c)) => check_topic(errs, &format!("{pp}.command.topic"), &c.topic),
                    (Access::Read, None) => {}
                }
                if p.access == Access::ReadWrite {
                    let has = p
                        .writers
                        .as_ref()
                        .map_or(!d.writers.is_empty(), |w| !w.is_empty());
                    errs.check(
                        has,
                        &format!("{pp}.writers"),
                        "an rw point needs writers (here or on its device)",
                    );
                } else if p.writers.is_some() {
                    errs.push(
                        &format!("{pp}.writers"),
                        "writers on a read-only point; set access = \"rw\"",
                    );
                }
                if let Some(w) = &p.writers {
                    check_writers(errs, &format!("{pp}.writers"), w);
                }
            }
        }
    }
}
