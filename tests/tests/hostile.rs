//! Hostile peers against a real `streembit run` on loopback (issue 10,
//! item 2). The attacker is [`HostilePeer`]: the agent's own library parts
//! with a real key, misused. Counts here keep `cargo test` short; the
//! `hostile` bench runs the issue's full counts and reports memory.

use std::net::SocketAddr;

use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::dht::{Addrs, Contact, Message, MessageKind};
use streembit_agent::wire::{NetworkId, UnixMillis};
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::labs::hostile::{self, private_agent, Answer, HostilePeer};

/// These tests measure one agent's counters exactly; one at a time keeps
/// a 2-core machine from turning them into timeout tests.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key_of(a: &AgentProcess) -> PublicKey {
    let bytes = hex::decode(&a.key).expect("hex key");
    PublicKey::from_bytes(&bytes).expect("key")
}

fn addr_of(a: &AgentProcess) -> SocketAddr {
    a.addr.parse().expect("agent address")
}

fn ping(rid: u64) -> Message {
    Message::Ping { rid }
}

#[test]
fn an_outsider_dialing_1000_times_gets_no_stream_no_byte_no_table_entry() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = private_agent(&tmp.path().join("a"), &[]);
    let target = key_of(&agent);
    let mut outsider = HostilePeer::new("acme", &[target]);
    const DIALS: u64 = 1000;
    let mut completed = 0;
    for i in 0..DIALS {
        // Should the client side ever see a connection, it tries to use it.
        if let Ok(conn) = outsider.dial(&target, addr_of(&agent)) {
            completed += 1;
            let env = outsider.seal(&target, &ping(i));
            let answers = outsider.send_all(&conn, vec![env], 1);
            assert!(
                !matches!(answers[0], Answer::Answered(_)),
                "the agent answered an outsider"
            );
        }
    }
    let refused = agent.metric("streembit_handshakes_refused_total{reason=\"not_allowlisted\"}");
    assert_eq!(
        refused, DIALS,
        "every dial refused and counted ({completed} looked complete client-side)"
    );
    assert_eq!(agent.metric("streembit_connections_opened_total"), 0);
    assert_eq!(agent.metric("streembit_app_bytes_received_total"), 0);
    assert_eq!(agent.metric("streembit_envelopes_accepted_total"), 0);
    assert_eq!(agent.metric("streembit_dht_table_size"), 0);
    assert!(agent.peers().is_empty());
}

#[test]
fn captured_envelopes_replayed_are_refused_also_after_a_restart() {
    let _serial = serial();
    const N: u64 = 1000;
    let tmp = tempfile::tempdir().expect("tmp");
    let peer_key = std::sync::Arc::new(Keypair::generate());
    let peer_hex = hex::encode(peer_key.public().as_bytes());
    let mut agent = private_agent(&tmp.path().join("a"), &[peer_hex]);
    let target = key_of(&agent);
    let mut peer = HostilePeer::with_key(peer_key, "acme", &[target]);

    let conn = peer
        .dial(&target, addr_of(&agent))
        .expect("allowlisted dial");
    let captured: Vec<Vec<u8>> = (0..N).map(|i| peer.seal(&target, &ping(i))).collect();
    let first = peer.send_all(&conn, captured.clone(), 32);
    let pongs = first
        .iter()
        .filter_map(|a| match a {
            Answer::Answered(b) => peer.open_answer(b),
            _ => None,
        })
        .filter(|m| m.kind() == MessageKind::Pong)
        .count() as u64;
    assert_eq!(pongs, N, "every original answered");
    assert_eq!(agent.metric("streembit_envelopes_accepted_total"), N);

    let again = peer.send_all(&conn, captured.clone(), 32);
    assert!(again.iter().all(|a| *a == Answer::Refused), "{again:?}");
    assert_eq!(agent.metric("streembit_envelopes_accepted_total"), N);
    assert_eq!(
        agent.metric("streembit_envelopes_rejected_total{reason=\"replayed\"}"),
        N
    );

    // A restart empties the replay window; the start-time floor still
    // refuses everything stamped before it.
    agent.restart(None);
    let conn = peer
        .dial(&target, addr_of(&agent))
        .expect("dial after restart");
    let after = peer.send_all(&conn, captured, 32);
    assert!(after.iter().all(|a| *a == Answer::Refused), "{after:?}");
    assert_eq!(agent.metric("streembit_envelopes_accepted_total"), 0);
    assert_eq!(
        agent.metric("streembit_envelopes_rejected_total{reason=\"replayed\"}"),
        N
    );
}

