//! The MQTT payload mapper for any point (type, JSON pointer, scale) and any
//! payload: never panics, a good value is finite and of the point's type;
//! and for unscaled points, a decoded value published as a command and read
//! back by the same point is the same value (text and JSON formats).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use streembit_bridges::config::{Access, CommandFormat, MqttCommand, MqttPoint, PayloadType};
use streembit_bridges::fuzzing::{mqtt_command_payload, mqtt_value};
use streembit_bridges::{PointError, Value};

const TYPES: [PayloadType; 4] = [
    PayloadType::Bool,
    PayloadType::Int,
    PayloadType::Float,
    PayloadType::String,
];
const POINTERS: [&str; 5] = ["", "/ENERGY/Power", "/a/0", "/~1x/~0y", "/"];

fn point(u: &mut Unstructured<'_>) -> ArbResult<MqttPoint> {
    let pointer = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some((*u.choose(&POINTERS)?).to_owned()),
        _ => Some(u.arbitrary::<String>()?),
    };
    let scaled = u.ratio(1u8, 4)?;
    Ok(MqttPoint {
        name: "p".into(),
        topic: "t".into(),
        pointer,
        payload_type: *u.choose(&TYPES)?,
        scale: if scaled { u.arbitrary()? } else { None },
        offset: if scaled { u.arbitrary()? } else { None },
        unit: None,
        access: Access::ReadWrite,
        command: None,
        writers: None,
    })
}

fn of_type(ty: PayloadType, v: &Value, scaled: bool) -> bool {
    match (ty, v) {
        (_, Value::Float(f)) if scaled => f.is_finite(),
        (PayloadType::Bool, Value::Bool(_)) => true,
        (PayloadType::Int, Value::Int(_) | Value::UInt(_)) => true,
        (PayloadType::Float, Value::Float(f)) => f.is_finite(),
        (PayloadType::String, Value::String(_)) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(p) = point(&mut u) else { return };
    let payload = u.take_rest();
    let v = match mqtt_value(&p, payload) {
        Ok(v) => v,
        Err(PointError::Exception { .. }) => panic!("MQTT has no exceptions"),
        Err(_) => return,
    };
    let scaled = p.scale.is_some() || p.offset.is_some();
    assert!(
        of_type(p.payload_type, &v, scaled),
        "{:?} gave {v:?}",
        p.payload_type
    );
    if scaled {
        return;
    }
    for format in [CommandFormat::Text, CommandFormat::Json] {
        // Text payloads are trimmed on arrival (brokers and shells add
        // newlines), so text taken from inside a JSON document with its own
        // edge spaces cannot come back verbatim as a text payload.
        if let (CommandFormat::Text, Value::String(s)) = (format, &v) {
            if s.trim() != s {
                continue;
            }
        }
        let c = MqttCommand {
            topic: "c".into(),
            format,
            on: "ON".into(),
            off: "OFF".into(),
            retain: false,
        };
        let out = match mqtt_command_payload(&p, &c, &v) {
            Ok(out) => out,
            // Integers beyond 2^53 are refused rather than sent inexactly.
            Err(PointError::OutOfRange(_)) if p.payload_type == PayloadType::Int => continue,
            Err(e) => panic!("{v:?} as {format:?}: {e}"),
        };
        // A text payload is read as text, a JSON one as the JSON document.
        let reader = MqttPoint {
            pointer: (format == CommandFormat::Json).then(String::new),
            ..p.clone()
        };
        assert_eq!(
            mqtt_value(&reader, &out),
            Ok(v.clone()),
            "{format:?} payload {:?}",
            String::from_utf8_lossy(&out)
        );
    }
});
