//! Quiescence of a `Host`'s groups: idle groups stop ticking and heartbeating, so ten thousand of them cost a host
//! almost nothing (dragonboat's quiesce, TiKV's hibernate regions).
//!
//! # The rules
//!
//! - **A leader quiesces** its group after [`QUIESCE_AFTER_TICKS`] consecutive ticks in which
//!   the group was idle: nothing waiting (proposals, reads, membership changes, a leadership
//!   transfer), every entry committed and applied, the configuration not joint, and every
//!   follower's match index at the last index, except followers on hosts lost (not heard from
//!   for an election timeout), as long as the matched followers and the leader are a majority
//!   of the voters. It sends each matched follower's host one `Quiesce { group, term, commit }`
//!   notice and stops ticking the group. A follower on a lost host would otherwise keep the
//!   group awake, heartbeating into the void, until the host came back: after a host dies,
//!   every group that kept a replica there. When a lost host is heard from again, every
//!   quiesced leader that left a follower there behind wakes and catches it up (and the
//!   follower's own campaign, refused by the others, would wake it too).
//! - **A follower quiesces** on such a notice from the leader it follows, in the same term,
//!   when its own log ends at and is committed through `commit`. Otherwise it ignores the
//!   notice and keeps ticking; the worst that does is an election timeout later, a pre-vote
//!   the others refuse (they heard from the leader, and their clocks stopped since), which
//!   wakes the leader, whose next heartbeat settles the follower.
//! - **Anything wakes a group**: a Raft message for it (so a leader's Append wakes its
//!   followers), a proposal (on the leader's host, a forwarded one too), a read, a membership
//!   change or transfer. A woken group ticks again, from where its clocks stopped.
//! - **Host liveness stands in for heartbeats.** Every host sends every peer host one small
//!   beat per heartbeat interval (as often as one awake group's leader heartbeats). A quiesced follower whose leader's host has not been heard from for an
//!   election timeout wakes; its election clock then runs out and it campaigns, with pre-vote,
//!   so the group fails over as an awake one would (within about two election timeouts).
//!
//! # Why the read and leadership guarantees hold
//!
//! - **Check-quorum.** A quiesced leader does not tick, so it cannot step down for lack of a
//!   quorum while quiesced; it also serves nothing while quiesced. Any request wakes it, and
//!   then check-quorum counts from its resumed ticks as before.
//! - **ReadIndex.** A read wakes the group first; the leader then confirms its leadership with
//!   a heartbeat round to a quorum exactly as an awake group does, so a read never relies on
//!   anything that happened (or did not) while the group slept. A deposed leader that quiesced
//!   earlier cannot answer: the round fails to gather the quorum's acknowledgements in its term.
//! - **Lease reads.** A lease is measured on the leader's ticks; a quiesced leader's clock has
//!   stopped, so a lease held across quiescence would outlive real time. A host therefore does
//!   not serve lease reads (`HostConfig` refuses `ReadMode::Lease`): every read is a ReadIndex
//!   round, which stays correct across quiescence by the point above.
//! - **Elections.** A quiesced follower's election clock is stopped, and it wakes on its
//!   leader's host going silent; a partition between hosts stops the beats, so both sides'
//!   followers wake and the side with a quorum elects a leader.

use crate::raft::{Core, NodeId, Role};

/// Idle ticks after which a leader quiesces its group (with 10 ms ticks, 1 s).
pub const QUIESCE_AFTER_TICKS: u32 = 100;

/// Whether `core`, a leader with `waiting` client requests, is idle this tick: its log is
/// committed and applied, every follower whose host is not `lost` matches it, and those
/// followers with the leader make a majority of the voters.
pub fn leader_idle(
    core: &Core,
    applied: u64,
    waiting: bool,
    lost: impl Fn(NodeId) -> bool,
) -> bool {
    if waiting || core.role() != Role::Leader || core.membership().is_joint() {
        return false;
    }
    let log = core.log();
    let last = log.last_index();
    if log.commit() != last || applied != last {
        return false;
    }
    let voters = &core.membership().voters;
    let mut matched_voters = usize::from(voters.contains(&core.id()));
    for (peer, matched) in core.peer_matches() {
        if peer == core.id() || lost(peer) {
            continue;
        }
        if matched != last {
            return false;
        }
        matched_voters += usize::from(voters.contains(&peer));
    }
    matched_voters > voters.len() / 2
}

/// Whether `core`, a quiesced leader, left a follower on host `peer` behind: it must wake
/// when that host is heard from again, to catch it up.
pub fn left_behind(core: &Core, peer: NodeId) -> bool {
    let last = core.log().last_index();
    core.role() == Role::Leader
        && core
            .peer_matches()
            .any(|(follower, matched)| follower == peer && matched < last)
}

/// Whether a follower may quiesce on its leader's notice of `term` and `commit`.
pub fn follower_may_quiesce(core: &Core, from: u64, term: u64, commit: u64) -> bool {
    let log = core.log();
    core.role() == Role::Follower
        && core.term() == term
        && core.leader() == Some(from)
        && log.last_index() == commit
        && log.commit() == commit
}