/// Every way a valid envelope can be spoiled, `n` of each kind in turn.
fn spoiled(peer: &mut HostilePeer, target: &PublicKey, n: u64) -> Vec<Vec<u8>> {
    let other_net: NetworkId = "other".parse().expect("id");
    let stranger = Keypair::generate();
    let elsewhere = Keypair::generate().public();
    let now = streembit_agent::clock::Clock::system().wall().0;
    let mut out = Vec::new();
    for i in 0..n {
        let mut flipped = peer.seal(target, &ping(i));
        let bit = (i as usize * 7919) % (flipped.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        out.push(flipped);
        out.push(peer.seal_foreign(&peer.key.clone(), &other_net, target, &ping(i), i));
        let net = peer.network().clone();
        out.push(peer.seal_foreign(&stranger, &net, target, &ping(i), i));
        out.push(peer.seal(&elsewhere, &ping(i)));
        out.push(peer.seal_at(target, &ping(i), UnixMillis(now - 600_000)));
        out.push(peer.seal_at(target, &ping(i), UnixMillis(now + 600_000)));
    }
    out
}

#[test]
fn spoiled_envelopes_are_never_accepted() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let peer_key = std::sync::Arc::new(Keypair::generate());
    let peer_hex = hex::encode(peer_key.public().as_bytes());
    let agent = private_agent(&tmp.path().join("a"), &[peer_hex]);
    let target = key_of(&agent);
    let mut peer = HostilePeer::with_key(peer_key, "acme", &[target]);
    let conn = peer.dial(&target, addr_of(&agent)).expect("dial");
    let bad = spoiled(&mut peer, &target, 300);
    let total = bad.len() as u64;
    let answers = peer.send_all(&conn, bad, 32);
    let answered = answers
        .iter()
        .filter(|a| matches!(a, Answer::Answered(_)))
        .count();
    assert_eq!(answered, 0, "a spoiled envelope was answered");
    assert_eq!(agent.metric("streembit_envelopes_accepted_total"), 0);
    let rejected: u64 = [
        "malformed",
        "bad_header",
        "missing_header",
        "duplicate_header",
        "wrong_alg",
        "bad_sender_key",
        "bad_signature",
        "wrong_network",
        "stale",
        "replayed",
        "unknown_kind",
        "wrong_audience",
        "oversize",
        "sender_mismatch",
    ]
    .iter()
    .map(|r| {
        agent.metric(&format!(
            "streembit_envelopes_rejected_total{{reason=\"{r}\"}}"
        ))
    })
    .sum();
    assert_eq!(rejected, total, "every refusal counted");
    assert_eq!(agent.metric("streembit_dht_table_size"), 0);
}

