//! Readings where people already look: every verified reading also as
//! SenML JSON (RFC 8428), and, opt-in, Home Assistant MQTT discovery for
//! each point, so Node-RED, Home Assistant, Telegraf or Grafana show them
//! without a COSE library.
//!
//! - SenML: `<prefix>/senml/<device key>/<point>` carries a pack of one
//!   record: `bn` `urn:dev:streembit:<device key>:`, `n` the point, `v` /
//!   `vb` / `vs` the value, `u` the SenML unit when the bridge file's unit
//!   has one (RFC 8428 and RFC 8798 registries), `t` in seconds. A bad
//!   reading has no value: it is not published here (the COSE tree keeps
//!   it, with its reason).
//! - Discovery: a retained `<discovery prefix>/sensor/<node>/<object>/config`
//!   (a `binary_sensor` for a boolean point) with the name, unit, device
//!   class and state class Home Assistant expects, once per point, whose
//!   `state_topic` is the SenML topic. At most [`MAX_POINTS`] points.
//!
//! Only readings whose device signature verifies are republished: these
//! trees carry nothing the device did not sign, though they drop the
//! signature (the COSE tree keeps it).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::api::ReadingView;
use crate::identity::PublicKey;

/// Points announced to Home Assistant at most.
pub(crate) const MAX_POINTS: usize = 4096;

/// The SenML topic of a point.
pub(crate) fn senml_topic(prefix: &str, device: &PublicKey, point: &str) -> String {
    format!("{prefix}/senml/{device}/{point}")
}

/// The SenML pack of one reading, or `None` for a reading with no value.
pub(crate) fn senml(device: &PublicKey, r: &ReadingView) -> Option<Vec<u8>> {
    let value = r.value.as_ref()?;
    let mut record = json!({
        "bn": format!("urn:dev:streembit:{device}:"),
        "n": r.point,
        "t": r.timestamp_ms as f64 / 1000.0,
    });
    let fields = record.as_object_mut()?;
    match value {
        Value::Bool(b) => fields.insert("vb".into(), json!(b)),
        Value::Number(n) => fields.insert("v".into(), json!(n)),
        Value::String(s) => fields.insert("vs".into(), json!(s)),
        other => fields.insert("vs".into(), json!(other.to_string())),
    };
    if let Some(u) = r.unit.as_deref().and_then(senml_unit) {
        fields.insert("u".into(), json!(u));
    }
    serde_json::to_vec(&json!([record])).ok()
}

/// The SenML unit for a bridge file's unit, when there is one.
pub(crate) fn senml_unit(unit: &str) -> Option<&'static str> {
    Some(match unit.trim() {
        "°C" | "C" | "degC" | "Cel" => "Cel",
        "K" => "K",
        "%" | "%RH" => "%RH",
        "W" => "W",
        "kW" => "kW",
        "Wh" => "Wh",
        "kWh" => "kWh",
        "V" => "V",
        "mV" => "mV",
        "A" => "A",
        "mA" => "mA",
        "Hz" => "Hz",
        "Pa" => "Pa",
        "hPa" => "hPa",
        "kPa" => "kPa",
        "bar" => "bar",
        "lx" => "lx",
        "m" => "m",
        "s" => "s",
        "ppm" => "ppm",
        "VA" => "VA",
        "var" => "var",
        "m3" | "m³" => "m3",
        "l" | "L" => "l",
        "l/s" => "l/s",
        "dB" => "dB",
        _ => return None,
    })
}

/// Home Assistant's device class for a unit, when it has one.
fn device_class(unit: Option<&str>) -> Option<&'static str> {
    Some(match unit?.trim() {
        "°C" | "C" | "degC" | "Cel" | "K" => "temperature",
        "%RH" => "humidity",
        "W" | "kW" => "power",
        "Wh" | "kWh" => "energy",
        "V" | "mV" => "voltage",
        "A" | "mA" => "current",
        "Hz" => "frequency",
        "Pa" | "hPa" | "kPa" | "bar" => "pressure",
        "lx" => "illuminance",
        "VA" => "apparent_power",
        "var" => "reactive_power",
        "m3" | "m³" => "volume",
        _ => return None,
    })
}

/// An MQTT name part Home Assistant accepts (`[a-zA-Z0-9_-]`).
fn ha_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The points announced so far, bounded.
#[derive(Debug, Default)]
pub(crate) struct Announced(HashSet<(PublicKey, String)>);

