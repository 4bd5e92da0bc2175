//! Record rules, one or two cores driven by hand: self-certifying and
//! sequenced records, the key they are stored under, rollback, expiry and
//! republishing.

use std::time::Duration;

use super::util::{contact, dht, key, record, sends, RejectsAll, SimVerifier};
use crate::dht::{Addrs, Config, Event, Message, Outcome, StoreRefusal, Time, MAX_TTL};

const HOUR: Duration = Duration::from_secs(3600);

fn store(
    b: &mut crate::dht::Dht,
    from: u32,
    rec: Vec<u8>,
    now: Time,
    v: &mut SimVerifier,
) -> Result<(), StoreRefusal> {
    b.handle_message(
        now,
        &key(from),
        Addrs::empty(),
        Message::Store {
            rid: 1,
            record: rec,
        },
        v,
    );
    match sends(b).pop() {
        Some((_, Message::Stored { result, .. })) => result,
        other => panic!("expected STORED, got {other:?}"),
    }
}

#[test]
fn records_are_self_certifying_and_sequenced() {
    let mut v = SimVerifier::default();
    let mut b = dht(2, Config::default());
    let t = Time(100 * 3_600_000);
    assert_eq!(store(&mut b, 1, record(5, 3, t, HOUR), t, &mut v), Ok(()));
    assert_eq!(
        store(&mut b, 1, record(5, 2, t, HOUR), t, &mut v),
        Err(StoreRefusal::Stale)
    );
    assert_eq!(store(&mut b, 1, record(5, 4, t, HOUR), t, &mut v), Ok(()));
    let mut forged = record(6, 1, t, HOUR);
    forged[45] ^= 1;
    assert_eq!(
        store(&mut b, 1, forged, t, &mut v),
        Err(StoreRefusal::Invalid)
    );
    let too_long = record(6, 1, t, MAX_TTL + Duration::from_secs(1));
    assert_eq!(
        store(&mut b, 1, too_long, t, &mut v),
        Err(StoreRefusal::Invalid)
    );
    let expired = record(6, 1, t - 2 * HOUR, HOUR);
    assert_eq!(
        store(&mut b, 1, expired, t, &mut v),
        Err(StoreRefusal::Invalid)
    );
    assert_eq!(b.store().len(), 1);
    assert_eq!(b.counters().store_refused_total(), 4);
    // Rejected by a verifier that trusts nothing, whatever the bytes.
    b.handle_message(
        t,
        &key(1),
        Addrs::empty(),
        Message::Store {
            rid: 1,
            record: record(7, 1, t, HOUR),
        },
        &mut RejectsAll,
    );
    assert!(matches!(
        sends(&mut b).pop(),
        Some((
            _,
            Message::Stored {
                result: Err(StoreRefusal::Invalid),
                ..
            }
        ))
    ));
    // FIND_VALUE serves it.
    b.handle_message(
        t,
        &key(1),
        Addrs::empty(),
        Message::FindValue {
            rid: 8,
            key: *contact(5).id(),
        },
        &mut v,
    );
    match sends(&mut b).pop() {
        Some((
            _,
            Message::Value {
                record: Some(r), ..
            },
        )) => assert_eq!(r, record(5, 4, t, HOUR)),
        other => panic!("expected VALUE, got {other:?}"),
    }
}

#[test]
fn a_value_under_the_wrong_key_is_not_accepted() {
    let mut v = SimVerifier::default();
    let mut a = dht(1, Config::default());
    let t = Time(1_000_000);
    a.handle_message(t, &key(2), Addrs::empty(), Message::Ping { rid: 1 }, &mut v);
    let _ = sends(&mut a);
    let want = *contact(5).id();
    a.find_value(want, t);
    let (_, m) = sends(&mut a).pop().expect("FIND_VALUE");
    // Peer 2 answers with a valid record, but it is 6's, not 5's.
    let reply = Message::Value {
        rid: m.rid(),
        record: Some(record(6, 1, t, HOUR)),
        nodes: vec![],
    };
    a.handle_message(t, &key(2), Addrs::empty(), reply, &mut v);
    assert_eq!(a.counters().bad_records, 1);
    match a.poll_event() {
        Some(Event::QueryFinished {
            outcome: Outcome::Value { record },
            ..
        }) => assert!(record.is_none()),
        other => panic!("expected a finished query, got {other:?}"),
    }
}

