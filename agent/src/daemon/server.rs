//! The local API: HTTP/1.1 + JSON on a Unix socket, mode 0660 in the
//! runtime directory. The CLI is a thin client of it; Prometheus scrapes
//! `/metrics` through it.
//!
//! Routes are parsed in [`super::routes`] and documented in `docs/api.md`.

use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::local_mqtt::MqttStats;
use super::membership::OwnCredential;
use super::routes::{self, Route};
use crate::api::{ApiError, ReadAnswer, ReadingView};
use crate::clock::Clock;
use crate::devices::{verify_readings, DeviceService, Devices, Remote, RemoteError, Subscriptions};
use crate::discovery::Discovery;
use crate::identity::PublicKey;
use crate::node::{NodeError, NodeHandle};
use crate::transport::{Membership, RevocationError};
use crate::wire::NetworkId;

/// What the API serves from.
#[derive(Clone)]
pub(crate) struct Context {
    /// The node.
    pub(crate) node: NodeHandle,
    /// Hosted devices.
    pub devices: Devices,
    /// The device protocol's server side (metrics).
    pub service: Arc<DeviceService>,
    /// This agent as a client of remote devices.
    pub remote: Arc<Remote>,
    /// This agent's subscriptions.
    pub subscriptions: Subscriptions,
    /// The local MQTT publisher's counters.
    pub mqtt: Arc<MqttStats>,
    /// Device records peers keep per gateway (`[dht]`), to warn near it.
    pub device_budget: usize,
    /// Who may take part, and the revocation list held.
    pub membership: Membership,
    /// The network's id.
    pub network: NetworkId,
    /// This agent's own credential, if it has one.
    pub credential: Option<Arc<OwnCredential>>,
    /// Where "now" is read (credential expiry).
    pub clock: Clock,
    /// Seeds from DNS and agents heard on the LAN.
    pub discovery: Discovery,
    /// The web console's login URL, when it runs.
    pub console_url: Option<String>,
    /// Verified readings (its counter of refused ones).
    pub verified: super::verified_feed::VerifiedFeed,
    /// Per-point gauges, when asked for.
    pub gauges: super::point_gauges::PointGauges,
    /// What the web console refused.
    pub console: Arc<super::console::ConsoleStats>,
}

/// How long one API request may wait for the node (a lookup included).
const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the API socket at `path` (replacing a stale one) with mode 0660.
pub(crate) fn bind(path: &Path) -> std::io::Result<UnixListener> {
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
pub(crate) async fn serve(
    listener: UnixListener,
    ctx: Context,
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
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, ctx.clone()));
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
pub(crate) fn remove(path: &PathBuf) {
    let _ = std::fs::remove_file(path);
}

async fn handle(req: Request<Incoming>, ctx: Context) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    Ok(api(&parts.method, &parts.uri, body, &ctx).await)
}

/// One API request, from any surface that has decided the caller may ask
/// (the Unix socket by its mode; the web console by its login): the body
/// read up to the route's cap, the route parsed, the answer.
pub(crate) async fn api(
    method: &hyper::Method,
    uri: &hyper::Uri,
    body: Incoming,
    ctx: &Context,
) -> Response<Full<Bytes>> {
    // Read at most the cap, so a client cannot make us buffer without bound.
    let cap = routes::body_cap(method.as_str(), uri.path());
    let limited = http_body_util::Limited::new(body, cap);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let route = match routes::parse(method.as_str(), uri.path(), uri.query(), &body) {
        Ok(r) => r,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, &refusal.message);
        }
    };
    let response = answer(route, ctx).await;
    response.unwrap_or_else(|e| e)
}

