//! Registers to values and back, for every data type, word and byte order,
//! scale and offset; and Modbus exception codes to point errors.
//!
//! Pure functions over slices: no I/O. Bytes are first put in big-endian
//! order (the Modbus convention), then interpreted.

use tokio_modbus::ExceptionCode;

use super::config::{ByteOrder, DataType, ModbusPoint, WordOrder};
use crate::error::PointError;
use crate::value::Value;

/// Big-endian bytes of a point's registers after undoing its word and byte
/// order. Strings ignore word order (text runs in register order).
fn to_be_bytes(p: &ModbusPoint, regs: &[u16]) -> Vec<u8> {
    let swap = p.byte_order == ByteOrder::Little;
    let words: Vec<u16> = if p.word_order == WordOrder::Little && p.data_type() != DataType::String
    {
        regs.iter().rev().copied().collect()
    } else {
        regs.to_vec()
    };
    words
        .iter()
        .flat_map(|w| {
            let b = w.to_be_bytes();
            if swap {
                [b[1], b[0]]
            } else {
                b
            }
        })
        .collect()
}

/// The inverse of [`to_be_bytes`].
fn from_be_bytes(p: &ModbusPoint, bytes: &[u8]) -> Vec<u16> {
    let swap = p.byte_order == ByteOrder::Little;
    let mut words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let (hi, lo) = (c[0], c.get(1).copied().unwrap_or(0));
            if swap {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect();
    if p.word_order == WordOrder::Little && p.data_type() != DataType::String {
        words.reverse();
    }
    words
}

fn arr<const N: usize>(b: &[u8]) -> Result<[u8; N], PointError> {
    b.try_into()
        .map_err(|_| PointError::Decode(format!("expected {N} bytes, got {}", b.len())))
}

fn scaled(p: &ModbusPoint, raw: f64) -> Result<Value, PointError> {
    if !raw.is_finite() {
        return Err(PointError::NotFinite);
    }
    if p.scale.is_none() && p.offset.is_none() {
        return Ok(Value::Float(raw));
    }
    let v = crate::scaling::apply(raw, p.scale, p.offset);
    if v.is_finite() {
        Ok(Value::Float(v))
    } else {
        Err(PointError::NotFinite)
    }
}

fn int(p: &ModbusPoint, v: i128) -> Result<Value, PointError> {
    if p.scale.is_some() || p.offset.is_some() {
        return scaled(p, v as f64);
    }
    match i64::try_from(v) {
        Ok(i) => Ok(Value::Int(i)),
        Err(_) => u64::try_from(v)
            .map(Value::UInt)
            .map_err(|_| PointError::OutOfRange(v.to_string())),
    }
}

/// Decodes the registers of one point (exactly `p.span()` of them).
pub(crate) fn decode_registers(p: &ModbusPoint, regs: &[u16]) -> Result<Value, PointError> {
    if regs.len() != usize::from(p.span()) {
        return Err(PointError::Decode(format!(
            "expected {} registers, got {}",
            p.span(),
            regs.len()
        )));
    }
    let b = to_be_bytes(p, regs);
    match p.data_type() {
        DataType::Bool => Ok(Value::Bool(regs.iter().any(|r| *r != 0))),
        DataType::U16 => int(p, u16::from_be_bytes(arr(&b)?).into()),
        DataType::I16 => int(p, i16::from_be_bytes(arr(&b)?).into()),
        DataType::U32 => int(p, u32::from_be_bytes(arr(&b)?).into()),
        DataType::I32 => int(p, i32::from_be_bytes(arr(&b)?).into()),
        DataType::U64 => int(p, u64::from_be_bytes(arr(&b)?).into()),
        DataType::F32 => scaled(p, f32::from_be_bytes(arr(&b)?).into()),
        DataType::F64 => scaled(p, f64::from_be_bytes(arr(&b)?)),
        DataType::String => {
            let end = b.iter().rposition(|c| *c != 0).map_or(0, |i| i + 1);
            String::from_utf8(b[..end].to_vec())
                .map(Value::String)
                .map_err(|_| {
                    let hex: String = b[..end].iter().map(|c| format!("{c:02x}")).collect();
                    PointError::Decode(format!("string is not UTF-8: {hex}"))
                })
        }
    }
}

/// A command value as a bit (coils, and bool points in registers).
pub(crate) fn encode_bit(v: &Value) -> Result<bool, PointError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        other => Err(PointError::Type(format!(
            "a bool point takes true/false, not {other}"
        ))),
    }
}

