//! Raft safety properties, checked after every input to every node (Raft Figure 3).
//!
//! - Election safety: at most one leader per term, ever.
//! - Log matching: an (index, term) pair names one entry, with one predecessor term. Checked on
//!   every append, this implies by induction that logs agreeing at (i, t) agree up to i.
//! - Leader completeness: a node seen as leader of a term holds every entry known committed.
//! - State machine safety / committed entries never change: every committed or applied entry
//!   equals the one first recorded at its index.
//! - Terms and commit indices never go back on a node (within one process lifetime: a crash
//!   reverts to durable state), and applied <= commit <= last index.
//! - Membership (thesis §4): a node's configuration in force is always the latest
//!   configuration entry of its log (else its snapshot's), so configurations take effect in log
//!   order and a truncated one reverts; a node is a voter of its own configuration when it
//!   becomes leader; and every index a leader commits is durably held by a majority of *each*
//!   half of its configuration (the joint rule, checked against the simulated disks by
//!   `Cluster`), so two disjoint majorities can never both decide.

use std::collections::{BTreeMap, HashMap};

use ketch::raft::{Core, Entry, EntryKind, Membership, NodeId, Role};

/// Panics with a message the seed runner recognises as a safety violation.
pub fn violation(message: String) -> ! {
    panic!("SIM VIOLATION: {message}")
}

