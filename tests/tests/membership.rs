//! A private network run by credentials alone (issue 18), with real agent
//! processes and a real mosquitto: no allowlist file anywhere.
//!
//! One agent is where the admin works (its key file stays offline, beside
//! the CLI); gateways host MQTT devices, admitted through their gateway's
//! credential (no device key is listed anywhere); readers read and
//! subscribe to every device. Outsiders — no credential, a credential of
//! another network's admin, an expired one — are refused in the handshake
//! and counted by reason. Then the admin revokes a reader and a gateway:
//! every agent reports the new sequence, the revoked keys lose every
//! connection, the gateway's devices can no longer be read, the reader's
//! subscriptions are freed, an agent that restarts keeps the list, and a
//! member that joins later finds the list's copy in the DHT.
//!
//! The sizes are the issue's (16 gateways of 5 devices, 3 readers: 20
//! agents) unless `STREEMBIT_MEMBERSHIP_SMALL` is set, for quick runs.

use std::path::{Path, PathBuf};

use streembit_tests::harness::agent_process::{eventually, AgentProcess};
use streembit_tests::harness::cli::{json, keygen, network_create, stderr, stdout, Sandbox};
use streembit_tests::peers::mosquitto::Broker;

fn sizes() -> (usize, usize, usize) {
    if std::env::var_os("STREEMBIT_MEMBERSHIP_SMALL").is_some() {
        (3, 2, 2)
    } else {
        (16, 5, 3)
    }
}

/// Issues a credential for `key` with the admin key in `admin_dir`.
fn issue(cli: &Sandbox, admin_dir: &Path, key: &str, role: &str, extra: &[&str], out: &Path) {
    let mut args = vec![
        "member",
        "issue",
        key,
        "--role",
        role,
        "--network",
        "site",
        "--admin-key",
    ];
    let admin_key = admin_dir.join("site-admin.pem");
    let admin_key = admin_key.to_str().expect("utf-8 path");
    args.push(admin_key);
    args.extend_from_slice(extra);
    let out_s = out.to_str().expect("utf-8 path");
    args.extend_from_slice(&["--out", out_s]);
    let o = cli.run(&args, b"");
    assert!(
        o.status.success(),
        "member issue: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `streembit network create site` with its admin key in `dir`.
fn create_network(cli: &Sandbox, dir: &Path) -> String {
    network_create(cli, "site", &dir.join("site-admin.pem"))
}

fn config(admin: &str, credential: &Path, seeds: &[String]) -> String {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "listen = \"127.0.0.1:0\"\nnetwork = \"site\"\nadmins = [\"{admin}\"]\n\
         credential_file = \"{}\"\nseeds = [{}]\n",
        credential.display(),
        seeds.join(", ")
    )
}

/// A bridge file of `devices` MQTT devices for gateway `g`.
fn bridge(dir: &Path, g: usize, devices: usize, broker: u16) {
    let mut text =
        format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"gw{g}\"\n");
    for d in 0..devices {
        text.push_str(&format!(
            "\n[[mqtt.devices]]\nname = \"d{d}\"\npoints = [ {{ name = \"v\", topic = \"g{g}/d{d}\", pointer = \"/v\", type = \"float\" }} ]\n"
        ));
    }
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(dir.join("bridges.d/devices.toml"), text).expect("bridge file");
}

/// Publishes one reading per device until each is hosted with a value;
/// returns the device keys.
fn feed(gw: &AgentProcess, g: usize, devices: usize, broker: u16) -> Vec<String> {
    let mut keys = Vec::new();
    for d in 0..devices {
        eventually(&format!("a reading of g{g}/d{d}"), || {
            let _ = std::process::Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &broker.to_string(), "-q", "1"])
                .args([
                    "-t",
                    &format!("g{g}/d{d}"),
                    "-m",
                    &format!("{{\"v\": {g}.{d}}}"),
                ])
                .status();
            let list = json(&gw.cli(&["devices", "--json"]));
            list.as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == format!("d{d}")).cloned())
                .is_some_and(|x| x["points"]["v"].is_object())
        });
        let list = json(&gw.cli(&["devices", "--json"]));
        let key = list
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == format!("d{d}")))
            .and_then(|x| x["key"].as_str())
            .expect("device key")
            .to_owned();
        keys.push(key);
    }
    keys
}

fn read_ok(reader: &AgentProcess, device: &str) -> bool {
    let out = reader.cli(&["read", device, "v", "--json"]);
    out.status.success() && json(&out)["readings"][0]["value"].is_number()
}