/// The raw integer to write for an integer point: exact for unscaled
/// integers, rounded after undoing scale and offset otherwise.
fn raw_integer(p: &ModbusPoint, v: &Value, min: i128, max: i128) -> Result<i128, PointError> {
    let raw: i128 = match (v, p.scale.is_some() || p.offset.is_some()) {
        (Value::Int(i), false) => (*i).into(),
        (Value::UInt(u), false) => (*u).into(),
        (Value::Float(f), false) if f.fract() == 0.0 && f.is_finite() => *f as i128,
        (Value::Float(_), false) => {
            return Err(PointError::Type(format!("{} takes a whole number", p.name)))
        }
        (other, true) => {
            let x = other
                .as_f64()
                .filter(|_| !matches!(other, Value::Bool(_)))
                .ok_or_else(|| PointError::Type(format!("a number, not {other}")))?;
            let r = (x - p.offset.unwrap_or(0.0)) / p.scale.unwrap_or(1.0);
            if !r.is_finite() {
                return Err(PointError::NotFinite);
            }
            let r = r.round();
            if r < min as f64 || r > max as f64 {
                return Err(PointError::OutOfRange(format!(
                    "{other} is raw {r}, outside {min}..={max}"
                )));
            }
            r as i128
        }
        (other, false) => return Err(PointError::Type(format!("a number, not {other}"))),
    };
    if raw < min || raw > max {
        return Err(PointError::OutOfRange(format!(
            "{raw} outside {min}..={max}"
        )));
    }
    Ok(raw)
}

fn raw_float(p: &ModbusPoint, v: &Value) -> Result<f64, PointError> {
    let x = match v {
        Value::Bool(_) | Value::String(_) | Value::Bytes(_) => {
            return Err(PointError::Type(format!("a number, not {v}")))
        }
        other => other.as_f64().unwrap_or(f64::NAN),
    };
    if !x.is_finite() {
        return Err(PointError::NotFinite);
    }
    let r = (x - p.offset.unwrap_or(0.0)) / p.scale.unwrap_or(1.0);
    if r.is_finite() {
        Ok(r)
    } else {
        Err(PointError::NotFinite)
    }
}

