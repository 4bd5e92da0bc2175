//! One test per rejection reason, plus round trips. Hostile envelopes are
//! built with coset directly and *correctly signed*, so each test fails for
//! exactly the defect it names and not for a bad signature.

use coset::cbor::Value;
use coset::iana;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

use super::*;
use crate::identity::Keypair;

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fn key() -> Keypair {
    Keypair::from_seed(&[9; 32])
}

fn public() -> NetworkId {
    NetworkId::public()
}

fn opener_for(me: &Keypair) -> Opener {
    Opener::new(public(), me.node_id(), WireConfig::default(), UnixMillis(0))
}

fn reading(k: &Keypair, nonce: u64, ts: UnixMillis) -> Vec<u8> {
    seal(
        k,
        &public(),
        Kind::Reading,
        Audience::Anyone,
        &[0xf5],
        ts,
        nonce,
    )
    .expect("seal")
}

/// A signed envelope with arbitrary protected headers.
fn crafted(k: &Keypair, h: coset::Header, aad: &[u8]) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(h)
        .payload(vec![0xf6])
        .create_signature(aad, |tbs| k.sign(tbs).to_vec())
        .build()
        .to_tagged_vec()
        .expect("encode")
}

fn full_header(k: &Keypair) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(k.public().as_bytes().to_vec())
        .value(LABEL_NETWORK, Value::Text("public".into()))
        .value(LABEL_KIND, Value::Text("reading".into()))
        .value(LABEL_TIMESTAMP, Value::from(NOW.0))
        .value(LABEL_NONCE, Value::from(7u64))
        .build()
}

fn without(mut h: coset::Header, label: i64) -> coset::Header {
    h.rest.retain(|(l, _)| *l != coset::Label::Int(label));
    h
}

fn replaced(h: coset::Header, label: i64, value: Value) -> coset::Header {
    let mut h = without(h, label);
    h.rest.push((coset::Label::Int(label), value));
    h
}

#[test]
fn broadcast_round_trip() {
    let k = key();
    let bytes = reading(&k, 1, NOW);
    let opened = opener_for(&Keypair::generate())
        .open(&bytes, NOW)
        .expect("open");
    assert_eq!(opened.sender(), k.public());
    assert_eq!(opened.kind(), Kind::Reading);
    assert_eq!(opened.network(), &public());
    assert_eq!(opened.timestamp(), NOW);
    assert_eq!(opened.nonce(), 1);
    assert_eq!(opened.payload(), &[0xf5]);
}

#[test]
fn point_to_point_binds_the_recipient() {
    let (a, b, c) = (key(), Keypair::generate(), Keypair::generate());
    let bytes = seal(
        &a,
        &public(),
        Kind::Ping,
        Audience::Node(b.node_id()),
        &[0xf6],
        NOW,
        3,
    )
    .expect("seal");
    assert!(opener_for(&b).open(&bytes, NOW).is_ok());
    // Same bytes replayed to another node: the aad differs, signature fails.
    assert_eq!(
        opener_for(&c).open(&bytes, NOW),
        Err(WireError::BadSignature)
    );
}

#[test]
fn audience_must_match_kind_when_sealing() {
    let k = key();
    let err = seal(&k, &public(), Kind::Ping, Audience::Anyone, &[0xf6], NOW, 1);
    assert_eq!(err.map_err(|e| e.reason()), Err("wrong_audience"));
    let err = seal(
        &k,
        &public(),
        Kind::Reading,
        Audience::Node(k.node_id()),
        &[],
        NOW,
        1,
    );
    assert_eq!(err.map_err(|e| e.reason()), Err("wrong_audience"));
}

#[test]
fn oversize_is_refused_before_decoding() {
    let cfg = WireConfig {
        max_envelope_bytes: 100,
        ..WireConfig::default()
    };
    let mut o = Opener::new(public(), key().node_id(), cfg, UnixMillis(0));
    // 101 bytes of garbage: must say oversize, not malformed.
    assert_eq!(
        o.open(&[0xff; 101], NOW),
        Err(WireError::Oversize { len: 101, max: 100 })
    );
    let big = seal(
        &key(),
        &public(),
        Kind::Reading,
        Audience::Anyone,
        &[0u8; 200],
        NOW,
        1,
    );
    let big = big.expect("seal");
    assert!(matches!(o.open(&big, NOW), Err(WireError::Oversize { .. })));
}

