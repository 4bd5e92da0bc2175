//! Starting a bridge from TOML and awaiting what it reports.

use streembit_bridges::{BridgeFile, BridgeHandle, BridgeOptions, DeviceStatus, Reading, Readings};

use crate::harness::process::PATIENCE;

/// Parses, validates and starts a bridge file on the current runtime.
pub fn start(toml: &str) -> (BridgeHandle, Readings) {
    let bus = match BridgeFile::from_toml_str(toml).and_then(BridgeFile::into_bus) {
        Ok(b) => b,
        Err(errs) => panic!("bad test bridge file: {errs:#?}\n{toml}"),
    };
    BridgeHandle::start(
        bus,
        &tokio::runtime::Handle::current(),
        BridgeOptions::default(),
    )
}

/// The next reading matching `pred`; readings that do not match are skipped.
pub async fn reading(
    readings: &mut Readings,
    what: &str,
    pred: impl Fn(&Reading) -> bool,
) -> Reading {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, readings.recv()).await {
            Ok(Some(r)) if pred(&r) => return r,
            Ok(Some(r)) => last = Some(r),
            Ok(None) => panic!("bridge stopped before {what}; last reading {last:#?}"),
            Err(_) => panic!("no reading {what} in {PATIENCE:?}; last reading {last:#?}"),
        }
    }
}

/// A reading of `device`.`point` matching `pred`.
pub async fn point(
    readings: &mut Readings,
    device: &str,
    point: &str,
    pred: impl Fn(&Reading) -> bool,
) -> Reading {
    reading(readings, &format!("{device}.{point}"), |r| {
        r.device == device && r.point == point && pred(r)
    })
    .await
}

/// Waits until `device`'s status matches `pred` and returns it.
pub async fn status(
    bridge: &BridgeHandle,
    device: &str,
    what: &str,
    pred: impl Fn(&DeviceStatus) -> bool,
) -> DeviceStatus {
    let mut rx = bridge.watch_status();
    let waited =
        tokio::time::timeout(PATIENCE, rx.wait_for(|m| m.get(device).is_some_and(&pred))).await;
    match waited {
        Ok(Ok(map)) => map
            .get(device)
            .cloned()
            .unwrap_or_else(|| panic!("{device} vanished")),
        _ => panic!(
            "{device} never became {what}; status {:#?}",
            bridge.status()
        ),
    }
}

/// Drains readings in the background so a bridge never waits on a full
/// channel while the test awaits something else; returns a receiver that
/// sees every reading.
pub fn tee(mut readings: Readings) -> Readings {
    let (tx, rx) = tokio::sync::mpsc::channel(1 << 16);
    tokio::spawn(async move {
        while let Some(r) = readings.recv().await {
            if tx.try_send(r).is_err() {
                // The test stopped looking; keep draining.
            }
        }
    });
    rx
}

/// Every distinct status one device goes through, recorded in the
/// background from the moment this is called.
#[derive(Debug, Clone)]
pub struct StatusLog(std::sync::Arc<tokio::sync::watch::Sender<Vec<DeviceStatus>>>);

impl StatusLog {
    /// Starts recording `device`'s statuses.
    pub fn start(bridge: &BridgeHandle, device: &str) -> StatusLog {
        let log = StatusLog(std::sync::Arc::new(tokio::sync::watch::Sender::new(
            Vec::new(),
        )));
        let (mut rx, out, device) = (bridge.watch_status(), log.clone(), device.to_owned());
        tokio::spawn(async move {
            loop {
                let st = rx.borrow_and_update().get(&device).cloned();
                if let Some(st) = st {
                    out.0.send_if_modified(|v| {
                        let new = v.last() != Some(&st);
                        if new {
                            v.push(st);
                        }
                        new
                    });
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        log
    }

    /// The statuses seen so far, oldest first.
    pub fn seen(&self) -> Vec<DeviceStatus> {
        self.0.borrow().clone()
    }

    /// Waits until a recorded status matches `pred`; returns the log.
    pub async fn until(
        &self,
        what: &str,
        pred: impl Fn(&DeviceStatus) -> bool,
    ) -> Vec<DeviceStatus> {
        let mut rx = self.0.subscribe();
        let waited = tokio::time::timeout(PATIENCE, rx.wait_for(|v| v.iter().any(&pred))).await;
        match waited {
            Ok(Ok(v)) => v.clone(),
            _ => panic!("status log never showed {what}: {:#?}", self.seen()),
        }
    }
}
