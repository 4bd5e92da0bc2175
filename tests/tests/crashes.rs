//! A gateway SIGKILLed 100 times at arbitrary moments while its bridge
//! takes readings and a subscriber follows its device: after every restart
//! it comes back READY with the same identity (keys, routing table and
//! queues all opened), and what the subscriber receives stays in order,
//! without duplicates, through to a final reading.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::cli::stderr;
use streembit_tests::peers::mosquitto::Broker;

const KILLS: u64 = 100;

fn inbox(agent: &AgentProcess, device: &str) -> Vec<(u64, i64)> {
    let out = agent.cli(&["inbox", device, "--json", "--limit", "10000"]);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["seq"].as_u64()?, e["value"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn wait<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn start_gateway(dir: &Path, port: u16, broker: u16) -> AgentProcess {
    std::fs::create_dir_all(dir.join("bridges.d")).expect("dirs");
    std::fs::write(
        dir.join("bridges.d/counter.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"gw-crashes\"\n\n[[mqtt.devices]]\nname = \"counter\"\npoints = [ {{ name = \"n\", topic = \"c/n\", type = \"int\" }} ]\n"
        ),
    )
    .expect("bridge file");
    AgentProcess::builder(dir, &format!("listen = \"127.0.0.1:{port}\"\n"))
        .log("warn")
        .spawn()
}

#[test]
fn a_hundred_sigkills_leave_identity_state_and_delivery_intact() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let mut gw = start_gateway(&tmp.path().join("gw"), port, broker.port);
    let key = gw.key.clone();
    let devices = gw.cli(&["devices", "--json"]);
    assert!(devices.status.success(), "{}", stderr(&devices));
    let counter = serde_json::from_slice::<Value>(&devices.stdout).expect("json")[0]["key"]
        .as_str()
        .expect("device key")
        .to_owned();
    let mut sub = AgentProcess::builder(
        &tmp.path().join("sub"),
        &format!(
            "listen = \"127.0.0.1:0\"\nseeds = [\"{key}@{}\"]\n",
            gw.addr
        ),
    )
    .log("warn")
    .spawn();
    sub.wait_published(1);
    gw.wait_for("device record", |m| {
        m.contains("record stored at") && !m.contains("at 0 nodes")
    });
    assert!(sub.cli(&["subscribe", &counter]).status.success());
    gw.wait_subscriber(&counter, &sub.key);
    rt.block_on(broker.publish("c/n", "0"));
    wait("the first reading at the subscriber", || {
        (!inbox(&sub, &counter).is_empty()).then_some(())
    });

    // A reading, then a SIGKILL somewhere between 0 and ~150 ms later:
    // while it is being sealed, queued, delivered or not yet taken.
    for i in 1..=KILLS {
        rt.block_on(broker.publish("c/n", &i.to_string()));
        std::thread::sleep(Duration::from_millis((i * 37) % 150));
        gw.kill();
        gw.restart(None);
        assert_eq!(gw.key, key, "identity changed after kill {i}");
        assert!(
            !gw.log().contains("persisted routing table ignored"),
            "routing table unreadable after kill {i}"
        );
    }
    // A last reading after the last restart must get through.
    let last = KILLS + 1;
    let got = wait("the final reading at the subscriber", || {
        rt.block_on(broker.publish("c/n", &last.to_string()));
        let got = inbox(&sub, &counter);
        got.iter().any(|(_, v)| *v == last as i64).then_some(got)
    });
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "sequences grow");
    let values: Vec<i64> = got.iter().map(|(_, v)| *v).collect();
    assert!(
        values.windows(2).all(|w| w[1] >= w[0]),
        "readings out of order: {values:?}"
    );
    let subs: Value =
        serde_json::from_slice(&sub.cli(&["subscriptions", "--json"]).stdout).expect("json");
    assert_eq!(subs[0]["rejected"], 0);
    let distinct = {
        let mut v = values.clone();
        v.dedup();
        v.len()
    };
    eprintln!(
        "FIGURE crashes: {KILLS} SIGKILLs, {distinct} of {} published values reached the subscriber, in order, {} duplicates dropped",
        last + 1,
        subs[0]["duplicates"]
    );
    gw.terminate();
    sub.terminate();
}
