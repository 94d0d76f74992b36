//! Mutual TLS for the API's TCP transport: the PEM files of the server (its certificate chain, its
//! key and the CA that client certificates must chain to) and of a client, read and checked before
//! anything listens or dials, so that a wrong path or a broken file stops the process with a message
//! naming the flag and the file instead of failing every handshake later.
//!
//! tonic builds the real acceptor and connector from the same bytes; the checks here build a rustls
//! configuration once (ring, as everywhere else in FerroLB) only to find what is wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why a TLS file cannot be used. `what` names the flag the file came from (`--grpc-tls-cert`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{what} {}: cannot read: {source}", path.display())]
    Read {
        /// The flag.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file holds no PEM block of the kind expected.
    #[error("{what} {}: no PEM {kind} in the file", path.display())]
    Missing {
        /// The flag.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for (`CERTIFICATE`, `PRIVATE KEY`).
        kind: &'static str,
    },
    /// The file holds PEM that does not parse.
    #[error("{what} {}: bad PEM: {reason}", path.display())]
    BadPem {
        /// The flag.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The files parse but do not make a TLS configuration (key not matching the certificate, a CA
    /// certificate that is not one).
    #[error("{0}")]
    Config(String),
}

/// The server's side of mutual TLS: `--grpc-tls-cert`, `--grpc-tls-key`, `--grpc-client-ca`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates client certificates must chain to (PEM).
    pub client_ca: PathBuf,
}

/// A client's side of mutual TLS: its certificate and key, and the CA the server's certificate must
/// chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The client's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The client's private key (PEM).
    pub key: PathBuf,
    /// The CA certificates the server's certificate must chain to (PEM).
    pub ca: PathBuf,
    /// The name the server's certificate must carry; `None`: the host dialled.
    pub server_name: Option<String>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { what, path: path.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Missing { what, path: path.to_path_buf(), kind: "CERTIFICATE" });
    }
    Ok(certs)
}

fn private_key(what: &'static str, path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Missing { what, path: path.to_path_buf(), kind: "PRIVATE KEY" }
        }
        other => TlsError::BadPem { what, path: path.to_path_buf(), reason: other.to_string() },
    })
}

fn roots(
    what: &'static str,
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store.add(cert).map_err(|e| {
            TlsError::Config(format!("{what} {}: not a usable CA certificate: {e}", path.display()))
        })?;
    }
    Ok(store)
}

/// Reads and checks the server's files; the configuration requires every client to present a
/// certificate that chains to `client_ca`.
pub fn server_tls_config(files: &ServerTlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let cert_pem = read("--grpc-tls-cert", &files.cert)?;
    let key_pem = read("--grpc-tls-key", &files.key)?;
    let ca_pem = read("--grpc-client-ca", &files.client_ca)?;
    let chain = certificates("--grpc-tls-cert", &files.cert, &cert_pem)?;
    let key = private_key("--grpc-tls-key", &files.key, &key_pem)?;
    let store = roots(
        "--grpc-client-ca",
        &files.client_ca,
        certificates("--grpc-client-ca", &files.client_ca, &ca_pem)?,
    )?;
    let provider = Arc::new(ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(format!("--grpc-client-ca {}: {e}", files.client_ca.display())))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "--grpc-tls-cert {} with --grpc-tls-key {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem))
        .client_auth_optional(false))
}

/// Reads and checks a client's files (`ferrolbctl --tls-cert --tls-key --tls-ca`).
pub fn client_tls_config(files: &ClientTlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let cert_pem = read("--tls-cert", &files.cert)?;
    let key_pem = read("--tls-key", &files.key)?;
    let ca_pem = read("--tls-ca", &files.ca)?;
    let chain = certificates("--tls-cert", &files.cert, &cert_pem)?;
    let key = private_key("--tls-key", &files.key, &key_pem)?;
    let store = roots("--tls-ca", &files.ca, certificates("--tls-ca", &files.ca, &ca_pem)?)?;
    rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "--tls-cert {} with --tls-key {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    let mut config = ClientTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(name) = &files.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}
