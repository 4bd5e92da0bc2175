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
//! it is marked offline, then backing off), and over `STEADY` once its
//! backoff has reached `backoff_max_ms` (after `RAMP`), and compared with
//! the baseline. Line settings: a fast meter line at 115200 baud, 100 ms
//! polls, 100 ms timeout, one retry, offline after 3 failed polls, backoff
//! up to 10 s (the default is 60 s, which costs the neighbour even less).

use std::time::{Duration, Instant};

use streembit_bridges::{BridgeFile, BridgeHandle, BridgeOptions, Readings};
use streembit_tests::peers::pty::PtyPair;
use streembit_tests::peers::pymodbus::ModbusServer;

const POLL_MS: u64 = 100;
const WINDOW: Duration = Duration::from_secs(10);
/// Until the victim's backoff reached its cap: 100 ms doubling to 10 s.
const RAMP: Duration = Duration::from_secs(26);
const STEADY: Duration = Duration::from_secs(30);

fn start(port: &std::path::Path) -> (BridgeHandle, Readings) {
    let toml = format!(
        r#"[modbus_rtu]
port = "{}"
baud = 115200
timeout_ms = 100
retries = 1
offline_after = 3
backoff_max_ms = 10000
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

/// Good readings of the neighbour per second over `window`.
async fn neighbour_rate(rx: &mut Readings, window: Duration) -> f64 {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < window {
        let left = window.saturating_sub(t0.elapsed());
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
    // Warm up: both slaves answered once before the baseline starts.
    let mut answered = (false, false);
    while answered != (true, true) {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(r)) if r.value.is_some() => {
                answered.0 |= r.device == "neighbour";
                answered.1 |= r.device == "victim";
            }
            Ok(Some(_)) => {}
            _ => panic!("no first readings: {:?}", bridge.status()),
        }
    }
    let base = neighbour_rate(&mut rx, WINDOW).await;
    match fault {
        // Later than twice the timeout: not even a retry can catch it.
        "slow" => server.slow(2, 250).await,
        mode => server.mode(2, mode).await,
    }
    let onset = neighbour_rate(&mut rx, WINDOW).await;
    let _ramp = neighbour_rate(&mut rx, RAMP.saturating_sub(WINDOW)).await;
    let steady = neighbour_rate(&mut rx, STEADY).await;
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
        println!("\n## Neighbour poll rate on an RTU line with a faulty slave (readings/s, poll {POLL_MS} ms; baseline and onset over {WINDOW:?}, steady over {STEADY:?} after {RAMP:?})\n");
        println!("| victim fault | baseline | onset | change | steady (backoff at cap) | change | victim offline |");
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
