//! Readings where people already look (issue 21, item 2): a gateway with an
//! MQTT plug publishes each verified reading as SenML JSON (RFC 8428) and
//! announces each point to Home Assistant (MQTT discovery), checked with
//! mosquitto_sub on a real mosquitto: the topics, and the payload keys
//! Home Assistant's MQTT discovery reads; and the opt-in per-point gauges
//! on `/metrics`.

use serde_json::Value;
use streembit_tests::harness::agent_process::{eventually, gateway_dir, AgentProcess};
use streembit_tests::peers::mosquitto::Broker;

const PLUG: &str = r#"
[mqtt]
host = "127.0.0.1"
port = {PORT}
client_id = "gw-plain"

[[mqtt.devices]]
name = "plug"
points = [
  { name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" },
  { name = "relay", topic = "stat/plug/POWER", type = "bool" },
]
"#;

/// The payload of a `mosquitto_sub -v` line (`topic payload`) as JSON.
fn payload(line: &str) -> Value {
    let (_, json) = line.split_once(' ').expect("topic and payload");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn verified_readings_go_out_as_senml_and_points_are_announced_to_home_assistant() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = gateway_dir(
        tmp.path(),
        &[(
            "plug.toml",
            &PLUG.replace("{PORT}", &broker.port.to_string()),
        )],
    );
    let agent = AgentProcess::start(
        &dir,
        &format!(
            "listen = \"127.0.0.1:0\"\n[mqtt]\npublish_to = \"127.0.0.1:{}\"\nhomeassistant_discovery = true\n[metrics]\npoint_gauges = true\n",
            broker.port
        ),
    );
    let devices: Value =
        serde_json::from_slice(&agent.cli(&["devices", "--json"]).stdout).expect("devices");
    let key = devices[0]["key"].as_str().expect("device key").to_owned();
    let mut senml = rt.block_on(broker.subscribe("streembit/senml/#", None));
    let mut discovery = rt.block_on(broker.subscribe("homeassistant/#", None));

    rt.block_on(broker.publish("tele/plug/SENSOR", r#"{"ENERGY":{"Power":42.5}}"#));
    rt.block_on(broker.publish("stat/plug/POWER", "ON"));

    // SenML: one pack of one record per reading, on the parallel tree.
    let power = rt.block_on(senml.find_line("the power reading as SenML", |l| {
        l.starts_with(&format!("streembit/senml/{key}/power "))
    }));
    let p = payload(&power);
    assert_eq!(p.as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(p[0]["bn"], format!("urn:dev:streembit:{key}:"));
    assert_eq!(p[0]["n"], "power");
    assert_eq!(p[0]["v"], 42.5);
    assert_eq!(p[0]["u"], "W");
    assert!(p[0]["t"].as_f64().is_some_and(|t| t > 1.6e9), "{p}");
    let relay = rt.block_on(senml.find_line("the relay reading as SenML", |l| {
        l.starts_with(&format!("streembit/senml/{key}/relay "))
    }));
    assert_eq!(payload(&relay)[0]["vb"], true);

    // Discovery: the config topics and the keys Home Assistant reads.
    let node = format!("streembit_{}", &key[..16]);
    let sensor = rt.block_on(discovery.find_line("the power sensor's config", |l| {
        l.starts_with(&format!("homeassistant/sensor/{node}/power/config "))
    }));
    let c = payload(&sensor);
    for k in [
        "name",
        "unique_id",
        "state_topic",
        "value_template",
        "unit_of_measurement",
        "device_class",
        "state_class",
        "device",
    ] {
        assert!(c.get(k).is_some(), "no {k} in {c}");
    }
    assert_eq!(c["state_topic"], format!("streembit/senml/{key}/power"));
    assert_eq!(c["device_class"], "power");
    assert_eq!(c["unit_of_measurement"], "W");
    assert_eq!(c["device"]["name"], "plug");
    assert!(c["device"]["identifiers"][0]
        .as_str()
        .is_some_and(|i| i.contains(&key)));
    let binary = rt.block_on(discovery.find_line("the relay's config", |l| {
        l.starts_with(&format!("homeassistant/binary_sensor/{node}/relay/config "))
    }));
    let b = payload(&binary);
    assert!(b["value_template"]
        .as_str()
        .is_some_and(|t| t.contains("vb")));
    // Retained: a Home Assistant that starts later still learns the points.
    let mut late = rt.block_on(broker.subscribe("homeassistant/#", None));
    rt.block_on(late.find_line("the retained config", |l| {
        l.starts_with(&format!("homeassistant/sensor/{node}/power/config "))
    }));
    assert!(agent.metric("streembit_mqtt_senml_published_total") >= 2);
    assert_eq!(agent.metric("streembit_mqtt_discovery_published_total"), 2);
    assert_eq!(agent.metric("streembit_readings_not_verified_total"), 0);
    // The opt-in per-point gauges on /metrics: the latest verified values
    // (fed from the same verified readings, by a task of their own).
    let gauge = |point: &str, unit: &str| -> Option<f64> {
        let metrics = String::from_utf8_lossy(&agent.cli(&["metrics"]).stdout).into_owned();
        let series = format!(
            "streembit_point_value{{device=\"plug\",key=\"{key}\",point=\"{point}\",unit=\"{unit}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
    };
    eventually("the power gauge", || gauge("power", "W") == Some(42.5));
    eventually("the relay gauge", || gauge("relay", "") == Some(1.0));
}
