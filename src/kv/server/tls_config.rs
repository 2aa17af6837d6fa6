//! [`TlsServerConfig`]: the RESP server's TLS listener, given as an address and PEM file
//! paths (what `ketch serve --tls-client-addr ADDR --tls-cert FILE --tls-key FILE
//! [--tls-client-ca FILE]` says), and its loading into a rustls configuration.
//!
//! # Files
//!
//! - `cert_path`: PEM, the server's certificate first, then any intermediates, as sent to
//!   clients. Clients check it against their CA and the name they dialled (give the
//!   certificate the host names and IP addresses clients use as subject alternative names).
//! - `key_path`: PEM, the certificate's private key (PKCS#8, PKCS#1 RSA or SEC1 EC); the
//!   first key in the file is used.
//! - `client_ca_path` (optional): PEM, one or more CA certificates. With it, every client must
//!   present a certificate chaining to one of them (mutual TLS); without it, clients are not
//!   asked for one.
//!
//! Files are read once, at start; replace them and restart the node to rotate.
//!
//! # Threat model
//!
//! TLS here protects the client link only: confidentiality and integrity of requests and
//! replies against someone on the network, and, with a client CA, that only holders of a
//! certificate it signed can connect at all. It is not per-user authorisation: every admitted
//! client may run every command (as with Redis' TLS without ACLs). The plaintext listener
//! keeps serving unless it is turned off (`--client-addr off`), so turn it off or keep it on
//! loopback when TLS matters. Peer (node-to-node) links are configured separately.
//!
//! Protocols and suites are rustls' safe defaults with the *ring* provider: TLS 1.3 and 1.2,
//! AEAD suites with forward secrecy only, no renegotiation, no compression. Session tickets
//! and a bounded session cache (rustls' defaults) let clients resume.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where and how the RESP server serves TLS clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerConfig {
    /// Where the TLS listener binds (port 0: any free port).
    pub addr: SocketAddr,
    /// The server's certificate chain, PEM.
    pub cert_path: PathBuf,
    /// The server's private key, PEM.
    pub key_path: PathBuf,
    /// CA certificates, PEM, that client certificates must chain to; `None`: clients are
    /// not asked for a certificate.
    pub client_ca_path: Option<PathBuf>,
}

/// Why a TLS configuration cannot be used; each names the file at fault.
#[derive(Debug)]
pub enum TlsConfigError {
    /// A file could not be read.
    Read {
        /// Which file it is (`certificate`, `private key`, `client CA`).
        role: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A file holds no PEM item of the kind wanted, or a malformed one.
    Pem {
        /// Which file it is.
        role: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CA (e.g. a key that does not match the
    /// certificate).
    Rustls {
        /// The file (or files) at fault.
        what: String,
        /// rustls' reason.
        error: rustls::Error,
    },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { role, path, error } => {
                write!(
                    f,
                    "cannot read the TLS {role} file {}: {error}",
                    path.display()
                )
            }
            TlsConfigError::Pem { role, path, reason } => {
                write!(f, "TLS {role} file {}: {reason}", path.display())
            }
            TlsConfigError::Rustls { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

impl TlsServerConfig {
    /// TLS on `addr` with the certificate and key at these paths, no client certificates.
    pub fn new(
        addr: SocketAddr,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> TlsServerConfig {
        TlsServerConfig {
            addr,
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            client_ca_path: None,
        }
    }

    /// The same, requiring client certificates signed by a CA in `client_ca_path`.
    pub fn with_client_ca(mut self, client_ca_path: impl Into<PathBuf>) -> TlsServerConfig {
        self.client_ca_path = Some(client_ca_path.into());
        self
    }

    /// Reads the files and builds the rustls configuration every TLS connection shares.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
        let certs = read_certs("certificate", &self.cert_path)?;
        let key_pem = read_file("private key", &self.key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsConfigError::Pem {
            role: "private key",
            path: self.key_path.clone(),
            reason: format!("no usable private key ({e})"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsConfigError::Rustls {
                what: "TLS protocol versions".to_string(),
                error,
            })?;
        let builder = match &self.client_ca_path {
            None => builder.with_no_client_auth(),
            Some(ca_path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs("client CA", ca_path)? {
                    roots.add(cert).map_err(|error| TlsConfigError::Rustls {
                        what: format!("TLS client CA file {}", ca_path.display()),
                        error,
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| TlsConfigError::Pem {
                    role: "client CA",
                    path: ca_path.clone(),
                    reason: format!("cannot verify clients with it ({e})"),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config =
            builder
                .with_single_cert(certs, key)
                .map_err(|error| TlsConfigError::Rustls {
                    what: format!(
                        "TLS certificate {} with key {}",
                        self.cert_path.display(),
                        self.key_path.display()
                    ),
                    error,
                })?;
        Ok(Arc::new(config))
    }
}

fn read_file(role: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|error| TlsConfigError::Read {
        role,
        path: path.to_path_buf(),
        error,
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certs(
    role: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(role, path)?;
    let pem_error = |reason: String| TlsConfigError::Pem {
        role,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(format!("malformed PEM ({e})")))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE in it".to_string()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = TlsServerConfig::new(addr(), dir.path().join("nope.pem"), "key.pem")
            .load()
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("certificate file"), "{text}");
        assert!(text.contains("nope.pem"), "{text}");
    }

    #[test]
    fn files_without_pem_items_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "cert.pem", "not a certificate\n");
        let error = TlsServerConfig::new(addr(), &cert, "key.pem")
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");

        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let good = params.self_signed(&key).unwrap();
        let cert = write(dir.path(), "cert.pem", &good.pem());
        let bad_key = write(dir.path(), "key.pem", "-----BEGIN NOTHING-----\n");
        let error = TlsServerConfig::new(addr(), &cert, &bad_key)
            .load()
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("private key file"), "{text}");
        assert!(text.contains("key.pem"), "{text}");

        let key_path = write(dir.path(), "key.pem", &key.serialize_pem());
        TlsServerConfig::new(addr(), &cert, &key_path)
            .load()
            .expect("a matching certificate and key load");
        let error = TlsServerConfig::new(addr(), &cert, &key_path)
            .with_client_ca(dir.path().join("ca.pem"))
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("client CA file"), "{error}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = write(
            dir.path(),
            "cert.pem",
            &params.self_signed(&key).unwrap().pem(),
        );
        let other = write(dir.path(), "other.pem", &other.serialize_pem());
        let error = TlsServerConfig::new(addr(), &cert, &other)
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("other.pem"), "{error}");
    }
}
