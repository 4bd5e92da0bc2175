//! The figures table at N = 1,000 (rates, never times) and determinism.
//!
//! The lossless scenarios share one joined network (built once, cloned per
//! test) to keep debug-mode test time down; the bench runs the same
//! scenarios at N = 10,000 from scratch, see docs/dht.md.

use std::sync::OnceLock;

use crate::dht::sim::scenario::{self, Built, Params, Report};

const N: usize = 1000;

fn params() -> Params {
    Params::table(N, 1000, 7)
}

/// The lossless N = 1,000 network, joined once per test process.
fn joined() -> Built {
    static NET: OnceLock<Built> = OnceLock::new();
    NET.get_or_init(|| scenario::network(&params(), 0.0))
        .clone()
}

fn assert_rate(r: &Report, name: &str, min: f64) {
    let rate = r
        .rate(name)
        .unwrap_or_else(|| panic!("no rate {name} in\n{}", r.text));
    assert!(rate.total > 0, "{name}: nothing measured\n{}", r.text);
    assert!(
        rate.ratio() >= min,
        "{name}: {:.4} < {min}\n{}",
        rate.ratio(),
        r.text
    );
}

#[test]
fn lookups_find_every_live_node() {
    let r = scenario::lookup_on(joined(), &params(), 0.0);
    assert_rate(&r, "live node found", 1.0);
}

#[test]
fn lookups_survive_ten_percent_loss() {
    // Loss on the lookups here (to share the joined network); the bench
    // applies it from the first join on.
    let r = scenario::lookup_on(joined(), &params(), 0.10);
    assert_rate(&r, "live node found", 0.995);
}

#[test]
fn records_survive_twenty_percent_killed() {
    let r = scenario::kill_on(
        joined(),
        &Params {
            lookups: 500,
            ..params()
        },
    );
    assert_rate(&r, "stored record found", 0.99);
    assert_rate(&r, "live node found", 0.99);
}

#[test]
fn records_of_live_owners_survive_churn_with_republish() {
    let r = scenario::churn_on(
        joined(),
        &Params {
            records: 300,
            ..params()
        },
    );
    assert_rate(&r, "record of live owner found", 0.99);
}

#[test]
fn store_flood_stays_within_limits() {
    let r = scenario::flood_on(joined(), &params());
    assert_rate(&r, "store within limits", 1.0);
    assert_rate(&r, "legit record stored", 1.0);
}

#[test]
fn same_seed_same_bytes() {
    // A second, independent N = 1,000 run must print exactly what the
    // shared one prints.
    let p = Params {
        lookups: 300,
        ..params()
    };
    let a = scenario::lookup_on(joined(), &p, 0.0);
    let b = scenario::lookup(&p, 0.0);
    assert_eq!(a.text, b.text);
    let small = Params {
        nodes: 200,
        lookups: 100,
        ..p
    };
    let c = scenario::lookup(
        &Params {
            seed: 8,
            ..small.clone()
        },
        0.0,
    );
    let d = scenario::lookup(&small, 0.0);
    assert_ne!(c.text, d.text, "the seed must matter");
}

#[test]
fn disjoint_paths_find_every_live_node() {
    let r = scenario::lookup(
        &Params {
            nodes: 300,
            lookups: 200,
            paths: 3,
            ..params()
        },
        0.0,
    );
    assert_rate(&r, "live node found", 1.0);
}

#[test]
fn disjoint_paths_survive_twenty_percent_liars() {
    use crate::dht::sim::hostile;
    let p = Params {
        lookups: 500,
        paths: 3,
        ..params()
    };
    let r = hostile::lying_on(joined(), &p);
    assert_rate(&r, hostile::rate_name(3), 0.95);
    // Most random keys are some other node's to hold.
    assert_rate(&r, "random-key STOREs refused as not closest", 0.9);
}
