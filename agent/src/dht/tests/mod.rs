//! Core tests.
//!
//! - `table.rs`: proptest properties of the routing table.
//! - `protocol.rs`: one or two cores driven by hand: handshakes, timeouts,
//!   rejections, timers, persistence.
//! - `records.rs`: record rules (sequence, key, rollback, expiry), by hand.
//! - `sim.rs`: the figures-table scenarios at N = 1,000 and determinism.
//! - here: the check that the core stays sans-IO.

mod protocol;
mod records;
mod sim;
mod table;
mod util;

/// The core must not reach for I/O, clocks, threads or ambient randomness:
/// only `sim/` and `tests/` may (and `sim/` does not either, by design).
#[test]
fn core_sources_are_sans_io() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dht");
    let forbidden = [
        "tokio",
        "std::net",
        "Instant::now",
        "SystemTime::now",
        "std::thread",
        "thread::spawn",
        "thread_rng",
        "OsRng",
        "HashMap",
        "std::fs",
        "std::io::stdin",
    ];
    let mut checked = 0;
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                // The simulator and the tests are not the core.
                if name != "sim" && name != "tests" {
                    dirs.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            for f in forbidden {
                assert!(!text.contains(f), "{} mentions {f}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "expected the core's files, found {checked}");
}
