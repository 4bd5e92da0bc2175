//! The local API's routes: one pure function from a request's method,
//! path, query and body to a [`Route`] or a refusal, so every input check
//! is in one place (and can be fuzzed without a socket).

use crate::identity::PublicKey;

/// The body of a request may be at most this large.
pub(crate) const MAX_REQUEST_BODY: usize = 64 * 1024;
/// The body of a request may be at most this large: [`MAX_REQUEST_BODY`],
/// or a whole revocation list for `POST /v1/revocations`.
pub(crate) fn body_cap(method: &str, path: &str) -> usize {
    if method == "POST" && path.trim_end_matches('/') == "/v1/revocations" {
        crate::wire::membership::MAX_REVOCATIONS_BYTES
    } else {
        MAX_REQUEST_BODY
    }
}

/// `limit` of an inbox read at most.
pub(crate) const MAX_INBOX_LIMIT: usize = 10_000;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `GET /v1/status`
    Status,
    /// `GET /v1/peers`
    Peers,
    /// `GET /v1/discovered`: agents heard on the LAN.
    Discovered,
    /// `GET /v1/console`: the web console's login URL.
    Console,
    /// `GET /v1/lookup/{key}`
    Lookup(PublicKey),
    /// `GET /v1/devices`
    Devices,
    /// `GET /v1/devices/{name or key}`
    Device(String),
    /// `POST /v1/devices/{name}/{point}` `{"value": …}`: the operator's
    /// own write to a hosted device.
    WriteLocal {
        /// Device name or key.
        device: String,
        /// Point.
        point: String,
        /// Value.
        value: serde_json::Value,
    },
    /// `GET /v1/read/{key}[?point=P]`: a device's latest signed readings,
    /// hosted here or fetched over the network.
    Read {
        /// The device.
        device: PublicKey,
        /// Only this point.
        point: Option<String>,
    },
    /// `POST /v1/write/{key}/{point}` `{"value": …}`: a signed command to
    /// a device (hosted anywhere; its gateway checks `writers`).
    Write {
        /// The device.
        device: PublicKey,
        /// Point.
        point: String,
        /// Value.
        value: serde_json::Value,
    },
    /// `GET /v1/members`: what this node knows of its network's
    /// membership.
    Members,
    /// `POST /v1/revocations` with a signed revocation list (its COSE
    /// bytes): applied if newer, then passed on to every peer.
    Revoke(Vec<u8>),
    /// `GET /v1/subscriptions`
    Subscriptions,
    /// `POST /v1/subscriptions/{key}`
    Subscribe(PublicKey),
    /// `DELETE /v1/subscriptions/{key}`
    Unsubscribe(PublicKey),
    /// `GET /v1/subscriptions/{key}/readings[?after=N][&limit=M]`
    Inbox {
        /// The device.
        device: PublicKey,
        /// Readings with a sequence above this.
        after: u64,
        /// At most this many.
        limit: usize,
    },
    /// `GET /metrics`
    Metrics,
}

/// A refused request: HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status code.
    pub status: u16,
    /// Why.
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

fn key(s: &str) -> Result<PublicKey, Refusal> {
    s.parse::<PublicKey>()
        .map_err(|e| refuse(400, e.to_string()))
}

/// `name=value` pairs of a query string (no percent-decoding: names and
/// values here are keys, numbers and point names).
fn param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn number<T: std::str::FromStr>(query: Option<&str>, name: &str, default: T) -> Result<T, Refusal> {
    match param(query, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| refuse(400, format!("{name} must be a number, not {v:?}"))),
    }
}

fn value(body: &[u8]) -> Result<serde_json::Value, Refusal> {
    #[derive(serde::Deserialize)]
    struct Write {
        value: serde_json::Value,
    }
    match serde_json::from_slice::<Write>(body) {
        Ok(w) if w.value.is_boolean() || w.value.is_number() || w.value.is_string() => Ok(w.value),
        _ => Err(refuse(
            400,
            "body must be {\"value\": <bool|number|string>}",
        )),
    }
}