/// A node on the path serving an older record that has not expired cannot
/// roll it back: the lookup hears a second holder and keeps the higher
/// sequence, whichever answers first.
/// Node 1 knows `peers` and starts a FIND_VALUE for contact 5's record;
/// returns it and the requests it sent.
fn finding(peers: &[u32], t: Time, v: &mut SimVerifier) -> (crate::dht::Dht, Vec<Sent>) {
    let mut a = dht(1, Config::default());
    for &peer in peers {
        a.handle_message(
            t,
            &key(peer),
            Addrs::empty(),
            Message::Ping {
                rid: u64::from(peer),
            },
            v,
        );
    }
    let _ = sends(&mut a);
    a.find_value(*contact(5).id(), t);
    let asked = sends(&mut a);
    (a, asked)
}

type Sent = (crate::dht::Contact, Message);

/// `to` (one of `peers`) answers its FIND_VALUE with `record`.
fn answer(
    a: &mut crate::dht::Dht,
    peers: &[u32],
    (to, m): &Sent,
    record: Option<Vec<u8>>,
    now: Time,
    v: &mut SimVerifier,
) {
    let peer = peers
        .iter()
        .copied()
        .find(|p| contact(*p).id() == to.id())
        .expect("asked a known peer");
    let reply = Message::Value {
        rid: m.rid(),
        record,
        nodes: vec![],
    };
    a.handle_message(now, &key(peer), Addrs::empty(), reply, v);
}

/// The record a finished FIND_VALUE returned (`Some(None)`: none found),
/// and how many requests it sent; `None` while it runs.
fn found(a: &mut crate::dht::Dht) -> Option<(Option<Vec<u8>>, u32)> {
    std::iter::from_fn(|| a.poll_event()).find_map(|e| match e {
        Event::QueryFinished {
            outcome: Outcome::Value { record },
            stats,
            ..
        } => Some((record, stats.messages)),
        _ => None,
    })
}

#[test]
fn a_rolled_back_record_is_not_returned() {
    let mut v = SimVerifier::default();
    let t = Time(1_000_000);
    let peers = [2, 3, 4];
    for stale_first in [true, false] {
        let (mut a, asked) = finding(&peers, t, &mut v);
        assert!(
            asked.len() >= 2,
            "FIND_VALUE goes to alpha peers: {asked:?}"
        );
        let mut answers = vec![
            (&asked[0], record(5, 3, t, HOUR)),
            (&asked[1], record(5, 9, t, HOUR)),
        ];
        if !stale_first {
            answers.reverse();
        }
        for (sent, rec) in answers {
            answer(&mut a, &peers, sent, Some(rec), t, &mut v);
        }
        assert_eq!(
            found(&mut a).map(|(r, _)| r),
            Some(Some(record(5, 9, t, HOUR))),
            "stale first: {stale_first}"
        );
    }
}

