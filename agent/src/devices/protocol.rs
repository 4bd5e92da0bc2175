//! The device protocol: what a peer asks a hosted device, and what the
//! device answers, as CBOR payloads of signed envelopes (docs/wire.md,
//! "Devices").
//!
//! A peer dials the device's key (the gateway answers TLS with the
//! device's certificate) and opens one stream per request:
//!
//! ```text
//! read      { ? "point": tstr }                 → readings { "readings": [ bstr ] }
//! command   { "point": tstr, "value": any }     → command_result { "point": tstr, "value": any }
//! subscribe { "after": uint, ? "cancel": bool } → readings, readings, … (the stream stays
//!                                                 open; each frame a batch in order;
//!                                                 later `subscribe` frames acknowledge)
//! any refusal                                   → error { "code": tstr, "message": tstr }
//! ```
//!
//! Every request also names its device, `"device": bstr(32)`, so it can
//! travel on a connection to the gateway as well: a subscriber following
//! many devices of one gateway uses one connection (one per device would
//! cost the gateway some 50 KiB each). Requests are signed by the caller
//! for the device (external_aad = the device's node id); answers are
//! signed by the device's key for the caller. A `readings` answer carries the device's own broadcast
//! `reading` envelopes, which anyone can check with the device key alone.

use coset::cbor::Value;

use super::ProtocolError;
use crate::identity::PublicKey;
use crate::wire::Opened;

/// Why a device refused: the `code` of an `error` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorCode {
    /// The caller is not in the point's `writers`.
    NotAuthorized,
    /// No such point (or device) here.
    NotFound,
    /// The request could not be understood.
    BadRequest,
    /// The bus refused or failed the command.
    DeviceError,
    /// Too many subscriptions or streams at once.
    Busy,
}

impl ErrorCode {
    /// The code on the wire.
    pub(super) fn name(self) -> &'static str {
        match self {
            ErrorCode::NotAuthorized => "not_authorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::DeviceError => "device_error",
            ErrorCode::Busy => "busy",
        }
    }

    /// The code named `name`, if it is one of ours (a remote device may
    /// send any text).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        [
            ErrorCode::NotAuthorized,
            ErrorCode::NotFound,
            ErrorCode::BadRequest,
            ErrorCode::DeviceError,
            ErrorCode::Busy,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// A request to a device, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Request {
    /// Latest readings, of one point or all.
    Read {
        /// Only this point.
        point: Option<String>,
    },
    /// Set a point.
    Command {
        /// The point.
        point: String,
        /// The value, as sent.
        value: Value,
    },
    /// Readings from `after` on (or cancel the subscription).
    Subscribe {
        /// The subscriber has every reading up to this sequence.
        after: u64,
        /// Forget the subscription.
        cancel: bool,
    },
}

/// A device's answer, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Answer {
    /// Latest readings (each a device-signed envelope).
    Readings(Vec<Vec<u8>>),
    /// A command was applied.
    CommandResult {
        /// The point.
        point: String,
        /// The value applied.
        value: Value,
    },
    /// A refusal.
    Error {
        /// Machine-readable code.
        code: String,
        /// Why, for people.
        message: String,
    },
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = coset::cbor::into_writer(v, &mut out);
    out
}

fn decode_map(payload: &[u8]) -> Option<Vec<(Value, Value)>> {
    let mut reader = payload;
    let v: Value = coset::cbor::from_reader(&mut reader).ok()?;
    if !reader.is_empty() {
        return None;
    }
    v.into_map().ok()
}

fn field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn text(map: &[(Value, Value)], name: &str) -> Option<String> {
    field(map, name)?.as_text().map(str::to_owned)
}

fn uint(map: &[(Value, Value)], name: &str) -> Option<u64> {
    field(map, name)?
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
}

/// The device a request names (`"device": bstr(32)`), read from the
/// **unverified** envelope: only to choose which device's id to open it
/// for, which then checks the signature against exactly that.
pub(super) fn target_device(envelope: &[u8], max_len: usize) -> Option<PublicKey> {
    let (_, payload) = crate::wire::peek_unverified(envelope, max_len)?;
    let map = decode_map(&payload)?;
    PublicKey::from_bytes(field(&map, "device")?.as_bytes()?).ok()
}

impl Request {
    /// The payload of a `read`, `command` or `subscribe` envelope for
    /// `device` (named in it, so the request can also travel on a
    /// connection to the device's gateway).
    pub(super) fn encode(&self, device: &PublicKey) -> Vec<u8> {
        let t = |s: &str| Value::Text(s.to_owned());
        let mut map = match self {
            Request::Read { point } => point.iter().map(|p| (t("point"), t(p))).collect::<Vec<_>>(),
            Request::Command { point, value } => {
                vec![(t("point"), t(point)), (t("value"), value.clone())]
            }
            Request::Subscribe { after, cancel } => {
                let mut m = vec![(t("after"), Value::Integer((*after).into()))];
                if *cancel {
                    m.push((t("cancel"), Value::Bool(true)));
                }
                m
            }
        };
        map.push((t("device"), Value::Bytes(device.as_bytes().to_vec())));
        encode(&Value::Map(map))
    }

