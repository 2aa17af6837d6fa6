//! Steps a three-node cluster of Raft cores with an arbitrary schedule and checks safety.
//!
//! The input is a program: each byte picks an action (tick a node, deliver / drop / duplicate
//! a message in flight, propose, crash and restart a node from its durable state, transfer
//! leadership, ask for a read). Persistence is synchronous and in memory, following the
//! contract in `ketch::raft` (persist, then send `persisted_messages`, then `on_persisted`).
//!
//! With the first byte even, the network is honest and two invariants are asserted after every
//! step: at most one leader per term (Raft §5.2, election safety) and every node hands out the
//! same committed entry at each index (state machine safety, Raft §5.4.3). With the first byte
//! odd, the schedule may also forge messages (arbitrary terms and indices): safety cannot hold
//! against a forger, so only "no panic, no hang" is checked.
#![no_main]

use std::collections::BTreeMap;

use ketch::raft::{
    Config, Core, DurableState, Entry, HardState, Membership, Message, MessageBody, Role,
    SnapshotMeta,
};
use libfuzzer_sys::fuzz_target;

const NODES: u64 = 3;
/// Messages in flight are bounded: a schedule that never delivers cannot grow memory.
const IN_FLIGHT_MAX: usize = 256;

#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    entries: Vec<Entry>,
}

struct Sim {
    cores: Vec<Core>,
    disks: Vec<Disk>,
    network: Vec<Message>,
    applied: Vec<u64>,
    honest: bool,
    /// term -> leader seen in that term.
    leaders: BTreeMap<u64, u64>,
    /// index -> (term, data) of the committed entry every node must agree on.
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    next_payload: u64,
}

fn config(id: u64) -> Config {
    let mut config = Config::new(id);
    config.election_timeout_ticks = 4;
    config.heartbeat_interval_ticks = 1;
    config.snapshot_threshold_entries = 1 << 40;
    config.seed = 7;
    config
}

fn start(id: u64, disk: &Disk) -> Core {
    let durable = DurableState {
        hard_state: disk.hard_state,
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(1..=NODES),
            size_bytes: 0,
        },
        entries: disk.entries.clone(),
    };
    Core::new(config(id), durable).expect("a valid durable state restarts")
}

impl Sim {
    fn new(honest: bool) -> Self {
        let disks = vec![Disk::default(); NODES as usize];
        let cores = (1..=NODES)
            .map(|id| start(id, &disks[id as usize - 1]))
            .collect();
        Sim {
            cores,
            disks,
            network: Vec::new(),
            applied: vec![0; NODES as usize],
            honest,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_payload: 0,
        }
    }

    fn send(&mut self, messages: Vec<Message>) {
        for m in messages {
            if self.network.len() < IN_FLIGHT_MAX && (1..=NODES).contains(&m.to) {
                self.network.push(m);
            }
        }
    }

    /// Carries out every `Ready` of node `k` until it has none (bounded).
    fn drive(&mut self, k: usize) {
        for _ in 0..16 {
            if !self.cores[k].has_ready() {
                break;
            }
            let ready = self.cores[k].ready();
            self.send(ready.messages);
            let disk = &mut self.disks[k];
            if let Some(from) = ready.truncate_from {
                disk.entries.retain(|e| e.index < from);
            }
            let mut last = None;
            for entry in ready.entries {
                let expected = disk.entries.last().map_or(1, |e| e.index + 1);
                assert_eq!(entry.index, expected, "entries to persist are contiguous");
                last = Some((entry.index, entry.term));
                disk.entries.push(entry);
            }
            if let Some(hs) = ready.hard_state {
                disk.hard_state = hs;
            }
            self.send(ready.persisted_messages);
            if let Some((index, term)) = last {
                self.cores[k].on_persisted(index, term);
            }
            for entry in ready.committed_entries {
                assert_eq!(entry.index, self.applied[k] + 1, "applied in order");
                self.applied[k] = entry.index;
                if self.honest {
                    let seen = self
                        .committed
                        .entry(entry.index)
                        .or_insert_with(|| (entry.term, entry.data.to_vec()));
                    assert_eq!(
                        (seen.0, &seen.1[..]),
                        (entry.term, &entry.data[..]),
                        "two nodes committed different entries at index {}",
                        entry.index
                    );
                }
            }
            let applied = self.applied[k];
            self.cores[k].on_applied(applied);
            if self.honest && self.cores[k].role() == Role::Leader {
                let term = self.cores[k].term();
                let id = k as u64 + 1;
                let leader = *self.leaders.entry(term).or_insert(id);
                assert_eq!(leader, id, "two leaders in term {term}");
            }
        }
    }

    fn forge(&mut self, pick: usize, term: u64, index: u64) {
        let Some(m) = self.network.get_mut(pick) else {
            return;
        };
        m.term = term;
        match &mut m.body {
            MessageBody::Append {
                prev_log_index,
                leader_commit,
                ..
            } => {
                *prev_log_index = index;
                *leader_commit = index.wrapping_mul(3);
            }
            MessageBody::AppendResponse { index: i, .. } => *i = index,
            MessageBody::Heartbeat { commit, .. } => *commit = index,
            MessageBody::Vote { last_log_index, .. }
            | MessageBody::PreVote { last_log_index, .. } => *last_log_index = index,
            MessageBody::ReadIndexResponse { index: i, .. } => *i = index,
            _ => {}
        }
    }
}

fuzz_target!(|program: &[u8]| {
    let Some((&mode, program)) = program.split_first() else {
        return;
    };
    let mut sim = Sim::new(mode % 2 == 0);
    let mut bytes = program.iter().copied();
    // One action per byte, with operands from the following bytes; bounded by the input.
    while let Some(op) = bytes.next() {
        let k = usize::from(op >> 4) % NODES as usize;
        match op % 10 {
            0..=2 => sim.cores[k].tick(),
            3 | 4 => {
                if !sim.network.is_empty() {
                    let pick = usize::from(bytes.next().unwrap_or(0)) % sim.network.len();
                    let m = sim.network.swap_remove(pick);
                    let to = m.to as usize - 1;
                    sim.cores[to].step(m);
                    sim.drive(to);
                }
            }
            5 => {
                if !sim.network.is_empty() {
                    let pick = usize::from(bytes.next().unwrap_or(0)) % sim.network.len();
                    if op & 0x08 == 0 {
                        sim.network.swap_remove(pick);
                    } else if sim.network.len() < IN_FLIGHT_MAX {
                        let copy = sim.network[pick].clone();
                        sim.network.push(copy);
                    }
                }
            }
            6 => {
                sim.next_payload += 1;
                let _ = sim.cores[k].propose(sim.next_payload.to_le_bytes().to_vec());
            }
            7 => {
                // Crash: everything not persisted is lost; restart from the disk.
                sim.cores[k] = start(k as u64 + 1, &sim.disks[k]);
                sim.applied[k] = 0;
            }
            8 => {
                let target = u64::from(bytes.next().unwrap_or(0)) % NODES + 1;
                if op & 0x08 == 0 {
                    let _ = sim.cores[k].transfer_leader(target);
                } else {
                    let _ = sim.cores[k].read_index(u64::from(op));
                }
            }
            _ => {
                if !sim.honest && !sim.network.is_empty() {
                    let pick = usize::from(bytes.next().unwrap_or(0)) % sim.network.len();
                    let term = u64::from(bytes.next().unwrap_or(0));
                    let index = u64::from(bytes.next().unwrap_or(0));
                    sim.forge(pick, term, index);
                }
            }
        }
        sim.drive(k);
    }
});
