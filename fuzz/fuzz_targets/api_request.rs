//! The local API's request parser (`daemon::routes::parse`) on arbitrary
//! method, path, query and body: never panics, a refusal carries a 4xx
//! status and a reason, and an accepted request, written back as a
//! request, parses to the same route.
//!
//! Input: `METHOD \n PATH \n QUERY \n BODY` (an empty query line is no
//! query), so seeds in `fuzz/corpus/api_request/` are readable requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streembit_agent::internals::daemon::{parse, Route};

/// The request that asks for `route`: method, path, query, body.
fn render(route: &Route) -> (&'static str, String, Option<String>, Vec<u8>) {
    let body = |v: &serde_json::Value| serde_json::json!({ "value": v }).to_string().into_bytes();
    match route {
        Route::Status => ("GET", "/v1/status".into(), None, Vec::new()),
        Route::Peers => ("GET", "/v1/peers".into(), None, Vec::new()),
        Route::Discovered => ("GET", "/v1/discovered".into(), None, Vec::new()),
        Route::Console => ("GET", "/v1/console".into(), None, Vec::new()),
        Route::Lookup(k) => ("GET", format!("/v1/lookup/{k}"), None, Vec::new()),
        Route::Devices => ("GET", "/v1/devices".into(), None, Vec::new()),
        Route::Device(d) => ("GET", format!("/v1/devices/{d}"), None, Vec::new()),
        Route::WriteLocal {
            device,
            point,
            value,
        } => (
            "POST",
            format!("/v1/devices/{device}/{point}"),
            None,
            body(value),
        ),
        Route::Read { device, point } => (
            "GET",
            format!("/v1/read/{device}"),
            point.as_ref().map(|p| format!("point={p}")),
            Vec::new(),
        ),
        Route::Write {
            device,
            point,
            value,
        } => (
            "POST",
            format!("/v1/write/{device}/{point}"),
            None,
            body(value),
        ),
        Route::Subscriptions => ("GET", "/v1/subscriptions".into(), None, Vec::new()),
        Route::Subscribe(k) => ("POST", format!("/v1/subscriptions/{k}"), None, Vec::new()),
        Route::Unsubscribe(k) => ("DELETE", format!("/v1/subscriptions/{k}"), None, Vec::new()),
        Route::Inbox {
            device,
            after,
            limit,
        } => (
            "GET",
            format!("/v1/subscriptions/{device}/readings"),
            Some(format!("after={after}&limit={limit}")),
            Vec::new(),
        ),
        Route::Members => ("GET", "/v1/members".into(), None, Vec::new()),
        Route::Revoke(list) => ("POST", "/v1/revocations".into(), None, list.clone()),
        Route::Metrics => ("GET", "/metrics".into(), None, Vec::new()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return;
    };
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let (Ok(method), Ok(path), Ok(query)) = (
        std::str::from_utf8(method),
        std::str::from_utf8(path),
        std::str::from_utf8(query),
    ) else {
        return;
    };
    let query = (!query.is_empty()).then_some(query);
    match parse(method, path, query, body) {
        Ok(route) => {
            let (m, p, q, b) = render(&route);
            let again = parse(m, &p, q.as_deref(), &b);
            assert_eq!(
                again.as_ref(),
                Ok(&route),
                "{m} {p} {q:?} {:?}",
                String::from_utf8_lossy(&b)
            );
        }
        Err(refusal) => {
            assert!((400..500).contains(&refusal.status), "{refusal:?}");
            assert!(!refusal.message.is_empty());
        }
    }
});
