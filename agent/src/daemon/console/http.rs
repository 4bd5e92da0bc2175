//! The console's HTTP server: the embedded pages, the login, the API
//! behind it, the history and live readings (server-sent events).
//!
//! Routes:
//! - `GET /`, `/app.js`, `/style.css`, `/uPlot.iife.min.js`,
//!   `/uPlot.min.css`: the pages, embedded in the binary;
//! - `POST /login` `{"token": …}` or `{"password": …}`: sets the session
//!   cookie;
//! - with the cookie: `GET /api/history?prefix=<key>/`, `GET /api/events`
//!   (server-sent events, one per verified reading), and `/api/v1/…`, the
//!   local API as documented in docs/api.md (a POST needs
//!   `Content-Type: application/json`).
//!
//! Every answer carries a content security policy that allows only the
//! console's own scripts; on loopback, the `Host` header must name the
//! console's address (a page elsewhere cannot rebind a name of its own to
//! it). With `tls_cert` and `tls_key` the listener speaks only HTTPS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, mpsc, watch};

use super::history::{self, History};
use super::Refused;
use crate::clock::Clock;
use crate::daemon::server::{self, Context};
use crate::daemon::verified_feed::Verified;

type Answer = Response<BoxBody<Bytes, Infallible>>;

/// The cookie's name.
const COOKIE_NAME: &str = "streembit_console";
/// Live-reading events waiting for a slow page at most (then dropped).
const EVENTS_QUEUE: usize = 256;
/// Pages open at once at most (each holds an event stream).
const MAX_EVENT_STREAMS: usize = 16;

const INDEX: &[u8] = include_bytes!("assets/index.html");
const APP: &[u8] = include_bytes!("assets/app.js");
const STYLE: &[u8] = include_bytes!("assets/style.css");
const UPLOT_JS: &[u8] = include_bytes!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &[u8] = include_bytes!("assets/uPlot.min.css");
const ICON: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1d3557"/></svg>"##;

