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
//! [`PeerProxy::set_flaky`] makes every link lossy and slow instead: each Raft message frame
//! (kind 2) and each batch of Raft messages (kind 6, dropped whole, as one lost frame) is
//! dropped with a given probability and every frame is held for a random delay, in order (a
//! TCP stream cannot reorder). Handshakes, host beats and forwarded client requests are
//! delayed but never dropped: Raft must tolerate lost messages, which is what this exercises,
//! while a lost forward would only show as a client timeout, which partitions already cause.
//!
//! Bounds: four relay threads per live connection (a reader and a delay-line writer per
//! direction; a cluster of n nodes has at most about 2·n·(n−1) peer connections), one acceptor thread per node, 64 KiB relay buffers, at most
//! [`DELAY_LINE_FRAMES`] frames held per direction.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ketch::wire::frame::MAX_FRAME_PAYLOAD_BYTES;
use ketch::wire::message::{
    decode_handshake, FRAME_KIND_HANDSHAKE, FRAME_KIND_RAFT, FRAME_KIND_RAFT_BATCH,
};
use ketch::wire::{encode_frame, FrameDecoder};

/// Frames in flight per direction of a flaky link; a full line blocks the reader (TCP
/// backpressure to the sender), so memory stays bounded.
pub const DELAY_LINE_FRAMES: usize = 1024;

/// How a flaky link misbehaves.
#[derive(Clone, Copy, Debug)]
pub struct Flaky {
    /// Raft message frames (single messages and batches alike) dropped, per thousand.
    pub drop_per_mille: u64,
    /// Each frame is delayed by a random time up to this (order is kept).
    pub delay_max: Duration,
}

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
    /// Set: every link drops and delays frames.
    flaky: Option<Flaky>,
    /// Frames dropped so far.
    dropped_frames: u64,
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

/// A small xorshift generator: the proxy's faults need no quality, only no dependency.
fn next_random(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x
}

/// Relays `from` to `to` frame by frame, dropping and delaying frames while the proxy is
/// flaky. Ends when either side closes or the stream is not frames.
fn pump(state: Arc<Mutex<State>>, random: Arc<AtomicU64>, mut from: TcpStream, to: TcpStream) {
    let (line, delayed) = sync_channel::<(Instant, Vec<u8>)>(DELAY_LINE_FRAMES);
    let writer_to = to.try_clone();
    let writer = std::thread::spawn(move || {
        if let Ok(to) = writer_to {
            deliver(delayed, to);
        }
    });
    let mut decoder = FrameDecoder::new(MAX_FRAME_PAYLOAD_BYTES);
    let mut buffer = vec![0u8; 64 << 10];
    let mut last_delivery = Instant::now();
    'relay: loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut fed = 0;
        while fed < n {
            fed += decoder.feed(&buffer[fed..n]);
            loop {
                let (kind, payload) = match decoder.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => break 'relay,
                };
                let flaky = state.lock().unwrap().flaky;
                let mut deliver_at = Instant::now();
                if let Some(flaky) = flaky {
                    let lossy = kind == FRAME_KIND_RAFT || kind == FRAME_KIND_RAFT_BATCH;
                    if lossy && next_random(&random) % 1000 < flaky.drop_per_mille {
                        state.lock().unwrap().dropped_frames += 1;
                        continue;
                    }
                    let delay_max_us = flaky.delay_max.as_micros() as u64;
                    if delay_max_us > 0 {
                        deliver_at += Duration::from_micros(next_random(&random) % delay_max_us);
                    }
                }
                // A stream keeps its order: never deliver before the frame ahead.
                deliver_at = deliver_at.max(last_delivery);
                last_delivery = deliver_at;
                let mut frame = Vec::with_capacity(payload.len() + 12);
                if encode_frame(kind, &payload, &mut frame).is_err()
                    || line.send((deliver_at, frame)).is_err()
                {
                    break 'relay;
                }
            }
        }
    }
    drop(line);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Writes each frame of the delay line at its delivery time.
fn deliver(delayed: Receiver<(Instant, Vec<u8>)>, mut to: TcpStream) {
    for (deliver_at, frame) in delayed {
        let now = Instant::now();
        if deliver_at > now {
            std::thread::sleep(deliver_at - now);
        }
        if to.write_all(&frame).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
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
    let random = Arc::new(AtomicU64::new(
        0x9E37_79B9_7F4A_7C15 ^ from.wrapping_mul(0x1000_0001) ^ to,
    ));
    let forward = {
        let (state, random) = (Arc::clone(&state), Arc::clone(&random));
        std::thread::spawn(move || pump(state, random, in_pump, out_pump))
    };
    pump(state, random, outbound, inbound);
    let _ = forward.join();
}

impl PeerProxy {
    /// Starts a proxy in front of every node of `cluster` (made with
    /// `TestCluster::new_stopped(n, Some(proxy_addrs))`): node `i + 1` is reached through
    /// `proxy_addrs[i]`.
    pub fn for_cluster(
        cluster: &super::support::TestCluster,
        proxy_addrs: &[SocketAddr],
    ) -> PeerProxy {
        let routes: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| (proxy_addrs[(n.id - 1) as usize], n.id, n.peer_addr))
            .collect();
        PeerProxy::start(&routes)
    }

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

    /// Restores every link (cut or flaky).
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.blocked.clear();
        state.flaky = None;
    }

    /// Makes every link drop and delay frames (see the module docs) until [`heal`](Self::heal).
    pub fn set_flaky(&self, flaky: Flaky) {
        self.state.lock().unwrap().flaky = Some(flaky);
    }

    /// Raft message frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.state.lock().unwrap().dropped_frames
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
