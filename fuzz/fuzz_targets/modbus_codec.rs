//! The Modbus register codec for any point shape (type, word and byte
//! order, string length, scale and offset) and any registers: decoding never
//! panics, and registers that decode encode back to the same registers
//! (for scaled integer points too, when the scale is a usual one).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use streembit_bridges::config::{Access, ByteOrder, DataType, ModbusPoint, Table, WordOrder};
use streembit_bridges::fuzzing::{modbus_decode, modbus_encode};
use streembit_bridges::Value;

const TYPES: [DataType; 9] = [
    DataType::Bool,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];
/// Scales seen on real meters: tenths, hundredths, halves, tens.
const USUAL_SCALES: [f64; 5] = [0.1, 0.01, 0.5, 10.0, 1.0];

fn point(u: &mut Unstructured<'_>) -> ArbResult<(ModbusPoint, bool)> {
    let table = *u.choose(&[
        Table::Coil,
        Table::DiscreteInput,
        Table::InputRegister,
        Table::HoldingRegister,
    ])?;
    let data_type = if u.arbitrary()? {
        Some(*u.choose(&TYPES)?)
    } else {
        None
    };
    // 0: none, 1: a usual scale (and offset), 2: any f64 at all.
    let (scale, offset, usual) = match u.int_in_range(0..=2u8)? {
        0 => (None, None, false),
        1 => (
            Some(*u.choose(&USUAL_SCALES)?),
            Some(f64::from(u.int_in_range(-100i16..=100)?)),
            true,
        ),
        _ => (u.arbitrary()?, u.arbitrary()?, false),
    };
    let p = ModbusPoint {
        name: "p".into(),
        table,
        address: u.arbitrary()?,
        data_type,
        length: if u.arbitrary()? {
            Some(u.int_in_range(0..=130)?)
        } else {
            None
        },
        word_order: if u.arbitrary()? {
            WordOrder::Little
        } else {
            WordOrder::Big
        },
        byte_order: if u.arbitrary()? {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        },
        scale,
        offset,
        unit: None,
        access: Access::ReadWrite,
        write_multiple: false,
        writers: None,
    };
    Ok((p, usual))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((p, usual_scale)) = point(&mut u) else {
        return;
    };
    // Mostly the right number of registers, sometimes not.
    let n = if u.ratio(1u8, 8).unwrap_or(false) {
        u.int_in_range(0..=8usize).unwrap_or(0)
    } else {
        usize::from(p.span())
    };
    let regs: Vec<u16> = (0..n).map(|_| u.arbitrary().unwrap_or(0)).collect();

    let Ok(v) = modbus_decode(&p, &regs) else {
        // A wrong count is always an error, never a panic.
        return;
    };
    assert_eq!(regs.len(), usize::from(p.span()));
    if let Value::Float(f) = v {
        assert!(f.is_finite(), "a good reading is finite");
    }
    let ty = p.data_type();
    let unscaled = p.scale.is_none() && p.offset.is_none();
    let integer = matches!(
        ty,
        DataType::U16 | DataType::I16 | DataType::U32 | DataType::I32 | DataType::U64
    );
    // Anything decoded is a valid command value: encoding never panics.
    let encoded = modbus_encode(&p, &v);
    if ty == DataType::Bool {
        let back = encoded.expect("a decoded bool encodes");
        assert_eq!(modbus_decode(&p, &back), Ok(v));
    } else if unscaled {
        let back = encoded.unwrap_or_else(|e| panic!("{ty:?} {v:?} does not encode: {e}"));
        if ty == DataType::String {
            // Trailing NULs are padding: the text survives, the padding is normalised.
            assert_eq!(modbus_decode(&p, &back), Ok(v));
        } else {
            assert_eq!(back, regs, "{ty:?} {v:?}");
        }
    } else if usual_scale && integer && u64::from(p.span()) <= 2 {
        let back = encoded.unwrap_or_else(|e| panic!("{ty:?} {v:?} does not encode: {e}"));
        assert_eq!(
            back, regs,
            "{ty:?} scale {:?} offset {:?} {v:?}",
            p.scale, p.offset
        );
    }
});
