//! The CLI side of the local API: one HTTP/1.1 request over the Unix socket.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{Failure, EXIT_INVALID, EXIT_NOT_RUNNING};

/// Longest a CLI command waits for the agent (a lookup may take a while).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer the CLI accepts.
const MAX_ANSWER: usize = 16 << 20;

/// What a user outside the service's group is told.
fn permission_denied(socket: &Path) -> String {
    format!(
        "permission denied: add yourself to group streembit to talk to the agent \
         (sudo adduser $USER streembit, then log in again), or use sudo; \
         {} is for the service's group only",
        socket.display()
    )
}

/// Why connecting to the API socket failed, said to the user: a
/// permission error means the agent may well be running (the socket, or
/// its directory, 0750, belongs to the service's group).
pub(super) fn cannot_connect(socket: &Path, e: &std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Failure {
            code: EXIT_INVALID,
            message: permission_denied(socket),
        },
        _ => Failure {
            code: EXIT_NOT_RUNNING,
            message: format!(
                "agent not running: cannot connect to {} ({e}); start it with `streembit run`",
                socket.display()
            ),
        },
    }
}

/// `GET path` on the agent at `socket`: the status code and the body.
pub(super) fn get(socket: &Path, path: &str) -> Result<(u16, Vec<u8>), Failure> {
    call(socket, hyper::Method::GET, path, Vec::new())
}

/// `POST path` with a JSON body.
pub(super) fn post(socket: &Path, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), Failure> {
    call(socket, hyper::Method::POST, path, body)
}

/// `DELETE path`.
pub(super) fn delete(socket: &Path, path: &str) -> Result<(u16, Vec<u8>), Failure> {
    call(socket, hyper::Method::DELETE, path, Vec::new())
}

fn call(
    socket: &Path,
    method: hyper::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start I/O runtime: {e}")))?;
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, fetch(socket, method, path, body))
            .await
            .map_err(|_| Failure {
                code: EXIT_NOT_RUNNING,
                message: format!("the agent at {} did not answer in time", socket.display()),
            })?
    })
}

async fn fetch(
    socket: &Path,
    method: hyper::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), Failure> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| cannot_connect(socket, &e))?;
    let broken = |e: hyper::Error| Failure {
        code: EXIT_NOT_RUNNING,
        message: format!(
            "the agent at {} broke the connection: {e}",
            socket.display()
        ),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "streembit")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::usage(format!("bad request {path}: {e}")))?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| Failure {
            code: EXIT_NOT_RUNNING,
            message: format!("reading the agent's answer: {e}"),
        })?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}
