//! `streembit keygen` and `streembit id` as an operator runs them.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use streembit_tests::harness::cli::{stderr, stdout, Sandbox};

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn keygen_then_id_prints_the_same_key_with_safe_modes() {
    let sb = Sandbox::new();
    let out = sb.run(&["keygen"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out);
    assert_eq!(key.len(), 64);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let id = sb.run(&["id"], b"");
    assert!(id.status.success(), "{}", stderr(&id));
    assert_eq!(stdout(&id), key);

    assert_eq!(mode(&sb.path().join(".streembit")), 0o700);
    assert_eq!(mode(&sb.path().join(".streembit/identity.pem")), 0o600);
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let sb = Sandbox::new();
    let first = stdout(&sb.run(&["keygen", "--out", "k.pem"], b""));
    let again = sb.run(&["keygen", "--out", "k.pem"], b"");
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = sb.run(&["keygen", "--out", "k.pem", "--force"], b"");
    assert!(forced.status.success());
    assert_ne!(stdout(&forced), first);
    assert_eq!(mode(&sb.path().join("k.pem")), 0o600);
}

#[test]
fn group_readable_identity_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    assert!(sb.run(&["keygen"], b"").status.success());
    let pem = sb.path().join(".streembit/identity.pem");
    fs::set_permissions(&pem, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = sb.run(&["id"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("chmod 600 .streembit/identity.pem"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn state_directory_and_config_file_choose_the_keystore() {
    let sb = Sandbox::new();
    let out = sb
        .cmd(&["keygen"])
        .env("STATE_DIRECTORY", sb.path().join("sd"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.path().join("sd/identity.pem").exists());

    fs::write(sb.path().join("agent.toml"), "state_dir = \"sd\"\n").expect("write");
    let id = sb.run(&["id", "--config", "agent.toml"], b"");
    assert_eq!(stdout(&id), stdout(&out));
}

#[test]
fn id_without_identity_or_with_broken_config_says_why() {
    let sb = Sandbox::new();
    let out = sb.run(&["id"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("streembit keygen"),
        "{}",
        stderr(&out)
    );

    fs::write(sb.path().join("bad.toml"), "netwrok = \"x\"\n").expect("write");
    let out = sb.run(&["id", "--config", "bad.toml"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("netwrok"), "{err}");

    let out = sb.run(&["id", "--config", "missing.toml"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"));
}

/// Keys are PKCS#8 v1 (RFC 8410), which OpenSSL 3.0 reads: Debian 12's
/// `openssl pkey` derives the same public key `keygen` printed.
#[test]
fn openssl_reads_the_key_and_derives_the_same_public_key() {
    let sb = Sandbox::new();
    let key = stdout(&sb.run(&["keygen", "--out", "k.pem"], b""));
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"])
        .current_dir(sb.path())
        .output()
        .expect("openssl (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl pkey refused our key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SubjectPublicKeyInfo of Ed25519: a 12-byte header, then the key.
    assert_eq!(out.stdout.len(), 44);
    assert_eq!(hex::encode(&out.stdout[12..]), key);
    let text = std::process::Command::new("openssl")
        .args(["pkey", "-in", "k.pem", "-noout", "-text"])
        .current_dir(sb.path())
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&text.stdout).contains("ED25519 Private-Key"));

    // A key openssl made is ours to use too.
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", "o.pem"])
        .current_dir(sb.path())
        .status()
        .expect("openssl genpkey");
    assert!(made.success());
    fs::set_permissions(sb.path().join("o.pem"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let signed = sb.run(
        &["sign", "--kind", "note", "--key", "o.pem", "--hex"],
        b"hi",
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
}
