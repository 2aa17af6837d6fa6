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
    agreement, bad_input, election, membership, membership_changes, persistence, reads, snapshot,
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
fn prevote_keeps_a_partitioned_node_from_bumping_terms() {
    seeds::run(
        "prevote_keeps_a_partitioned_node_from_bumping_terms",
        election::prevote_keeps_a_partitioned_node_from_bumping_terms,
    );
}

#[test]
fn check_quorum_deposes_an_isolated_leader_and_drops_its_reads() {
    seeds::run(
        "check_quorum_deposes_an_isolated_leader_and_drops_its_reads",
        election::check_quorum_deposes_an_isolated_leader_and_drops_its_reads,
    );
}

#[test]
fn followers_that_hear_a_leader_ignore_vote_requests() {
    seeds::run(
        "followers_that_hear_a_leader_ignore_vote_requests",
        election::followers_that_hear_a_leader_ignore_vote_requests,
    );
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
fn single_node_elects_itself_and_commits_only_when_durable() {
    seeds::run(
        "single_node_elects_itself_and_commits_only_when_durable",
        agreement::single_node_elects_itself_and_commits_only_when_durable,
    );
}

#[test]
fn three_nodes_elect_one_leader_and_replicate() {
    seeds::run(
        "three_nodes_elect_one_leader_and_replicate",
        agreement::three_nodes_elect_one_leader_and_replicate,
    );
}

#[test]
fn leader_counts_itself_only_up_to_its_durable_index() {
    seeds::run(
        "leader_counts_itself_only_up_to_its_durable_index",
        agreement::leader_counts_itself_only_up_to_its_durable_index,
    );
}

#[test]
fn fast_backtracking_over_ten_thousand_divergent_entries() {
    seeds::run(
        "fast_backtracking_over_ten_thousand_divergent_entries",
        agreement::fast_backtracking_over_ten_thousand_divergent_entries,
    );
}

#[test]
fn backpressure_and_errors() {
    seeds::run(
        "backpressure_and_errors",
        agreement::backpressure_and_errors,
    );
}

#[test]
fn inconsistent_input_is_counted_not_fatal() {
    seeds::run(
        "inconsistent_input_is_counted_not_fatal",
        bad_input::inconsistent_input_is_counted_not_fatal,
    );
}

#[test]
fn arbitrary_peer_messages_never_panic() {
    seeds::run(
        "arbitrary_peer_messages_never_panic",
        bad_input::arbitrary_peer_messages_never_panic,
    );
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
fn restart_restores_hard_state_and_log() {
    seeds::run(
        "restart_restores_hard_state_and_log",
        persistence::restart_restores_hard_state_and_log,
    );
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
fn lagging_follower_receives_a_snapshot_in_chunks() {
    seeds::run(
        "lagging_follower_receives_a_snapshot_in_chunks",
        snapshot::lagging_follower_receives_a_snapshot_in_chunks,
    );
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
fn leadership_transfer_hands_over_and_refuses_proposals_meanwhile() {
    seeds::run(
        "leadership_transfer_hands_over_and_refuses_proposals_meanwhile",
        membership::leadership_transfer_hands_over_and_refuses_proposals_meanwhile,
    );
}

#[test]
fn transfer_to_an_unreachable_target_aborts_after_an_election_timeout() {
    seeds::run(
        "transfer_to_an_unreachable_target_aborts_after_an_election_timeout",
        membership::transfer_to_an_unreachable_target_aborts_after_an_election_timeout,
    );
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
fn promotion_goes_through_a_joint_configuration_and_a_second_change_is_refused() {
    seeds::run("promotion_goes_through_a_joint_configuration_and_a_second_change_is_refused", membership_changes::promotion_goes_through_a_joint_configuration_and_a_second_change_is_refused);
}

#[test]
fn promotion_is_refused_until_the_learner_is_caught_up() {
    seeds::run(
        "promotion_is_refused_until_the_learner_is_caught_up",
        membership_changes::promotion_is_refused_until_the_learner_is_caught_up,
    );
}

#[test]
fn joint_configuration_needs_both_majorities_to_commit() {
    seeds::run(
        "joint_configuration_needs_both_majorities_to_commit",
        membership_changes::joint_configuration_needs_both_majorities_to_commit,
    );
}

#[test]
fn removed_leader_hands_over_after_the_change_commits() {
    seeds::run(
        "removed_leader_hands_over_after_the_change_commits",
        membership_changes::removed_leader_hands_over_after_the_change_commits,
    );
}

#[test]
fn a_new_leader_refuses_changes_until_its_term_commits() {
    seeds::run(
        "a_new_leader_refuses_changes_until_its_term_commits",
        membership_changes::a_new_leader_refuses_changes_until_its_term_commits,
    );
}

#[test]
fn a_removed_follower_learns_it_and_stops_campaigning() {
    seeds::run(
        "a_removed_follower_learns_it_and_stops_campaigning",
        membership_changes::a_removed_follower_learns_it_and_stops_campaigning,
    );
}

#[test]
fn a_learner_added_to_an_idle_cluster_catches_up_without_new_writes() {
    seeds::run(
        "a_learner_added_to_an_idle_cluster_catches_up_without_new_writes",
        membership_changes::a_learner_added_to_an_idle_cluster_catches_up_without_new_writes,
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

#[test]
fn read_index_waits_for_a_quorum_heartbeat_round() {
    seeds::run(
        "read_index_waits_for_a_quorum_heartbeat_round",
        reads::read_index_waits_for_a_quorum_heartbeat_round,
    );
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
