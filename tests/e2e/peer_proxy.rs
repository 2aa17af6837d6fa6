//! A TCP proxy between Ketch peers that can partition the network on command.
//!
//! Every node listens on its real peer address, while the `--cluster` list given to all nodes
//! names one proxy address per node; a node dialing peer `to` reaches the proxy for `to`, which
//! reads the first frame (the handshake, `ketch::wire::message`) to learn which node is
//! dialing, then relays bytes both ways. [`PeerProxy::partition`] cuts every relayed connection
//! between the given groups and refuses new ones until [`PeerProxy::heal`]: a real network
//! partition as the nodes see it (connections reset, reconnects refused), with no change to the
//! nodes themselves.
//!
//! Bounds: two relay threads per live connection (a cluster of n nodes has at most about
//! 2·n·(n−1) peer connections), one acceptor thread per node, 64 KiB relay buffers.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ketch::wire::message::{decode_handshake, FRAME_KIND_HANDSHAKE};
use ketch::wire::FrameDecoder;

/// One relayed connection: the dialing node, the dialed node, and both sockets.
struct Relay {
    from: u64,
    to: u64,
    inbound: TcpStream,
    outbound: TcpStream,
}

#[derive(Default)]
struct State {
    /// Directed links (from, to) that are cut.
    blocked: BTreeSet<(u64, u64)>,
    relays: Vec<Relay>,
}

/// The proxy: one listening address per node.
pub struct PeerProxy {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptors: Vec<JoinHandle<()>>,
}

/// Reads the handshake frame from a new inbound connection: the bytes read (to pass on) and
/// the dialing node's id. `None` if the stream ends or is not a handshake.
fn read_handshake(stream: &mut TcpStream) -> Option<(Vec<u8>, u64)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut decoder = FrameDecoder::new(1 << 16);
    let mut seen = Vec::new();
    let mut buffer = [0u8; 256];
    // Bounded: the handshake is under 64 bytes; give up after 4 KiB without a frame.
    while seen.len() < 4096 {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buffer[..n]);
        let taken = decoder.feed(&buffer[..n]);
        debug_assert_eq!(taken, n);
        if let Some((kind, payload)) = decoder.next_frame().ok()? {
            if kind != FRAME_KIND_HANDSHAKE {
                return None;
            }
            let handshake = decode_handshake(&payload).ok()?;
            stream.set_read_timeout(None).ok()?;
            return Some((seen, handshake.from));
        }
    }
    None
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn handle(state: Arc<Mutex<State>>, mut inbound: TcpStream, to: u64, target: SocketAddr) {
    let Some((first_bytes, from)) = read_handshake(&mut inbound) else {
        return;
    };
    if state.lock().unwrap().blocked.contains(&(from, to)) {
        let _ = inbound.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = inbound.shutdown(Shutdown::Both);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if outbound.write_all(&first_bytes).is_err() {
        return;
    }
    let (Ok(in_clone), Ok(out_clone), Ok(in_pump), Ok(out_pump)) = (
        inbound.try_clone(),
        outbound.try_clone(),
        inbound.try_clone(),
        outbound.try_clone(),
    ) else {
        return;
    };
    {
        let mut state = state.lock().unwrap();
        // Checked again under the lock: a partition may have started meanwhile.
        if state.blocked.contains(&(from, to)) {
            let _ = inbound.shutdown(Shutdown::Both);
            let _ = outbound.shutdown(Shutdown::Both);
            return;
        }
        state.relays.retain(|r| r.inbound.peer_addr().is_ok());
        state.relays.push(Relay {
            from,
            to,
            inbound: in_clone,
            outbound: out_clone,
        });
    }
    let forward = std::thread::spawn(move || pump(in_pump, out_pump));
    pump(outbound, inbound);
    let _ = forward.join();
}

impl PeerProxy {
    /// Starts a proxy listening on `routes[i].0` for node `routes[i].1`, relaying to the node's
    /// real peer address `routes[i].2`.
    pub fn start(routes: &[(SocketAddr, u64, SocketAddr)]) -> PeerProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptors = routes
            .iter()
            .map(|&(listen, to, target)| {
                let listener = TcpListener::bind(listen).expect("bind a proxy port");
                listener
                    .set_nonblocking(true)
                    .expect("nonblocking listener");
                let state = Arc::clone(&state);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                let _ = stream.set_nonblocking(false);
                                let state = Arc::clone(&state);
                                std::thread::spawn(move || handle(state, stream, to, target));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
            })
            .collect();
        PeerProxy {
            state,
            stop,
            acceptors,
        }
    }

    /// Cuts every link between nodes of different `groups` (both directions): live relays are
    /// reset and new connections refused. Nodes in no group keep all their links.
    pub fn partition(&self, groups: &[&[u64]]) {
        let mut state = self.state.lock().unwrap();
        for (i, a) in groups.iter().enumerate() {
            for b in groups.iter().skip(i + 1) {
                for &x in a.iter() {
                    for &y in b.iter() {
                        state.blocked.insert((x, y));
                        state.blocked.insert((y, x));
                    }
                }
            }
        }
        let blocked = state.blocked.clone();
        state.relays.retain(|relay| {
            if blocked.contains(&(relay.from, relay.to)) {
                let _ = relay.inbound.shutdown(Shutdown::Both);
                let _ = relay.outbound.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().unwrap().blocked.clear();
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        let mut state = self.state.lock().unwrap();
        for relay in state.relays.drain(..) {
            let _ = relay.inbound.shutdown(Shutdown::Both);
            let _ = relay.outbound.shutdown(Shutdown::Both);
        }
    }
}
