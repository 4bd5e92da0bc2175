//! The web console: pages served by the agent itself, for the people who
//! look after a gateway.
//!
//! - `mod.rs`: `[web]` settings, the login token, start-up.
//! - `http.rs`: the HTTP server: the embedded pages, the login, the API
//!   behind it, and live readings as server-sent events.
//! - `history.rs`: the last hour of each numeric point, bounded, on disk.
//! - `assets/`: the pages (plain HTML, CSS and JavaScript) and uPlot, a
//!   plotting library made for time series (MIT, vendored as released).
//!
//! Who may use it: whoever holds the console's token, a random 256-bit
//! secret kept in `<state>/console.token` (0600). `streembit console`
//! prints the URL carrying it (in the fragment, which browsers never send
//! or log); the page trades it once for an HttpOnly, SameSite=Strict
//! cookie. Writes also need a JSON content type, so another site cannot
//! forge one from a form. The console listens on loopback only: from a
//! laptop, through an SSH tunnel.
//!
//! What this module does not do: decide anything. Every question goes to
//! the same API the CLI uses (`server::api`), with the same answers and
//! limits.

mod history;
mod http;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use http::serve;

/// `[web]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// Serve the console.
    pub enabled: bool,
    /// Where: a loopback address (reach it from elsewhere through an SSH
    /// tunnel).
    pub listen: String,
}

impl Default for WebSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:7480".to_owned(),
        }
    }
}

impl WebSection {
    /// The listen address, checked: a loopback one.
    pub(crate) fn addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self
            .listen
            .parse()
            .map_err(|e| format!("{:?} is not an ip:port address ({e})", self.listen))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr}: the console serves plain HTTP, so it listens on loopback only \
                 (127.0.0.1 or ::1); from a laptop, use an SSH tunnel: \
                 ssh -L 7480:127.0.0.1:7480 <gateway>"
            ));
        }
        Ok(addr)
    }
}

/// The console's token file.
pub(crate) fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("console.token")
}

/// The console's token: read, or made (256 random bits, hex, 0600) on
/// first use.
pub(crate) fn token(state_dir: &Path) -> std::io::Result<String> {
    let path = token_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() == 64 => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token = hex::encode(bytes);
    crate::state_file::write_atomic(&path, token.as_bytes())?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(token)
}

/// The console's socket, login URL and token, when it is on and its
/// address is free. Never fatal: a taken port or an unwritable token file
/// leaves the agent running without a console, and the log says why.
pub(crate) async fn bind(
    web: &WebSection,
    state_dir: &Path,
) -> Option<(tokio::net::TcpListener, String, String)> {
    if !web.enabled {
        return None;
    }
    let addr = web.addr().ok()?;
    let token = match token(state_dir) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %token_path(state_dir).display(), error = %e, "web console off: cannot keep its token");
            return None;
        }
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            let bound = l.local_addr().ok()?;
            Some((l, url(bound, &token), token))
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "web console off: cannot listen there (another agent? set [web] listen)");
            None
        }
    }
}

/// The URL that logs in: the token in the fragment.
pub(crate) fn url(addr: SocketAddr, token: &str) -> String {
    format!("http://{addr}/#token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_served_and_the_token_is_kept() {
        let ok = WebSection::default();
        assert!(ok.addr().is_ok());
        let lan = WebSection {
            listen: "0.0.0.0:7480".into(),
            ..ok.clone()
        };
        assert!(lan.addr().expect_err("refused").contains("SSH tunnel"));
        let dir = tempfile::tempdir().expect("dir");
        let t = token(dir.path()).expect("token");
        assert_eq!(t.len(), 64);
        assert_eq!(token(dir.path()).expect("again"), t);
        let mode = std::fs::metadata(token_path(dir.path()))
            .expect("file")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
