//! Routing by a lagging table: a stale route is never served, while range boundaries move
//! between groups under host crashes, partitions and message loss.
//!
//! # What runs
//!
//! Three hosts (`crate::hosts`) run a meta group (group 0) and four range groups (1 to 4),
//! each with a voting replica on every host. The range groups split the real 16,384 slots
//! (`ketch::kv::sharded::RoutingTable::bootstrap`); keys `k0`..`k11` map to slots by the real
//! `ketch::kv::cluster::key_slot`.
//!
//! - The meta group's state is the real `MetaStateMachine` (`kv::Meta`); its table changes
//!   only by the real `replace_command` compare-and-set, applied through its log.
//! - A range group's state holds its own range and epoch (`Kv::range`) beside its keys.
//! - Clients route each operation by the table of a random running host's meta replica, as
//!   that replica applied it (it may lag, or be cut off), and put the route's range and epoch
//!   in the command as a guard; the command goes to any replica that believes it leads the
//!   route's group (a stale leader included). A range group applies a guarded put or append
//!   only if the real `ketch::kv::sharded::admits(own range, guard)` holds at that entry, and
//!   serves a guarded read (ReadIndex, at the leader or a follower) only if it holds in the
//!   replica's applied state when the read is served. Otherwise the operation is refused: not
//!   applied, and the client is told so. A refused operation is left out of the history (it
//!   certainly had no effect); the client goes on with a new one.
//! - A handover moves a boundary between two adjacent range groups, one at a time, driven by
//!   a driver that proposes to any replica believing it leads and retries the same command
//!   until the first apply answers: (1) the donor's log gets an entry shrinking its range at
//!   one end (epoch + 1), which removes the keys of the slots it gives up and answers them
//!   with their values as applied at that entry; (2) the receiver's log gets an entry growing
//!   its range by those slots (epoch + 1), carrying those keys and values; (3) the meta group
//!   gets a compare-and-set of the table (the two ranges at their new bounds and epochs, the
//!   table's epoch + 1). Each entry is guarded by its group's range and epoch before the
//!   handover, so a repeated one is refused; the first apply of each step must be accepted.
//!   Between (1) and (3) the moved slots belong to no route that is served. Handovers start
//!   whatever client operations are in flight (no restriction on the moved keys): a write
//!   ordered before (1) in the donor's log moves with the keys, one after is refused.
//!
//! # What is checked
//!
//! - In the apply path (`kv::Kv`), at every replica: a guarded put, append or read that is
//!   served is for a key whose slot is in the group's range at that entry, else `SIM
//!   VIOLATION: stale route served`. A handover out must shrink the range at one end, a
//!   handover in grow it at one end with keys of the added slots only.
//! - Each group's Raft safety invariants, as in every host scenario.
//! - One history of every client operation over all groups, checked for linearizability per
//!   key, including a final read of every key after the heal: no acknowledged write is lost
//!   wherever its key moved.
//! - Liveness after the heal: the handover in progress completes, every group has a leader
//!   followed by every replica, every host's meta replica holds the driver's last table, every
//!   range group's leader holds its range as that table says (and only keys of it), a final
//!   read of every key is served (none refused), and every group converges (`Hosts::finish`).
//! - Not vacuous: every seed completes at least one handover and has operations refused for a
//!   stale route, and in `routing_stale_table_on_a_cut_off_host` operations routed by a
//!   table older than the latest are refused (all counted, and printed over the seeds).
//!
//! `routing_handovers_under_faults` injects a random fault every 20 to 60 ticks (crash or
//! restart a host, cut one off, heal; 2% of messages lost throughout);
//! `routing_stale_table_on_a_cut_off_host` cuts one host off while handovers go on, and
//! routes half the operations by that host's frozen table before the heal. The checker
//! self-test `checker_catches_a_group_serving_stale_routes` serves every route
//! (`Kv::admit_all`, the range check replaced by `true`), which must be caught.
//!
//! Replay a seed: `KETCH_SIM_SEED=S cargo test --release --test sim routing_handovers_under_faults -- --exact`.

