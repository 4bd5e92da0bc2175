//! `streembit sign` / `streembit verify` round trips and refusals, through
//! the real binary.

use serde_json::Value;
use streembit_tests::harness::cli::{stderr, stdout, Sandbox};

fn with_key() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let out = sb.run(&["keygen"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out);
    (sb, key)
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn json_payload_round_trips_in_every_encoding() {
    let (sb, key) = with_key();
    for enc in [&[][..], &["--hex"][..], &["--base64"][..]] {
        let mut sign = vec!["sign", "--kind", "reading"];
        sign.extend_from_slice(enc);
        let env = sb.run(&sign, br#"{"temp": 21.5, "unit": "C"}"#);
        assert!(env.status.success(), "{}", stderr(&env));

        let mut verify = vec!["verify", "--json"];
        verify.extend_from_slice(enc);
        let out = sb.run(&verify, &env.stdout);
        assert!(out.status.success(), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["valid"], true);
        assert_eq!(v["sender"], key.as_str());
        assert_eq!(v["kind"], "reading");
        assert_eq!(v["network"], "public");
        assert_eq!(v["payload"]["temp"], 21.5);
        assert!(v["timestamp_ms"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000));
    }
}

#[test]
fn human_output_names_every_field() {
    let (sb, key) = with_key();
    let env = sb.run(&["sign", "--kind", "note"], b"plain bytes");
    let out = sb.run(&["verify"], &env.stdout);
    assert!(out.status.success());
    let text = stdout(&out);
    for field in [
        "valid",
        "sender:",
        "network:",
        "kind:",
        "timestamp:",
        "nonce:",
        "payload:",
    ] {
        assert!(text.contains(field), "{field} missing in {text}");
    }
    assert!(text.contains(&key));
    // Non-JSON input is kept as bytes.
    assert!(text.contains("706c61696e206279746573"), "{text}");
}

#[test]
fn refusals_exit_1_with_the_reason() {
    let (sb, _) = with_key();
    let env = sb.run(&["sign", "--kind", "reading", "--hex"], b"{}");
    let hex_text = stdout(&env);

    // Flipped byte in the signature.
    let mut bytes = hex::decode(&hex_text).expect("hex");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let out = sb.run(&["verify", "--json"], &bytes);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["reason"], "bad_signature");
    assert!(stderr(&out).contains("bad signature"));

    // Other network.
    let out = sb.run(
        &["verify", "--hex", "--network", "acme"],
        hex_text.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("network"), "{}", stderr(&out));

    // Garbage.
    let out = sb.run(&["verify", "--json"], b"\x00\x01garbage");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["reason"], "malformed");
}

#[test]
fn point_to_point_needs_the_right_recipient() {
    let (sb, me) = with_key();
    let other = Sandbox::new();
    let other_key = stdout(&other.run(&["keygen"], b""));

    let out = sb.run(&["sign", "--kind", "ping"], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--to"));

    let env = sb.run(&["sign", "--kind", "ping", "--to", &other_key], b"{}");
    assert!(env.status.success(), "{}", stderr(&env));
    // The recipient (default: its own identity) accepts it…
    assert!(other.run(&["verify"], &env.stdout).status.success());
    // …anyone else is refused: the aad is the recipient's node id.
    let out = sb.run(&["verify", "--to", &me], &env.stdout);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let (sb, _) = with_key();
    let out = sb.run(&["sign", "--kind", "launch"], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("known kinds"));
    let out = sb.run(&["sign", "--kind", "ping", "--to", "ABC"], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("64 hex"));
    let out = sb.run(&["verify", "--hex"], b"zz");
    assert_eq!(out.status.code(), Some(2));
    let out = sb.run(&["sign", "--kind", "note", "--network", "Bad Net"], b"{}");
    assert_eq!(out.status.code(), Some(2));
}
