//! A real third-party COSE implementation (Python pycose) against ours, in
//! both directions, using only public keys and docs/wire.md.

use serde_json::Value;
use streembit_tests::harness::cli::{stderr, stdout, Sandbox};
use streembit_tests::peers::python;

const MODULES: &[&str] = &["pycose", "cbor2"];

fn keyed() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let out = sb.run(&["keygen"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out);
    (sb, key)
}

fn pycose_verify(env: &[u8], pubkey: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", "--pubkey", pubkey];
    args.extend_from_slice(extra);
    python::run("cose_peer.py", &args, MODULES, env)
}

#[test]
fn pycose_verifies_our_envelopes_with_only_the_public_key() {
    let (sb, key) = keyed();
    let env = sb.run(&["sign", "--kind", "reading"], br#"{"temp": 21.5}"#);
    assert!(env.status.success(), "{}", stderr(&env));

    let out = pycose_verify(&env.stdout, &key, &[]);
    assert!(out.status.success(), "pycose refused: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["kind"], "reading");
    assert_eq!(v["network"], "public");
    assert_eq!(v["payload"]["temp"], 21.5);
}

#[test]
fn pycose_verifies_point_to_point_with_the_recipient_node_id() {
    let (sb, _) = keyed();
    let (_, peer) = keyed();
    let peer_node =
        streembit_agent::identity::PublicKey::from_bytes(&hex::decode(&peer).expect("hex"))
            .expect("key")
            .node_id()
            .to_string();
    let me = stdout(&sb.run(&["id"], b""));
    let env = sb.run(&["sign", "--kind", "ping", "--to", &peer], b"{}");
    assert!(env.status.success());
    assert!(pycose_verify(&env.stdout, &me, &["--to", &peer_node])
        .status
        .success());
    // Claiming another recipient breaks the signature.
    let wrong = "00".repeat(32);
    assert_eq!(
        pycose_verify(&env.stdout, &me, &["--to", &wrong])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn pycose_rejects_flipped_byte_wrong_key_and_wrong_network() {
    let (sb, key) = keyed();
    let env = sb.run(&["sign", "--kind", "reading"], b"{}").stdout;

    let mut flipped = env.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(pycose_verify(&flipped, &key, &[]).status.code(), Some(1));

    let (_, other) = keyed();
    assert_eq!(pycose_verify(&env, &other, &[]).status.code(), Some(1));

    let out = pycose_verify(&env, &key, &["--network", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("network"));
}

#[test]
fn streembit_verifies_pycose_envelopes_and_rejects_tampering() {
    let sb = Sandbox::new();
    let made = python::run("cose_peer.py", &["sign"], MODULES, b"");
    assert!(made.status.success(), "{}", stderr(&made));
    let v: Value = serde_json::from_slice(&made.stdout).expect("json");
    let env = v["envelope"].as_str().expect("envelope");
    let pubkey = v["pubkey"].as_str().expect("pubkey");

    let out = sb.run(
        &["verify", "--hex", "--json", "--fresh", "600"],
        env.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["sender"], pubkey);
    assert_eq!(got["payload"]["from"], "pycose");
    assert_eq!(got["payload"]["value"], 42);

    // A byte flipped in the signature, the payload and the header.
    for at in ["-1", "-70", "12"] {
        let bad = python::run("cose_peer.py", &["sign", "--flip", at], MODULES, b"");
        let v: Value = serde_json::from_slice(&bad.stdout).expect("json");
        let env = v["envelope"].as_str().expect("envelope");
        let out = sb.run(&["verify", "--hex"], env.as_bytes());
        assert_eq!(out.status.code(), Some(1), "flip at {at} accepted");
    }

    // Two minutes old: valid signature, refused as stale when freshness is
    // asked for, accepted as a stored artifact when it is not.
    let old = python::run(
        "cose_peer.py",
        &["sign", "--age-ms", "120000"],
        MODULES,
        b"",
    );
    let v: Value = serde_json::from_slice(&old.stdout).expect("json");
    let env = v["envelope"].as_str().expect("envelope");
    let out = sb.run(
        &["verify", "--hex", "--json", "--fresh", "60"],
        env.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["reason"], "stale");
    assert!(sb
        .run(&["verify", "--hex"], env.as_bytes())
        .status
        .success());

    // Made for another network.
    let other = python::run("cose_peer.py", &["sign", "--network", "acme"], MODULES, b"");
    let v: Value = serde_json::from_slice(&other.stdout).expect("json");
    let env = v["envelope"].as_str().expect("envelope");
    let out = sb.run(&["verify", "--hex", "--json"], env.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["reason"], "wrong_network");
}
