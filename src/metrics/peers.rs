//! Per-peer series without a map or a lock: a fixed table of [`PEER_SLOTS`] slots, each
//! claimed once by a peer id with a compare-and-swap and then updated with atomic adds.
//!
//! A slot holds the bytes queued to and decoded from its peer, and two timers stored as
//! nanoseconds since the table's epoch plus one (zero: not running):
//!
//! - **Heartbeat round trip.** Started when a heartbeat is queued to the peer, if not already
//!   running; stopped by the next heartbeat response from the peer, which yields the round
//!   trip: the wait in the outbound queue, the network both ways, and the peer's event loop
//!   turning the heartbeat around. A timer older than [`TIMER_STALE`] (a heartbeat or its
//!   answer was lost) is restarted by the next heartbeat, so a loss never shows as a huge
//!   round trip.
//! - **Snapshot send.** Started when the first chunk (offset 0) is queued; stopped by the
//!   peer's "installed" answer. A restarted transfer restarts the timer.
//!
//! [`PeerCollector`] exports the byte counts at scrape time. Peers past the table's size share one overflow slot, reported as `To="other"` /
//! `From="other"`: the label set stays bounded whatever ids arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, Opts};

use crate::raft::NodeId;

/// Peers with their own series; more share the overflow slot.
pub const PEER_SLOTS: usize = 64;

/// A running timer older than this is treated as lost and restarted.
pub const TIMER_STALE: Duration = Duration::from_secs(10);

/// One peer's counters and timers.
#[derive(Debug, Default)]
pub struct PeerSlot {
    /// The peer's id; zero while the slot is free.
    id: AtomicU64,
    sent_bytes: AtomicU64,
    received_bytes: AtomicU64,
    heartbeat_started: AtomicU64,
    snapshot_started: AtomicU64,
}

/// What a scrape reads from one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTraffic {
    /// The peer's id, `None` for the overflow slot.
    pub peer: Option<NodeId>,
    /// Bytes queued to it.
    pub sent_bytes: u64,
    /// Bytes decoded from it.
    pub received_bytes: u64,
}

/// The table.
#[derive(Debug)]
pub struct PeerTable {
    slots: Box<[PeerSlot]>,
    overflow: PeerSlot,
}

impl Default for PeerTable {
    fn default() -> Self {
        PeerTable {
            slots: (0..PEER_SLOTS).map(|_| PeerSlot::default()).collect(),
            overflow: PeerSlot::default(),
        }
    }
}

impl PeerTable {
    /// The slot of `peer`, claimed on first use; the overflow slot once the table is full.
    #[inline]
    pub fn slot(&self, peer: NodeId) -> &PeerSlot {
        // Node ids are non-zero (zero marks a free slot); a zero id would only share the
        // overflow slot.
        if peer == 0 {
            return &self.overflow;
        }
        for slot in self.slots.iter() {
            let current = slot.id.load(Ordering::Acquire);
            if current == peer {
                return slot;
            }
            if current == 0 {
                match slot
                    .id
                    .compare_exchange(0, peer, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return slot,
                    Err(winner) if winner == peer => return slot,
                    Err(_) => continue,
                }
            }
        }
        &self.overflow
    }

    /// Every claimed slot, then the overflow slot if it counted anything.
    pub fn traffic(&self) -> Vec<PeerTraffic> {
        let mut all = Vec::new();
        for slot in self.slots.iter() {
            let id = slot.id.load(Ordering::Acquire);
            if id == 0 {
                // Slots are claimed in order: none after a free one is claimed.
                break;
            }
            all.push(slot.traffic(Some(id)));
        }
        let overflow = self.overflow.traffic(None);
        if overflow.sent_bytes > 0 || overflow.received_bytes > 0 {
            all.push(overflow);
        }
        all
    }
}

impl PeerSlot {
    fn traffic(&self, peer: Option<NodeId>) -> PeerTraffic {
        PeerTraffic {
            peer,
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
        }
    }

