//! [`ClientStream`]: one client's socket as the connection loop reads and writes it, in
//! plaintext or in TLS, behind the same `Read` / `Write` semantics.
//!
//! # Semantics the loop relies on
//!
//! - `read` returns request bytes, `Ok(0)` once the client has closed its side, or
//!   `WouldBlock` only when nothing more can be had without a new readiness event: for TLS,
//!   when rustls holds no decrypted bytes *and* the socket is drained. The loop reads until
//!   `WouldBlock` or until it pauses a connection for backpressure; a paused connection is
//!   resumed by an explicit `read` (never by an event), which for TLS first hands out what
//!   rustls already decrypted. So bytes buffered inside rustls, which the socket no longer
//!   signals under edge-triggered mio, are never stranded.
//! - `write` takes reply bytes; for TLS they are encrypted into rustls' outgoing buffer
//!   (bounded by rustls' buffer limit, 64 KiB by default) and pushed to the socket as far as
//!   it takes them. `WouldBlock` means the socket refused bytes, so a writable event will
//!   follow; then `flush` pushes what rustls still holds. The loop treats that buffer as part
//!   of the socket's send buffer: a connection is not closed as finished while
//!   [`ClientStream::has_pending_output`] says records are still queued.
//! - The TLS handshake, alerts, key updates and session tickets are driven from `read` (what
//!   the client sent is processed there) and sent at once or at the next writable event.
//!
//! # Failures
//!
//! A TLS protocol error (a plaintext client on the TLS port, a bad handshake, an untrusted or
//! missing client certificate) comes back from `read` as an `InvalidData` error whose text
//! is rustls' reason, after rustls' alert was offered to the socket; a client that closes
//! during the handshake gives `ConnectionAborted`. The loop logs these (rate-limited, see
//! [`RejectLog`]) and closes the connection; nothing else is affected.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A client's connection: plaintext, or TLS over the same kind of socket.
pub(super) enum ClientStream {
    /// RESP straight on the socket.
    Plain(TcpStream),
    /// RESP inside TLS (boxed: rustls' state is a few KiB).
    Tls(Box<TlsStream>),
}

/// A server-side TLS session on a non-blocking socket.
pub(super) struct TlsStream {
    socket: TcpStream,
    tls: rustls::ServerConnection,
}

impl ClientStream {
    /// A TLS session for a just-accepted `socket` (the handshake runs as the client talks).
    pub(super) fn tls(
        socket: TcpStream,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<ClientStream, rustls::Error> {
        let tls = rustls::ServerConnection::new(config)?;
        Ok(ClientStream::Tls(Box::new(TlsStream { socket, tls })))
    }

    /// The TCP socket underneath.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(socket) => socket,
            ClientStream::Tls(stream) => &stream.socket,
        }
    }

    /// True for a TLS connection.
    pub(super) fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// The client's address, if the socket knows it.
    pub(super) fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr().ok()
    }

    /// True while encrypted bytes wait for the socket (always false in plaintext).
    pub(super) fn has_pending_output(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(stream) => stream.tls.wants_write(),
        }
    }

    /// Before closing: a TLS `close_notify`, offered to the socket once (what it does not
    /// take is dropped with the connection).
    pub(super) fn close_notify(&mut self) {
        if let ClientStream::Tls(stream) = self {
            stream.tls.send_close_notify();
            let _ = stream.write_pending();
        }
    }
}

impl TlsStream {
    /// Pushes queued TLS records to the socket until rustls holds none (`Ok`) or the socket
    /// refuses more (`WouldBlock`).
    fn write_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Bounded: every pass that does not return consumed bytes from the socket.
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if self.tls.is_handshaking() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "closed by the client during the TLS handshake",
                        ));
                    }
                    // Closed without close_notify: redis clients do, and a RESP request
                    // carries its own framing, so this is an ordinary end of input.
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.socket) {
                // End of input: processed below, then reported by the reader.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(error) = self.tls.process_new_packets() {
                // rustls queued an alert saying why; offer it before the loop closes.
                let _ = self.write_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
            match self.write_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Two passes at most: the second runs only after the first emptied rustls' buffer.
        for _ in 0..2 {
            let accepted = self.tls.writer().write(buf)?;
            match self.write_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && accepted > 0 => {}
                Err(e) => return Err(e),
            }
            if accepted > 0 {
                return Ok(accepted);
            }
        }
        // rustls takes no application data before the handshake ends, and the loop writes
        // replies only to requests, which come after it: this is not expected to happen.
        Err(io::Error::other(
            "TLS session refuses application data with nothing queued",
        ))
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(socket) => socket.read(buf),
            ClientStream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(socket) => socket.write(buf),
            ClientStream::Tls(stream) => stream.write(buf),
        }
    }

    /// Pushes queued TLS records; `WouldBlock` if the socket does not take them all.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(_) => Ok(()),
            ClientStream::Tls(stream) => stream.write_pending(),
        }
    }
}

impl Source for ClientStream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ClientStream::Plain(socket) => socket.register(registry, token, interests),
            ClientStream::Tls(stream) => stream.socket.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ClientStream::Plain(socket) => socket.reregister(registry, token, interests),
            ClientStream::Tls(stream) => stream.socket.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            ClientStream::Plain(socket) => socket.deregister(registry),
            ClientStream::Tls(stream) => stream.socket.deregister(registry),
        }
    }
}

/// Rejected TLS connections are logged at most this many times per window...
const REJECT_LOGS_PER_WINDOW: u32 = 10;
/// ...of this length; the rest are counted and summed up in the next window's first line.
const REJECT_LOG_WINDOW: Duration = Duration::from_secs(10);

/// A rate limit on the log lines for refused TLS connections, so that a scanner or a
/// misconfigured client fleet cannot flood the log.
#[derive(Debug)]
pub(super) struct RejectLog {
    window_start: Instant,
    logged_in_window: u32,
    suppressed: u64,
}

impl RejectLog {
    pub(super) fn new() -> RejectLog {
        RejectLog {
            window_start: Instant::now(),
            logged_in_window: 0,
            suppressed: 0,
        }
    }

    /// Logs that the TLS connection from `peer` was closed for `reason`, unless the window's
    /// quota is spent.
    pub(super) fn rejected(&mut self, peer: Option<SocketAddr>, reason: &io::Error) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= REJECT_LOG_WINDOW {
            if self.suppressed > 0 {
                log::warn!(
                    "RESP server: {} more TLS connections closed in the last {:?} (not logged)",
                    self.suppressed,
                    REJECT_LOG_WINDOW
                );
            }
            self.window_start = now;
            self.logged_in_window = 0;
            self.suppressed = 0;
        }
        if self.logged_in_window >= REJECT_LOGS_PER_WINDOW {
            self.suppressed += 1;
            return;
        }
        self.logged_in_window += 1;
        let peer = peer.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
        log::warn!("RESP server: TLS connection from {peer} closed: {reason}");
    }
}