use ketch::kv::cluster::key_slot;
use ketch::kv::server::RangeCheck;
use ketch::kv::sharded::{
    replace_command, OwnedRange, RangeRoute, RoutingTable, SlotRanges, META_GROUP,
};
use ketch::raft::{NodeId, SplitMix64};
use ketch_history::{self as history, CheckLimits, CheckResult, History, Op, Outcome};

use super::LIVENESS_BOUND_TICKS;
use crate::cluster::{Answer, RunReport, STEPS_PER_TICK};
use crate::hosts::{Hosts, HostsConfig};
use crate::invariants::violation;
use crate::kv::{self, Applied, Command, Kv, Meta};
use crate::network::NetworkFaults;

const HOSTS: u64 = 3;
const RANGES: u16 = 4;
const KEYS: u64 = 12;
const CLIENTS: u64 = 6;
/// The handover driver's client id.
const DRIVER: u64 = 1_000;
/// A client gives up on an operation after this many ticks.
const OP_TIMEOUT_TICKS: u64 = 40;
/// The driver proposes a handover step again after this many ticks without an answer.
const RETRY_TICKS: u64 = 25;
/// Chance (per mille, per step) that an idle client starts an operation.
const OP_START_PER_MILLE: u64 = 30;
/// Chance (per mille) that a read goes to a follower rather than a leader.
const FOLLOWER_READ_PER_MILLE: u64 = 200;
/// Ticks between the end of a handover and the start of the next: a random number below.
const HANDOVER_GAP_TICKS: u64 = 40;
/// Ticks within which every group has a leader after boot.
const ELECTION_BOUND_TICKS: u64 = 60;
/// Faults injected by `routing_handovers_under_faults`, 20 to 60 ticks apart.
const FAULTS: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Write(u64),
    Read(u64),
}

struct Pending {
    op: Op,
    group: usize,
    call: u64,
    deadline: u64,
    wait: Wait,
    /// Routed by a table older than the driver's last change.
    lagging: bool,
}

struct Client {
    id: u64,
    seq: u64,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Out,
    In,
    Meta,
}

/// A handover in progress: the step waiting for its first apply.
struct Handover {
    /// The table once done.
    next: RoutingTable,
    /// The receiver's route before the handover, and its bounds after.
    receiver: RangeRoute,
    receiver_bounds: (u16, u16),
    stage: Stage,
    command: Command,
    group: usize,
    retry_at: u64,
}

struct Routing {
    h: Hosts,
    rng: SplitMix64,
    keys: Vec<Vec<u8>>,
    clients: Vec<Client>,
    history: History,
    /// The table as the driver last changed it (every change is the driver's).
    table: RoutingTable,
    handover: Option<Handover>,
    next_handover_at: u64,
    handovers_on: bool,
    clients_on: bool,
    /// Hosts clients route by half the time, if any.
    favoured_via: Option<NodeId>,
    driver_seq: u64,
    refusals: u64,
    lagging_refusals: u64,
    handovers: u64,
    reads_served: u64,
    invoked: u64,
    completed: u64,
}

fn check_of(route: &RangeRoute) -> RangeCheck {
    RangeCheck {
        first: route.first,
        last: route.last,
        epoch: route.epoch,
    }
}

fn owned_of(route: &RangeRoute) -> OwnedRange {
    OwnedRange {
        first: route.first,
        last: route.last,
        epoch: route.epoch,
    }
}