#[test]
fn a_second_holder_is_awaited_among_the_requests_in_flight_then_settled_for() {
    let mut v = SimVerifier::default();
    let mut rng = super::util::SimRng::new(3);
    let t = Time(1_000_000);
    let peers = [2, 3, 4];
    let (mut a, asked) = finding(&peers, t, &mut v);
    assert_eq!(asked.len(), 3);
    answer(
        &mut a,
        &peers,
        &asked[0],
        Some(record(5, 9, t, HOUR)),
        t + Duration::from_millis(10),
        &mut v,
    );
    assert!(
        sends(&mut a).is_empty(),
        "nobody new is asked while two answers are on their way"
    );
    assert_eq!(found(&mut a), None, "it waits for them");
    // They never come: the query settles for the one record well before
    // the requests would time out, without retrying them.
    let settle = a.poll_timeout().expect("a deadline");
    assert!(settle < t + Config::default().request_timeout, "{settle:?}");
    a.handle_timeout(settle, &mut rng);
    assert!(sends(&mut a).is_empty(), "no retries once settled");
    assert_eq!(found(&mut a), Some((Some(record(5, 9, t, HOUR)), 3)));
}

#[test]
fn when_no_request_in_flight_holds_the_record_one_more_node_is_asked() {
    let mut v = SimVerifier::default();
    let t = Time(1_000_000);
    let peers = [2, 3, 4, 6, 7];
    let (mut a, asked) = finding(&peers, t, &mut v);
    assert_eq!(asked.len(), 3, "alpha = 3");
    answer(
        &mut a,
        &peers,
        &asked[0],
        Some(record(5, 9, t, HOUR)),
        t,
        &mut v,
    );
    answer(&mut a, &peers, &asked[1], None, t, &mut v);
    assert!(sends(&mut a).is_empty(), "one answer is still on its way");
    answer(&mut a, &peers, &asked[2], None, t, &mut v);
    let more = sends(&mut a);
    assert_eq!(more.len(), 1, "one node at a time: {more:?}");
    answer(
        &mut a,
        &peers,
        &more[0],
        Some(record(5, 9, t, HOUR)),
        t,
        &mut v,
    );
    assert_eq!(found(&mut a), Some((Some(record(5, 9, t, HOUR)), 4)));
}

#[test]
fn records_expire_and_owners_are_asked_to_republish_at_half_ttl() {
    let mut v = SimVerifier::default();
    let mut rng = super::util::SimRng::new(3);
    let cfg = Config {
        refresh_interval: 100 * HOUR,
        ..Config::default()
    };
    let mut b = dht(2, cfg.clone());
    let t = Time(1_000_000);
    assert_eq!(store(&mut b, 1, record(5, 1, t, HOUR), t, &mut v), Ok(()));
    assert_eq!(b.poll_timeout(), Some(t + HOUR));
    b.handle_timeout(t + HOUR, &mut rng);
    assert!(b.store().is_empty());
    assert_eq!(
        b.poll_timeout(),
        Some(t + 100 * HOUR),
        "only the bucket refresh is left"
    );

    let mut a = dht(5, cfg);
    let q = a
        .publish(record(5, 1, t, 2 * HOUR), t, &mut v)
        .expect("valid record");
    // No contacts: the PUT ends at once with nobody to store at.
    assert!(
        matches!(a.poll_event(), Some(Event::QueryFinished { id, outcome: Outcome::Stored { acks: 0, .. }, .. }) if id == q)
    );
    assert_eq!(a.poll_timeout(), Some(t + HOUR));
    a.handle_timeout(t + HOUR, &mut rng);
    assert_eq!(
        a.poll_event(),
        Some(Event::RepublishDue {
            key: *contact(5).id()
        })
    );
    assert_eq!(a.poll_timeout(), None);

    // The publisher answers for its own record, also while the republish
    // is pending (a site whose only other holder restarted empty), and not
    // once it has expired.
    let mut ask = |now: Time, rid: u64| {
        let find = Message::FindValue {
            rid,
            key: *contact(5).id(),
        };
        a.handle_message(now, &key(7), Addrs::empty(), find, &mut v);
        sends(&mut a).into_iter().find_map(|(_, m)| match m {
            Message::Value { record, .. } => Some(record),
            _ => None,
        })
    };
    assert_eq!(ask(t + HOUR, 1), Some(Some(record(5, 1, t, 2 * HOUR))));
    assert_eq!(ask(t + 2 * HOUR, 2), Some(None));
}