#[test]
fn an_allowlisted_flooder_stays_within_the_store_limits_and_the_highest_sequence_wins() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let peer_key = std::sync::Arc::new(Keypair::generate());
    let peer_hex = hex::encode(peer_key.public().as_bytes());
    let agent = private_agent(&tmp.path().join("a"), &[peer_hex]);
    let target = key_of(&agent);
    let mut peer = HostilePeer::with_key(peer_key, "acme", &[target]);
    let net = peer.network().clone();
    let conn = peer.dial(&target, addr_of(&agent)).expect("dial");

    // One owner's record, sequences 1..=60 in a scrambled order: only a
    // higher sequence may replace what is held.
    let owner = Keypair::generate();
    let mut seqs: Vec<u64> = (1..=60).collect();
    seqs.sort_by_key(|s| (s * 37) % 61);
    let mut envs: Vec<Vec<u8>> = seqs
        .iter()
        .map(|&s| {
            let record = hostile::peer_record(&owner, &net, s);
            peer.seal(&target, &Message::Store { rid: s, record })
        })
        .collect();
    let answers = peer.send_all(&conn, std::mem::take(&mut envs), 1);
    assert!(answers.iter().all(|a| matches!(a, Answer::Answered(_))));
    // Then a flood: records of 1,000 fresh owners, oversize records, and
    // bogus NODES "replies" listing made-up closer nodes.
    for i in 0..1000u64 {
        let record = if i % 10 == 9 {
            hostile::oversize_record(&Keypair::generate(), &net)
        } else {
            hostile::peer_record(&Keypair::generate(), &net, 1)
        };
        envs.push(peer.seal(
            &target,
            &Message::Store {
                rid: 1000 + i,
                record,
            },
        ));
    }
    for i in 0..300u64 {
        let nodes: Vec<Contact> = (0..20)
            .map(|_| Contact::from_verified(&Keypair::generate().public(), Addrs::empty()))
            .collect();
        envs.push(peer.seal(&target, &Message::Nodes { rid: i, nodes }));
    }
    let _ = peer.send_all(&conn, envs, 32);

    let held = agent.metric("streembit_records_stored");
    let quota = streembit_agent::internals::dht::DEFAULT_MAX_PER_PUBLISHER as u64;
    assert!(
        held <= quota,
        "{held} records held for one peer (quota {quota})"
    );
    assert!(agent.metric("streembit_dht_stores_total{result=\"refused_publisher_quota\"}") > 0);
    assert_eq!(
        agent.metric("streembit_dht_stores_total{result=\"refused_too_large\"}"),
        100
    );
    assert!(agent.metric("streembit_dht_stores_total{result=\"refused_stale\"}") > 0);
    assert_eq!(
        agent.metric("streembit_dht_messages_rejected_total{reason=\"unsolicited_reply\"}"),
        300
    );
    // None of the made-up nodes entered the table: only the peer itself.
    assert_eq!(
        agent.peers(),
        vec![hex::encode(peer.key.public().as_bytes())]
    );

    // The held record is the highest sequence.
    let ask = peer.seal(
        &target,
        &Message::FindValue {
            rid: 9,
            key: owner.public().node_id(),
        },
    );
    let got = match peer.send_all(&conn, vec![ask], 1).pop() {
        Some(Answer::Answered(b)) => peer.open_answer(&b),
        other => panic!("FIND_VALUE: {other:?}"),
    };
    let Some(Message::Value {
        record: Some(record),
        ..
    }) = got
    else {
        panic!("no record: {got:?}")
    };
    let opened =
        streembit_agent::wire::open_published(&record, &net, 4096).expect("held record opens");
    let rec: streembit_agent::internals::dht::PeerRecord =
        ciborium::from_reader(opened.payload()).expect("peer record");
    assert_eq!(rec.seq, 60);
}

#[test]
fn a_legitimate_peer_connects_through_a_handshake_flood() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let legit_key = std::sync::Arc::new(Keypair::generate());
    let legit_hex = hex::encode(legit_key.public().as_bytes());
    let agent = private_agent(&tmp.path().join("a"), &[legit_hex]);
    let target = key_of(&agent);
    let addr = addr_of(&agent);
    // The flooder's Initials carry an outsider's ClientHello, each under
    // its own connection id (a server knows an attempt by that id, so a
    // replay of one Initial from many ports is one attempt).
    let outsider = HostilePeer::new("acme", &[target]);
    let initials = outsider.capture_initials(&target, 300);
    let stop = AtomicBool::new(false);
    let (warm_tx, warm_rx) = std::sync::mpsc::channel();
    let sent = std::thread::scope(|s| {
        let flooder = s.spawn(|| hostile::flood(addr, &initials, 64, 3000, &stop, 1000, warm_tx));
        warm_rx.recv().expect("flood started");
        let mut peer = HostilePeer::with_key(legit_key, "acme", &[target]);
        let conn = peer.dial(&target, addr);
        let answer = conn.map(|c| {
            let env = peer.seal(&target, &ping(1));
            peer.send_all(&c, vec![env], 1).pop()
        });
        stop.store(true, Ordering::Relaxed);
        let sent = flooder.join().expect("flooder");
        match answer {
            Ok(Some(Answer::Answered(b))) => {
                assert_eq!(peer.open_answer(&b), Some(Message::Pong { rid: 1 }));
            }
            other => panic!("legitimate peer during the flood: {other:?}"),
        }
        sent
    });
    assert!(sent >= 1000);
    // The flood hit the handshake cap: unproven attempts past half of it
    // were sent a stateless Retry instead of taking a slot.
    assert!(agent.metric("streembit_handshakes_refused_total{reason=\"busy\"}") > 0);
    // The agent is still whole and answers its API.
    assert!(agent.cli(&["status", "--json"]).status.success());
}

