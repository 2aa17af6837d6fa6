//! The metrics endpoint: `GET /metrics` over HTTP/1.x, answered in the Prometheus text
//! format; any other method or path gets `404 Not Found`, a malformed request `400`.
//!
//! One thread serves one connection at a time, and every resource is bounded: the request
//! head is read up to [`REQUEST_HEAD_BYTES_MAX`] under a [`READ_TIMEOUT`], the answer is
//! written under a [`WRITE_TIMEOUT`] and the connection closed (`Connection: close`, no
//! keep-alive, no request body read; the close lingers for at most [`LINGER_TIMEOUT`] so the
//! answer is not lost to a reset). A slow or stalled scraper therefore holds the thread for
//! at most those timeouts and never more than one encoded answer in memory; further
//! connections wait in the kernel's accept backlog. The head is parsed by `httparse`.
//!
//! [`MetricsServer::shutdown`] sets a flag and connects to the listener to wake the blocked
//! `accept`, then joins the thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::registry::{Metrics, TEXT_CONTENT_TYPE};

/// Largest request head read; a longer one is answered `431` and closed.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// Longest wait for the request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the answer to be written.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a client to close after the answer.
pub const LINGER_TIMEOUT: Duration = Duration::from_millis(200);
/// Most bytes read and dropped after the answer.
pub const LINGER_BYTES_MAX: usize = 64 << 10;
/// Most header lines parsed.
const HEADERS_MAX: usize = 64;

/// A running endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` from a thread named `metrics-http`.
    pub fn start(addr: SocketAddr, metrics: &'static Metrics) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics-http".to_string())
            .spawn(move || serve(&listener, metrics, &stopping))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and joins it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // Wakes the blocked accept; if the connect fails the listener is gone already.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = thread.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn serve(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, metrics) {
                    log::debug!("metrics endpoint: {e}");
                }
            }
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                log::warn!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// A well-formed request for anything else.
    NotFound,
    /// Not an HTTP/1.x request head.
    BadRequest,
    /// The head is not complete yet.
    Partial,
}

/// Routes a request head (all that was read so far).
pub fn route(head: &[u8]) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if request.method == Some("GET") && path == "/metrics" {
                Route::Metrics
            } else {
                Route::NotFound
            }
        }
        Ok(httparse::Status::Partial) => Route::Partial,
        Err(_) => Route::BadRequest,
    }
}

fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // Bounded: each pass adds at least one byte, up to REQUEST_HEAD_BYTES_MAX.
    let route = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        match route(&head) {
            Route::Partial if head.len() < REQUEST_HEAD_BYTES_MAX => continue,
            Route::Partial => {
                return respond(&mut stream, "431 Request Header Fields Too Large", b"")
            }
            done => break done,
        }
    };
    match route {
        Route::Metrics => respond(&mut stream, "200 OK", &metrics.encode()),
        Route::NotFound => respond(
            &mut stream,
            "404 Not Found",
            b"not found; try GET /metrics\n",
        ),
        Route::BadRequest | Route::Partial => {
            respond(&mut stream, "400 Bad Request", b"bad request\n")
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) -> io::Result<()> {
    let content_type = if status.starts_with("200") {
        TEXT_CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    linger(stream);
    Ok(())
}

/// Closes gracefully: closing with unread input would reset the connection and could destroy
/// the answer before the client reads it (a refused oversized head, say). So the sending side
/// is shut first and what the client still sends is read and dropped, up to
/// [`LINGER_BYTES_MAX`] or [`LINGER_TIMEOUT`], whichever comes first.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    if stream.set_read_timeout(Some(LINGER_TIMEOUT)).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    // Bounded by LINGER_BYTES_MAX bytes, and each read by LINGER_TIMEOUT.
    while drained < LINGER_BYTES_MAX {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_routed_to_the_metrics() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost"), Route::Partial);
        assert_eq!(route(b"\x00\x01garbage\r\n\r\n"), Route::BadRequest);
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(request).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn a_real_socket_gets_the_text_format_404_and_431() {
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics).unwrap();
        let addr = server.local_addr();
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("# TYPE ketch_server_has_leader gauge"), "{ok}");
        let missing = exchange(addr, b"GET /other HTTP/1.1\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', REQUEST_HEAD_BYTES_MAX));
        let too_long = exchange(addr, &huge);
        assert!(too_long.starts_with("HTTP/1.1 431 "), "{too_long}");
        // A client that connects and says nothing holds the thread for READ_TIMEOUT at most.
        let _silent = TcpStream::connect(addr).unwrap();
        let after = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(after.starts_with("HTTP/1.1 200 OK\r\n"), "{after}");
        server.shutdown();
    }
}