impl Routing {
    fn new(seed: u64, broken: bool) -> Self {
        let mut cfg = HostsConfig::new(HOSTS, 1 + usize::from(RANGES));
        cfg.group.clients = 0;
        cfg.group.network.drop_per_mille = 20;
        let mut h = Hosts::new(cfg, seed);
        let table = RoutingTable::bootstrap(
            SlotRanges::new(RANGES).expect("a valid count"),
            &h.host_ids(),
        );
        for (g, group) in h.groups.iter_mut().enumerate() {
            group.record_answers = true;
            let mut kv = Kv::default();
            if g as u64 == META_GROUP {
                kv.meta = Some(Meta::new(table.clone()));
            } else {
                let route = table.range_of_group(g as u64).expect("a range group");
                kv.range = Some(owned_of(route));
                kv.admit_all = broken;
            }
            group.set_initial_state(kv);
        }
        Self {
            h,
            rng: SplitMix64::for_node(seed, 0x0807_1e55),
            keys: (0..KEYS).map(|k| format!("k{k}").into_bytes()).collect(),
            clients: (1..=CLIENTS)
                .map(|id| Client {
                    id,
                    seq: 0,
                    pending: None,
                })
                .collect(),
            history: History::new(),
            table,
            handover: None,
            next_handover_at: 0,
            handovers_on: false,
            clients_on: false,
            favoured_via: None,
            driver_seq: 0,
            refusals: 0,
            lagging_refusals: 0,
            handovers: 0,
            reads_served: 0,
            invoked: 0,
            completed: 0,
        }
    }

    fn all_hosts(&self) -> Vec<NodeId> {
        self.h.host_ids()
    }

    /// Host `via`'s meta replica's table as applied.
    fn table_at(&self, via: NodeId) -> Option<&RoutingTable> {
        let node = self.h.groups[META_GROUP as usize].node(via);
        node.core.as_ref()?;
        Some(node.kv.meta.as_ref().expect("a meta replica").table())
    }

    // ----- the step loop -----

    fn step(&mut self) {
        self.h.step();
        self.take_answers();
        self.expire();
        if self.clients_on {
            for c in 0..self.clients.len() {
                if self.clients[c].pending.is_none() && self.rng.range(0, 1000) < OP_START_PER_MILLE
                {
                    self.start_op(c, None, None);
                }
            }
        }
        self.drive_handover();
        for g in 0..self.h.groups.len() {
            let busy = self
                .clients
                .iter()
                .any(|c| c.pending.as_ref().is_some_and(|p| p.group == g))
                || self.handover.as_ref().is_some_and(|ho| ho.group == g);
            self.h.groups[g].external_ops_pending = busy;
        }
    }

    fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks * STEPS_PER_TICK {
            self.step();
        }
    }

    fn run_until(&mut self, max_ticks: u64, done: impl Fn(&Routing) -> bool) -> bool {
        for _ in 0..max_ticks {
            if done(self) {
                return true;
            }
            self.run_ticks(1);
        }
        done(self)
    }

    // ----- clients -----

    /// Records an operation that returned: its call and its return.
    fn record(&mut self, client: u64, pending: Pending, outcome: Outcome) {
        if outcome != Outcome::Unknown {
            self.completed += 1;
        }
        let id = self.history.invoke(client, pending.op, pending.call);
        self.history.complete(id, outcome, self.h.now);
    }

    fn take_answers(&mut self) {
        for g in 0..self.h.groups.len() {
            let answers = std::mem::take(&mut self.h.groups[g].answers);
            for answer in answers {
                self.on_answer(g, answer);
            }
        }
    }

    fn on_answer(&mut self, g: usize, answer: Answer) {
        let (client, wait, result) = match answer {
            Answer::Write {
                client,
                seq,
                applied,
            } => {
                if client == DRIVER {
                    self.on_driver_answer(g, seq, applied);
                    return;
                }
                let result = match applied {
                    Applied::Refused => None,
                    Applied::Ok(_) => Some(None),
                };
                (client, Wait::Write(seq), result)
            }
            Answer::Read { ctx, value } => {
                let client = self.clients.iter().find(|c| {
                    c.pending
                        .as_ref()
                        .is_some_and(|p| p.wait == Wait::Read(ctx))
                });
                let Some(client) = client else {
                    return;
                };
                (client.id, Wait::Read(ctx), value.map(Some))
            }
        };
        let Some(c) = self.clients.iter_mut().find(|c| c.id == client) else {
            return;
        };
        if !c
            .pending
            .as_ref()
            .is_some_and(|p| p.group == g && p.wait == wait)
        {
            return;
        }
        let pending = c.pending.take().expect("matched");
        let outcome = match (result, &pending.op) {
            (None, _) => {
                // Refused: certainly not applied, so not in the history.
                self.refusals += 1;
                self.lagging_refusals += u64::from(pending.lagging);
                return;
            }
            (Some(Some(value)), _) => {
                self.reads_served += 1;
                Outcome::Get(value)
            }
            (Some(None), Op::Put { .. }) => Outcome::Put,
            (Some(None), Op::Append { .. }) => Outcome::Append,
            (Some(None), Op::Get { .. }) => unreachable!("a read answers a value"),
        };
        self.record(client, pending, outcome);
    }

    /// Operations past their deadline: a write may still take effect (unknown); a read that
    /// never returned tells nothing and is left out.
    fn expire(&mut self) {
        let now = self.h.now;
        for c in 0..self.clients.len() {
            if self.clients[c]
                .pending
                .as_ref()
                .is_none_or(|p| now < p.deadline)
            {
                continue;
            }
            let pending = self.clients[c].pending.take().expect("pending");
            if matches!(pending.wait, Wait::Write(_)) {
                let client = self.clients[c].id;
                self.record(client, pending, Outcome::Unknown);
            }
        }
    }

    /// Client `c` starts an operation (a write if `write`, random if `None`) on key `key`
    /// (random if `None`), routed by a running host's table; returns whether it started.
    fn start_op(&mut self, c: usize, write: Option<bool>, key: Option<usize>) -> bool {
        let up: Vec<NodeId> = self
            .all_hosts()
            .into_iter()
            .filter(|h| self.h.is_up(*h))
            .collect();
        if up.is_empty() {
            return false;
        }
        let via = match self.favoured_via {
            Some(via) if self.h.is_up(via) && self.rng.range(0, 2) == 0 => via,
            _ => up[self.rng.range(0, up.len() as u64) as usize],
        };
        let k = key.unwrap_or_else(|| self.rng.range(0, KEYS) as usize);
        let key = self.keys[k].clone();
        let table = self.table_at(via).expect("a running host");
        let lagging = table.epoch() < self.table.epoch();
        let route = table.route(key_slot(&key)).clone();
        let g = route.group as usize;
        let leaders = self.h.groups[g].leaders();
        if leaders.is_empty() {
            return false;
        }
        let (leader, _) = leaders[self.rng.range(0, leaders.len() as u64) as usize];
        let write = write.unwrap_or_else(|| self.rng.range(0, 10) < 6);
        let client = self.clients[c].id;
        self.clients[c].seq += 1;
        let seq = self.clients[c].seq;
        let now = self.h.now;
        let (op, wait) = if write {
            let kind = if self.rng.range(0, 3) == 0 {
                kv::PUT
            } else {
                kv::APPEND
            };
            let value = format!("{client}.{seq};").into_bytes();
            let command = Command {
                kind,
                client,
                seq,
                key: key.clone(),
                value: value.clone(),
                guard: Some(check_of(&route)),
            };
            if !self.h.groups[g].propose_external(leader, &command) {
                return false;
            }
            let op = if kind == kv::PUT {
                Op::Put { key, value }
            } else {
                Op::Append { key, value }
            };
            (op, Wait::Write(seq))
        } else {
            let group = &self.h.groups[g];
            let target = if self.rng.range(0, 1000) < FOLLOWER_READ_PER_MILLE {
                let up: Vec<NodeId> = group
                    .ids()
                    .into_iter()
                    .filter(|id| group.is_up(*id))
                    .collect();
                up[self.rng.range(0, up.len() as u64) as usize]
            } else {
                leader
            };
            let Some(ctx) = self.h.groups[g].read_external(target, &key, Some(check_of(&route)))
            else {
                return false;
            };
            (Op::Get { key }, Wait::Read(ctx))
        };
        self.invoked += 1;
        self.clients[c].pending = Some(Pending {
            op,
            group: g,
            call: now,
            deadline: now + OP_TIMEOUT_TICKS * STEPS_PER_TICK,
            wait,
            lagging,
        });
        true
    }

    // ----- handovers -----

    fn drive_handover(&mut self) {
        let now = self.h.now;
        match &self.handover {
            None if self.handovers_on && now >= self.next_handover_at => self.start_handover(),
            Some(ho) if now >= ho.retry_at => self.propose_step(),
            _ => {}
        }
    }

    fn start_handover(&mut self) {
        let ranges = self.table.ranges().to_vec();
        let j = self.rng.range(0, ranges.len() as u64 - 1) as usize;
        let donor_is_left = self.rng.range(0, 2) == 0;
        let (donor, receiver) = if donor_is_left {
            (ranges[j].clone(), ranges[j + 1].clone())
        } else {
            (ranges[j + 1].clone(), ranges[j].clone())
        };
        if donor.first == donor.last {
            self.next_handover_at = self.h.now + STEPS_PER_TICK;
            return;
        }
        // The cut: a left donor gives slots [cut, last], a right one [first, cut]. Mostly at a
        // key's slot, so that keys move.
        let key_slots: Vec<u16> = self
            .keys
            .iter()
            .map(|k| key_slot(k))
            .filter(|s| (donor.first..=donor.last).contains(s))
            .collect();
        let cut = if !key_slots.is_empty() && self.rng.range(0, 4) != 0 {
            let slot = key_slots[self.rng.range(0, key_slots.len() as u64) as usize];
            if donor_is_left {
                slot.max(donor.first + 1)
            } else {
                slot.min(donor.last - 1)
            }
        } else if donor_is_left {
            self.rng
                .range(u64::from(donor.first) + 1, u64::from(donor.last) + 1) as u16
        } else {
            self.rng
                .range(u64::from(donor.first), u64::from(donor.last)) as u16
        };
        let (donor_bounds, receiver_bounds) = if donor_is_left {
            ((donor.first, cut - 1), (cut, receiver.last))
        } else {
            ((cut + 1, donor.last), (receiver.first, cut))
        };
        let next_ranges = ranges
            .iter()
            .map(|route| {
                let mut route = route.clone();
                let bounds = if route.group == donor.group {
                    Some(donor_bounds)
                } else if route.group == receiver.group {
                    Some(receiver_bounds)
                } else {
                    None
                };
                if let Some((first, last)) = bounds {
                    route.first = first;
                    route.last = last;
                    route.epoch += 1;
                }
                route
            })
            .collect();
        let next = RoutingTable::new(self.table.epoch() + 1, next_ranges)
            .unwrap_or_else(|e| violation(format!("a handover makes no table: {e}")));
        self.driver_seq += 1;
        let command = Command {
            kind: kv::HANDOVER_OUT,
            client: DRIVER,
            seq: self.driver_seq,
            key: Vec::new(),
            value: kv::encode_bounds(donor_bounds.0, donor_bounds.1),
            guard: Some(check_of(&donor)),
        };
        self.handover = Some(Handover {
            next,
            receiver,
            receiver_bounds,
            stage: Stage::Out,
            command,
            group: donor.group as usize,
            retry_at: self.h.now,
        });
        self.propose_step();
    }

    /// Proposes the handover's current step at a replica that believes it leads its group.
    fn propose_step(&mut self) {
        let now = self.h.now;
        let ho = self.handover.as_mut().expect("a handover");
        ho.retry_at = now + RETRY_TICKS * STEPS_PER_TICK;
        let (g, command) = (ho.group, ho.command.clone());
        let leaders = self.h.groups[g].leaders();
        if leaders.is_empty() {
            return;
        }
        let (leader, _) = leaders[self.rng.range(0, leaders.len() as u64) as usize];
        self.h.groups[g].propose_external(leader, &command);
    }

    fn on_driver_answer(&mut self, g: usize, seq: u64, applied: Applied) {
        let Some(ho) = self.handover.as_mut() else {
            return;
        };
        if ho.command.seq != seq || ho.group != g {
            return;
        }
        let Applied::Ok(answer) = applied else {
            violation(format!(
                "handover step {:?} (group {g}, table epoch {}) refused at its first apply",
                ho.stage,
                self.table.epoch()
            ));
        };
        let (kind, group, value, guard, stage) = match ho.stage {
            Stage::Out => {
                let (first, last) = ho.receiver_bounds;
                let mut value = kv::encode_bounds(first, last);
                value.extend_from_slice(&answer);
                (
                    kv::HANDOVER_IN,
                    ho.receiver.group as usize,
                    value,
                    Some(check_of(&ho.receiver)),
                    Stage::In,
                )
            }
            Stage::In => (
                kv::META,
                META_GROUP as usize,
                replace_command(self.table.epoch(), &ho.next),
                None,
                Stage::Meta,
            ),
            Stage::Meta => {
                if answer != b"+OK\r\n" {
                    violation(format!(
                        "the table change to epoch {} answered {:?} at its first apply",
                        ho.next.epoch(),
                        String::from_utf8_lossy(&answer)
                    ));
                }
                self.table = self.handover.take().expect("in progress").next;
                self.handovers += 1;
                self.next_handover_at =
                    self.h.now + self.rng.range(0, HANDOVER_GAP_TICKS) * STEPS_PER_TICK;
                return;
            }
        };
        self.driver_seq += 1;
        ho.command = Command {
            kind,
            client: DRIVER,
            seq: self.driver_seq,
            key: Vec::new(),
            value,
            guard,
        };
        ho.group = group;
        ho.stage = stage;
        self.propose_step();
    }

    // ----- faults -----

    /// A random fault: crash a host (at most one down at a time) or restart it, cut a host
    /// off, or heal.
    fn fault(&mut self) {
        let all = self.all_hosts();
        let down: Vec<NodeId> = all.iter().copied().filter(|h| !self.h.is_up(*h)).collect();
        match self.rng.range(0, 5) {
            0 | 1 => match down.first() {
                Some(h) => self.h.restart_host(*h),
                None => {
                    let victim = all[self.rng.range(0, all.len() as u64) as usize];
                    self.h.crash_host(victim);
                }
            },
            2 | 3 => {
                let victim = all[self.rng.range(0, all.len() as u64) as usize];
                self.h.isolate(victim);
            }
            _ => self.h.heal(),
        }
    }

    // ----- the end -----

    /// Heals, restarts every host, lets the handover in progress finish, and checks liveness,
    /// the tables, the final reads and the history; then ends every group (`Hosts::finish`).
    fn end(mut self) -> RunReport {
        let all = self.all_hosts();
        self.h.heal();
        for host in &all {
            self.h.restart_host(*host);
        }
        for group in &mut self.h.groups {
            group.net.faults = NetworkFaults::reliable();
        }
        self.handovers_on = false;
        self.favoured_via = None;
        let bound = LIVENESS_BOUND_TICKS;
        if !self.run_until(bound, |r| r.handover.is_none()) {
            violation(format!(
                "liveness: the handover in progress (stage {:?}) did not complete within \
                 {bound} ticks after the heal",
                self.handover.as_ref().map(|ho| ho.stage)
            ));
        }
        let converged = |r: &Routing| {
            r.h.every_group_led_within(&r.all_hosts())
                && r.all_hosts()
                    .iter()
                    .all(|h| r.table_at(*h) == Some(&r.table))
                && r.table.ranges().iter().all(|route| {
                    let group = &r.h.groups[route.group as usize];
                    group
                        .leader()
                        .is_some_and(|l| group.node(l).kv.range == Some(owned_of(route)))
                })
        };
        if !self.run_until(bound, converged) {
            let epochs: Vec<Option<u64>> = all
                .iter()
                .map(|h| self.table_at(*h).map(|t| t.epoch()))
                .collect();
            violation(format!(
                "liveness: {bound} ticks after the heal, not every group is led and followed \
                 ({:?}), or not every host holds the table of epoch {} (they hold {epochs:?}), \
                 or not every range group's leader has applied its range as that table says",
                self.h.groups_not_led_within(&all, 5),
                self.table.epoch()
            ));
        }
        self.clients_on = false;
        let idle = self.run_until(OP_TIMEOUT_TICKS + 5, |r| {
            r.clients.iter().all(|c| c.pending.is_none())
        });
        assert!(idle, "client operations time out, so they always end");
        // Every range group's leader (holding its range as the table says) holds only keys
        // of that range.
        for route in self.table.ranges() {
            let group = &self.h.groups[route.group as usize];
            let leader = group.leader().expect("led");
            let kv = &group.node(leader).kv;
            for key in kv.map.keys() {
                if !kv::holds(owned_of(route), key_slot(key)) {
                    violation(format!(
                        "group {} holds key {:?} outside its range {route:?}",
                        route.group,
                        String::from_utf8_lossy(key)
                    ));
                }
            }
        }
        // A final read of every key, through the converged tables: none may be refused.
        let refused_before = self.refusals;
        for k in 0..self.keys.len() {
            let served_before = self.reads_served;
            let deadline = self.h.now + bound * STEPS_PER_TICK;
            while self.reads_served == served_before && self.h.now < deadline {
                if self.clients[0].pending.is_none() {
                    self.start_op(0, Some(false), Some(k));
                }
                self.step();
            }
            if self.reads_served == served_before {
                violation(format!(
                    "liveness: no read of key {:?} served within {bound} ticks after the heal",
                    String::from_utf8_lossy(&self.keys[k])
                ));
            }
        }
        if self.refusals != refused_before {
            violation(format!(
                "{} reads routed by converged tables were refused",
                self.refusals - refused_before
            ));
        }
        if self.handovers == 0 || self.refusals == 0 {
            violation(format!(
                "vacuous run: {} handovers, {} operations refused for a stale route",
                self.handovers, self.refusals
            ));
        }
        let mut unknown = 0;
        match history::check(&self.history, CheckLimits::default()) {
            CheckResult::Ok => {}
            CheckResult::Violation(v) => violation(format!("linearizability: {v}")),
            CheckResult::Unknown { key, reason } => {
                eprintln!("linearizability check gave up on key {key:?}: {reason}");
                unknown = 1;
            }
        }
        for group in &mut self.h.groups {
            group.external_ops_pending = false;
            group.record_answers = false;
        }
        let mut report = self.h.finish(bound);
        report.linearizability_unknown += unknown;
        report.stale_route_refusals += self.refusals;
        report.lagging_table_refusals += self.lagging_refusals;
        report.handovers += self.handovers;
        report.ops_invoked += self.invoked;
        report.ops_completed += self.completed;
        report
    }
}

