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
//! forge one from a form. On loopback, plain HTTP (from a laptop, through
//! an SSH tunnel). On any other address only with HTTPS (`tls_cert`,
//! `tls_key`) and a password (`password_file`, PBKDF2 as in
//! `password.rs`), which people log in with; never the gateway's key.
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

/// What the console refused, by reason (`streembit_console_refused_total`).
#[derive(Debug, Default)]
pub(crate) struct ConsoleStats {
    login: std::sync::atomic::AtomicU64,
    no_session: std::sync::atomic::AtomicU64,
    wrong_host: std::sync::atomic::AtomicU64,
    not_json: std::sync::atomic::AtomicU64,
    too_many_pages: std::sync::atomic::AtomicU64,
}

/// A reason the console refused a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// A wrong token or password at `/login`.
    Login,
    /// An API request without a valid session cookie.
    NoSession,
    /// A `Host` header that is not the console's (loopback).
    WrongHost,
    /// A write that is not JSON.
    NotJson,
    /// Too many live pages at once.
    TooManyPages,
}

impl ConsoleStats {
    /// Counts one refusal.
    pub(crate) fn refused(&self, why: Refused) {
        let c = match why {
            Refused::Login => &self.login,
            Refused::NoSession => &self.no_session,
            Refused::WrongHost => &self.wrong_host,
            Refused::NotJson => &self.not_json,
            Refused::TooManyPages => &self.too_many_pages,
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Metric families.
    pub(crate) fn families(&self) -> Vec<crate::metrics::Family> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut f = crate::metrics::Family::new(
            "streembit_console_refused",
            "Requests the web console refused, by reason: login (wrong token or password), no_session, wrong_host, not_json (a write that is not JSON), too_many_pages.",
            crate::metrics::Kind::Counter,
        );
        for (reason, n) in [
            ("login", &self.login),
            ("no_session", &self.no_session),
            ("wrong_host", &self.wrong_host),
            ("not_json", &self.not_json),
            ("too_many_pages", &self.too_many_pages),
        ] {
            f.push(&[("reason", reason)], n.load(Relaxed));
        }
        vec![f]
    }
}

/// `[web]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// Serve the console.
    pub enabled: bool,
    /// Where. A loopback address, or any other with `tls_cert`, `tls_key`
    /// and `password_file` (TLS and a password login).
    pub listen: String,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// A file holding the console's password hash (`streembit console
    /// password` writes it): the login for people, never the gateway key.
    pub password_file: Option<PathBuf>,
}

impl Default for WebSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:7480".to_owned(),
            tls_cert: None,
            tls_key: None,
            password_file: None,
        }
    }
}

impl WebSection {
    /// The listen address, checked: a loopback one, or any other with
    /// TLS and a password.
    pub(crate) fn addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self
            .listen
            .parse()
            .map_err(|e| format!("{:?} is not an ip:port address ({e})", self.listen))?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("set both `tls_cert` and `tls_key`, or neither".into());
        }
        if !addr.ip().is_loopback() && (self.tls_cert.is_none() || self.password_file.is_none()) {
            return Err(format!(
                "{addr} is not loopback: the console then needs TLS and a password \
                 (`tls_cert`, `tls_key`, and `password_file` from `streembit console password`); \
                 or keep it on 127.0.0.1 and use an SSH tunnel: ssh -L 7480:127.0.0.1:7480 <gateway>"
            ));
        }
        Ok(addr)
    }

    /// The TLS settings, when HTTPS is on.
    fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        Ok(Some(std::sync::Arc::new(config)))
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
pub(crate) async fn bind(web: &WebSection, state_dir: &Path) -> Option<Bound> {
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
    let tls = match web.tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("web console off: its TLS certificate or key: {e}");
            return None;
        }
    };
    let password = match &web.password_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(h) => Some(h.trim().to_owned()),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "web console off: cannot read its password file");
                return None;
            }
        },
        None => None,
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            let bound = listener.local_addr().ok()?;
            let url = url(bound, &token, tls.is_some());
            Some(Bound {
                listener,
                url,
                token,
                tls,
                password,
            })
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "web console off: cannot listen there (another agent? set [web] listen)");
            None
        }
    }
}

/// The console's socket and what it serves with.
pub(crate) struct Bound {
    /// The socket.
    pub listener: tokio::net::TcpListener,
    /// The login URL (with the token).
    pub url: String,
    /// The login token.
    pub token: String,
    /// HTTPS, when configured.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The password hash, when configured.
    pub password: Option<String>,
}

/// The URL that logs in: the token in the fragment.
pub(crate) fn url(addr: SocketAddr, token: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/#token={token}")
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
        assert!(lan
            .addr()
            .expect_err("refused")
            .contains("TLS and a password"));
        let half = WebSection {
            tls_cert: Some("c.pem".into()),
            ..lan.clone()
        };
        assert!(half.addr().expect_err("refused").contains("both"));
        let full = WebSection {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            password_file: Some("p".into()),
            ..lan
        };
        assert!(full.addr().is_ok());
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