async fn answer(
    route: Route,
    ctx: &Context,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    let node = &ctx.node;
    let devices = &ctx.devices;
    match route {
        Route::Status => {
            ask(node.status()).await.map(|mut s| {
                s.devices = devices.count();
                s.warnings
                    .extend(super::device_budget_warning(s.devices, ctx.device_budget));
                s.warnings.extend(ctx.credential.as_ref().and_then(|o| {
                    super::membership::expiry_warning(&o.credential, ctx.clock.wall())
                }));
                json(&s)
            })
        }
        Route::Peers => ask(node.peers()).await.map(|p| json(&p)),
        Route::Console => Ok(match &ctx.console_url {
            Some(url) => json(&serde_json::json!({ "url": url })),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the web console is off ([web] enabled = false), or its address was taken (see the log)",
            ),
        }),
        Route::Discovered => ask(node.status()).await.map(|status| {
            let connected: std::collections::HashSet<String> =
                status.links.into_iter().map(|l| l.key).collect();
            match ctx
                .discovery
                .discovered(|k| connected.contains(&k.to_string()))
            {
                Ok(d) => json(&d),
                Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
            }
        }),
        Route::Lookup(key) => Ok(match bounded(node.lookup(key)).await {
            Ok(Ok(Some(answer))) => json(&answer),
            Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no record for this key"),
            Ok(Err(NodeError::ShuttingDown)) => shutting_down(),
            Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
            Err(timed_out) => timed_out,
        }),
        Route::Devices => Ok(json(&devices.list())),
        Route::Device(name) => Ok(match devices.get(&name) {
            Some(d) => json(&d),
            None => error(StatusCode::NOT_FOUND, "no such device"),
        }),
        Route::WriteLocal {
            device,
            point,
            value,
        } => Ok(match devices.write(&device, &point, &value).await {
            Ok(()) => json(&serde_json::json!({"ok": true})),
            Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        }),
        Route::Read { device, point } => Ok(read(ctx, &device, point).await),
        Route::Write {
            device,
            point,
            value,
        } => Ok(match ctx.remote.write(&device, &point, &value).await {
            Ok(applied) => json(
                &serde_json::json!({"device": device.to_string(), "point": point, "value": applied}),
            ),
            Err(e) => remote_error(&e),
        }),
        Route::Members => Ok(json(&super::membership::members_view(
            &ctx.membership,
            &ctx.network,
            ctx.credential.as_deref(),
            ctx.clock.wall(),
        ))),
        Route::Revoke(list) => Ok(match ctx.membership.apply_revocations(&list) {
            Ok(newly) => json(&serde_json::json!({
                "seq": ctx.membership.revocation_seq(),
                "revoked_now": newly.len(),
            })),
            Err(e @ RevocationError::NotSaved { .. }) => {
                error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
            Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        }),
        Route::Subscriptions => Ok(json(&ctx.subscriptions.list())),
        Route::Subscribe(device) => Ok(match ctx.subscriptions.add(&device) {
            Ok(()) => json(&serde_json::json!({"device": device.to_string(), "subscribed": true})),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }),
        Route::Unsubscribe(device) => Ok(if ctx.subscriptions.remove(&device).await {
            json(&serde_json::json!({"device": device.to_string(), "subscribed": false}))
        } else {
            error(StatusCode::NOT_FOUND, "not subscribed to this device")
        }),
        Route::Inbox {
            device,
            after,
            limit,
        } => Ok(match ctx.subscriptions.inbox(&device, after, limit) {
            Some(entries) => json(&entries),
            None => error(StatusCode::NOT_FOUND, "not subscribed to this device"),
        }),
        Route::Metrics => ask(node.metrics()).await.map(|mut families| {
            families.extend(devices.families());
            families.extend(devices.outboxes().families());
            families.extend(ctx.service.families());
            families.extend(ctx.subscriptions.families());
            families.extend(ctx.mqtt.families());
            families.extend(ctx.discovery.families());
            families.extend(ctx.verified.families());
            families.extend(ctx.gauges.families());
            families.extend(ctx.console.families());
            families.extend(super::membership::families(
                ctx.credential.as_deref(),
                &ctx.membership,
                ctx.clock.wall(),
            ));
            let mut r = Response::new(Full::new(Bytes::from(crate::metrics::encode(families))));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }),
    }
}

/// A device's latest readings, each verified with the device key: from
/// the board when the device is hosted here, else over the network.
async fn read(ctx: &Context, device: &PublicKey, point: Option<String>) -> Response<Full<Bytes>> {
    let readings: Result<Vec<ReadingView>, RemoteError> = match ctx.devices.by_key(device) {
        Some(hosted) => {
            let sealed = ctx.devices.latest_sealed(&hosted.name, point.as_deref());
            let sealed: Vec<&[u8]> = sealed.iter().map(|e| e.as_slice()).collect();
            verify_readings(
                &sealed,
                device,
                ctx.remote.network(),
                ctx.remote.max_frame(),
            )
            .into_iter()
            .map(|r| r.map_err(|e| RemoteError::Invalid(e.to_string())))
            .collect()
        }
        None => ctx.remote.read(device, point).await,
    };
    match readings {
        Ok(readings) => json(&ReadAnswer {
            device: device.to_string(),
            readings,
        }),
        Err(e) => remote_error(&e),
    }
}

/// A remote failure as an HTTP answer: refusals keep the device's code.
fn remote_error(e: &RemoteError) -> Response<Full<Bytes>> {
    match e {
        RemoteError::Refused { code, .. } => {
            let status = match code.as_str() {
                "not_authorized" => StatusCode::FORBIDDEN,
                "not_found" => StatusCode::NOT_FOUND,
                "bad_request" => StatusCode::BAD_REQUEST,
                "busy" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            error(status, &e.to_string())
        }
        RemoteError::Unreachable(_) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
        RemoteError::Invalid(_) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// Waits for the node at most [`NODE_ANSWER_TIMEOUT`]; past it, the
/// `504` answer.
async fn bounded<T>(
    asking: impl std::future::Future<Output = T>,
) -> Result<T, Response<Full<Bytes>>> {
    tokio::time::timeout(NODE_ANSWER_TIMEOUT, asking)
        .await
        .map_err(|_| {
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "the node did not answer in time",
            )
        })
}

/// The node's answer, or the error answer when it is shutting down or
/// does not answer in time.
async fn ask<T>(
    asking: impl std::future::Future<Output = Result<T, NodeError>>,
) -> Result<T, Response<Full<Bytes>>> {
    match bounded(asking).await? {
        Ok(v) => Ok(v),
        Err(_) => Err(shutting_down()),
    }
}

fn shutting_down() -> Response<Full<Bytes>> {
    error(StatusCode::SERVICE_UNAVAILABLE, "agent is shutting down")
}

pub(crate) fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
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

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ApiError {
        error: message.to_owned(),
    })
    .unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