/// FNV-1a of an entry's kind and data.
pub fn entry_hash(entry: &Entry) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let kind = match entry.kind {
        EntryKind::Normal => 1u8,
        EntryKind::Noop => 2u8,
        EntryKind::ConfChange => 3u8,
    };
    for byte in std::iter::once(&kind).chain(entry.data.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[derive(Debug, Default, Clone)]
struct NodeTrack {
    term: u64,
    commit: u64,
    checked_commit: u64,
    leader_term_checked: u64,
}

/// Global knowledge of the run, for checking.
#[derive(Default)]
pub struct Invariants {
    leaders_by_term: BTreeMap<u64, NodeId>,
    entries: HashMap<(u64, u64), (u64, u64)>,
    /// index -> (entry term, entry hash, lowest term of a node seen committing it).
    committed: BTreeMap<u64, (u64, u64, u64)>,
    nodes: BTreeMap<NodeId, NodeTrack>,
    /// Per node: the latest configuration entry of its log as the checker reads it (index,
    /// configuration), maintained from the entries each `Ready` appends.
    configurations: BTreeMap<NodeId, (u64, Membership)>,
    /// Configuration changes seen appended (for the run report).
    pub configuration_entries: u64,
    /// Node checks performed.
    pub checks: u64,
}

impl Invariants {
    /// The highest index known committed.
    pub fn max_committed(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// The node restarted: its in-memory state is rebuilt from durable state.
    pub fn on_restart(&mut self, id: NodeId) {
        let track = self.nodes.entry(id).or_default();
        track.term = 0;
        track.commit = 0;
        track.checked_commit = 0;
    }

    /// Reads the latest configuration from the node's whole log (after a restart, a snapshot
    /// install or a truncation below the tracked configuration entry).
    pub fn rescan_configuration(&mut self, id: NodeId, core: &Core) {
        let log = core.log();
        let floor = log.first_index().max(log.snapshot().index + 1);
        let mut found = (log.snapshot().index, log.snapshot().membership.clone());
        let mut index = log.last_index();
        while index >= floor && index > 0 {
            let entry = log.entry(index).expect("held");
            if entry.kind == EntryKind::ConfChange {
                found = (index, decode_configuration(id, entry));
                break;
            }
            index -= 1;
        }
        self.configurations.insert(id, found);
    }

    /// Follows the configuration entries of a `Ready` (truncation first, then the entries).
    pub fn on_ready_log(
        &mut self,
        id: NodeId,
        core: &Core,
        truncate_from: Option<u64>,
        entries: &[Entry],
    ) {
        let tracked = self.configurations.get(&id).map_or(0, |(index, _)| *index);
        if truncate_from.is_some_and(|from| from <= tracked)
            || !self.configurations.contains_key(&id)
        {
            self.rescan_configuration(id, core);
            return;
        }
        for entry in entries {
            if entry.kind == EntryKind::ConfChange {
                self.configuration_entries += 1;
                self.configurations
                    .insert(id, (entry.index, decode_configuration(id, entry)));
            }
        }
    }

    /// The node's configuration in force must be the latest of its log.
    pub fn check_configuration(&self, id: NodeId, core: &Core) {
        let Some((index, expected)) = self.configurations.get(&id) else {
            return;
        };
        if core.membership() != expected {
            violation(format!(
                "node {id}: configuration in force {:?} is not the latest of its log ({expected:?} at index {index})",
                core.membership()
            ));
        }
    }

    /// Log matching, checked for entries the node just appended.
    pub fn on_entries(&mut self, id: NodeId, core: &Core, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let mut prev_term = match core.log().term(first.index - 1) {
            Some(t) => t,
            None => violation(format!(
                "node {id}: appended entry {} after an unknown term",
                first.index
            )),
        };
        for entry in entries {
            if entry.term < prev_term {
                violation(format!(
                    "node {id}: entry {} term {} below predecessor {prev_term}",
                    entry.index, entry.term
                ));
            }
            let value = (entry_hash(entry), prev_term);
            match self.entries.get(&(entry.index, entry.term)) {
                Some(known) if *known != value => violation(format!(
                    "log matching: node {id} holds a different entry or predecessor at index {} term {}",
                    entry.index, entry.term
                )),
                Some(_) => {}
                None => {
                    self.entries.insert((entry.index, entry.term), value);
                }
            }
            prev_term = entry.term;
        }
    }

    fn record_committed(&mut self, id: NodeId, entry: &Entry, node_term: u64, what: &str) {
        let value = (entry.term, entry_hash(entry));
        match self.committed.get_mut(&entry.index) {
            Some(known) if (known.0, known.1) != value => violation(format!(
                "state machine safety: node {id} {what} entry {} term {} but term {} was committed there",
                entry.index, entry.term, known.0
            )),
            Some(known) => known.2 = known.2.min(node_term),
            None => {
                self.committed.insert(entry.index, (value.0, value.1, node_term));
            }
        }
    }

    /// An entry was applied by node `id`.
    pub fn on_apply(&mut self, id: NodeId, entry: &Entry, node_term: u64) {
        self.record_committed(id, entry, node_term, "applied");
    }

    /// Checks everything about one node after an input.
    pub fn check_node(&mut self, id: NodeId, core: &Core) {
        self.checks += 1;
        let log = core.log();
        let (term, commit, applied, last) =
            (core.term(), log.commit(), log.applied(), log.last_index());
        let mut track = self.nodes.remove(&id).unwrap_or_default();
        if term < track.term {
            violation(format!(
                "node {id}: term went back from {} to {term}",
                track.term
            ));
        }
        if commit < track.commit {
            violation(format!(
                "node {id}: commit went back from {} to {commit}",
                track.commit
            ));
        }
        if applied > commit || commit > last {
            violation(format!(
                "node {id}: applied {applied} <= commit {commit} <= last {last} broken"
            ));
        }
        track.term = term;
        track.commit = commit;
        if core.role() == Role::Leader {
            if let Some(other) = self.leaders_by_term.insert(term, id) {
                if other != id {
                    violation(format!(
                        "election safety: nodes {other} and {id} both led term {term}"
                    ));
                }
            }
            if track.leader_term_checked != term {
                track.leader_term_checked = term;
                if !core.membership().is_voter(id) {
                    violation(format!(
                        "node {id} leads term {term} but is no voter of its configuration {:?}",
                        core.membership()
                    ));
                }
                self.check_leader_completeness(id, core);
            }
        }
        let from = track
            .checked_commit
            .max(log.first_index().saturating_sub(1))
            + 1;
        for index in from..=commit {
            if let Some(entry) = log.entry(index) {
                self.record_committed(id, &entry.clone(), term, "committed");
            }
        }
        track.checked_commit = track.checked_commit.max(commit);
        self.nodes.insert(id, track);
    }

    /// Raft §5.4: entries committed in a term below the leader's are in its log. The commit
    /// term is bounded above by the term of the first node seen committing the entry, so only
    /// entries seen committed at a lower term are checked (no false alarms).
    fn check_leader_completeness(&self, id: NodeId, core: &Core) {
        let log = core.log();
        for (index, (term, _, commit_term)) in self.committed.iter() {
            if *commit_term >= core.term() {
                continue;
            }
            if *index > log.last_index() {
                violation(format!(
                    "leader completeness: leader {id} of term {} ends at {} but {index} is committed",
                    core.term(),
                    log.last_index()
                ));
            }
            if *index < log.first_index() {
                continue;
            }
            if log.term(*index) != Some(*term) {
                violation(format!(
                    "leader completeness: leader {id} of term {} lacks committed entry {index} (term {term})",
                    core.term()
                ));
            }
        }
    }
}

fn decode_configuration(id: NodeId, entry: &Entry) -> Membership {
    match Membership::decode(&entry.data) {
        Some(m) => m,
        None => violation(format!(
            "node {id}: configuration entry {} does not decode",
            entry.index
        )),
    }
}