#[test]
fn malformed_inputs_are_refused_not_panicking() {
    let mut o = opener_for(&key());
    let valid = reading(&key(), 1, NOW);
    let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0xd2], vec![0xd2, 0x84], b"hello".to_vec()];
    for cut in 1..valid.len() {
        cases.push(valid[..cut].to_vec());
    }
    // Untagged COSE_Sign1 (strip the 0xd2 tag byte).
    cases.push(valid[1..].to_vec());
    // Trailing garbage.
    let mut trailing = valid.clone();
    trailing.push(0);
    cases.push(trailing);
    for c in cases {
        match o.open(&c, NOW) {
            Err(WireError::Malformed(_)) => {}
            other => panic!("{:02x?} gave {other:?}", c),
        }
    }
}

#[test]
fn each_missing_header_is_named() {
    let k = key();
    let cases = [
        (LABEL_NETWORK, "network"),
        (LABEL_KIND, "kind"),
        (LABEL_TIMESTAMP, "timestamp"),
        (LABEL_NONCE, "nonce"),
    ];
    for (label, name) in cases {
        let bytes = crafted(&k, without(full_header(&k), label), BROADCAST_AAD);
        assert_eq!(
            opener_for(&k).open(&bytes, NOW),
            Err(WireError::MissingHeader(name))
        );
    }
    let mut no_alg = full_header(&k);
    no_alg.alg = None;
    let bytes = crafted(&k, no_alg, BROADCAST_AAD);
    assert_eq!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::MissingHeader("alg"))
    );
    let mut no_kid = full_header(&k);
    no_kid.key_id.clear();
    let bytes = crafted(&k, no_kid, BROADCAST_AAD);
    assert_eq!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::MissingHeader("kid"))
    );
}

#[test]
fn duplicate_headers_are_refused() {
    let k = key();
    // A protected map with the nonce label twice, encoded by hand since
    // coset will not encode duplicates.
    let good = reading(&k, 1, NOW);
    let needle = {
        let mut v = Vec::new();
        coset::cbor::into_writer(&Value::from(LABEL_NONCE), &mut v).expect("cbor");
        v
    };
    let mut protected = coset::CoseSign1::from_tagged_slice(&good)
        .expect("decode")
        .protected
        .original_data
        .expect("bytes");
    // Map header byte: 0xa6 (6 entries) -> 0xa7, then append "nonce: 8".
    assert_eq!(protected[0], 0xa6);
    protected[0] = 0xa7;
    protected.extend_from_slice(&needle);
    protected.push(0x08);
    let tbs = coset::sig_structure_data(
        coset::SignatureContext::CoseSign1,
        coset::ProtectedHeader {
            original_data: Some(protected.clone()),
            header: Default::default(),
        },
        None,
        BROADCAST_AAD,
        &[0xf5],
    );
    let sig = k.sign(&tbs);
    let raw = Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(vec![]),
            Value::Bytes(vec![0xf5]),
            Value::Bytes(sig.to_vec()),
        ])),
    );
    let mut bytes = Vec::new();
    coset::cbor::into_writer(&raw, &mut bytes).expect("cbor");
    assert!(matches!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::DuplicateHeader(_))
    ));

    // The same label in the unprotected bucket.
    let bytes = CoseSign1Builder::new()
        .protected(full_header(&k))
        .unprotected(
            HeaderBuilder::new()
                .value(LABEL_KIND, Value::Text("ping".into()))
                .build(),
        )
        .payload(vec![0xf6])
        .create_signature(BROADCAST_AAD, |tbs| k.sign(tbs).to_vec())
        .build()
        .to_tagged_vec()
        .expect("encode");
    assert!(matches!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::DuplicateHeader(h)) if h.contains("kind")
    ));
}

#[test]
fn wrong_alg_is_refused() {
    let k = key();
    let mut h = full_header(&k);
    h.alg = Some(coset::Algorithm::Assigned(iana::Algorithm::ES256));
    let bytes = crafted(&k, h, BROADCAST_AAD);
    assert_eq!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::WrongAlg("-7".into()))
    );
}

