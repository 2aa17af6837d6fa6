//! Mutual TLS on peer connections (`--peer-cert`, `--peer-key`, `--peer-ca`), with rustls
//! (ring provider, TLS 1.3 only) driven through its non-blocking API on the event loop's mio
//! sockets, and [`PeerStream`], the byte stream the transport reads and writes whether or not
//! TLS is on.
//!
//! # Identities
//!
//! Every node has one certificate, signed by the cluster's CA, naming the node as the DNS
//! subject alternative name `node-<id>` (`node-3` for node 3); it serves as both the server
//! certificate (when the node accepts) and the client certificate (when it dials). So:
//!
//! - the acceptor requires a client certificate and verifies it against the CA (rustls'
//!   `WebPkiClientVerifier`); once the handshake frame arrives inside TLS, the id it claims must
//!   be the certificate's: [`PeerStream::check_peer_identity`] checks the SAN `node-<from>`;
//! - the dialer verifies the acceptor's certificate against the CA for the server name
//!   `node-<to>` (rustls' usual server-name check), so it talks only to the node it meant;
//! - at start, a node checks that its own certificate names `node-<id>` and refuses to start
//!   otherwise, so a misissued certificate fails loudly on the node that holds it.
//!
//! An attacker on the network without a CA-signed key for some node id can then neither read
//! nor inject nor alter peer traffic; one holding node 2's key can act only as node 2. The CA
//! file may hold several certificates (a rotation).
//!
//! Certificates with OpenSSL (`ketch cluster --secure` makes its own with rcgen instead):
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
//!     -subj /CN=ketch-ca -keyout ca.key -out ca.pem
//! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node-1 \
//!     -keyout node-1.key -out node-1.csr
//! openssl x509 -req -in node-1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
//!     -extfile <(printf 'subjectAltName=DNS:node-1\nextendedKeyUsage=serverAuth,clientAuth') \
//!     -out node-1.pem
//! ketch serve --id 1 ... --peer-cert node-1.pem --peer-key node-1.key --peer-ca ca.pem
//! ```
//!
//! # Non-blocking I/O
//!
//! [`PeerStream::read`] drains decrypted bytes first, then feeds the socket's bytes to rustls
//! (`read_tls`, `process_new_packets`) and writes out what rustls has to send (handshake
//! messages, alerts) on the way; it returns `WouldBlock` only once the socket did, so mio's
//! edge-triggered readiness stays correct. [`PeerStream::write_vectored`] first flushes the TLS
//! records already built, takes plaintext only when none are left waiting, and builds at most
//! [`TLS_BUFFER_BYTES`] of records at a time (rustls' buffer limit), so the records waiting for
//! the socket are bounded per connection like the transport's own queues.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::peer_auth::PeerSecurityError;
use crate::raft::NodeId;

/// TLS records built but not yet written, per connection, at most (rustls' buffer limit).
pub const TLS_BUFFER_BYTES: usize = 256 << 10;

/// The DNS name a node's certificate must carry.
pub fn node_dns_name(id: NodeId) -> String {
    format!("node-{id}")
}

/// A node's TLS identity and trust: its certificate and key, and the cluster's CA.
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTls(..)")
    }
}

