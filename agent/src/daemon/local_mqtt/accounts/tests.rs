use super::*;

fn bridge(name: &str, toml: &str) -> LoadedBridge {
    let bus = streembit_bridges::BridgeFile::from_toml_str(toml)
        .and_then(streembit_bridges::BridgeFile::into_bus)
        .unwrap_or_else(|e| panic!("bad test file: {e:?}"));
    LoadedBridge {
        name: name.to_owned(),
        fingerprint: 0,
        bus,
    }
}

fn policy() -> BrokerPolicy {
    BrokerPolicy {
        listen: "127.0.0.1:1883".parse().expect("addr"),
        topic_prefix: "streembit".to_owned(),
        agent_password: "agent-secret".to_owned(),
        allow_anonymous: false,
        discovery_prefix: None,
    }
}

const PLUG_FILE: &str = r#"
[mqtt]
host = "127.0.0.1"
client_id = "gw"
username = "bridge-a"
password = "pa"

[[mqtt.devices]]
name = "plug"
writers = ["{KEY}"]
username = "plug"
password = "plug-device-password"
availability = { topic = "tele/plug/LWT" }
points = [
  { name = "power", topic = "tele/plug/SENSOR", type = "float" },
  { name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = { topic = "cmnd/plug/POWER" } },
]
"#;

const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn plug() -> String {
    PLUG_FILE.replace("{KEY}", KEY)
}

/// The line block of `user` in the ACL file.
fn block<'a>(acl: &'a str, user: &str) -> Vec<&'a str> {
    acl.lines()
        .skip_while(|l| *l != format!("user {user}"))
        .skip(1)
        .take_while(|l| l.starts_with("topic"))
        .collect()
}

#[test]
fn each_account_gets_its_own_topics_only() {
    let files = broker_files(&[bridge("plug.toml", &plug())], &policy()).expect("files");
    assert!(files.warnings.is_empty(), "{:?}", files.warnings);
    assert_eq!(
        block(&files.acl, "plug"),
        [
            "topic read cmnd/plug/POWER",
            "topic read streembit/#",
            "topic write stat/plug/POWER",
            "topic write tele/plug/LWT",
            "topic write tele/plug/SENSOR",
        ]
    );
    assert_eq!(
        block(&files.acl, "bridge-a"),
        [
            "topic read stat/plug/POWER",
            "topic read streembit/#",
            "topic read tele/plug/LWT",
            "topic read tele/plug/SENSOR",
            "topic write cmnd/plug/POWER",
        ]
    );
    assert_eq!(block(&files.acl, AGENT_USER), ["topic write streembit/#"]);
    // With Home Assistant discovery, the agent also writes its tree.
    let with_ha = BrokerPolicy {
        discovery_prefix: Some("homeassistant".into()),
        ..policy()
    };
    let ha_files = broker_files(&[bridge("plug.toml", &plug())], &with_ha).expect("files");
    assert_eq!(
        block(&ha_files.acl, AGENT_USER),
        ["topic write homeassistant/#", "topic write streembit/#"]
    );
    // No anonymous section: nothing before the first `user`.
    let before: Vec<&str> = files
        .acl
        .lines()
        .take_while(|l| !l.starts_with("user "))
        .filter(|l| l.starts_with("topic"))
        .collect();
    assert!(before.is_empty(), "{before:?}");
    let users: Vec<&str> = files
        .passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(users, ["bridge-a", "plug", AGENT_USER]);
    assert!(files.passwd.lines().all(|l| l.contains(":$7$1000$")));
    // Distinctive passwords: base64 hashes may hold any short string.
    assert!(
        !files.passwd.contains("plug-device-password") && !files.passwd.contains("agent-secret")
    );
}

#[test]
fn anonymous_clients_only_read_when_allowed() {
    let mut p = policy();
    p.allow_anonymous = true;
    let files = broker_files(&[], &p).expect("files");
    let anonymous: Vec<&str> = files
        .acl
        .lines()
        .take_while(|l| !l.starts_with("user "))
        .filter(|l| l.starts_with("topic"))
        .collect();
    assert_eq!(anonymous, ["topic read #"]);
}

#[test]
fn a_bridge_of_another_broker_adds_no_account() {
    let other = plug().replace("127.0.0.1", "10.0.0.9");
    let files = broker_files(&[bridge("plug.toml", &other)], &policy()).expect("files");
    assert!(!files.acl.contains("user plug"), "{}", files.acl);
    let port = plug().replace("client_id", "port = 1884\nclient_id");
    let files = broker_files(&[bridge("plug.toml", &port)], &policy()).expect("files");
    assert!(!files.acl.contains("user plug"), "{}", files.acl);
}

#[test]
fn shared_reserved_and_missing_accounts_are_refused_or_warned() {
    let shared = plug().replace("username = \"plug\"", "username = \"bridge-a\"");
    let err = broker_files(&[bridge("plug.toml", &shared)], &policy()).expect_err("shared");
    assert!(
        err.iter()
            .any(|e| e.contains("never share") && e.contains("plug.toml")),
        "{err:?}"
    );
    let reserved = plug().replace("username = \"plug\"", "username = \"streembit-agent\"");
    let err = broker_files(&[bridge("plug.toml", &reserved)], &policy()).expect_err("reserved");
    assert!(err.iter().any(|e| e.contains("agent's own")), "{err:?}");
    let other_pw = plug().replace("password = \"pa\"", "password = \"other\"");
    let err = broker_files(
        &[bridge("a.toml", &plug()), bridge("b.toml", &other_pw)],
        &policy(),
    )
    .expect_err("two passwords");
    assert!(
        err.iter().any(|e| e.contains("another password")),
        "{err:?}"
    );
    let nameless = plug()
        .replace(
            "username = \"plug\"\npassword = \"plug-device-password\"\n",
            "",
        )
        .replace("username = \"bridge-a\"\npassword = \"pa\"\n", "");
    let files = broker_files(&[bridge("plug.toml", &nameless)], &policy()).expect("files");
    assert_eq!(files.warnings.len(), 2, "{:?}", files.warnings);
}