#[test]
fn a_private_network_of_credentials_admits_members_and_revokes_them_everywhere() {
    let (gateways, devices, readers) = sizes();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| -> PathBuf { tmp.path().join(n) };
    let cli = Sandbox::new();

    // The admin: a key, and the config lines members need.
    std::fs::create_dir_all(dir("admin")).expect("dir");
    let admin = create_network(&cli, &dir("admin"));

    // Every member: its own key, a credential, no list.
    let member = |name: &str, role: &str, extra: &[&str], seeds: &[String]| -> String {
        let key = keygen(&dir(name).join(".streembit/identity.pem"));
        let credential = dir(name).join("credential.cose");
        issue(&cli, &dir("admin"), &key, role, extra, &credential);
        config(&admin, &credential, seeds)
    };
    let office_cfg = member("office", "member", &[], &[]);
    let mut office = AgentProcess::start(&dir("office"), &office_cfg);
    let seeds = vec![office.seed()];

    let mut gws = Vec::new();
    let mut device_keys: Vec<Vec<String>> = Vec::new();
    for g in 0..gateways {
        let name = format!("gw{g}");
        let cfg = member(&name, "gateway", &[], &seeds);
        bridge(&dir(&name), g, devices, broker.port);
        let gw = AgentProcess::start(&dir(&name), &cfg);
        device_keys.push(feed(&gw, g, devices, broker.port));
        gws.push(gw);
    }
    let mut rds = Vec::new();
    for r in 0..readers {
        let name = format!("reader{r}");
        let cfg = member(&name, "member", &[], &seeds);
        rds.push(AgentProcess::start(&dir(&name), &cfg));
    }

    // Every reader reads and subscribes to every device.
    let all: Vec<&String> = device_keys.iter().flatten().collect();
    for reader in &rds {
        for device in &all {
            eventually(&format!("a read of {device}"), || read_ok(reader, device));
            let sub = reader.cli(&["subscribe", device]);
            assert!(
                sub.status.success(),
                "{}",
                String::from_utf8_lossy(&sub.stderr)
            );
        }
    }
    for reader in &rds {
        let subs = json(&reader.cli(&["subscriptions", "--json"]));
        assert_eq!(subs.as_array().map(Vec::len), Some(all.len()));
    }

    // Outsiders are refused in the handshake, each for its reason, and
    // never get an application byte: they hold no connection.
    keygen(&dir("outsider").join(".streembit/identity.pem"));
    let outsider_cfg = format!(
        "listen = \"127.0.0.1:0\"\nnetwork = \"site\"\nallowlist = [\"{}\"]\nseeds = [\"{}\"]\n",
        office.seed().split('@').next().expect("key"),
        office.seed()
    );
    let outsider = AgentProcess::start(&dir("outsider"), &outsider_cfg);
    // Another network's admin, same network name.
    std::fs::create_dir_all(dir("rogue-admin")).expect("dir");
    let rogue_admin = create_network(&cli, &dir("rogue-admin"));
    let foreign_key = keygen(&dir("foreign").join(".streembit/identity.pem"));
    issue(
        &cli,
        &dir("rogue-admin"),
        &foreign_key,
        "member",
        &[],
        &dir("foreign").join("credential.cose"),
    );
    let foreign = AgentProcess::start(
        &dir("foreign"),
        &config(
            &rogue_admin,
            &dir("foreign").join("credential.cose"),
            &seeds,
        ),
    );
    // Expired yesterday (by the calendar of this machine).
    let expired_cfg = member("expired", "member", &["--expires", "2020-01-01"], &seeds);
    let expired = AgentProcess::start(&dir("expired"), &expired_cfg);
    for (reason, who) in [
        ("not_allowlisted", &outsider),
        ("untrusted_issuer", &foreign),
        ("credential_expired", &expired),
    ] {
        let series = format!("streembit_handshakes_refused_total{{reason=\"{reason}\"}}");
        // Counted where it was refused: by the office, or, for a foreign
        // admin, by the outsider first (it trusts none of our credentials,
        // and TLS checks the server before the client).
        eventually(&format!("a refusal for {reason}"), || {
            office.metric(&series) + who.metric(&series) >= 1
        });
        assert_eq!(who.metric("streembit_connections"), 0, "{reason}");
    }

    // Each reader holds a connection to each device's name it read.
    let device_conns: Vec<u64> = gws
        .iter()
        .map(|g| g.metric("streembit_device_connections"))
        .collect();
    assert!(
        device_conns
            .iter()
            .all(|n| *n == (readers * devices) as u64),
        "{device_conns:?}"
    );

    // The admin revokes a reader and a gateway.
    let revoked_reader = rds.pop().expect("a reader");
    let revoked_gw = gws.pop().expect("a gateway");
    let revoked_devices = device_keys.pop().expect("its devices");
    let rd_key = revoked_reader
        .seed()
        .split('@')
        .next()
        .expect("key")
        .to_owned();
    let gw_key = revoked_gw.seed().split('@').next().expect("key").to_owned();
    let revoke = office.cli(&[
        "member",
        "revoke",
        &rd_key,
        &gw_key,
        "--admin-key",
        dir("admin").join("site-admin.pem").to_str().expect("path"),
    ]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );

    // Every agent learns it, the revoked ones too (they are told before
    // they are cut off, or refuse to matter: either way they hold nothing).
    for a in gws.iter().chain(&rds).chain([&office]) {
        eventually("the new revocation sequence", || {
            a.metric("streembit_revocation_seq") == 1
        });
    }
    // Their connections are closed at once: the revoked reader held one to
    // each device's name on every gateway (reads), and none is left.
    for (g, before) in gws.iter().zip(&device_conns) {
        eventually("the revoked reader's device connections closed", || {
            g.metric("streembit_device_connections") == before - devices as u64
        });
    }
    // Whatever they try next is refused, and they are told so.
    for device in device_keys.iter().flatten().take(2) {
        let out = revoked_reader.cli(&["read", device, "v"]);
        assert!(!out.status.success(), "revoked reader read {device}");
        if !stderr(&out).contains("not admitted") {
            eprintln!("DEBUGDIR {}", revoked_reader.dir().display());
            std::mem::forget(tmp);
            panic!("{}", stderr(&out));
        }
    }
    for a in gws.iter().chain(&rds) {
        let out = stdout(&a.cli(&["peers", "--json"]));
        assert!(
            !out.contains(&rd_key) && !out.contains(&gw_key),
            "still in a table"
        );
    }
    // The revoked gateway's devices can no longer be read.
    for device in &revoked_devices {
        assert!(!read_ok(&rds[0], device), "{device} still readable");
    }
    // The revoked reader's subscriptions are gone from every gateway.
    let removed: u64 = gws
        .iter()
        .map(|g| g.metric("streembit_subscriptions_removed_total"))
        .sum();
    assert_eq!(removed, (gws.len() * devices) as u64);
    // Its attempts to come back are refused and counted.
    eventually("a revoked key's handshake refused", || {
        gws.iter()
            .chain([&office])
            .map(|a| a.metric(r#"streembit_handshakes_refused_total{reason="revoked"}"#))
            .sum::<u64>()
            >= 1
    });
    // Still readable: everyone else's devices.
    for device in device_keys.iter().flatten().take(3) {
        assert!(read_ok(&rds[0], device));
    }

    // An agent that restarts keeps the list, before it talks to anyone.
    let gw0 = &mut gws[0];
    gw0.restart(None);
    assert_eq!(gw0.metric("streembit_revocation_seq"), 1);
    let members = json(&gw0.cli(&["members", "--json"]));
    assert_eq!(members["revoked"].as_array().map(Vec::len), Some(2));

    // The list is also kept in the DHT, under the network's key: members
    // published it, and a member that joins now finds that record after
    // joining (applied from it, or already applied from a peer's offer,
    // whichever came first), and never refuses it.
    let dht = |a: &AgentProcess, event: &str| {
        a.metric(&format!(
            "streembit_revocation_dht_total{{event=\"{event}\"}}"
        ))
    };
    let published: u64 = gws
        .iter()
        .chain([&office])
        .map(|a| dht(a, "published"))
        .sum();
    assert!(published >= 1);
    let late_cfg = member("latecomer", "member", &[], &seeds);
    let late = AgentProcess::start(&dir("latecomer"), &late_cfg);
    eventually("the latecomer's lookup of the network's record", || {
        dht(&late, "fetched_applied") + dht(&late, "fetched_not_newer") >= 1
    });
    assert_eq!(dht(&late, "fetched_refused"), 0);
    assert_eq!(dht(&late, "not_found"), 0);
    assert_eq!(late.metric("streembit_revocation_seq"), 1);
    office.terminate();
}