impl Announced {
    /// Whether `(device, point)` still needs announcing: true once per
    /// point, and never past [`MAX_POINTS`].
    pub(crate) fn first(&mut self, device: &PublicKey, point: &str) -> bool {
        if self.0.len() >= MAX_POINTS {
            return false;
        }
        self.0.insert((*device, point.to_owned()))
    }
}

/// Home Assistant's discovery message for a point: its retained config
/// topic and payload.
pub(crate) fn discovery(
    discovery_prefix: &str,
    prefix: &str,
    device: &PublicKey,
    r: &ReadingView,
) -> (String, Vec<u8>) {
    let key = device.to_string();
    let node = format!("streembit_{}", &key[..16]);
    let object = ha_id(&r.point);
    let boolean = matches!(r.value, Some(Value::Bool(_)));
    let component = if boolean { "binary_sensor" } else { "sensor" };
    let state_topic = senml_topic(prefix, device, &r.point);
    let mut config = json!({
        "name": r.point,
        "unique_id": format!("{node}_{object}"),
        "object_id": format!("{}_{object}", ha_id(&r.device)),
        "state_topic": state_topic,
        "device": {
            "identifiers": [format!("streembit_{key}")],
            "name": r.device,
            "manufacturer": "Streembit",
            "model": "device signed by its own key",
        },
    });
    if let Some(fields) = config.as_object_mut() {
        if boolean {
            fields.insert(
                "value_template".into(),
                json!("{{ 'ON' if value_json[0].vb else 'OFF' }}"),
            );
        } else if matches!(r.value, Some(Value::Number(_))) {
            fields.insert("value_template".into(), json!("{{ value_json[0].v }}"));
            fields.insert("state_class".into(), json!("measurement"));
            if let Some(u) = r.unit.as_deref() {
                fields.insert("unit_of_measurement".into(), json!(u));
            }
            if let Some(c) = device_class(r.unit.as_deref().and_then(senml_unit)) {
                fields.insert("device_class".into(), json!(c));
            }
        } else {
            fields.insert("value_template".into(), json!("{{ value_json[0].vs }}"));
        }
    }
    (
        format!("{discovery_prefix}/{component}/{node}/{object}/config"),
        serde_json::to_vec(&config).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn reading(point: &str, value: Value, unit: Option<&str>) -> ReadingView {
        ReadingView {
            device: "meter 1".into(),
            point: point.into(),
            value: Some(value),
            unit: unit.map(str::to_owned),
            quality: "good".into(),
            timestamp_ms: 1_700_000_000_250,
            seq: 1,
            cose: None,
        }
    }

    #[test]
    fn a_reading_is_a_senml_pack_of_one_record() {
        let key = Keypair::from_seed(&[1; 32]).public();
        let pack: Value = serde_json::from_slice(
            &senml(&key, &reading("temp", json!(21.5), Some("°C"))).expect("pack"),
        )
        .expect("json");
        assert_eq!(
            pack,
            json!([{"bn": format!("urn:dev:streembit:{key}:"), "n": "temp", "v": 21.5,
                    "u": "Cel", "t": 1_700_000_000.25}])
        );
        let on: Value = serde_json::from_slice(
            &senml(&key, &reading("relay", json!(true), None)).expect("pack"),
        )
        .expect("json");
        assert_eq!(on[0]["vb"], true);
        assert!(on[0].get("u").is_none());
        let mut bad = reading("temp", json!(1), None);
        bad.value = None;
        assert!(senml(&key, &bad).is_none());
    }

    #[test]
    fn discovery_names_unit_class_and_state() {
        let key = Keypair::from_seed(&[1; 32]).public();
        let (topic, payload) = discovery(
            "homeassistant",
            "streembit",
            &key,
            &reading("power", json!(42.5), Some("W")),
        );
        let k = key.to_string();
        assert_eq!(
            topic,
            format!("homeassistant/sensor/streembit_{}/power/config", &k[..16])
        );
        let c: Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(c["device_class"], "power");
        assert_eq!(c["unit_of_measurement"], "W");
        assert_eq!(c["state_class"], "measurement");
        assert_eq!(c["state_topic"], format!("streembit/senml/{k}/power"));
        assert_eq!(c["device"]["name"], "meter 1");
        let (topic, _) = discovery(
            "homeassistant",
            "streembit",
            &key,
            &reading("on", json!(false), None),
        );
        assert!(topic.starts_with("homeassistant/binary_sensor/"));
        let mut seen = Announced::default();
        assert!(seen.first(&key, "power"));
        assert!(!seen.first(&key, "power"));
    }
}
