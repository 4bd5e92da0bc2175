//! Opt-in per-point gauges on `/metrics` (`[metrics] point_gauges`): the
//! latest verified value of each numeric point as
//! `streembit_point_value{device, key, point, unit}`, so Prometheus and
//! Grafana chart readings with nothing else in between.
//!
//! Bounded: at most `[metrics] max_point_gauges` series (default 1,000); a
//! point past it is not exported, and counted
//! (`streembit_point_gauges_refused_total`), so a gateway with many devices
//! cannot blow up a scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::verified_feed::{Lagged, Verified};
use crate::metrics::{Family, Kind};

/// `[metrics]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Export each numeric point's latest verified value as a gauge.
    pub point_gauges: bool,
    /// Series exported at most.
    pub max_point_gauges: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            point_gauges: false,
            max_point_gauges: 1000,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// (device name, key, point, unit) → value.
    latest: BTreeMap<(String, String, String, String), f64>,
    refused: u64,
}

/// The gauges, fed by the verified feed.
#[derive(Debug, Clone, Default)]
pub(crate) struct PointGauges(Option<Arc<Mutex<State>>>);

impl PointGauges {
    /// Gauges fed from `feed` when `section` asks for them; none otherwise.
    pub(crate) fn start(
        section: &MetricsSection,
        mut feed: broadcast::Receiver<Arc<Verified>>,
        lagged: Lagged,
    ) -> Self {
        if !section.point_gauges {
            return Self(None);
        }
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let max = section.max_point_gauges;
        tokio::spawn(async move {
            while let Some(v) = lagged.recv(&mut feed).await {
                if let Ok(mut s) = s.lock() {
                    record(&mut s, &v, max);
                }
            }
        });
        Self(Some(state))
    }

    /// Metric families (none when off).
    pub(crate) fn families(&self) -> Vec<Family> {
        let Some(state) = &self.0 else {
            return Vec::new();
        };
        let Ok(s) = state.lock() else {
            return Vec::new();
        };
        let mut gauge = Family::new(
            "streembit_point_value",
            "Latest verified value of each numeric point (booleans as 0/1), by device name, device key, point and unit.",
            Kind::Gauge,
        );
        for ((device, key, point, unit), value) in &s.latest {
            gauge.push_real(
                &[
                    ("device", device),
                    ("key", key),
                    ("point", point),
                    ("unit", unit),
                ],
                *value,
            );
        }
        vec![
            gauge,
            Family::single(
                "streembit_point_gauges_refused",
                "Points not exported as gauges: [metrics] max_point_gauges was reached.",
                Kind::Counter,
                s.refused,
            ),
        ]
    }
}

fn record(s: &mut State, v: &Verified, max: usize) {
    let value = match &v.view.value {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    let Some(value) = value else { return };
    let id = (
        v.view.device.clone(),
        v.key.to_string(),
        v.view.point.clone(),
        v.view.unit.clone().unwrap_or_default(),
    );
    if !s.latest.contains_key(&id) && s.latest.len() >= max {
        s.refused += 1;
        return;
    }
    s.latest.insert(id, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReadingView;
    use crate::identity::Keypair;

    fn verified(point: &str, value: serde_json::Value) -> Verified {
        Verified {
            key: Keypair::from_seed(&[1; 32]).public(),
            view: ReadingView {
                device: "meter".into(),
                point: point.into(),
                value: Some(value),
                unit: Some("W".into()),
                quality: "good".into(),
                timestamp_ms: 1,
                seq: 1,
                cose: None,
            },
        }
    }

    #[test]
    fn the_latest_value_of_each_point_bounded() {
        let mut s = State::default();
        record(&mut s, &verified("power", serde_json::json!(1.5)), 2);
        record(&mut s, &verified("power", serde_json::json!(2.5)), 2);
        record(&mut s, &verified("on", serde_json::json!(true)), 2);
        record(&mut s, &verified("text", serde_json::json!("x")), 2);
        record(&mut s, &verified("third", serde_json::json!(3)), 2);
        assert_eq!(s.latest.len(), 2);
        assert_eq!(s.refused, 1);
        assert!(s.latest.values().any(|v| *v == 2.5));
        assert!(s.latest.values().any(|v| *v == 1.0));
    }
}