struct Console {
    ctx: Context,
    token: String,
    /// The password hash people log in with, if set.
    password: Option<String>,
    /// Served over TLS (the cookie is then `Secure`).
    tls: bool,
    addr: SocketAddr,
    history: Arc<Mutex<History>>,
    live: broadcast::Sender<String>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Serves the console on its socket until `shutdown`.
pub(crate) async fn serve(
    bound: super::Bound,
    ctx: Context,
    state_dir: std::path::PathBuf,
    clock: Clock,
    feed: broadcast::Receiver<Arc<Verified>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lagged = ctx.verified.lagged();
    let super::Bound {
        listener,
        token,
        tls,
        password,
        ..
    } = bound;
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (live, _) = broadcast::channel(EVENTS_QUEUE);
    let history = history::start(
        &state_dir,
        clock,
        feed,
        lagged,
        live.clone(),
        shutdown.clone(),
    );
    let console = Arc::new(Console {
        ctx,
        token,
        password,
        tls: acceptor.is_some(),
        addr,
        history,
        live,
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
    });
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "console accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let console = console.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(stream, console).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE, tls.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => connection(stream, console).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "console TLS handshake failed"),
                        Err(_) => tracing::debug!("console TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// A TLS handshake may take this long.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

async fn connection<S>(stream: S, console: Arc<Console>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let console = console.clone();
        async move { Ok::<_, Infallible>(handle(req, &console).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(req: Request<Incoming>, console: &Console) -> Answer {
    let mut answer = route(req, console).await;
    let h = answer.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    answer
}

async fn route(req: Request<Incoming>, console: &Console) -> Answer {
    // A console on loopback must be asked by its own name: a page on
    // another site cannot rebind a name of its own to 127.0.0.1.
    if console.addr.ip().is_loopback() && !host_is_ours(&req, console.addr) {
        console.ctx.console.refused(Refused::WrongHost);
        return text(StatusCode::MISDIRECTED_REQUEST, "unknown host");
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/") => asset(INDEX, "text/html; charset=utf-8"),
        (&Method::GET, "/app.js") => asset(APP, "text/javascript"),
        (&Method::GET, "/style.css") => asset(STYLE, "text/css"),
        (&Method::GET, "/uPlot.iife.min.js") => asset(UPLOT_JS, "text/javascript"),
        (&Method::GET, "/uPlot.min.css") => asset(UPLOT_CSS, "text/css"),
        (&Method::GET, "/favicon.ico") => asset(ICON, "image/svg+xml"),
        (&Method::POST, "/login") => login(body, console).await,
        (_, p) if p.starts_with("/api/") => {
            if !logged_in(&parts.headers, &console.token) {
                console.ctx.console.refused(Refused::NoSession);
                return json_error(
                    StatusCode::UNAUTHORIZED,
                    "log in with the URL `streembit console` prints",
                );
            }
            api(&parts.method, &parts.uri, &parts.headers, body, console).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn api(
    method: &Method,
    uri: &Uri,
    headers: &hyper::HeaderMap,
    body: Incoming,
    console: &Console,
) -> Answer {
    match (method, uri.path()) {
        (&Method::GET, "/api/events") => events(console),
        (&Method::GET, "/api/history") => {
            let prefix = uri
                .query()
                .and_then(|q| q.strip_prefix("prefix="))
                .unwrap_or("")
                .replace("%2F", "/")
                .replace("%2f", "/");
            let series = console
                .history
                .lock()
                .map(|h| h.series(&prefix))
                .unwrap_or_default();
            server::json(&series).map(BodyExt::boxed)
        }
        (m, p) if p.starts_with("/api/v1/") => {
            if *m != Method::GET && !is_json(headers) {
                console.ctx.console.refused(Refused::NotJson);
                return json_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send JSON (Content-Type: application/json)",
                );
            }
            let Ok(inner) = p["/api".len()..]
                .parse::<Uri>()
                .map(|u| with_query(u, uri.query()))
            else {
                return json_error(StatusCode::BAD_REQUEST, "bad path");
            };
            server::api(method, &inner, body, &console.ctx)
                .await
                .map(BodyExt::boxed)
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn with_query(uri: Uri, query: Option<&str>) -> Uri {
    match query {
        Some(q) => format!("{}?{q}", uri.path()).parse().unwrap_or(uri),
        None => uri,
    }
}

/// Trades the token for the session cookie.
async fn login(body: Incoming, console: &Console) -> Answer {
    let Ok(body) = http_body_util::Limited::new(body, 1024).collect().await else {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    };
    let asked = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).unwrap_or_default();
    let by_token = asked["token"]
        .as_str()
        .is_some_and(|t| same(t, &console.token));
    let by_password = match (asked["password"].as_str(), &console.password) {
        (Some(p), Some(hash)) => {
            let (p, hash) = (p.to_owned(), hash.clone());
            // PBKDF2 takes a while: off the runtime's threads.
            tokio::task::spawn_blocking(move || crate::daemon::password::verify(&p, &hash))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    if !(by_token || by_password) {
        console.ctx.console.refused(Refused::Login);
        tracing::info!("console login refused");
        return json_error(StatusCode::UNAUTHORIZED, "wrong token or password");
    }
    let token = &console.token;
    let mut r = Response::new(Full::new(Bytes::from_static(b"{}")).boxed());
    *r.status_mut() = StatusCode::OK;
    let secure = if console.tls { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
    )) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

fn logged_in(headers: &hyper::HeaderMap, token: &str) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
        .any(|t| same(t, token))
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_json(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn host_is_ours(req: &Request<Incoming>, addr: SocketAddr) -> bool {
    let Some(host) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = addr.port();
    [
        addr.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ]
    .iter()
    .any(|h| h == host)
}

/// Live readings as server-sent events, one `data:` line each.
fn events(console: &Console) -> Answer {
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        console.ctx.console.refused(Refused::TooManyPages);
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "too many pages open");
    };
    let mut live = console.live.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(EVENTS_QUEUE);
    tokio::spawn(async move {
        let _permit = permit;
        if tx.send(Bytes::from_static(b": live\n\n")).await.is_err() {
            return;
        }
        loop {
            let event = match live.recv().await {
                Ok(e) => format!("data: {e}\n\n"),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    format!("event: lagged\ndata: {n}\n\n")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(EventStream(rx).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A response body fed by a channel.
struct EventStream(mpsc::Receiver<Bytes>);

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn asset(bytes: &'static [u8], content_type: &'static str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from_static(bytes)).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn text(status: StatusCode, message: &'static str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from_static(message.as_bytes())).boxed());
    *r.status_mut() = status;
    r
}

fn json_error(status: StatusCode, message: &str) -> Answer {
    server::error(status, message).map(BodyExt::boxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_must_carry_the_token() {
        let mut h = hyper::HeaderMap::new();
        assert!(!logged_in(&h, "abc"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("x=1; streembit_console=abd"),
        );
        assert!(!logged_in(&h, "abc"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("x=1; streembit_console=abc"),
        );
        assert!(logged_in(&h, "abc"));
        assert!(!same("abc", "ab"));
    }
}
