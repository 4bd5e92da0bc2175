use super::*;

const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

#[test]
fn a_valid_rtu_file_parses_with_defaults() {
    let text = format!(
        r#"
[modbus_rtu]
port = "/dev/ttyUSB0"
[[modbus_rtu.devices]]
name = "meter"
unit_id = 1
writers = ["{KEY}"]
points = [
  {{ name = "voltage", table = "input_register", address = 0, type = "f32", unit = "V" }},
  {{ name = "relay", table = "coil", address = 3, access = "rw" }},
]
"#
    );
    let file = BridgeFile::from_toml_str(&text).expect("valid");
    let Ok(Bus::ModbusRtu(bus)) = file.into_bus() else {
        panic!("not rtu")
    };
    assert_eq!(bus.baud, 9600);
    assert_eq!(bus.parity, Parity::None);
    assert_eq!(bus.devices[0].points[1].data_type(), DataType::Bool);
    assert_eq!(bus.devices[0].points[0].span(), 2);
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let text = r#"
[modbus_tcp]
host = "127.0.0.1"
colour = "blue"
devices = []
"#;
    let errs = BridgeFile::from_toml_str(text).expect_err("unknown key");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].reason.contains("colour"), "{errs:?}");
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let text = r#"
[modbus_rtu]
port = ""
data_bits = 9
[[modbus_rtu.devices]]
name = "a b"
unit_id = 0
writers = ["ABC"]
points = [
  { name = "s", table = "holding_register", address = 10, type = "string" },
  { name = "s", table = "input_register", address = 65535, type = "u32", access = "rw" },
  { name = "c", table = "coil", address = 1, type = "f32" },
  { name = "b", table = "holding_register", address = 5, type = "bool", scale = 2.0 },
]
"#;
    let errs = BridgeFile::from_toml_str(text).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "modbus_rtu.port",
        "modbus_rtu.data_bits",
        "modbus_rtu.devices[0].name",
        "modbus_rtu.devices[0].unit_id",
        "modbus_rtu.devices[0].writers[0]",
        "modbus_rtu.devices[0].points[0].length",
        "modbus_rtu.devices[0].points[1].name",
        "modbus_rtu.devices[0].points[1].address",
        "modbus_rtu.devices[0].points[1].access",
        "modbus_rtu.devices[0].points[2].type",
        "modbus_rtu.devices[0].points[3].scale",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errs:#?}");
    }
}

#[test]
fn a_file_needs_exactly_one_bus() {
    let errs = BridgeFile::from_toml_str("").expect_err("no bus");
    assert!(errs[0].reason.contains("exactly one bus"));
}

#[test]
fn mqtt_rw_points_need_commands_and_writers() {
    let text = r#"
[mqtt]
host = "localhost"
client_id = "gw"
[[mqtt.devices]]
name = "plug"
points = [
  { name = "power", topic = "stat/plug/#", type = "bool", access = "rw" },
]
"#;
    let errs = BridgeFile::from_toml_str(text).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"mqtt.devices[0].points[0].topic"),
        "{errs:?}"
    );
    assert!(
        paths.contains(&"mqtt.devices[0].points[0].command"),
        "{errs:?}"
    );
    assert!(
        paths.contains(&"mqtt.devices[0].points[0].writers"),
        "{errs:?}"
    );
}

#[test]
fn writers_resolve_point_then_device() {
    let text = format!(
        r#"
[modbus_tcp]
host = "plc"
[[modbus_tcp.devices]]
name = "plc"
unit_id = 1
writers = ["{KEY}"]
points = [
  {{ name = "setpoint", table = "holding_register", address = 0, access = "rw" }},
  {{ name = "temp", table = "input_register", address = 0 }},
]
"#
    );
    let bus = BridgeFile::from_toml_str(&text)
        .and_then(BridgeFile::into_bus)
        .expect("valid");
    assert_eq!(bus.writers("plc", "setpoint"), vec![KEY.to_owned()]);
    assert!(bus.writers("plc", "temp").is_empty());
    assert!(bus.writers("nope", "temp").is_empty());
}

#[test]
fn shipped_examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bridges.d");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read");
            if let Err(errs) = BridgeFile::from_toml_str(&text) {
                panic!("{}: {errs:#?}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the three shipped examples, saw {seen}");
}

#[test]
fn the_one_bus_message_lists_every_table() {
    let errs = BridgeFile::from_toml_str("").expect_err("no bus");
    assert_eq!(
        errs[0].reason,
        "a bridge file describes exactly one bus: one of [modbus_rtu], [modbus_tcp], [i2c], [mqtt] (found 0)"
    );
}

#[test]
fn device_paths_name_the_key_and_what_the_file_is() {
    let bus = |text: &str| {
        BridgeFile::from_toml_str(text)
            .and_then(BridgeFile::into_bus)
            .expect("valid")
    };
    let rtu = bus(r#"
[modbus_rtu]
port = "/dev/ttyUSB7"
[[modbus_rtu.devices]]
name = "m"
unit_id = 1
points = [ { name = "v", table = "input_register", address = 0 } ]
"#);
    assert_eq!(
        rtu.device_paths(),
        vec![DevicePath {
            key: "modbus_rtu.port".into(),
            kind: "serial device",
            path: "/dev/ttyUSB7".into(),
        }]
    );
    let i2c = bus(r#"
[i2c]
bus = "/dev/i2c-3"
[[i2c.devices]]
name = "t"
sensor = "sht3x"
address = 0x44
"#);
    assert_eq!(
        i2c.device_paths(),
        vec![DevicePath {
            key: "i2c.bus".into(),
            kind: "I2C bus",
            path: "/dev/i2c-3".into(),
        }]
    );
    let tcp = bus(r#"
[modbus_tcp]
host = "plc"
[[modbus_tcp.devices]]
name = "m"
unit_id = 1
points = [ { name = "v", table = "input_register", address = 0 } ]
"#);
    assert!(tcp.device_paths().is_empty());
    assert_eq!(tcp.device_names(), vec!["m"]);
}

#[test]
fn point_names_per_device_on_every_bus() {
    let bus = |text: &str| {
        BridgeFile::from_toml_str(text)
            .and_then(BridgeFile::into_bus)
            .expect("valid")
    };
    let tcp = bus(r#"
[modbus_tcp]
host = "plc"
[[modbus_tcp.devices]]
name = "m"
unit_id = 1
points = [
  { name = "v", table = "input_register", address = 0 },
  { name = "c", table = "coil", address = 0 },
]
[[modbus_tcp.devices]]
name = "n"
unit_id = 2
points = [ { name = "w", table = "input_register", address = 0 } ]
"#);
    assert_eq!(tcp.point_names("m"), ["v", "c"]);
    assert_eq!(tcp.point_names("n"), ["w"]);
    assert!(tcp.point_names("x").is_empty());
    let i2c = bus(r#"
[i2c]
bus = "/dev/i2c-3"
[[i2c.devices]]
name = "t"
sensor = "sht3x"
address = 0x44
"#);
    assert_eq!(i2c.point_names("t"), ["temperature", "humidity"]);
    let mqtt = bus(r#"
[mqtt]
host = "localhost"
client_id = "gw"
[[mqtt.devices]]
name = "plug"
points = [ { name = "power", topic = "p", type = "float" } ]
"#);
    assert_eq!(mqtt.point_names("plug"), ["power"]);
}
