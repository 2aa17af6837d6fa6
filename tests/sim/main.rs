//! Deterministic cluster simulator: whole clusters of Raft cores in one thread, with a
//! simulated network and disks, clients with a recorded history, and the Raft safety
//! properties checked after every step.
//!
//! `KETCH_SIM_SEEDS=N` runs N seeds per scenario (default 100); `KETCH_SIM_SEED=S` replays one.
//! A failure names the scenario and seed and prints the command that replays it.

mod cluster;
mod disk;
mod invariants;
mod kv;
mod network;
mod scenarios;
mod seeds;

use ketch::raft::{Fault, ReadMode};
use scenarios::{
    agreement, election, membership, membership_changes, persistence, reads, snapshot,
};

#[test]
fn initial_election() {
    seeds::run("initial_election", election::initial_election);
}

#[test]
fn reelection_after_leader_failure() {
    seeds::run("reelection_after_leader_failure", election::reelection);
}

#[test]
fn many_elections_under_churn() {
    seeds::run("many_elections_under_churn", election::many_elections);
}

#[test]
fn election_crash_storm() {
    seeds::run("election_crash_storm", election::election_crash_storm);
}

#[test]
fn message_count_bounds() {
    seeds::run("message_count_bounds", election::message_counts);
}

#[test]
fn basic_agreement() {
    seeds::run("basic_agreement", agreement::basic_agreement);
}

#[test]
fn fail_agree() {
    seeds::run("fail_agree", agreement::fail_agree);
}

#[test]
fn fail_no_agree() {
    seeds::run("fail_no_agree", agreement::fail_no_agree);
}

#[test]
fn concurrent_proposals() {
    seeds::run("concurrent_proposals", agreement::concurrent_proposals);
}

#[test]
fn rejoin_partitioned_leader() {
    seeds::run(
        "rejoin_partitioned_leader",
        agreement::rejoin_partitioned_leader,
    );
}

#[test]
fn fast_backup_over_divergent_logs() {
    seeds::run("fast_backup_over_divergent_logs", agreement::fast_backup);
}

#[test]
fn persistence_crash_followers() {
    seeds::run("persistence_crash_followers", |s| {
        persistence::persistence(s, persistence::Victims::Followers)
    });
}

#[test]
fn persistence_crash_leaders() {
    seeds::run("persistence_crash_leaders", |s| {
        persistence::persistence(s, persistence::Victims::Leaders)
    });
}

#[test]
fn persistence_crash_everyone() {
    seeds::run("persistence_crash_everyone", |s| {
        persistence::persistence(s, persistence::Victims::Everyone)
    });
}

#[test]
fn figure8_reliable() {
    seeds::run("figure8_reliable", |s| persistence::figure8(s, false, None));
}

#[test]
fn figure8_unreliable() {
    seeds::run("figure8_unreliable", |s| {
        persistence::figure8(s, true, None)
    });
}

#[test]
fn figure8_scripted() {
    seeds::run("figure8_scripted", |s| {
        persistence::figure8_scripted(s, None)
    });
}

#[test]
fn churn_with_crashes_and_partitions() {
    seeds::run("churn_with_crashes_and_partitions", persistence::churn);
}

#[test]
fn snapshot_basic() {
    seeds::run("snapshot_basic", snapshot::snapshot_basic);
}

#[test]
fn snapshot_install_lagging_follower() {
    seeds::run(
        "snapshot_install_lagging_follower",
        snapshot::snapshot_install_lagging,
    );
}

#[test]
fn snapshot_install_unreliable() {
    seeds::run(
        "snapshot_install_unreliable",
        snapshot::snapshot_install_unreliable,
    );
}

#[test]
fn snapshot_install_crash() {
    seeds::run("snapshot_install_crash", snapshot::snapshot_install_crash);
}

#[test]
fn leadership_transfer() {
    seeds::run("leadership_transfer", membership::leadership_transfer);
}

#[test]
fn learners_catch_up() {
    seeds::run("learners_catch_up", membership::learners);
}

#[test]
fn membership_replace_voter() {
    seeds::run(
        "membership_replace_voter",
        membership_changes::replace_voter,
    );
}

#[test]
fn membership_idle_learner_catches_up() {
    seeds::run(
        "membership_idle_learner_catches_up",
        membership_changes::idle_learner_catches_up,
    );
}

#[test]
fn membership_grow_three_to_five() {
    seeds::run(
        "membership_grow_three_to_five",
        membership_changes::grow_three_to_five,
    );
}

#[test]
fn membership_shrink_five_to_three() {
    seeds::run(
        "membership_shrink_five_to_three",
        membership_changes::shrink_five_to_three,
    );
}

#[test]
fn membership_remove_leader() {
    seeds::run(
        "membership_remove_leader",
        membership_changes::remove_leader,
    );
}

#[test]
fn membership_changes_under_faults() {
    seeds::run(
        "membership_changes_under_faults",
        membership_changes::changes_under_faults,
    );
}

#[test]
fn read_index_under_partitions() {
    seeds::run("read_index_under_partitions", |s| {
        reads::reads_under_partitions(s, ReadMode::Safe, None)
    });
}

#[test]
fn lease_reads_under_partitions() {
    seeds::run("lease_reads_under_partitions", |s| {
        reads::reads_under_partitions(s, ReadMode::Lease, None)
    });
}

/// Checker self-test: a core that commits old-term entries by counting replicas (violating
/// Raft §5.4.2) must be caught.
#[test]
fn checker_catches_commit_old_term_by_count() {
    seeds::expect_violation("checker_catches_commit_old_term_by_count", 20, |s| {
        persistence::figure8_scripted(s, Some(Fault::CommitOldTermByCount))
    });
}

/// Checker self-test: a core that ignores the outgoing voters while joint (deciding by the new
/// configuration alone) must be caught by the joint-rule check.
#[test]
fn checker_catches_joint_quorum_without_outgoing_voters() {
    seeds::expect_violation(
        "checker_catches_joint_quorum_without_outgoing_voters",
        20,
        |s| membership_changes::shrink_five_to_three_with(s, Some(Fault::IgnoreOutgoingVoters)),
    );
}

/// Checker self-test: a core that answers reads without confirming leadership must be caught.
#[test]
fn checker_catches_read_without_heartbeat() {
    seeds::expect_violation("checker_catches_read_without_heartbeat", 100, |s| {
        reads::reads_under_partitions(s, ReadMode::Safe, Some(Fault::ReadWithoutHeartbeat))
    });
}
