//! Loopback ports for test nodes, taken below Linux's ephemeral range (32768..61000) so that
//! the kernel never hands one to an outgoing connection (a peer's dial, a client) between the
//! moment a test picks it and the moment its node binds it, or while a restarted node is down.
//! A port from `bind("127.0.0.1:0")` comes from that very range and can be lost so.

#![allow(dead_code)] // Each suite uses a different part.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;

/// The first of `count` consecutive loopback ports that are free right now. They are taken
/// from 20000..32000, below Linux's ephemeral range (32768..61000), so the kernel does not
/// hand one of them to an outgoing connection meanwhile; at most 200 candidates are tried,
/// from a pid-derived start so parallel test processes tend to differ.
pub fn free_consecutive_ports(count: u16) -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Tests of one process run in parallel: each call starts further on.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed) % 64;
    let start = ((std::process::id() % u32::from(SPAN)) as u16 + call * 181) % SPAN;
    for attempt in 0..200u16 {
        let base = FIRST + (start + attempt * 97) % (SPAN - count);
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// `count` loopback addresses free now, keyed 1..=count (node ids).
pub fn node_addrs(count: u64) -> BTreeMap<u64, SocketAddr> {
    let count = u16::try_from(count).expect("a handful of nodes");
    let base = free_consecutive_ports(count);
    (0..count)
        .map(|i| {
            (
                u64::from(i) + 1,
                SocketAddr::from(([127, 0, 0, 1], base + i)),
            )
        })
        .collect()
}

/// One loopback address free now.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_consecutive_ports(1)))
}
