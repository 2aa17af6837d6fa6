//! The simulated network: delay, loss, duplication, reordering and (asymmetric) partitions.
//!
//! Messages are queued with a delivery step drawn from `[min_delay_steps, max_delay_steps]`;
//! independent delays reorder them. A message is dropped if its link is cut when it is sent
//! or when it would be delivered. Every random choice comes from the cluster's seeded RNG.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use ketch::raft::{Message, MessageBody, NodeId, SplitMix64};

/// Fault settings of the network.
#[derive(Debug, Clone, Copy)]
pub struct NetworkFaults {
    /// Probability (per mille) that a message is lost.
    pub drop_per_mille: u64,
    /// Probability (per mille) that a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Shortest delivery delay in steps.
    pub min_delay_steps: u64,
    /// Longest delivery delay in steps.
    pub max_delay_steps: u64,
}

impl NetworkFaults {
    /// A LAN: no loss, delays well below a tick.
    pub fn reliable() -> Self {
        Self {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            min_delay_steps: 1,
            max_delay_steps: 6,
        }
    }

    /// No faults, and every message arrives in the next step, in the order sent.
    pub fn instant() -> Self {
        Self {
            min_delay_steps: 1,
            max_delay_steps: 1,
            ..Self::reliable()
        }
    }

    /// Loss, duplication and long, reordering delays.
    pub fn unreliable() -> Self {
        Self {
            drop_per_mille: 100,
            duplicate_per_mille: 50,
            min_delay_steps: 1,
            max_delay_steps: 40,
        }
    }
}

struct InFlight {
    deliver_at: u64,
    seq: u64,
    message: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.seq) == (other.deliver_at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at, self.seq).cmp(&(other.deliver_at, other.seq))
    }
}

/// Messages in flight and the link state.
pub struct Network {
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Current fault settings.
    pub faults: NetworkFaults,
    /// Cut directed links (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages sent, by kind.
    pub sent_by_kind: BTreeMap<&'static str, u64>,
    /// AppendEntries rejections sent, by sender (excluding bare term notifications).
    pub append_rejections: BTreeMap<NodeId, u64>,
    /// Distinct rejected `prev_log_index` values, by sender: sequential backtracking steps
    /// (a re-sent probe rejected twice counts once).
    pub rejected_probes: BTreeMap<NodeId, BTreeSet<u64>>,
    /// Messages delivered.
    pub delivered: u64,
}

impl Network {
    /// An empty, fully connected network.
    pub fn new(faults: NetworkFaults) -> Self {
        Self {
            queue: BinaryHeap::new(),
            seq: 0,
            faults,
            cut: BTreeSet::new(),
            sent_by_kind: BTreeMap::new(),
            append_rejections: BTreeMap::new(),
            rejected_probes: BTreeMap::new(),
            delivered: 0,
        }
    }

    /// Queues `message` sent at step `now`.
    pub fn send(&mut self, message: Message, now: u64, rng: &mut SplitMix64) {
        *self
            .sent_by_kind
            .entry(message.body.kind_name())
            .or_default() += 1;
        if let MessageBody::AppendResponse {
            success: false,
            index,
            ..
        } = message.body
        {
            if index > 0 {
                *self.append_rejections.entry(message.from).or_default() += 1;
                self.rejected_probes
                    .entry(message.from)
                    .or_default()
                    .insert(index);
            }
        }
        if self.is_cut(message.from, message.to) || rng.range(0, 1000) < self.faults.drop_per_mille
        {
            return;
        }
        let copies = if rng.range(0, 1000) < self.faults.duplicate_per_mille {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let delay = rng.range(self.faults.min_delay_steps, self.faults.max_delay_steps + 1);
            self.seq += 1;
            let _ = copy;
            self.queue.push(Reverse(InFlight {
                deliver_at: now + delay,
                seq: self.seq,
                message: message.clone(),
            }));
        }
    }

    /// Takes the next message due at `now` whose link is up.
    pub fn next_due(&mut self, now: u64) -> Option<Message> {
        while let Some(Reverse(head)) = self.queue.peek() {
            if head.deliver_at > now {
                return None;
            }
            let Reverse(in_flight) = self.queue.pop().expect("peeked");
            if self.is_cut(in_flight.message.from, in_flight.message.to) {
                continue;
            }
            self.delivered += 1;
            if std::env::var("KETCH_SIM_TRACE").is_ok()
                && !matches!(in_flight.message.body, MessageBody::Append { .. })
            {
                eprintln!("TRACE {now} {:?}", in_flight.message);
            }
            return Some(in_flight.message);
        }
        None
    }

    /// Whether the directed link is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Cuts the directed link `from -> to` (asymmetric partitions).
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Splits the nodes into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.cut.clear();
        for (a, group_a) in groups.iter().enumerate() {
            for (b, group_b) in groups.iter().enumerate() {
                if a != b {
                    for x in group_a {
                        for y in group_b {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&mut self, node: NodeId, all: &[NodeId]) {
        for other in all {
            if *other != node {
                self.cut.insert((node, *other));
                self.cut.insert((*other, node));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Messages queued for delivery.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Total messages sent.
    pub fn total_sent(&self) -> u64 {
        self.sent_by_kind.values().sum()
    }
}
