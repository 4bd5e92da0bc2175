//! The flood scenario of the figures table: hostile peers fill one node's
//! store with STOREs; then legitimate owners store theirs, and the test is
//! whether the store's quotas kept room for them.

use std::time::Duration;

use crate::dht::{Message, StoreConfig, StoreRefusal};
use crate::identity::Keypair;

use super::records::sign_record;
use super::scenario::{network, sample, Built, Params, Rate, Report};

/// Hostile peers flood one node with STOREs; legitimate owners store after.
pub fn flood(p: &Params) -> Report {
    flood_on(network(p, 0.0), p)
}

/// [`flood`] on a lossless network built by [`network`].
pub fn flood_on(b: Built, p: &Params) -> Report {
    let mut r = Report::default();
    let store = StoreConfig {
        max_records: 1024,
        max_per_publisher: 8,
        max_devices_per_gateway: 8,
        max_record_bytes: 1024,
        max_total_bytes: 1 << 20,
        // The quotas alone, as if every hostile key were the victim's to
        // hold: the closeness check would refuse most of them first (the
        // `lying` scenario measures that).
        closest_only: false,
    };
    r.line(format!(
        "== flood: {} nodes, {} hostile peers x {} STOREs at one node, seed {}; limits {} records, {} per peer, {} B per record, {} B total ==",
        p.nodes, p.flooders, p.flood_per_peer, p.seed, store.max_records, store.max_per_publisher, store.max_record_bytes, store.max_total_bytes
    ));
    r.text.push_str(&b.text);
    let mut net = b.net;
    let all: Vec<usize> = (1..p.nodes).collect();
    let mut picked = sample(&mut net, &all, p.flooders + 51);
    let victim = picked.pop().unwrap_or(0);
    let legit: Vec<usize> = picked.split_off(p.flooders.min(picked.len()));
    let flooders = picked;
    net.set_store_config(victim, store.clone());
    let now = net.now();
    let exp = now + Duration::from_secs(3600);
    let mut sent = 0u64;
    for (a, &f) in flooders.iter().enumerate() {
        for j in 0..p.flood_per_peer {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(a as u64).to_le_bytes());
            seed[8..16].copy_from_slice(&(j as u64).to_le_bytes());
            seed[16..24].copy_from_slice(&p.seed.to_le_bytes());
            let kp = Keypair::from_seed(&seed);
            let mut record = match j % 10 {
                // An oversize record, and one with a broken signature.
                8 => sign_record(&kp, 1, now, exp, 2000),
                9 => {
                    let mut b = sign_record(&kp, 1, now, exp, 16);
                    b[50] ^= 1;
                    b
                }
                _ => sign_record(&kp, 1, now, exp, 900),
            };
            record.truncate(crate::dht::MAX_RECORD_WIRE_BYTES);
            net.inject(
                f,
                victim,
                Message::Store {
                    rid: j as u64,
                    record,
                },
            );
            sent += 1;
        }
        let t = net.now() + Duration::from_millis(2);
        net.run_until(t);
    }
    net.run_until(net.now() + Duration::from_secs(5));
    let mut legit_keys = Vec::new();
    for &o in &legit {
        let kp = Keypair::from_seed(&net.node(o).seed);
        let record = sign_record(&kp, 1, net.now(), net.now() + Duration::from_secs(3600), 32);
        net.inject(o, victim, Message::Store { rid: 1, record });
        legit_keys.push(*net.contact(o).id());
    }
    net.run_until(net.now() + Duration::from_secs(5));
    let v = &net.node(victim).dht;
    let c = v.counters();
    let refused = |k| c.store_refused.get(&k).copied().unwrap_or(0);
    r.line(format!(
        "hostile STOREs sent {sent}: accepted {}, refused {} (quota {}, too large {}, invalid {}, full {})",
        c.store_accepted.saturating_sub(legit_keys.len() as u64),
        c.store_refused_total(),
        refused(StoreRefusal::PublisherQuota),
        refused(StoreRefusal::TooLarge),
        refused(StoreRefusal::Invalid),
        refused(StoreRefusal::Full)
    ));
    let now = net.now();
    let kept = legit_keys
        .iter()
        .filter(|k| v.store().get(k, now).is_some())
        .count() as u64;
    let within =
        v.store().total_bytes() <= store.max_total_bytes && v.store().len() <= store.max_records;
    r.line(format!(
        "victim store: {} records, {} B of {} B allowed; estimated heap {} B",
        v.store().len(),
        v.store().total_bytes(),
        store.max_total_bytes,
        v.store().heap_bytes()
    ));
    r.rate_line(
        "store within limits",
        Rate {
            ok: u64::from(within),
            total: 1,
        },
    );
    r.rate_line(
        "legit record stored",
        Rate {
            ok: kept,
            total: legit_keys.len() as u64,
        },
    );
    r
}