#[test]
fn bad_sender_key_and_bad_header_types() {
    let k = key();
    let mut h = full_header(&k);
    h.key_id = vec![1, 2, 3];
    assert_eq!(
        opener_for(&k).open(&crafted(&k, h, BROADCAST_AAD), NOW),
        Err(WireError::BadSenderKey)
    );
    let h = replaced(full_header(&k), LABEL_TIMESTAMP, Value::from(-5));
    assert!(matches!(
        opener_for(&k).open(&crafted(&k, h, BROADCAST_AAD), NOW),
        Err(WireError::BadHeader {
            header: "timestamp",
            ..
        })
    ));
    let h = replaced(full_header(&k), LABEL_KIND, Value::from(3));
    assert!(matches!(
        opener_for(&k).open(&crafted(&k, h, BROADCAST_AAD), NOW),
        Err(WireError::BadHeader { header: "kind", .. })
    ));
}

#[test]
fn flipped_bits_and_wrong_keys_fail_the_signature() {
    let k = key();
    let bytes = reading(&k, 1, NOW);
    let mut sig_flip = bytes.clone();
    let last = sig_flip.len() - 1;
    sig_flip[last] ^= 1;
    assert_eq!(
        opener_for(&k).open(&sig_flip, NOW),
        Err(WireError::BadSignature)
    );

    // Claim another sender's key: signature by k does not verify under it.
    let other = Keypair::generate();
    let mut h = full_header(&k);
    h.key_id = other.public().as_bytes().to_vec();
    assert_eq!(
        opener_for(&k).open(&crafted(&k, h, BROADCAST_AAD), NOW),
        Err(WireError::BadSignature)
    );

    // Flip every byte in turn: nothing is ever accepted, nothing panics.
    let mut o = opener_for(&k);
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(o.open(&b, NOW).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn wrong_network_is_refused() {
    let k = key();
    let acme: NetworkId = "acme".parse().expect("id");
    let bytes = seal(&k, &acme, Kind::Reading, Audience::Anyone, &[0xf6], NOW, 1).expect("seal");
    assert_eq!(
        opener_for(&k).open(&bytes, NOW),
        Err(WireError::WrongNetwork {
            expected: "public".into(),
            got: "acme".into()
        })
    );
    assert!(open_published(&bytes, &public(), 1024).is_err());
    assert!(open_published(&bytes, &acme, 1024).is_ok());
}

#[test]
fn stale_timestamps_are_refused_both_ways() {
    let k = key();
    let mut o = opener_for(&k);
    let old = reading(&k, 1, UnixMillis(NOW.0 - 60_001));
    let future = reading(&k, 2, UnixMillis(NOW.0 + 60_001));
    let edge = reading(&k, 3, UnixMillis(NOW.0 - 60_000));
    assert!(matches!(o.open(&old, NOW), Err(WireError::Stale { .. })));
    assert!(matches!(o.open(&future, NOW), Err(WireError::Stale { .. })));
    assert!(o.open(&edge, NOW).is_ok());
}

#[test]
fn replays_are_refused_and_restart_floor_holds() {
    let k = key();
    let mut o = opener_for(&k);
    let bytes = reading(&k, 42, NOW);
    assert!(o.open(&bytes, NOW).is_ok());
    assert_eq!(o.open(&bytes, NOW), Err(WireError::Replayed));
    // Same nonce, new timestamp: still the same (sender, nonce).
    let again = reading(&k, 42, UnixMillis(NOW.0 + 5));
    assert_eq!(o.open(&again, NOW), Err(WireError::Replayed));
    // A receiver restarted at NOW refuses what was sealed before it.
    let mut restarted = Opener::new(public(), k.node_id(), WireConfig::default(), NOW);
    assert_eq!(restarted.open(&bytes, NOW), Err(WireError::Replayed));
}

#[test]
fn unknown_kind_is_refused() {
    let k = key();
    let h = replaced(full_header(&k), LABEL_KIND, Value::Text("launch".into()));
    assert_eq!(
        opener_for(&k).open(&crafted(&k, h, BROADCAST_AAD), NOW),
        Err(WireError::UnknownKind("launch".into()))
    );
}

#[test]
fn sealer_never_repeats_a_nonce() {
    let k = key();
    let mut s = Sealer::with_nonce(public(), u64::MAX);
    let mut o = opener_for(&Keypair::generate());
    let a = s
        .seal(&k, Kind::Reading, Audience::Anyone, &[0xf6], NOW)
        .expect("a");
    let b = s
        .seal(&k, Kind::Reading, Audience::Anyone, &[0xf6], NOW)
        .expect("b");
    assert_eq!(o.open(&a, NOW).map(|x| x.nonce()), Ok(u64::MAX));
    assert_eq!(o.open(&b, NOW).map(|x| x.nonce()), Ok(0));
}

#[test]
fn replay_window_memory_is_fixed_with_100k_senders() {
    let cap = 4096;
    let mut w = ReplayWindow::new(cap, 0);
    let bytes = w.memory_bytes();
    for i in 0u64..100_000 {
        let mut sender = [0u8; 32];
        sender[..8].copy_from_slice(&i.to_le_bytes());
        let _ = w.check_and_insert(&sender, i, 1_000 + i, 0);
        assert!(w.len() <= cap);
        assert!(w.within_allocation(), "tables grew at sender {i}");
    }
    assert_eq!(w.len(), cap);
    assert_eq!(w.memory_bytes(), bytes);
    // Every one of the 100,000 is still refused on replay: the recent ones
    // by memory, the evicted ones by the raised floor.
    for i in 0u64..100_000 {
        let mut sender = [0u8; 32];
        sender[..8].copy_from_slice(&i.to_le_bytes());
        assert_eq!(
            w.check_and_insert(&sender, i, 1_000 + i, 0),
            replay::ReplayCheck::Replayed,
            "sender {i}"
        );
    }
    // 92 bytes an entry before per-sender floors (issue 17); each
    // remembered envelope now also names its sender and keeps its nonce
    // (24 bytes), the floors take 1/8 of the capacity at most, and the
    // count per sender one more table.
    let default = ReplayWindow::new(ReplayWindow::DEFAULT_CAPACITY, 0).memory_bytes();
    assert!(
        default <= ReplayWindow::memory_bound(ReplayWindow::DEFAULT_CAPACITY),
        "{default}"
    );
}

#[test]
fn a_batch_opens_what_one_by_one_opens_and_refuses_only_the_bad_ones() {
    let key = Keypair::from_seed(&[7; 32]);
    let net = NetworkId::public();
    let mut sealer = Sealer::with_nonce(net.clone(), 1);
    let mut envs: Vec<Vec<u8>> = (0..40u64)
        .map(|i| {
            let payload = [0x18, i as u8 + 24];
            sealer
                .seal(
                    &key,
                    Kind::Reading,
                    Audience::Anyone,
                    &payload,
                    UnixMillis(i),
                )
                .expect("seal")
        })
        .collect();
    let all: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
    let opened = open_published_batch(&all, &net, DEFAULT_MAX_ENVELOPE_BYTES);
    assert!(opened.iter().all(Result::is_ok));
    assert_eq!(
        opened[3].as_ref().map(|o| o.nonce()).ok(),
        Some(4),
        "results stay in order"
    );
    // One flipped signature byte, one wrong network, one point-to-point kind.
    let last = envs[5].len() - 1;
    envs[5][last] ^= 1;
    envs[9] = Sealer::with_nonce("acme".parse().expect("net"), 1)
        .seal(
            &key,
            Kind::Reading,
            Audience::Anyone,
            &[0x01],
            UnixMillis(1),
        )
        .expect("seal");
    envs[20] = sealer
        .seal(
            &key,
            Kind::Ping,
            Audience::Node(key.node_id()),
            &[0x01],
            UnixMillis(1),
        )
        .expect("seal");
    let all: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
    let opened = open_published_batch(&all, &net, DEFAULT_MAX_ENVELOPE_BYTES);
    let refused: Vec<usize> = (0..envs.len()).filter(|i| opened[*i].is_err()).collect();
    assert_eq!(refused, vec![5, 9, 20]);
    assert!(matches!(opened[5], Err(WireError::BadSignature)));
}