/// Issue 19, item 3: a `dial` for a dial-back test is made only to an
/// address the target itself signed for, for the peer that asks.
#[test]
fn a_dial_to_an_address_the_target_did_not_sign_for_is_refused() {
    use streembit_agent::internals::node::{NatAnswer, NatRequest};
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let target = key_of(&agent);
    let mut peer = HostilePeer::new("public", &[]);
    let conn = peer.dial(&target, addr_of(&agent)).expect("dial");
    // Where a victim listens: any datagram the agent sends it would be
    // queued here before the agent answers (a dial sends, then waits).
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").expect("victim");
    victim.set_nonblocking(true).expect("nonblocking");
    let victim_addr = victim.local_addr().expect("addr").to_string();
    let victim_key = Keypair::generate().public().to_string();
    let me = peer.key.public();
    let mine = peer.local_addr().to_string();
    let dial = |peer: &str, addr: &str, token: String| NatRequest::Dial {
        peer: peer.to_owned(),
        addr: addr.to_owned(),
        token,
    };
    let signed = |p: &mut HostilePeer, peer: &str, addr: &str| {
        hex::encode(p.seal_nat(&me, &dial(peer, addr, String::new())))
    };
    let cases = [
        ("no token", dial(&victim_key, &victim_addr, String::new())),
        (
            "our token for our own address, aimed at the victim's",
            dial(
                &me.to_string(),
                &victim_addr,
                signed(&mut peer, &me.to_string(), &mine),
            ),
        ),
        (
            "a token we signed in the victim key's name",
            dial(
                &victim_key,
                &victim_addr,
                signed(&mut peer, &victim_key, &victim_addr),
            ),
        ),
    ];
    let forbidden = r#"streembit_nat_requests_refused_total{code="forbidden"}"#;
    let refused_before = agent.metric(forbidden);
    for (why, req) in &cases {
        let env = peer.seal_nat(&target, req);
        let answer = match peer.send_all(&conn, vec![env], 1).pop() {
            Some(Answer::Answered(bytes)) => peer.open_nat_answer(&bytes),
            other => panic!("{why}: no answer: {other:?}"),
        };
        assert!(
            matches!(&answer, Some(NatAnswer::Error { code, .. }) if code == "forbidden"),
            "{why}: {answer:?}"
        );
    }
    let mut buf = [0u8; 2048];
    assert!(victim.recv(&mut buf).is_err(), "the victim got a datagram");
    assert_eq!(agent.metric(forbidden), refused_before + cases.len() as u64);

    // A token in our own name can name the victim's address: such dials
    // are bounded per address (6 per 10 minutes), the rest refused busy.
    let aimed: Vec<Vec<u8>> = (0..10)
        .map(|_| {
            let token = signed(&mut peer, &me.to_string(), &victim_addr);
            peer.seal_nat(&target, &dial(&me.to_string(), &victim_addr, token))
        })
        .collect();
    let mut dialed = 0;
    for answer in peer.send_all(&conn, aimed, 2) {
        let Answer::Answered(bytes) = answer else {
            panic!("no answer: {answer:?}");
        };
        match peer.open_nat_answer(&bytes) {
            Some(NatAnswer::Dialed { .. }) => dialed += 1,
            Some(NatAnswer::Error { code, .. }) if code == "busy" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(dialed, 6, "dials made at one address for others");
    assert_eq!(
        agent.metric(r#"streembit_nat_requests_refused_total{code="busy"}"#),
        4
    );
    assert!(dials_received(&victim).len() <= 6);

    // The control: a dial the target signed for its own address is made.
    let token = signed(&mut peer, &me.to_string(), &mine);
    let env = peer.seal_nat(&target, &dial(&me.to_string(), &mine, token));
    let answer = match peer.send_all(&conn, vec![env], 1).pop() {
        Some(Answer::Answered(bytes)) => peer.open_nat_answer(&bytes),
        other => panic!("no answer: {other:?}"),
    };
    assert!(
        matches!(answer, Some(NatAnswer::Dialed { .. })),
        "{answer:?}"
    );
}

/// The distinct QUIC connections whose Initials reached `socket` (by
/// destination connection id): one per dial.
fn dials_received(socket: &std::net::UdpSocket) -> std::collections::HashSet<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        // Long header: 1 flags byte, 4 version bytes, DCID length, DCID.
        let packet = &buf[..n];
        if packet.first().is_some_and(|b| b & 0x80 != 0) && packet.len() > 6 {
            let len = usize::from(packet[5]);
            if let Some(dcid) = packet.get(6..6 + len) {
                seen.insert(dcid.to_vec());
            }
        }
    }
    seen
}

/// Issue 19, item 4 on a running agent: a peer that answers every lookup
/// with 20 made-up contacts at a victim's address gets at most 3 of them
/// dialed there, 6 dials in all; the rest are refused and counted.
#[test]
fn lying_lookups_send_a_bounded_number_of_dials() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let target = key_of(&agent);
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").expect("victim");
    victim.set_nonblocking(true).expect("nonblocking");
    let at_victim = victim.local_addr().expect("addr").to_string();
    let fakes: Vec<Contact> = (0..20)
        .map(|_| {
            let addrs = Addrs::new(&[at_victim.as_str()]).expect("addr");
            Contact::from_verified(&Keypair::generate().public(), addrs)
        })
        .collect();
    let mut liar = HostilePeer::new("public", &[]);
    let conn = liar.dial(&target, addr_of(&agent)).expect("dial");
    liar.answer_lookups_with(&conn, target, fakes);
    // A ping puts the liar in the agent's table: its one contact to ask.
    let env = liar.seal(&target, &ping(1));
    let pong = liar.send_all(&conn, vec![env], 1);
    assert!(matches!(pong[0], Answer::Answered(_)), "{pong:?}");
    assert_eq!(agent.metric("streembit_dht_table_size"), 1);

    let wanted = Keypair::generate().public().to_string();
    let out = agent.cli(&["lookup", &wanted]);
    assert!(!out.status.success(), "nothing to find");
    // At most 3 of the keys, 6 dials in all (retries included), per
    // address per 10 minutes.
    let dialed = dials_received(&victim);
    assert!(
        (1..=6).contains(&dialed.len()),
        "{} dials reached the victim",
        dialed.len()
    );
    assert!(agent.metric("streembit_dials_refused_total") >= 17);
}