/// Boots the hosts and waits for every group to be led.
fn boot(seed: u64, broken: bool) -> Routing {
    let mut r = Routing::new(seed, broken);
    let all = r.all_hosts();
    if r.h
        .run_until(ELECTION_BOUND_TICKS, |h| h.every_group_led_within(&all))
        .is_none()
    {
        violation(format!(
            "liveness: not every group led within {ELECTION_BOUND_TICKS} ticks of boot"
        ));
    }
    r.clients_on = true;
    r.handovers_on = true;
    r
}

/// Clients and handovers under random faults: a host crashes or restarts, a host is cut off,
/// or the cuts heal, every 20 to 60 ticks (`FAULTS` of them); 2% of messages are lost
/// throughout.
pub fn routing_handovers_under_faults(seed: u64) -> RunReport {
    handovers_under_faults(seed, false)
}

/// `routing_handovers_under_faults`; `broken` serves every route (checker self-test).
pub fn handovers_under_faults(seed: u64, broken: bool) -> RunReport {
    let mut r = boot(seed, broken);
    for _ in 0..FAULTS {
        let ticks = r.rng.range(20, 61);
        r.run_ticks(ticks);
        r.fault();
    }
    r.run_ticks(20);
    r.end()
}

/// One host is cut off after some load and stays cut off while handovers go on (its meta
/// replica's table frozen), and half the operations route by that host's table: they are
/// refused by the groups, never served. After the heal its table catches up.
pub fn routing_stale_table_on_a_cut_off_host(seed: u64) -> RunReport {
    let mut r = boot(seed, false);
    r.run_ticks(30);
    let victim = r.rng.range(1, HOSTS + 1);
    r.h.isolate(victim);
    r.favoured_via = Some(victim);
    r.run_ticks(250);
    if r.lagging_refusals == 0 {
        violation(format!(
            "vacuous run: no operation routed by a lagging table was refused ({} handovers while \
             host {victim} was cut off)",
            r.handovers
        ));
    }
    r.end()
}