    /// Counts bytes queued to the peer.
    #[inline]
    pub fn add_sent(&self, bytes: u64) {
        self.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes decoded from the peer.
    #[inline]
    pub fn add_received(&self, bytes: u64) {
        self.received_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A heartbeat was queued: starts the round-trip timer unless one is running.
    #[inline]
    pub fn heartbeat_queued(&self) {
        start_unless_running(&self.heartbeat_started);
    }

    /// A heartbeat response arrived: the round trip, if a timer was running.
    #[inline]
    pub fn heartbeat_answered(&self) -> Option<Duration> {
        stop(&self.heartbeat_started)
    }

    /// The first chunk of a snapshot was queued: (re)starts the send timer.
    #[inline]
    pub fn snapshot_started(&self) {
        self.snapshot_started.store(now_stamp(), Ordering::Relaxed);
    }

    /// The peer installed the snapshot: the send duration, if a timer was running.
    #[inline]
    pub fn snapshot_finished(&self) -> Option<Duration> {
        stop(&self.snapshot_started)
    }
}

/// Exports the table as `ketch_network_peer_sent_bytes_total{To}` and
/// `ketch_network_peer_received_bytes_total{From}` at scrape time.
#[derive(Debug)]
pub struct PeerCollector {
    table: Arc<PeerTable>,
    // Held across the refresh and the read so two scrapes cannot interleave them.
    families: Mutex<(IntCounterVec, IntCounterVec)>,
    descs: Vec<Desc>,
}

impl PeerCollector {
    /// A collector over `table`.
    pub fn new(table: Arc<PeerTable>) -> Self {
        let sent = IntCounterVec::new(
            Opts::new(
                "ketch_network_peer_sent_bytes_total",
                "Bytes of frames queued for sending to each peer.",
            ),
            &["To"],
        )
        .expect("valid metric options");
        let received = IntCounterVec::new(
            Opts::new(
                "ketch_network_peer_received_bytes_total",
                "Bytes of frames received and decoded from each peer.",
            ),
            &["From"],
        )
        .expect("valid metric options");
        let descs = sent
            .desc()
            .into_iter()
            .chain(received.desc())
            .cloned()
            .collect();
        PeerCollector {
            table,
            families: Mutex::new((sent, received)),
            descs,
        }
    }
}

impl Collector for PeerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let (sent, received) = &*families;
        sent.reset();
        received.reset();
        for traffic in self.table.traffic() {
            let label = traffic
                .peer
                .map_or_else(|| "other".to_string(), |id| id.to_string());
            sent.with_label_values(&[label.as_str()])
                .inc_by(traffic.sent_bytes);
            received
                .with_label_values(&[label.as_str()])
                .inc_by(traffic.received_bytes);
        }
        sent.collect()
            .into_iter()
            .chain(received.collect())
            .collect()
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the epoch, plus one so that zero always means "not running".
fn now_stamp() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

fn start_unless_running(timer: &AtomicU64) {
    let now = now_stamp();
    let started = timer.load(Ordering::Relaxed);
    let stale = started != 0 && now.saturating_sub(started) > TIMER_STALE.as_nanos() as u64;
    if started == 0 || stale {
        // Losing a race to another start is fine: either start is a heartbeat now.
        let _ = timer.compare_exchange(started, now, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn stop(timer: &AtomicU64) -> Option<Duration> {
    let started = timer.swap(0, Ordering::Relaxed);
    if started == 0 {
        return None;
    }
    let elapsed = now_stamp().saturating_sub(started);
    if elapsed > TIMER_STALE.as_nanos() as u64 {
        return None;
    }
    Some(Duration::from_nanos(elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_its_own_slot_and_the_rest_share_the_overflow() {
        let table = PeerTable::default();
        for peer in 1..=(PEER_SLOTS as u64 + 3) {
            table.slot(peer).add_sent(peer);
        }
        table.slot(2).add_received(7);
        let traffic = table.traffic();
        assert_eq!(traffic.len(), PEER_SLOTS + 1);
        assert_eq!(traffic[1].peer, Some(2));
        assert_eq!(traffic[1].sent_bytes, 2);
        assert_eq!(traffic[1].received_bytes, 7);
        let overflow = traffic.last().unwrap();
        assert_eq!(overflow.peer, None);
        let n = PEER_SLOTS as u64;
        assert_eq!(overflow.sent_bytes, (n + 1) + (n + 2) + (n + 3));
    }

    #[test]
    fn a_heartbeat_round_trip_is_measured_once_from_the_first_heartbeat() {
        let table = PeerTable::default();
        let slot = table.slot(5);
        assert_eq!(slot.heartbeat_answered(), None, "no heartbeat sent yet");
        slot.heartbeat_queued();
        std::thread::sleep(Duration::from_millis(20));
        // A second heartbeat while the first is unanswered does not restart the timer.
        slot.heartbeat_queued();
        let rtt = slot.heartbeat_answered().expect("a timer was running");
        assert!(rtt >= Duration::from_millis(20), "{rtt:?}");
        assert!(rtt < TIMER_STALE, "{rtt:?}");
        assert_eq!(slot.heartbeat_answered(), None, "one answer, one measure");
    }

    #[test]
    fn snapshot_send_timer_restarts_with_a_new_transfer() {
        let table = PeerTable::default();
        let slot = table.slot(3);
        slot.snapshot_started();
        std::thread::sleep(Duration::from_millis(30));
        slot.snapshot_started();
        let took = slot.snapshot_finished().unwrap();
        assert!(took < Duration::from_millis(30), "{took:?}");
        assert_eq!(slot.snapshot_finished(), None);
    }
}
