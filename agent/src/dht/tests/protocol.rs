//! One or two cores driven by hand: who enters the table, timeouts,
//! rejections, timers (record rules: `records.rs`).

use std::time::Duration;

use proptest::prelude::*;

use super::util::{contact, dht, key, sends, SimVerifier};
use crate::dht::{Addrs, Config, Event, Message, Outcome, Time};
use crate::identity::NodeId;

/// Hands every message `from` wants to send to `to` over to `to`.
fn deliver(
    from: &mut crate::dht::Dht,
    from_i: u32,
    to: &mut crate::dht::Dht,
    now: Time,
    v: &mut SimVerifier,
) -> usize {
    let mut n = 0;
    for (c, m) in sends(from) {
        if c.id() == to.local().id() {
            to.handle_message(now, &key(from_i), Addrs::empty(), m, v);
            n += 1;
        }
    }
    n
}

#[test]
fn only_verified_senders_enter_the_table() {
    let mut v = SimVerifier::default();
    let (mut a, mut b, mut c) = (
        dht(1, Config::default()),
        dht(2, Config::default()),
        dht(3, Config::default()),
    );
    // c introduces itself to b, so b will list c.
    c.find_node(NodeId([0; 32]), Time(0));
    let _ = sends(&mut c);
    b.handle_message(
        Time(0),
        &key(3),
        Addrs::empty(),
        Message::Ping { rid: 9 },
        &mut v,
    );
    let _ = sends(&mut b);
    assert!(b.table().contains(contact(3).id()));

    let _ = a.bootstrap(vec![contact(2)], Time(0));
    assert!(a.table().is_empty(), "a seed enters only once it answers");
    assert_eq!(deliver(&mut a, 1, &mut b, Time(10), &mut v), 1);
    assert!(
        b.table().contains(contact(1).id()),
        "the requester was verified"
    );
    assert_eq!(deliver(&mut b, 2, &mut a, Time(20), &mut v), 1);
    assert!(a.table().contains(contact(2).id()));
    assert!(
        !a.table().contains(contact(3).id()),
        "listed is not verified"
    );
    // ...but a now asks c, and c enters a's table when c answers.
    let asks: Vec<_> = sends(&mut a);
    assert!(asks
        .iter()
        .any(|(to, m)| to.id() == contact(3).id() && matches!(m, Message::FindNode { .. })));
    for (_, m) in asks
        .into_iter()
        .filter(|(to, _)| to.id() == contact(3).id())
    {
        c.handle_message(Time(30), &key(1), Addrs::empty(), m, &mut v);
    }
    assert_eq!(deliver(&mut c, 3, &mut a, Time(40), &mut v), 1);
    assert!(a.table().contains(contact(3).id()));
    let ev = a.poll_event();
    assert!(
        matches!(
            ev,
            Some(Event::QueryFinished {
                outcome: Outcome::Nodes { .. },
                ..
            })
        ),
        "{ev:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A silent peer is retried once after `request_timeout`, declared
    /// failed after the second, and leaves the table after `max_failures`
    /// failed lookups; nothing happens a millisecond early.
    #[test]
    fn silent_peer_turns_unresponsive_after_timeout(ms in 1u64..20_000) {
        let cfg = Config { request_timeout: Duration::from_millis(ms), ..Config::default() };
        let mut v = SimVerifier::default();
        let mut a = dht(1, cfg);
        let mut rng = super::util::SimRng::new(ms);
        a.handle_message(Time(0), &key(2), Addrs::empty(), Message::Ping { rid: 1 }, &mut v);
        let _ = sends(&mut a);
        for round in 0..2u64 {
            let t0 = Time(round * 10 * ms);
            a.find_node(NodeId([7; 32]), t0);
            prop_assert_eq!(sends(&mut a).len(), 1);
            prop_assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(ms)));
            a.handle_timeout(t0 + Duration::from_millis(ms - 1), &mut rng);
            prop_assert!(sends(&mut a).is_empty());
            a.handle_timeout(t0 + Duration::from_millis(ms), &mut rng);
            prop_assert_eq!(sends(&mut a).len(), 1, "one retry");
            prop_assert!(a.poll_event().is_none());
            a.handle_timeout(t0 + Duration::from_millis(2 * ms), &mut rng);
            let finished = matches!(a.poll_event(), Some(Event::QueryFinished { .. }));
            prop_assert!(finished);
            prop_assert_eq!(a.table().contains(contact(2).id()), round == 0);
        }
        prop_assert_eq!(a.counters().timeouts, 4);
    }
}

