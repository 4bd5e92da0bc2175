//! The last hour of every numeric point this agent sees (its own devices'
//! and its subscriptions'), for the console's plots: bounded in memory and
//! on disk, and fed only with readings whose device signature verified
//! (`verified_feed.rs`).
//!
//! Per point at most [`MAX_SAMPLES`] samples younger than [`WINDOW`]; at
//! most [`MAX_POINTS`] points (a new point past it is not kept, and
//! counted). Saved to `<state>/console/history.json` every
//! [`SAVE_EVERY`] and read back at start, so a restart keeps the plots.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::api::ReadingView;
use crate::clock::Clock;
use crate::daemon::verified_feed::{Lagged, Verified};

/// How far back plots go.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);
/// Samples kept per point at most (one per 5 s over the hour).
pub(crate) const MAX_SAMPLES: usize = 720;
/// Points kept at most.
pub(crate) const MAX_POINTS: usize = 256;
/// How often the history is written to disk.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// One point's samples: `(ms since the epoch, value)`, oldest first.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Series {
    /// The device's name at its gateway.
    pub device: String,
    /// Unit, if any.
    pub unit: Option<String>,
    /// Samples.
    pub samples: VecDeque<(u64, f64)>,
}

/// What the console plots, keyed by `<device key>/<point>`.
#[derive(Debug, Default)]
pub(crate) struct History {
    series: BTreeMap<String, Series>,
    /// Points not kept: the table was full.
    pub refused_points: u64,
}

impl History {
    /// Adds a verified reading (numbers and booleans only).
    pub(crate) fn add(&mut self, key: &str, r: &ReadingView, now_ms: u64) {
        let value = match &r.value {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        };
        let Some(value) = value else { return };
        let id = format!("{key}/{}", r.point);
        if !self.series.contains_key(&id) && self.series.len() >= MAX_POINTS {
            self.refused_points += 1;
            return;
        }
        let s = self.series.entry(id).or_default();
        s.device.clone_from(&r.device);
        s.unit.clone_from(&r.unit);
        s.samples.push_back((r.timestamp_ms, value));
        let oldest = now_ms.saturating_sub(WINDOW.as_millis() as u64);
        while s.samples.len() > MAX_SAMPLES || s.samples.front().is_some_and(|(t, _)| *t < oldest) {
            s.samples.pop_front();
        }
    }

    /// The series of `<device key>/<point>` ids starting with `prefix`.
    pub(crate) fn series(&self, prefix: &str) -> BTreeMap<String, Series> {
        self.series
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn load(path: &Path) -> Self {
        let series = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Series>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .take(MAX_POINTS)
            .map(|(k, mut s)| {
                while s.samples.len() > MAX_SAMPLES {
                    s.samples.pop_front();
                }
                (k, s)
            })
            .collect();
        Self {
            series,
            refused_points: 0,
        }
    }
}

/// The history file.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("console").join("history.json")
}

/// Loads the history and keeps it fed from `feed` (verified readings
/// only) and saved, until `shutdown`.
pub(crate) fn start(
    state_dir: &Path,
    clock: Clock,
    mut feed: broadcast::Receiver<Arc<Verified>>,
    lagged: Lagged,
    live: broadcast::Sender<String>,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<Mutex<History>> {
    let file = path(state_dir);
    let history = Arc::new(Mutex::new(History::load(&file)));
    let h = history.clone();
    tokio::spawn(async move {
        let mut save = tokio::time::interval(SAVE_EVERY);
        loop {
            tokio::select! {
                r = lagged.recv(&mut feed) => match r {
                    Some(v) => {
                        let key = v.key.to_string();
                        if let Ok(mut h) = h.lock() {
                            h.add(&key, &v.view, clock.wall().0);
                        }
                        // The live page's event: the reading and its key.
                        let event = serde_json::json!({"key": key, "reading": v.view, "verified": true});
                        let _ = live.send(event.to_string());
                    }
                    None => break,
                },
                _ = save.tick() => save_to(&h, &file),
                _ = shutdown.changed() => break,
            }
        }
        save_to(&h, &file);
    });
    history
}

fn save_to(history: &Mutex<History>, file: &Path) {
    let Ok(bytes) = history.lock().map(|h| serde_json::to_vec(&h.series)) else {
        return;
    };
    let Ok(bytes) = bytes else { return };
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = crate::state_file::write_atomic(file, &bytes) {
        tracing::debug!(error = %e, "console history not saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(point: &str, v: f64, ts: u64) -> ReadingView {
        ReadingView {
            device: "d".into(),
            point: point.into(),
            value: Some(serde_json::json!(v)),
            unit: None,
            quality: "good".into(),
            timestamp_ms: ts,
            seq: 1,
            cose: None,
        }
    }

    #[test]
    fn the_history_is_bounded_in_time_samples_and_points() {
        let mut h = History::default();
        let hour = WINDOW.as_millis() as u64;
        for i in 0..2000u64 {
            h.add("k", &reading("p", i as f64, 10 * hour + i), 10 * hour + i);
        }
        let s = &h.series("k/")["k/p"];
        assert_eq!(s.samples.len(), MAX_SAMPLES);
        assert_eq!(s.samples.back(), Some(&(10 * hour + 1999, 1999.0)));
        // An hour later only the new sample is left.
        h.add("k", &reading("p", 1.0, 11 * hour + 2000), 11 * hour + 2000);
        assert_eq!(h.series("k/")["k/p"].samples.len(), 1);
        for i in 0..MAX_POINTS + 10 {
            h.add("k", &reading(&format!("q{i}"), 1.0, 0), 0);
        }
        assert_eq!(h.series("").len(), MAX_POINTS);
        assert!(h.refused_points >= 10);
    }
}
