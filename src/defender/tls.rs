//! Mutual TLS from PEM files, with rustls on the `ring` provider only.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::error::DefenderError;

/// Paths of the PEM files for a mutual TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) that signed the broker's certificate.
    pub ca: std::path::PathBuf,
    /// The client certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The client's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// Installs `ring` as the process-wide rustls provider. An already installed provider is
/// kept; the configurations built here name `ring` explicitly anyway.
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds a rustls client configuration that checks the broker against `files.ca` and
/// presents `files.cert` with `files.key`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, DefenderError> {
    install_ring_provider();
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(&files.ca, "CA certificate")? {
        roots.add(cert).map_err(|e| DefenderError::Pem {
            role: "CA certificate",
            path: files.ca.clone(),
            detail: e.to_string(),
        })?;
    }
    let chain = read_certificates(&files.cert, "client certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| DefenderError::Pem {
        role: "private key",
        path: files.key.clone(),
        detail: format!("{e}; expected a PEM file with one PRIVATE KEY block"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DefenderError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            DefenderError::Tls(format!(
                "{e}: check that {} is the key of {}",
                files.key.display(),
                files.cert.display()
            ))
        })?;
    Ok(Arc::new(config))
}

fn read_certificates(
    path: &Path,
    role: &'static str,
) -> Result<Vec<CertificateDer<'static>>, DefenderError> {
    let failed = |detail: String| DefenderError::Pem { role, path: path.to_owned(), detail };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certificates.is_empty() {
        return Err(failed("no CERTIFICATE block found".into()));
    }
    Ok(certificates)
}
