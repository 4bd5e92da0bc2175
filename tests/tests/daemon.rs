//! The daemon as systemd and an operator see it: notifications in order,
//! the watchdog, and no key material in any log line.

use std::os::unix::fs::PermissionsExt;

use streembit_tests::harness::agent_process::AgentProcess;

#[test]
fn notifications_come_in_order_ready_status_watchdog_stopping() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A 200 ms WatchdogSec: pings every 100 ms.
    let mut a = AgentProcess::builder(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n")
        .env("WATCHDOG_USEC", "200000")
        .spawn();
    a.wait_for("WATCHDOG=1", |m| m.contains("WATCHDOG=1"));
    a.terminate();
    a.wait_for("STOPPING=1", |m| m.contains("STOPPING=1"));
    let pos = |what: &str| a.seen.iter().position(|m| m.contains(what));
    let ready = pos("READY=1").expect("READY");
    let status = pos("STATUS=").expect("STATUS");
    let watchdog = pos("WATCHDOG=1").expect("WATCHDOG");
    let stopping = pos("STOPPING=1").expect("STOPPING");
    assert!(
        ready <= status && status <= watchdog && watchdog < stopping,
        "{:?}",
        a.seen
    );
    // Nothing after STOPPING pets the watchdog.
    assert!(a.seen[stopping + 1..]
        .iter()
        .all(|m| !m.contains("WATCHDOG=1")));
    // A person reads STATUS in `systemctl status`.
    assert!(
        a.seen[status].contains("listening on 127.0.0.1:"),
        "{}",
        a.seen[status]
    );
}

#[test]
fn the_api_socket_is_0660_and_the_state_dir_0700() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = AgentProcess::start(&tmp.path().join("a"), "listen = \"127.0.0.1:0\"\n");
    let mode = |p: &str| {
        std::fs::metadata(a.dir().join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(".streembit/run/api.sock"), 0o660);
    assert_eq!(mode(".streembit"), 0o700);
    assert_eq!(mode(".streembit/identity.pem"), 0o600);
}

#[test]
fn no_secret_key_material_appears_in_the_logs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = AgentProcess::builder(
        &tmp.path().join("a"),
        "listen = \"127.0.0.1:0\"\nlog_level = \"trace\"\n",
    )
    .log("trace")
    .spawn();
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nseeds = [\"{}@{}\"]\nlog_level = \"trace\"\n",
        a.key, a.addr
    );
    let mut b = AgentProcess::builder(&tmp.path().join("b"), &cfg)
        .log("trace")
        .spawn();
    b.wait_published(1);
    a.wait_published(1);
    let out = a.cli(&["lookup", &b.key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.cli(&["lookup", &a.key]).status.success());
    a.terminate();
    b.terminate();

    for p in [&a, &b] {
        let pem = std::fs::read_to_string(p.dir().join(".streembit/identity.pem")).expect("pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64_decode(&body);
        // PKCS#8 Ed25519: the secret seed is the OCTET STRING inside the
        // privateKey OCTET STRING (04 22 04 20 <32 bytes>), RFC 8410.
        let at = der
            .windows(4)
            .position(|w| w == [0x04, 0x22, 0x04, 0x20])
            .expect("Ed25519 private key octets")
            + 4;
        let seed = &der[at..at + 32];
        assert_ne!(
            hex_lower(seed),
            p.key,
            "parsed the public key, not the seed"
        );
        let log = p.log();
        assert!(
            log.len() > 1000,
            "suspiciously little log: {} bytes",
            log.len()
        );
        let forms = [
            hex_lower(seed),
            hex_lower(seed).to_uppercase(),
            body.clone(),
            body[..24].to_owned(),
            format!("{:?}", seed),
        ];
        for (i, needle) in forms.iter().enumerate() {
            if let Some(at) = log.find(needle.as_str()) {
                let from = log.floor_char_boundary(at.saturating_sub(300));
                let to = log.ceil_char_boundary((at + 100).min(log.len()));
                panic!(
                    "secret form {i} in {}'s log: …{}…",
                    p.dir().display(),
                    &log[from..to]
                );
            }
        }
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Standard base64 without padding checks (test helper).
fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|x| *x == c).expect("base64 char") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