    /// Decodes the payload of an opened request of `kind`.
    pub(super) fn decode(kind: crate::wire::Kind, payload: &[u8]) -> Result<Self, ProtocolError> {
        use crate::wire::Kind;
        let bad = ProtocolError::malformed;
        let map = decode_map(payload).ok_or_else(|| bad("the payload is not one CBOR map"))?;
        match kind {
            Kind::Read => Ok(Request::Read {
                point: text(&map, "point"),
            }),
            Kind::Command => Ok(Request::Command {
                point: text(&map, "point")
                    .ok_or_else(|| bad("a command needs a text \"point\""))?,
                value: field(&map, "value")
                    .cloned()
                    .ok_or_else(|| bad("a command needs a \"value\""))?,
            }),
            Kind::Subscribe => Ok(Request::Subscribe {
                after: uint(&map, "after").ok_or_else(|| bad("subscribe needs \"after\""))?,
                cancel: field(&map, "cancel").and_then(Value::as_bool) == Some(true),
            }),
            other => Err(ProtocolError::UnexpectedKind {
                expected: "read, command or subscribe",
                got: other,
            }),
        }
    }
}

impl Answer {
    /// The answer's kind and payload.
    pub(super) fn encode(&self) -> (crate::wire::Kind, Vec<u8>) {
        use crate::wire::Kind;
        let t = |s: &str| Value::Text(s.to_owned());
        match self {
            Answer::Readings(list) => (
                Kind::Readings,
                encode(&Value::Map(vec![(
                    t("readings"),
                    Value::Array(list.iter().map(|r| Value::Bytes(r.clone())).collect()),
                )])),
            ),
            Answer::CommandResult { point, value } => (
                Kind::CommandResult,
                encode(&Value::Map(vec![
                    (t("point"), t(point)),
                    (t("value"), value.clone()),
                ])),
            ),
            Answer::Error { code, message } => (
                Kind::Error,
                encode(&Value::Map(vec![
                    (t("code"), t(code)),
                    (t("message"), t(message)),
                ])),
            ),
        }
    }

    /// A refusal.
    pub(super) fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Answer::Error {
            code: code.name().to_owned(),
            message: message.into(),
        }
    }

    /// Decodes an opened answer.
    pub(super) fn decode(opened: &Opened) -> Result<Self, ProtocolError> {
        use crate::wire::Kind;
        let bad = ProtocolError::malformed;
        let map =
            decode_map(opened.payload()).ok_or_else(|| bad("the answer is not one CBOR map"))?;
        match opened.kind() {
            Kind::Readings => {
                let list = field(&map, "readings")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("readings without a \"readings\" array"))?;
                list.iter()
                    .map(|v| {
                        v.as_bytes()
                            .cloned()
                            .ok_or_else(|| bad("a reading is not a byte string"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Answer::Readings)
            }
            Kind::CommandResult => Ok(Answer::CommandResult {
                point: text(&map, "point")
                    .ok_or_else(|| bad("command_result without \"point\""))?,
                value: field(&map, "value").cloned().unwrap_or(Value::Null),
            }),
            Kind::Error => Ok(Answer::Error {
                code: text(&map, "code").unwrap_or_default(),
                message: text(&map, "message").unwrap_or_default(),
            }),
            other => Err(ProtocolError::UnexpectedKind {
                expected: "readings, command_result or error",
                got: other,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Kind;

    #[test]
    fn requests_round_trip() {
        for (kind, r) in [
            (Kind::Read, Request::Read { point: None }),
            (
                Kind::Read,
                Request::Read {
                    point: Some("temp".into()),
                },
            ),
            (
                Kind::Command,
                Request::Command {
                    point: "setpoint".into(),
                    value: Value::Integer(42.into()),
                },
            ),
            (
                Kind::Subscribe,
                Request::Subscribe {
                    after: 7,
                    cancel: true,
                },
            ),
        ] {
            let device = crate::identity::Keypair::from_seed(&[3; 32]).public();
            assert_eq!(Request::decode(kind, &r.encode(&device)), Ok(r));
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        assert!(Request::decode(Kind::Command, &[0xa0]).is_err());
        assert!(Request::decode(Kind::Subscribe, &[0xa0]).is_err());
        assert!(Request::decode(Kind::Read, &[0xff, 0x00]).is_err());
        assert!(Request::decode(Kind::Ping, &[0xa0]).is_err());
        // Trailing bytes after the map.
        assert!(Request::decode(Kind::Read, &[0xa0, 0x00]).is_err());
    }
}