/// Parses one request.
pub fn parse(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> Result<Route, Refusal> {
    if body.len() > MAX_REQUEST_BODY {
        return Err(refuse(413, "request body too large"));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match (method, segments.as_slice()) {
        ("GET", ["v1", "status"]) => Route::Status,
        ("GET", ["v1", "peers"]) => Route::Peers,
        ("GET", ["v1", "discovered"]) => Route::Discovered,
        ("GET", ["v1", "console"]) => Route::Console,
        ("GET", ["v1", "lookup", k]) => Route::Lookup(key(k)?),
        ("GET", ["v1", "devices"]) => Route::Devices,
        ("GET", ["v1", "devices", name]) => Route::Device((*name).to_owned()),
        ("POST", ["v1", "devices", name, point]) => Route::WriteLocal {
            device: (*name).to_owned(),
            point: (*point).to_owned(),
            value: value(body)?,
        },
        ("GET", ["v1", "read", k]) => Route::Read {
            device: key(k)?,
            point: param(query, "point").map(str::to_owned),
        },
        ("POST", ["v1", "write", k, point]) => Route::Write {
            device: key(k)?,
            point: (*point).to_owned(),
            value: value(body)?,
        },
        ("GET", ["v1", "members"]) => Route::Members,
        ("POST", ["v1", "revocations"]) => Route::Revoke(body.to_vec()),
        ("GET", ["v1", "subscriptions"]) => Route::Subscriptions,
        ("POST", ["v1", "subscriptions", k]) => Route::Subscribe(key(k)?),
        ("DELETE", ["v1", "subscriptions", k]) => Route::Unsubscribe(key(k)?),
        ("GET", ["v1", "subscriptions", k, "readings"]) => Route::Inbox {
            device: key(k)?,
            after: number(query, "after", 0u64)?,
            limit: number(query, "limit", 1000usize)?.min(MAX_INBOX_LIMIT),
        },
        ("GET", ["metrics"]) => Route::Metrics,
        (_, ["v1", ..]) | (_, ["metrics"]) => return Err(refuse(405, "method not allowed")),
        _ => return Err(refuse(404, "no such route")),
    };
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn routes_parse() {
        let k: PublicKey = KEY.parse().expect("key");
        assert_eq!(parse("GET", "/v1/status", None, b""), Ok(Route::Status));
        assert_eq!(
            parse("GET", &format!("/v1/read/{KEY}"), Some("point=temp"), b""),
            Ok(Route::Read {
                device: k,
                point: Some("temp".into())
            })
        );
        assert_eq!(
            parse(
                "POST",
                &format!("/v1/write/{KEY}/sp"),
                None,
                br#"{"value": 21.5}"#
            ),
            Ok(Route::Write {
                device: k,
                point: "sp".into(),
                value: serde_json::json!(21.5)
            })
        );
        assert_eq!(
            parse(
                "GET",
                &format!("/v1/subscriptions/{KEY}/readings"),
                Some("after=7&limit=99999999"),
                b""
            ),
            Ok(Route::Inbox {
                device: k,
                after: 7,
                limit: MAX_INBOX_LIMIT
            })
        );
    }

    #[test]
    fn bad_requests_are_refused_with_a_status() {
        fn status(m: &str, p: &str, q: Option<&str>, b: &[u8]) -> Option<u16> {
            parse(m, p, q, b).map_err(|r| r.status).err()
        }
        assert_eq!(status("GET", "/v1/read/xyz", None, b""), Some(400));
        assert_eq!(status("DELETE", "/v1/status", None, b""), Some(405));
        assert_eq!(status("GET", "/nope", None, b""), Some(404));
        assert_eq!(
            status(
                "POST",
                &format!("/v1/write/{KEY}/p"),
                None,
                b"{\"value\": [1]}"
            ),
            Some(400)
        );
        assert_eq!(
            status(
                "GET",
                &format!("/v1/subscriptions/{KEY}/readings"),
                Some("after=-1"),
                b""
            ),
            Some(400)
        );
        assert_eq!(
            status(
                "POST",
                "/v1/devices/a/b",
                None,
                &vec![b' '; MAX_REQUEST_BODY + 1]
            ),
            Some(413)
        );
    }
}
