//! When a read of an edge-triggered, non-blocking TCP socket may stop short of `WouldBlock`.
//!
//! Edge-triggered readiness asks for reads until `WouldBlock`. When every message arrives alone
//! (a client waiting for each reply, as `redis-benchmark -P 1` does; a follower answering one
//! heartbeat), that costs a second `recv` per message, which returns nothing: half the reads
//! of the client connections' thread did. On Linux, a TCP `recv` returns less than it was
//! asked for only once the receive queue is empty, and every later arrival of data, or of the
//! peer's close, wakes epoll again. So after a short read the socket can wait for its next
//! event; tokio clears a socket's readiness on a short read for the same reason.
//!
//! Two cases still read on to `WouldBlock`:
//! - TLS: the session may hold decrypted bytes that the socket no longer shows;
//! - reads with no new event due: one resumed after backpressure or a read budget, or one
//!   whose event already reported the peer's close (its end of input must be read).

/// How far a read of a socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    /// Until a short read of a plaintext socket, in answer to a readable event without the
    /// peer's close; else as `ToWouldBlock`.
    ToShortRead,
    /// Until the socket reports `WouldBlock` (or the end of input).
    ToWouldBlock,
}

impl Drain {
    /// How far to read in answer to `event`.
    pub(crate) fn for_event(event: &mio::event::Event) -> Drain {
        if event.is_read_closed() || event.is_error() {
            Drain::ToWouldBlock
        } else {
            Drain::ToShortRead
        }
    }

    /// Whether a read that returned `read` of `asked` bytes (more than 0) leaves nothing to
    /// read until the next event.
    pub(crate) fn drained(self, read: usize, asked: usize, tls: bool) -> bool {
        self == Drain::ToShortRead && read < asked && !tls
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};

    use super::Drain;

    #[test]
    fn only_a_short_plaintext_read_in_answer_to_an_event_stops_early() {
        assert!(Drain::ToShortRead.drained(10, 64, false));
        assert!(!Drain::ToShortRead.drained(64, 64, false));
        assert!(!Drain::ToShortRead.drained(10, 64, true));
        assert!(!Drain::ToWouldBlock.drained(10, 64, false));
    }

    /// The premise, on this kernel: after a short read, data sent later raises a new event.
    #[test]
    fn data_after_a_short_read_raises_a_new_event() {
        let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut listener, Token(0), Interest::READABLE)
            .unwrap();
        let mut server: Option<TcpStream> = None;
        while server.is_none() {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            if let Ok((mut s, _)) = listener.accept() {
                poll.registry()
                    .register(&mut s, Token(1), Interest::READABLE)
                    .unwrap();
                server = Some(s);
            }
        }
        let mut server = server.unwrap();
        let mut buf = [0u8; 64];
        for round in 0..3u8 {
            client.write_all(&[round; 5]).unwrap();
            let mut readable = false;
            while !readable {
                poll.poll(&mut events, Some(Duration::from_secs(5)))
                    .unwrap();
                assert!(!events.is_empty(), "round {round}: no event for new data");
                readable = events
                    .iter()
                    .any(|e| e.token() == Token(1) && e.is_readable());
            }
            let mut got = 0;
            while got < 5 {
                got += server.read(&mut buf[got..]).unwrap();
            }
            assert_eq!(&buf[..5], &[round; 5]);
            // Stop at the short read: no read to WouldBlock before the next round's data.
        }
    }
}
