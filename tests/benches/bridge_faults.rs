//! Issue 10, item 5: how much a faulty slave slows the healthy one beside
//! it on the same RTU line. Not part of `cargo test` (tests assert counts
//! and states, never rates); run with
//!
//! ```text
//! cargo bench -p streembit-tests --bench bridge_faults
//! ```
//!
//! One PTY line, one pymodbus server, two slaves polled every `POLL_MS`:
//! the neighbour (unit 1) stays healthy; the victim (unit 2) first answers
//! normally (baseline), then stops answering, answers late, or answers
//! garbage. The neighbour's readings per second are counted over the
//! `WINDOW` after the fault starts (the victim still being retried before
//! it is marked offline) and over the next `WINDOW` (offline, backing off),
//! and compared with the baseline. Line settings are a realistic RTU
//! configuration: 200 ms timeout, one retry, offline after 3 failed polls,
//! backoff up to 5 s.

use std::time::{Duration, Instant};

use streembit_bridges::{BridgeFile, BridgeHandle, BridgeOptions, Readings};
use streembit_tests::pty::PtyPair;
use streembit_tests::pymodbus::ModbusServer;

const POLL_MS: u64 = 100;
const WINDOW: Duration = Duration::from_secs(10);

fn start(port: &std::path::Path) -> (BridgeHandle, Readings) {
    let toml = format!(
        r#"[modbus_rtu]
port = "{}"
baud = 115200
timeout_ms = 200
retries = 1
offline_after = 3
backoff_max_ms = 5000
[[modbus_rtu.devices]]
name = "neighbour"
unit_id = 1
poll_ms = {POLL_MS}
points = [ {{ name = "p", table = "holding_register", address = 0 }} ]
[[modbus_rtu.devices]]
name = "victim"
unit_id = 2
poll_ms = {POLL_MS}
points = [ {{ name = "p", table = "holding_register", address = 0 }} ]
"#,
        port.display()
    );
    let bus = match BridgeFile::from_toml_str(&toml).and_then(BridgeFile::into_bus) {
        Ok(b) => b,
        Err(e) => panic!("{e:?}"),
    };
    BridgeHandle::start(
        bus,
        &tokio::runtime::Handle::current(),
        BridgeOptions::default(),
    )
}

/// Good readings of the neighbour per second over `WINDOW`.
async fn neighbour_rate(rx: &mut Readings) -> f64 {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < WINDOW {
        let left = WINDOW.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(r)) if r.device == "neighbour" && r.value.is_some() => n += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("bridge stopped"),
            Err(_) => break,
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn one(fault: &str) -> (f64, f64, f64, bool) {
    let line = PtyPair::new().await;
    let mut server = ModbusServer::serial(&line.b, &[1, 2]).await;
    let (bridge, mut rx) = start(&line.a);
    let base = neighbour_rate(&mut rx).await;
    match fault {
        "slow" => server.slow(2, 300).await,
        mode => server.mode(2, mode).await,
    }
    let onset = neighbour_rate(&mut rx).await;
    let steady = neighbour_rate(&mut rx).await;
    let offline = bridge
        .device_status("victim")
        .is_some_and(|s| !s.is_online());
    bridge.stop().await;
    (base, onset, steady, offline)
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        println!("\n## Neighbour poll rate on an RTU line with a faulty slave (readings/s, poll {POLL_MS} ms, windows of {WINDOW:?})\n");
        println!("| victim fault | baseline | first window | change | second window | change | victim offline |");
        println!("|---|---:|---:|---:|---:|---:|---|");
        for fault in ["mute", "slow", "noise", "badcrc"] {
            let (base, onset, steady, offline) = one(fault).await;
            let pct = |x: f64| (x / base - 1.0) * 100.0;
            println!(
                "| {fault} | {base:.2} | {onset:.2} | {:+.1}% | {steady:.2} | {:+.1}% | {offline} |",
                pct(onset),
                pct(steady)
            );
        }
    });
}