/// The registers to write for a command value on a register point.
pub(crate) fn encode_registers(p: &ModbusPoint, v: &Value) -> Result<Vec<u16>, PointError> {
    let bytes: Vec<u8> = match p.data_type() {
        DataType::Bool => return Ok(vec![u16::from(encode_bit(v)?)]),
        DataType::U16 => (raw_integer(p, v, 0, u16::MAX.into())? as u16)
            .to_be_bytes()
            .to_vec(),
        DataType::I16 => (raw_integer(p, v, i16::MIN.into(), i16::MAX.into())? as i16)
            .to_be_bytes()
            .to_vec(),
        DataType::U32 => (raw_integer(p, v, 0, u32::MAX.into())? as u32)
            .to_be_bytes()
            .to_vec(),
        DataType::I32 => (raw_integer(p, v, i32::MIN.into(), i32::MAX.into())? as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (raw_integer(p, v, 0, u64::MAX.into())? as u64)
            .to_be_bytes()
            .to_vec(),
        DataType::F32 => {
            let r = raw_float(p, v)?;
            if r.abs() > f64::from(f32::MAX) {
                return Err(PointError::OutOfRange(format!("{r} does not fit an f32")));
            }
            (r as f32).to_be_bytes().to_vec()
        }
        DataType::F64 => raw_float(p, v)?.to_be_bytes().to_vec(),
        DataType::String => {
            let Value::String(s) = v else {
                return Err(PointError::Type(format!("a string, not {v}")));
            };
            let cap = usize::from(p.span()) * 2;
            if s.len() > cap {
                return Err(PointError::OutOfRange(format!(
                    "{} bytes, room for {cap}",
                    s.len()
                )));
            }
            let mut b = s.as_bytes().to_vec();
            b.resize(cap, 0);
            b
        }
    };
    Ok(from_be_bytes(p, &bytes))
}

/// A Modbus exception response as a point error.
pub(crate) fn exception(code: ExceptionCode) -> PointError {
    let name = match code {
        ExceptionCode::IllegalFunction => "illegal function",
        ExceptionCode::IllegalDataAddress => "illegal data address",
        ExceptionCode::IllegalDataValue => "illegal data value",
        ExceptionCode::ServerDeviceFailure => "server device failure",
        ExceptionCode::Acknowledge => "acknowledge",
        ExceptionCode::ServerDeviceBusy => "server device busy",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond",
        _ => "unknown exception",
    };
    PointError::Exception {
        code: u8::from(code),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Access;
    use crate::modbus::config::Table;

    fn point(ty: DataType, wo: WordOrder, bo: ByteOrder) -> ModbusPoint {
        ModbusPoint {
            name: "p".into(),
            table: Table::HoldingRegister,
            address: 0,
            data_type: Some(ty),
            length: (ty == DataType::String).then_some(3),
            word_order: wo,
            byte_order: bo,
            scale: None,
            offset: None,
            unit: None,
            access: Access::ReadWrite,
            write_multiple: false,
            writers: None,
        }
    }

    #[test]
    fn word_and_byte_orders_match_the_abcd_conventions() {
        // 0x41200000 is 10.0f32. ABCD, CDAB, BADC, DCBA.
        let cases = [
            (WordOrder::Big, ByteOrder::Big, [0x4120, 0x0000]),
            (WordOrder::Little, ByteOrder::Big, [0x0000, 0x4120]),
            (WordOrder::Big, ByteOrder::Little, [0x2041, 0x0000]),
            (WordOrder::Little, ByteOrder::Little, [0x0000, 0x2041]),
        ];
        for (wo, bo, regs) in cases {
            let p = point(DataType::F32, wo, bo);
            assert_eq!(
                decode_registers(&p, &regs),
                Ok(Value::Float(10.0)),
                "{wo:?} {bo:?}"
            );
            assert_eq!(encode_registers(&p, &Value::Float(10.0)), Ok(regs.to_vec()));
        }
    }

    #[test]
    fn every_type_round_trips() {
        let vals = [
            (DataType::Bool, Value::Bool(true)),
            (DataType::U16, Value::Int(65535)),
            (DataType::I16, Value::Int(-2)),
            (DataType::U32, Value::Int(4_000_000_000)),
            (DataType::I32, Value::Int(-123_456_789)),
            (DataType::U64, Value::UInt(u64::MAX)),
            (DataType::F32, Value::Float(-1.5)),
            (DataType::F64, Value::Float(1e300)),
            (DataType::String, Value::String("SDM120".into())),
        ];
        for (ty, v) in vals {
            for wo in [WordOrder::Big, WordOrder::Little] {
                let p = point(ty, wo, ByteOrder::Little);
                let regs = encode_registers(&p, &v).expect("encode");
                assert_eq!(regs.len(), usize::from(p.span()));
                assert_eq!(decode_registers(&p, &regs), Ok(v.clone()), "{ty:?}");
            }
        }
    }

    #[test]
    fn scale_and_offset_apply_both_ways() {
        let mut p = point(DataType::I16, WordOrder::Big, ByteOrder::Big);
        p.scale = Some(0.1);
        p.offset = Some(-40.0);
        assert_eq!(decode_registers(&p, &[650]), Ok(Value::Float(25.0)));
        assert_eq!(encode_registers(&p, &Value::Float(25.0)), Ok(vec![650]));
        assert!(matches!(
            encode_registers(&p, &Value::Float(4000.0)),
            Err(PointError::OutOfRange(_))
        ));
    }

    #[test]
    fn bad_values_are_point_errors() {
        let p = point(DataType::F32, WordOrder::Big, ByteOrder::Big);
        assert_eq!(
            decode_registers(&p, &[0x7fc0, 0]),
            Err(PointError::NotFinite)
        );
        assert_eq!(
            decode_registers(&p, &[0x7f80, 0]),
            Err(PointError::NotFinite)
        );
        assert!(matches!(
            decode_registers(&p, &[1]),
            Err(PointError::Decode(_))
        ));
        assert_eq!(
            encode_registers(&p, &Value::Float(f64::NAN)),
            Err(PointError::NotFinite)
        );
        assert!(matches!(
            encode_registers(&p, &Value::Float(1e300)),
            Err(PointError::OutOfRange(_))
        ));
        let u = point(DataType::U16, WordOrder::Big, ByteOrder::Big);
        assert!(matches!(
            encode_registers(&u, &Value::Int(-1)),
            Err(PointError::OutOfRange(_))
        ));
        assert!(matches!(
            encode_registers(&u, &Value::Int(70000)),
            Err(PointError::OutOfRange(_))
        ));
        assert!(matches!(
            encode_registers(&u, &Value::String("x".into())),
            Err(PointError::Type(_))
        ));
        let s = point(DataType::String, WordOrder::Big, ByteOrder::Big);
        assert!(matches!(
            decode_registers(&s, &[0xfffe, 0, 0]),
            Err(PointError::Decode(_))
        ));
        assert!(matches!(
            encode_registers(&s, &Value::String("too long!".into())),
            Err(PointError::OutOfRange(_))
        ));
    }

    proptest::proptest! {
        /// Any registers decode to a value or a point error, never a panic,
        /// for every type and order; what decodes encodes back the same.
        #[test]
        fn any_registers_decode_without_panic(regs in proptest::collection::vec(proptest::num::u16::ANY, 0..6), ty in 0usize..9, wo: bool, bo: bool) {
            let tys = [DataType::Bool, DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::U64, DataType::F32, DataType::F64, DataType::String];
            let p = point(tys[ty], if wo { WordOrder::Little } else { WordOrder::Big }, if bo { ByteOrder::Little } else { ByteOrder::Big });
            if let Ok(v) = decode_registers(&p, &regs) {
                if tys[ty] != DataType::Bool && tys[ty] != DataType::String {
                    proptest::prop_assert_eq!(encode_registers(&p, &v), Ok(regs.clone()));
                }
            }
        }
    }
}
