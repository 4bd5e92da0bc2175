//! Metrics as plain data, encoded for `/metrics` with prometheus-client.
//!
//! Each layer (node, devices) reports its counters as [`Family`] values —
//! snapshots, no shared mutable registry — and the API encodes them all in
//! one OpenMetrics text document per scrape. Counter names are given
//! without the `_total` suffix; the encoder adds it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Counter (monotonic) or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; exported as `<name>_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric family: its samples, each with its own labels.
#[derive(Debug, Clone)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, Sample)>,
}

/// One sample's value: counts, or a gauge that can be negative or
/// fractional (a clock offset in seconds).
#[derive(Debug, Clone, Copy)]
enum Sample {
    Count(u64),
    Real(f64),
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// A family of one unlabelled sample.
    pub fn single(name: &'static str, help: &'static str, kind: Kind, value: u64) -> Self {
        Self::new(name, help, kind).with(&[], value)
    }

    /// Adds a sample with `labels`.
    pub fn with(mut self, labels: &[(&'static str, &str)], value: u64) -> Self {
        self.push(labels, value);
        self
    }

    /// Adds a sample with `labels`.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: u64) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.samples.push((labels, Sample::Count(value)));
    }

    /// Adds a real-valued sample with `labels` (a gauge's reading).
    pub fn push_real(&mut self, labels: &[(&'static str, &str)], value: f64) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.samples.push((labels, Sample::Real(value)));
    }

    /// A gauge of one unlabelled real value (negative allowed).
    pub fn real(name: &'static str, help: &'static str, value: f64) -> Self {
        let mut f = Self::new(name, help, Kind::Gauge);
        f.samples.push((Vec::new(), Sample::Real(value)));
        f
    }
}

#[derive(Debug)]
struct Snapshot(Vec<Family>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let metric_type = match f.kind {
                Kind::Counter => ConstCounter::new(0u64).metric_type(),
                Kind::Gauge => ConstGauge::new(0i64).metric_type(),
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, metric_type)?;
            for (labels, value) in &f.samples {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sample = family.encode_family(&labels)?;
                match (f.kind, *value) {
                    (Kind::Counter, Sample::Count(n)) => ConstCounter::new(n).encode(sample)?,
                    (Kind::Counter, Sample::Real(x)) => {
                        ConstCounter::new(x.max(0.0)).encode(sample)?
                    }
                    (Kind::Gauge, Sample::Count(n)) => {
                        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(sample)?
                    }
                    (Kind::Gauge, Sample::Real(x)) => ConstGauge::new(x).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// Media type of [`encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes every family in the OpenMetrics text format.
pub(crate) fn encode(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(families)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_total_and_labels_are_kept() {
        let text = encode(vec![
            Family::new("x_refused", "Refusals.", Kind::Counter)
                .with(&[("reason", "a")], 3)
                .with(&[("reason", "b")], 0),
            Family::single("x_open", "Open things.", Kind::Gauge, 7),
            Family::real("x_offset_seconds", "An offset.", -7200.25),
        ]);
        assert!(text.contains("# TYPE x_refused counter"), "{text}");
        assert!(text.contains("x_refused_total{reason=\"a\"} 3"), "{text}");
        assert!(text.contains("x_refused_total{reason=\"b\"} 0"), "{text}");
        assert!(text.contains("# TYPE x_open gauge\n"), "{text}");
        assert!(text.contains("x_open 7"), "{text}");
        assert!(text.contains("x_offset_seconds -7200.25"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
