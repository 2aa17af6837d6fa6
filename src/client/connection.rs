//! One RESP connection to one node: write requests, read replies in order.
//!
//! Replies are parsed with [`crate::kv::resp::ReplyParser`], the same codec the server uses.
//! The input buffer holds at most one reply plus one read's worth of bytes beyond it: its
//! bound is the parser's bulk limit ([`CLIENT_BULK_BYTES_MAX`]) plus [`READ_CHUNK_BYTES`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::kv::resp::{Limits, ProtocolError, Reply, ReplyParser};

/// Largest bulk reply the client accepts (Redis' own limit).
pub const CLIENT_BULK_BYTES_MAX: usize = 512 << 20;
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Why a connection failed. Any of these leaves the connection unusable.
#[derive(Debug)]
pub(crate) enum ConnectionError {
    /// A socket error, including a read or write timeout.
    Io(io::Error),
    /// The node closed the connection.
    Closed,
    /// The bytes received are not RESP.
    Protocol(ProtocolError),
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionError::Io(error) if error.kind() == io::ErrorKind::WouldBlock => {
                write!(f, "no reply within the I/O timeout")
            }
            ConnectionError::Io(error) => write!(f, "{error}"),
            ConnectionError::Closed => write!(f, "connection closed by the node"),
            ConnectionError::Protocol(error) => write!(f, "malformed reply: {error}"),
        }
    }
}

/// A connected socket and the replies read from it so far.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    /// Received bytes not yet consumed by a parsed reply.
    input: Vec<u8>,
    parser: ReplyParser,
}

impl Connection {
    /// Connects with `connect_timeout`; every later read and write waits at most `io_timeout`.
    pub(crate) fn open(
        addr: SocketAddr,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        Ok(Connection {
            stream,
            addr,
            input: Vec::with_capacity(READ_CHUNK_BYTES),
            parser: ReplyParser::new(Limits {
                bulk_bytes_max: CLIENT_BULK_BYTES_MAX,
                ..Limits::default()
            }),
        })
    }

    /// The node's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes `bytes` (one or more encoded requests) whole.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        self.stream.write_all(bytes).map_err(ConnectionError::Io)
    }

    /// Reads the next reply, waiting at most the I/O timeout per read.
    pub(crate) fn read_reply(&mut self) -> Result<Reply, ConnectionError> {
        let mut chunk = [0u8; 4096];
        // Bounded by the parser: a reply larger than the limits is an error, so the loop
        // ends after at most CLIENT_BULK_BYTES_MAX / chunk reads, or at the I/O timeout.
        loop {
            if let Some((reply, consumed)) = self
                .parser
                .parse(&self.input)
                .map_err(ConnectionError::Protocol)?
            {
                self.input.drain(..consumed);
                return Ok(reply);
            }
            let read = if self.input.len() >= READ_CHUNK_BYTES {
                // A large reply: read straight into the buffer's spare room.
                let start = self.input.len();
                self.input.resize(start + READ_CHUNK_BYTES, 0);
                let result = self.stream.read(&mut self.input[start..]);
                let n = *result.as_ref().unwrap_or(&0);
                self.input.truncate(start + n);
                result
            } else {
                let result = self.stream.read(&mut chunk);
                if let Ok(n) = result {
                    self.input.extend_from_slice(&chunk[..n]);
                }
                result
            };
            match read {
                Ok(0) => return Err(ConnectionError::Closed),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(ConnectionError::Io(error)),
            }
        }
    }
}