#[test]
fn unknown_malformed_and_oversize_payloads_are_counted() {
    let mut v = SimVerifier::default();
    let mut a = dht(1, Config::default());
    let k = key(2);
    assert!(a
        .handle_payload(Time(0), &k, Addrs::empty(), "reading", b"", &mut v)
        .is_err());
    assert!(a
        .handle_payload(Time(0), &k, Addrs::empty(), "ping", b"\xff\xff", &mut v)
        .is_err());
    assert!(a
        .handle_payload(Time(0), &k, Addrs::empty(), "ping", &[0u8; 100], &mut v)
        .is_err());
    let c = a.counters();
    assert_eq!(
        (
            c.rejected_unknown_kind,
            c.rejected_malformed,
            c.rejected_oversize
        ),
        (1, 1, 1)
    );
    assert!(
        a.table().is_empty(),
        "a rejected payload does not count as contact"
    );
    // A good one works, and a reply nobody asked for is counted.
    let ping = Message::Ping { rid: 5 }.encode();
    assert!(a
        .handle_payload(Time(0), &k, Addrs::empty(), "ping", &ping, &mut v)
        .is_ok());
    assert_eq!(sends(&mut a), vec![(contact(2), Message::Pong { rid: 5 })]);
    a.handle_message(
        Time(0),
        &k,
        Addrs::empty(),
        Message::Pong { rid: 77 },
        &mut v,
    );
    assert_eq!(a.counters().unsolicited_replies, 1);
}

#[test]
fn reply_from_another_peer_than_asked_is_ignored() {
    let mut v = SimVerifier::default();
    let mut a = dht(1, Config::default());
    a.handle_message(
        Time(0),
        &key(2),
        Addrs::empty(),
        Message::Ping { rid: 1 },
        &mut v,
    );
    let _ = sends(&mut a);
    a.find_node(NodeId([1; 32]), Time(0));
    let (_, m) = sends(&mut a).pop().expect("a request");
    a.handle_message(
        Time(5),
        &key(3),
        Addrs::empty(),
        Message::Nodes {
            rid: m.rid(),
            nodes: vec![],
        },
        &mut v,
    );
    assert_eq!(a.counters().unsolicited_replies, 1);
    assert_eq!(a.active_queries(), 1, "still waiting for the real peer");
}

/// Participants whose ids fall in the same bucket of `local`'s table.
fn same_bucket(local: u32, n: usize) -> Vec<u32> {
    let me = *contact(local).id();
    let t = crate::dht::RoutingTable::new(me, 1, 0, Duration::ZERO);
    let first = (local + 1..).find(|&i| t.bucket_index(contact(i).id()) == Some(0));
    let Some(first) = first else { return vec![] };
    (first..)
        .filter(|&i| t.bucket_index(contact(i).id()) == Some(0))
        .take(n)
        .collect()
}

