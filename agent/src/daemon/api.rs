//! The local API: HTTP/1.1 + JSON on a Unix socket, mode 0660 in the
//! runtime directory. The CLI is a thin client of it; Prometheus scrapes
//! `/metrics` through it.
//!
//! Routes (documented in `docs/api.md`):
//! `GET /v1/status`, `GET /v1/peers`, `GET /v1/lookup/{pubkey}`,
//! `GET /v1/devices`, `GET /v1/devices/{name}`,
//! `POST /v1/devices/{name}/{point}` (`{"value": …}`), `GET /metrics`.

use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::{oneshot, watch};

use super::control::{ApiError, Query, QuerySender};
use crate::devices::Devices;
use crate::identity::PublicKey;

/// How long one API request may wait for the node (a lookup included).
const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Request bodies are not used yet; anything larger is refused.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Binds the API socket at `path` (replacing a stale one) with mode 0660.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves the API until `shutdown` turns true.
pub async fn serve(
    listener: UnixListener,
    node: QuerySender,
    devices: Devices,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let node = node.clone();
        let devices = devices.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| handle(req, node.clone(), devices.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
    }
}

/// Removes the socket file (at shutdown).
pub fn remove(path: &PathBuf) {
    let _ = std::fs::remove_file(path);
}

async fn handle(
    req: Request<Incoming>,
    node: QuerySender,
    devices: Devices,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // Read at most the cap, so a client cannot make us buffer without bound.
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BODY);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ))
        }
    };
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["v1", "status"]) => ask(&node, Query::Status).await.map(|mut s| {
            s.devices = devices.count();
            json(&s)
        }),
        (&Method::GET, ["v1", "peers"]) => ask(&node, Query::Peers).await.map(|p| json(&p)),
        (&Method::GET, ["v1", "lookup", key]) => match key.parse::<PublicKey>() {
            Err(e) => Ok(error(StatusCode::BAD_REQUEST, &e.to_string())),
            Ok(key) => ask(&node, |tx| Query::Lookup(key, tx))
                .await
                .map(|r| match r {
                    Ok(Some(answer)) => json(&answer),
                    Ok(None) => error(StatusCode::NOT_FOUND, "no record for this key"),
                    Err(e) => error(StatusCode::BAD_GATEWAY, &e),
                }),
        },
        (&Method::GET, ["v1", "devices"]) => Ok(json(&devices.list())),
        (&Method::GET, ["v1", "devices", name]) => Ok(match devices.get(name) {
            Some(d) => json(&d),
            None => error(StatusCode::NOT_FOUND, "no such device"),
        }),
        (&Method::POST, ["v1", "devices", name, point]) => {
            Ok(write_point(&devices, name, point, &body).await)
        }
        (&Method::GET, ["metrics"]) => ask(&node, Query::Metrics).await.map(|mut families| {
            families.extend(devices.families());
            let mut r = Response::new(Full::new(Bytes::from(crate::metrics::encode(families))));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }),
        (_, ["v1", ..]) | (_, ["metrics"]) => {
            Ok(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"))
        }
        _ => Ok(error(StatusCode::NOT_FOUND, "no such route")),
    };
    Ok(response.unwrap_or_else(|e| e))
}

/// `POST /v1/devices/{name}/{point}` with `{"value": …}`.
async fn write_point(
    devices: &Devices,
    name: &str,
    point: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    struct Write {
        value: serde_json::Value,
    }
    let Ok(w) = serde_json::from_slice::<Write>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {\"value\": <bool|number|string>}",
        );
    };
    match devices.write(name, point, &w.value).await {
        Ok(()) => json(&serde_json::json!({"ok": true})),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e),
    }
}

/// Sends a query to the node and waits (bounded) for its answer.
async fn ask<T>(
    node: &QuerySender,
    make: impl FnOnce(oneshot::Sender<T>) -> Query,
) -> Result<T, Response<Full<Bytes>>> {
    let (tx, rx) = oneshot::channel();
    node.send(make(tx))
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "agent is shutting down"))?;
    match tokio::time::timeout(NODE_ANSWER_TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent is shutting down",
        )),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "the node did not answer in time",
        )),
    }
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ApiError {
        error: message.to_owned(),
    })
    .unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