/// Issue 19, item 2 on a running agent: one key opening sessions to a
/// relayed target gets 2, and another key still gets one.
#[test]
fn relay_squatting_by_one_key_does_not_lock_the_target() {
    use streembit_agent::internals::node::{NatAnswer, NatRequest};
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tmp");
    let relay = AgentProcess::start(
        &tmp.path().join("relay"),
        "listen = \"127.0.0.1:0\"\n[nat]\nrelay = true\n",
    );
    let seeds = format!("seeds = [\"{}@{}\"]\n", relay.key, relay.addr);
    let mut gw = AgentProcess::builder(
        &tmp.path().join("gw"),
        &format!("listen = \"127.0.0.1:0\"\n{seeds}"),
    )
    .env("STREEMBIT_NAT__REACHABILITY", "private")
    .spawn();
    gw.wait_relayed();
    let relay_key = key_of(&relay);
    let connect = NatRequest::Connect {
        target: gw.key.clone(),
    };
    let ask = |peer: &mut HostilePeer, n: usize| -> (usize, usize) {
        let conn = peer.dial(&relay_key, addr_of(&relay)).expect("dial relay");
        let (mut sessions, mut refused) = (0, 0);
        for _ in 0..n {
            let env = peer.seal_nat(&relay_key, &connect);
            let answer = match peer.send_all(&conn, vec![env], 1).pop() {
                Some(Answer::Answered(bytes)) => peer.open_nat_answer(&bytes),
                other => panic!("no answer: {other:?}"),
            };
            match answer {
                Some(NatAnswer::Session { .. }) => sessions += 1,
                Some(NatAnswer::Error { code, .. }) if code == "busy" => refused += 1,
                other => panic!("unexpected answer {other:?}"),
            }
        }
        (sessions, refused)
    };
    let mut squatter = HostilePeer::new("public", &[]);
    assert_eq!(ask(&mut squatter, 8), (2, 6), "sessions, refused");
    assert_eq!(
        relay.metric("streembit_relay_sessions_refused_total{reason=\"peer_limit\"}"),
        6
    );
    let mut other = HostilePeer::new("public", &[]);
    assert_eq!(ask(&mut other, 1), (1, 0), "another client still gets in");
}