#[test]
fn full_bucket_pings_least_recently_seen_then_evicts_on_timeout() {
    let cfg = Config {
        k: 1,
        replacement_cache: 2,
        ping_after: Duration::ZERO,
        ..Config::default()
    };
    let timeout = cfg.request_timeout;
    let mut v = SimVerifier::default();
    let mut rng = super::util::SimRng::new(5);
    let mut a = dht(1, cfg);
    let ids = same_bucket(1, 3);
    let (x, y, z) = (ids[0], ids[1], ids[2]);
    a.handle_message(
        Time(0),
        &key(x),
        Addrs::empty(),
        Message::Ping { rid: 1 },
        &mut v,
    );
    let _ = sends(&mut a);
    // y arrives at a full bucket: x is pinged, y waits.
    a.handle_message(
        Time(10),
        &key(y),
        Addrs::empty(),
        Message::Ping { rid: 2 },
        &mut v,
    );
    let out = sends(&mut a);
    let ping = out
        .iter()
        .find(|(to, m)| to.id() == contact(x).id() && matches!(m, Message::Ping { .. }));
    let Some((_, ping)) = ping else {
        panic!("x must be pinged: {out:?}")
    };
    // x answers: it stays; y stays in the cache.
    a.handle_message(
        Time(20),
        &key(x),
        Addrs::empty(),
        Message::Pong { rid: ping.rid() },
        &mut v,
    );
    assert!(a.table().contains(contact(x).id()) && !a.table().contains(contact(y).id()));
    // z arrives: x is pinged again and this time stays silent.
    a.handle_message(
        Time(30),
        &key(z),
        Addrs::empty(),
        Message::Ping { rid: 3 },
        &mut v,
    );
    assert!(sends(&mut a)
        .iter()
        .any(|(to, m)| to.id() == contact(x).id() && matches!(m, Message::Ping { .. })));
    a.handle_timeout(Time(30) + timeout, &mut rng);
    assert!(!a.table().contains(contact(x).id()), "silent entry evicted");
    assert!(
        a.table().contains(contact(z).id()),
        "newest replacement promoted"
    );
    assert_eq!(a.table().len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No byte string makes a decoder panic, and whatever decodes
    /// re-encodes to something that decodes to the same message.
    #[test]
    fn decoders_never_panic_and_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for kind in crate::dht::MessageKind::ALL {
            if let Ok(m) = Message::decode(kind, &bytes) {
                prop_assert_eq!(Message::decode(kind, &m.encode()).ok(), Some(m));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Valid messages with a few bytes changed, cut or extended: decoding
    /// gives a message or an error, never a panic or an over-cap list.
    #[test]
    fn mutated_messages_decode_or_fail_cleanly(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let nodes = (10..13).map(contact).collect();
        let samples = [
            Message::Nodes { rid: 1, nodes },
            Message::Value { rid: 2, record: Some(vec![1; 40]), nodes: vec![contact(14)] },
            Message::Store { rid: 3, record: vec![2; 50] },
            Message::FindNode { rid: 4, target: NodeId([5; 32]) },
        ];
        for m in samples {
            let mut b = m.encode();
            for (i, v) in &flips {
                let at = i.index(b.len());
                b[at] = *v;
            }
            b.truncate(cut.index(b.len() + 1));
            b.extend_from_slice(&extra);
            if let Ok(Message::Nodes { nodes, .. } | Message::Value { nodes, .. }) = Message::decode(m.kind(), &b) {
                prop_assert!(nodes.len() <= crate::dht::MAX_CONTACTS);
                prop_assert!(nodes.iter().all(|c| c.addrs().len() <= crate::dht::MAX_ADDRS));
            }
        }
    }
}

#[test]
fn a_seed_that_did_not_answer_is_tried_again_with_backoff() {
    // Two halves that formed apart merge only if someone asks across: a
    // node keeps retrying a silent seed, less and less often.
    let mut v = SimVerifier::default();
    let mut rng = crate::dht::sim::SimRng::new(5);
    let cfg = Config {
        refresh_on_join: false,
        ..Config::default()
    };
    let rejoin = cfg.rejoin_after;
    let mut a = dht(1, cfg);
    let _ = a.bootstrap(vec![contact(2), contact(3)], Time(0));
    let mut t = Time(0);
    let answer = |a: &mut crate::dht::Dht, t: Time, v: &mut SimVerifier| {
        let mut to_silent = 0;
        for (to, m) in sends(a) {
            if to.id() == contact(2).id() {
                let reply = Message::Nodes {
                    rid: m.rid(),
                    nodes: vec![],
                };
                a.handle_message(t, &key(2), Addrs::empty(), reply, v);
            } else if to.id() == contact(3).id() {
                to_silent += 1;
                a.handle_unreachable(t, m.rid());
            }
        }
        to_silent
    };
    let mut waits = Vec::new();
    for _ in 0..3 {
        // Until the lookup is over: seed 2 answers, seed 3 never does.
        let mut asked_silent = 0;
        loop {
            let n = answer(&mut a, t, &mut v);
            asked_silent += n;
            if n == 0 && a.active_queries() == 0 {
                break;
            }
        }
        assert!(asked_silent > 0, "the silent seed was not asked");
        assert!(a.table().contains(contact(2).id()));
        assert!(!a.table().contains(contact(3).id()));
        let next = a.poll_timeout().expect("a retry is scheduled");
        waits.push(next.since(t));
        t = next;
        a.handle_timeout(t, &mut rng);
    }
    assert_eq!(waits, vec![rejoin, rejoin * 2, rejoin * 4]);
    // Once the seed answers, no more retries.
    loop {
        let out = sends(&mut a);
        if out.is_empty() {
            break;
        }
        for (to, m) in out {
            let k = if to.id() == contact(2).id() { 2 } else { 3 };
            let reply = Message::Nodes {
                rid: m.rid(),
                nodes: vec![],
            };
            a.handle_message(t, &key(k), Addrs::empty(), reply, &mut v);
        }
    }
    assert!(a.table().contains(contact(3).id()));
    assert!(a
        .poll_timeout()
        .is_none_or(|d| d.since(t) >= Duration::from_secs(3000)));
}
