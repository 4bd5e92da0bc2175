//! Routing-table properties (proptest): whatever verified contacts arrive,
//! in whatever order, the table keeps its invariants and `closest` agrees
//! with a brute-force sort.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use crate::dht::{Addrs, Contact, RoutingTable, Time};
use crate::identity::NodeId;

/// Contacts from raw key bytes (ids are derived, so they are uniform).
fn contacts(keys: &[[u8; 32]]) -> Vec<Contact> {
    keys.iter()
        .map(|k| Contact::from_claimed(*k, Addrs::empty()))
        .collect()
}

fn table_from(local_key: [u8; 32], k: usize, keys: &[[u8; 32]]) -> (RoutingTable, Vec<Contact>) {
    let local = *Contact::from_claimed(local_key, Addrs::empty()).id();
    let mut t = RoutingTable::new(local, k, 2, Duration::ZERO);
    let cs = contacts(keys);
    for (i, c) in cs.iter().enumerate() {
        // Every third contact arrives twice (a refresh), and our own id
        // arrives too: neither may produce a duplicate or a self entry.
        let _ = t.on_verified(c.clone(), Time(i as u64));
        if i % 3 == 0 {
            let _ = t.on_verified(c.clone(), Time(i as u64 + 1));
        }
        let _ = t.on_verified(
            Contact::from_claimed(local_key, Addrs::empty()),
            Time(i as u64),
        );
    }
    (t, cs)
}

fn keys_strategy() -> impl Strategy<Value = Vec<[u8; 32]>> {
    prop::collection::vec(any::<[u8; 32]>(), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_duplicates_bucket_at_most_k_never_self(local in any::<[u8; 32]>(), keys in keys_strategy(), k in 1usize..24) {
        let (t, _) = table_from(local, k, &keys);
        let ids: Vec<NodeId> = t.iter().map(|c| *c.id()).collect();
        let unique: BTreeSet<NodeId> = ids.iter().copied().collect();
        prop_assert_eq!(ids.len(), unique.len(), "duplicate contact");
        prop_assert!(t.bucket_sizes().iter().all(|&n| n <= k), "bucket over k: {:?}", t.bucket_sizes());
        prop_assert!(!t.contains(t.local()), "own id stored");
        for c in t.iter() {
            // Every contact sits in the bucket of its shared prefix length.
            prop_assert!(t.bucket_index(c.id()).is_some());
        }
    }

    #[test]
    fn closest_is_xor_ordered_and_matches_brute_force(local in any::<[u8; 32]>(), keys in keys_strategy(), target in any::<[u8; 32]>(), n in 0usize..40) {
        let (t, _) = table_from(local, 20, &keys);
        let target = NodeId(target);
        let got: Vec<NodeId> = t.closest(&target, n).iter().map(|c| *c.id()).collect();
        let mut all: Vec<NodeId> = t.iter().map(|c| *c.id()).collect();
        all.sort_by_key(|id| id.distance(&target));
        all.truncate(n);
        prop_assert!(got.windows(2).all(|w| w[0].distance(&target) < w[1].distance(&target)));
        prop_assert_eq!(got, all);
    }

    #[test]
    fn small_tables_keep_everything(local in any::<[u8; 32]>(), keys in prop::collection::vec(any::<[u8; 32]>(), 0..20)) {
        // Fewer than k contacts can never overflow a bucket: all are kept.
        let (t, cs) = table_from(local, 20, &keys);
        let distinct: BTreeSet<NodeId> = cs.iter().map(|c| *c.id()).filter(|id| id != t.local()).collect();
        prop_assert_eq!(t.len(), distinct.len());
    }

    #[test]
    fn save_and_restore_round_trip(local in any::<[u8; 32]>(), keys in keys_strategy()) {
        let (t, _) = table_from(local, 20, &keys);
        let mut back = RoutingTable::new(*t.local(), 20, 2, Duration::ZERO);
        let n = back.restore(&t.to_bytes(), Time(0)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(n, t.len());
        let a: BTreeSet<NodeId> = t.iter().map(|c| *c.id()).collect();
        let b: BTreeSet<NodeId> = back.iter().map(|c| *c.id()).collect();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn restore_rejects_garbage() {
    let mut t = RoutingTable::new(NodeId([0; 32]), 20, 2, Duration::ZERO);
    assert!(t.restore(b"\xff\x00", Time(0)).is_err());
    assert!(t.restore(b"", Time(0)).is_err());
}
