//! TLS for the broker connection: rustls with the ring provider.
//!
//! The provider is passed explicitly, so nothing depends on a process-wide
//! default and aws-lc is never linked (it breaks the Yocto cross build).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::MqttTls;
use crate::error::BridgeError;

/// Where Debian, Yocto and most Linux systems keep the CA bundle.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn io(path: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Io(format!("{path}: {e}"))
}

/// Builds the rustls client configuration from the bridge file's `tls`.
pub(crate) fn client_config(tls: &MqttTls) -> Result<Arc<ClientConfig>, BridgeError> {
    let ca = tls.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| io(ca, e))? {
        roots
            .add(cert.map_err(|e| io(ca, e))?)
            .map_err(|e| io(ca, e))?;
    }
    if roots.is_empty() {
        return Err(io(ca, "no certificates"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BridgeError::Misuse(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| io(cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io(cert, e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| io(key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| io(key, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