impl PeerTls {
    /// Loads PEM files: `cert` (the node's certificate, optionally followed by intermediates),
    /// `key` (its private key), `ca` (the CA certificates peers are checked against). Refuses,
    /// naming the file, one that cannot be read or parsed, and a certificate that does not
    /// name `node-<id>`.
    pub fn from_files(
        id: NodeId,
        cert: &Path,
        key: &Path,
        ca: &Path,
    ) -> Result<PeerTls, PeerSecurityError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| PeerSecurityError::new(Some(path), format!("cannot read it: {e}")))
        };
        let (cert_pem, key_pem, ca_pem) = (read(cert)?, read(key)?, read(ca)?);
        Self::from_pem_named(id, (&cert_pem, cert), (&key_pem, key), (&ca_pem, ca))
    }

    /// [`from_files`](Self::from_files) from PEM text already in memory.
    pub fn from_pem(
        id: NodeId,
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
    ) -> Result<PeerTls, PeerSecurityError> {
        Self::from_pem_named(
            id,
            (cert_pem, Path::new("certificate")),
            (key_pem, Path::new("key")),
            (ca_pem, Path::new("CA")),
        )
    }

    fn from_pem_named(
        id: NodeId,
        (cert_pem, cert_path): (&[u8], &Path),
        (key_pem, key_path): (&[u8], &Path),
        (ca_pem, ca_path): (&[u8], &Path),
    ) -> Result<PeerTls, PeerSecurityError> {
        let error = |path: &Path, reason: String| PeerSecurityError::new(Some(path), reason);
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(cert_path, format!("not PEM certificates: {e}")))?;
        let Some(own) = certs.first() else {
            return Err(error(cert_path, "holds no certificate".to_string()));
        };
        check_names(own, id)
            .map_err(|reason| error(cert_path, format!("cannot serve as node {id}: {reason}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| error(key_path, format!("not a PEM private key: {e}")))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            let ca = ca.map_err(|e| error(ca_path, format!("not PEM certificates: {e}")))?;
            roots
                .add(ca)
                .map_err(|e| error(ca_path, format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(error(ca_path, "holds no CA certificate".to_string()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| error(ca_path, format!("cannot verify clients with it: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| error(cert_path, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| error(key_path, format!("does not go with the certificate: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| error(cert_path, e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| error(key_path, format!("does not go with the certificate: {e}")))?;
        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// Whether `cert` carries the DNS name `node-<id>`.
fn check_names(cert: &CertificateDer<'_>, id: NodeId) -> Result<(), String> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("not a parsable certificate: {e}"))?;
    let name = ServerName::try_from(node_dns_name(id)).expect("node-<id> is a valid DNS name");
    parsed
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("the certificate does not name {}", node_dns_name(id)))
}

/// One peer connection's byte stream: the socket itself, or TLS over it.
pub(crate) enum PeerStream {
    /// No TLS.
    Plain(TcpStream),
    /// TLS: the socket carries records, rustls holds the session.
    Tls {
        /// The socket.
        tcp: TcpStream,
        /// The session (client when dialed, server when accepted).
        session: Box<rustls::Connection>,
    },
}

impl PeerStream {
    /// Whether the stream runs TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, PeerStream::Tls { .. })
    }

    /// A dialed stream to node `to`, under TLS if `tls` is set.
    pub(crate) fn dialed(
        tcp: TcpStream,
        tls: Option<&PeerTls>,
        to: NodeId,
    ) -> Result<PeerStream, String> {
        let Some(tls) = tls else {
            return Ok(PeerStream::Plain(tcp));
        };
        let name = ServerName::try_from(node_dns_name(to)).expect("node-<id> is a valid DNS name");
        let mut session = ClientConnection::new(tls.client.clone(), name)
            .map_err(|e| format!("cannot start TLS: {e}"))?;
        session.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        Ok(PeerStream::Tls {
            tcp,
            session: Box::new(session.into()),
        })
    }

    /// An accepted stream, under TLS if `tls` is set.
    pub(crate) fn accepted(tcp: TcpStream, tls: Option<&PeerTls>) -> Result<PeerStream, String> {
        let Some(tls) = tls else {
            return Ok(PeerStream::Plain(tcp));
        };
        let mut session = ServerConnection::new(tls.server.clone())
            .map_err(|e| format!("cannot start TLS: {e}"))?;
        session.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        Ok(PeerStream::Tls {
            tcp,
            session: Box::new(session.into()),
        })
    }

    /// The socket, to register, deregister and query.
    pub(crate) fn tcp(&mut self) -> &mut TcpStream {
        match self {
            PeerStream::Plain(tcp) => tcp,
            PeerStream::Tls { tcp, .. } => tcp,
        }
    }

    /// Whether the peer is node `id` as far as this layer can tell: under TLS, its
    /// certificate (verified against the CA during the TLS handshake) names `node-<id>`;
    /// without TLS, this layer knows nothing and says yes.
    pub(crate) fn check_peer_identity(&self, id: NodeId) -> Result<(), String> {
        let PeerStream::Tls { session, .. } = self else {
            return Ok(());
        };
        let cert = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or_else(|| "presented no TLS certificate".to_string())?;
        check_names(cert, id).map_err(|reason| format!("claims to be node {id} but {reason}"))
    }

    /// Writes out TLS records waiting for the socket; `WouldBlock` if some are still waiting
    /// (a writable event will come).
    pub(crate) fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            PeerStream::Plain(_) => Ok(()),
            PeerStream::Tls { tcp, session } => flush_records(tcp, session),
        }
    }
}

/// Writes out `session`'s records until none wait (`Ok`) or the socket is full (`WouldBlock`).
fn flush_records(tcp: &mut TcpStream, session: &mut rustls::Connection) -> io::Result<()> {
    // Each pass writes some bytes or returns.
    while session.wants_write() {
        match session.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`flush_records`], with a full socket not an error.
fn flush_records_quietly(tcp: &mut TcpStream, session: &mut rustls::Connection) -> io::Result<()> {
    match flush_records(tcp, session) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

/// Reads plaintext from a TLS session over `tcp` (see the module docs).
fn read_plaintext(
    tcp: &mut TcpStream,
    session: &mut rustls::Connection,
    buf: &mut [u8],
) -> io::Result<usize> {
    // Each pass returns bytes, or reads from the socket until it would block or ends.
    loop {
        match session.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match session.read_tls(tcp) {
            Ok(0) => return Ok(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = session.process_new_packets() {
            // Send the alert rustls prepared, if the socket takes it, before closing.
            let _ = session.write_tls(tcp);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS: {e}"),
            ));
        }
        // Handshake messages (and key updates) rustls answers with.
        flush_records_quietly(tcp, session)?;
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PeerStream::Plain(tcp) => tcp.read(buf),
            PeerStream::Tls { tcp, session } => read_plaintext(tcp, session, buf),
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let (tcp, session) = match self {
            PeerStream::Plain(tcp) => return tcp.write_vectored(bufs),
            PeerStream::Tls { tcp, session } => (tcp, session),
        };
        flush_records(tcp, session)?;
        let taken = session.writer().write_vectored(bufs)?;
        flush_records_quietly(tcp, session)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // rustls' buffer is full: its records were written out above or wait for a
            // writable event.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
