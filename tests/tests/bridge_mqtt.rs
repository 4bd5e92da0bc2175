//! MQTT against a real mosquitto on a free port: readings from
//! mosquitto_pub, commands seen by mosquitto_sub, garbage payloads as point
//! errors, and a broker restart that loses no QoS 1 message either way.

use streembit_bridges::{Command, CommandError, DeviceState, PointError, Value};
use streembit_tests::harness::bridge::{point, start, status, tee};
use streembit_tests::peers::modbus_checks::KEY;
use streembit_tests::peers::mosquitto::Broker;

fn bridge_file(port: u16, client_id: &str) -> String {
    format!(
        r#"
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "{client_id}"
reconnect_min_ms = 50
reconnect_max_ms = 500
max_payload = 4096

[[mqtt.devices]]
name = "plug"
writers = ["{KEY}"]
availability = {{ topic = "tele/plug/LWT", online = "Online", offline = "Offline" }}
points = [
  {{ name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" }},
  {{ name = "voltage", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Voltage", type = "int", unit = "V" }},
  {{ name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = {{ topic = "cmnd/plug/POWER" }} }},
  {{ name = "temp", topic = "sensor/temp", type = "float", scale = 0.1, unit = "°C" }},
  {{ name = "count", topic = "sensor/count", type = "int" }},
  {{ name = "label", topic = "sensor/label", type = "string" }},
]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_commands_and_garbage() {
    let broker = Broker::start().await;
    let (bridge, readings) = start(&bridge_file(broker.port, "gw-readings"));
    let mut readings = tee(readings);

    // Retained, so it reaches the bridge whenever it subscribes.
    broker.publish_retained("tele/plug/LWT", "Online").await;
    status(&bridge, "plug", "online", |s| {
        s.state == DeviceState::Online
    })
    .await;
    broker
        .publish_retained(
            "tele/plug/SENSOR",
            r#"{"ENERGY":{"Power":42.5,"Voltage":231}}"#,
        )
        .await;
    let power = point(&mut readings, "plug", "power", |_| true).await;
    assert_eq!(power.value, Some(Value::Float(42.5)));
    assert_eq!(power.unit.as_deref(), Some("W"));
    point(&mut readings, "plug", "voltage", |r| {
        r.value == Some(Value::Int(231))
    })
    .await;
    // The bridge is subscribed to everything now (one SUBSCRIBE).
    broker.publish("stat/plug/POWER", "ON").await;
    point(&mut readings, "plug", "relay", |r| {
        r.value == Some(Value::Bool(true))
    })
    .await;
    broker.publish("sensor/temp", "215").await;
    point(&mut readings, "plug", "temp", |r| {
        r.value == Some(Value::Float(21.5))
    })
    .await;
    broker.publish("sensor/label", "kitchen").await;
    point(&mut readings, "plug", "label", |r| {
        r.value == Some(Value::String("kitchen".into()))
    })
    .await;

    // Commands reach a real subscriber.
    let mut sub = broker.subscribe("cmnd/plug/#", None).await;
    let relay = |v: Value| Command {
        device: "plug".into(),
        point: "relay".into(),
        value: v,
    };
    bridge
        .command(relay(Value::Bool(false)))
        .await
        .expect("command");
    sub.expect_line("cmnd/plug/POWER OFF", |l| l == "cmnd/plug/POWER OFF")
        .await;
    let err = bridge.command(relay(Value::String("maybe".into()))).await;
    assert!(
        matches!(err, Err(CommandError::Point(PointError::Type(_)))),
        "{err:?}"
    );
    let err = bridge
        .command(Command {
            device: "plug".into(),
            point: "power".into(),
            value: Value::Float(1.0),
        })
        .await;
    assert_eq!(err, Err(CommandError::Point(PointError::ReadOnly)));

    // Garbage on every input: point errors, and the bridge goes on.
    broker.publish("tele/plug/SENSOR", "not json {").await;
    let r = point(&mut readings, "plug", "power", |r| r.value.is_none()).await;
    assert!(
        matches!(r.error(), Some(PointError::Decode(m)) if m.contains("not JSON")),
        "{r:?}"
    );
    let r = point(&mut readings, "plug", "voltage", |r| r.value.is_none()).await;
    assert!(
        matches!(r.error(), Some(PointError::Decode(m)) if m.contains("not JSON")),
        "{r:?}"
    );
    broker.publish("tele/plug/SENSOR", r#"{"ENERGY":{}}"#).await;
    let r = point(&mut readings, "plug", "voltage", |r| r.value.is_none()).await;
    assert!(matches!(r.error(), Some(PointError::Missing(_))), "{r:?}");
    broker.publish("sensor/temp", "NaN").await;
    let r = point(&mut readings, "plug", "temp", |r| r.value.is_none()).await;
    assert_eq!(r.error(), Some(&PointError::NotFinite));
    broker
        .publish("sensor/count", "123456789012345678901234567890")
        .await;
    let r = point(&mut readings, "plug", "count", |r| r.value.is_none()).await;
    assert!(
        matches!(r.error(), Some(PointError::OutOfRange(_))),
        "{r:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'{'; 1 << 20]).expect("write");
    broker.publish_file("tele/plug/SENSOR", &huge).await;
    let r = point(&mut readings, "plug", "power", |r| {
        matches!(r.error(), Some(PointError::TooLarge { .. }))
    })
    .await;
    assert!(
        matches!(
            r.error(),
            Some(PointError::TooLarge {
                size: 1048576,
                limit: 4096
            })
        ),
        "{r:?}"
    );
    broker.publish("sensor/count", "7").await;
    point(&mut readings, "plug", "count", |r| {
        r.value == Some(Value::Int(7))
    })
    .await;
    assert!(!bridge.is_finished());

    // The device's own last will.
    broker.publish("tele/plug/LWT", "Offline").await;
    let st = status(&bridge, "plug", "offline", |s| {
        matches!(s.state, DeviceState::Offline { .. })
    })
    .await;
    assert!(
        matches!(st.state, DeviceState::Offline { ref reason, .. } if reason.contains("announced")),
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_reconnects_and_loses_no_qos1_message() {
    let mut broker = Broker::start().await;
    // A persistent subscriber for commands; it leaves, the broker keeps its queue.
    drop(
        broker
            .subscribe("cmnd/plug/POWER", Some("cmd-watcher"))
            .await,
    );
    let (bridge, readings) = start(&bridge_file(broker.port, "gw-restart"));
    let mut readings = tee(readings);
    broker.publish_retained("tele/plug/LWT", "Online").await;
    broker
        .publish_retained("tele/plug/SENSOR", r#"{"ENERGY":{"Power":-1}}"#)
        .await;
    point(&mut readings, "plug", "power", |r| {
        r.value == Some(Value::Float(-1.0))
    })
    .await;

    broker.stop().await;
    let st = status(&bridge, "plug", "offline", |s| {
        matches!(s.state, DeviceState::Offline { .. })
    })
    .await;
    assert!(
        matches!(st.state, DeviceState::Offline { ref reason, .. } if reason.starts_with("broker")),
        "{st:?}"
    );
    // A command while the broker is down waits for it.
    let pending = bridge
        .submit(Command {
            device: "plug".into(),
            point: "relay".into(),
            value: Value::Bool(true),
        })
        .expect("queued");

    broker.restart().await;
    // Published as soon as the broker is back, whether or not the bridge
    // has reconnected yet: its persistent session holds them.
    for i in 0..20 {
        broker
            .publish(
                "tele/plug/SENSOR",
                &format!(r#"{{"ENERGY":{{"Power":{i}}}}}"#),
            )
            .await;
    }
    let mut seen = [false; 20];
    while !seen.iter().all(|s| *s) {
        let r = point(&mut readings, "plug", "power", |r| r.value.is_some()).await;
        if let Some(Value::Float(v)) = r.value {
            if (0.0..20.0).contains(&v) {
                seen[v as usize] = true;
            }
        }
    }
    let acked = tokio::time::timeout(streembit_tests::harness::process::PATIENCE, pending).await;
    assert!(matches!(acked, Ok(Ok(Ok(())))), "{acked:?}");
    let mut sub = broker
        .subscribe("cmnd/plug/POWER", Some("cmd-watcher"))
        .await;
    sub.find_line("the command sent during the outage", |l| {
        l == "cmnd/plug/POWER ON"
    })
    .await;
    status(&bridge, "plug", "online", |s| {
        s.state == DeviceState::Online
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_username_and_password() {
    let broker = Broker::start_secure("gateway", "s3cret").await;
    let Some(secure) = broker.secure().cloned() else {
        panic!("not a secure broker")
    };
    let file = |password: &str, client_id: &str| {
        bridge_file(broker.port, client_id).replacen(
            "max_payload = 4096\n",
            &format!(
                "max_payload = 4096\nusername = \"gateway\"\npassword = \"{password}\"\n[mqtt.tls]\nca_file = \"{}\"\n",
                secure.ca.display()
            ),
            1,
        )
    };
    let (bridge, readings) = start(&file("s3cret", "gw-tls"));
    let mut readings = tee(readings);
    broker.publish_retained("sensor/label", "over tls").await;
    point(&mut readings, "plug", "label", |r| {
        r.value == Some(Value::String("over tls".into()))
    })
    .await;
    let mut sub = broker.subscribe("cmnd/plug/POWER", None).await;
    bridge
        .command(Command {
            device: "plug".into(),
            point: "relay".into(),
            value: Value::Bool(true),
        })
        .await
        .expect("command over tls");
    sub.expect_line("the command", |l| l == "cmnd/plug/POWER ON")
        .await;

    // A wrong password: offline, with the broker's refusal as the reason.
    let (bad, _r) = start(&file("wrong", "gw-tls-bad"));
    let st = status(&bad, "plug", "offline", |s| {
        matches!(s.state, DeviceState::Offline { .. })
    })
    .await;
    assert!(
        matches!(st.state, DeviceState::Offline { ref reason, .. } if reason.starts_with("broker")),
        "{st:?}"
    );

    // A broker certificate the bridge does not trust: offline, no panic.
    let (untrusting, _r) = start(&bridge_file(broker.port, "gw-no-ca").replacen(
        "max_payload = 4096\n",
        "max_payload = 4096\n[mqtt.tls]\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
        1,
    ));
    status(&untrusting, "plug", "offline", |s| {
        matches!(s.state, DeviceState::Offline { .. })
    })
    .await;
    assert!(!untrusting.is_finished());
}
