//! TLS served by the server itself (`--tls-cert`, `--tls-key`), for small installs without a
//! reverse proxy. rustls through tokio-rustls: TLS 1.2 and 1.3 with rustls's default (safe)
//! cipher suites, ALPN `h2` and `http/1.1`, no client certificates.
//!
//! The certificate and key are read once at start-up, before the listener is bound, so a bad
//! file stops the server with one line and nothing created. To rotate them, replace the files
//! and restart (graceful: in-flight requests finish). Larger installs terminate TLS at their
//! reverse proxy instead (docs/operations.md, "TLS and reverse proxies").

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The acceptor for the PEM certificate chain at `cert` (leaf first) and the PEM private key at
/// `key` (PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            format!(
                "--tls-cert/--tls-key: the key does not match the certificate, or is not usable: {e}"
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
