//! Deterministic cluster simulator: whole clusters of Raft cores in one thread, with a
//! simulated network and disks, clients with a recorded history, and the Raft safety
//! properties checked after every step.
//!
//! `KETCH_SIM_SEEDS=N` runs N seeds per scenario (default 100, fewer for a costly scenario:
//! `[seeds <= N]` below); `KETCH_SIM_SEED=S` replays one.
//! A failure names the scenario and seed and prints the command that replays it.
//!
//! `hosts` runs many groups on a few simulated hosts (crashes, a shared log, partitions and
//! quiescence per host); its scenarios are in `scenarios::hosts`, and those of a meta group
//! and range groups routing by a lagging table, with range boundaries moving, in
//! `scenarios::routing`.

mod cluster;
mod disk;
mod hosts;
mod invariants;
mod kv;
mod network;
mod scenarios;
mod seeds;

use ketch::raft::{Fault, ReadMode};
use scenarios::{
    agreement, bad_input, election, hosts as host_scenarios, membership, membership_changes,
    persistence, reads, routing, snapshot,
};

/// A test per scenario, named like it (the name is how `seeds::run` replays it), run over
/// the seeds: `name => body,` or, for a scenario function of that name, `module::name,`; a
/// costly one runs fewer seeds by default: `name [seeds <= N] => body,`.
macro_rules! scenarios {
    () => {};
    ($name:ident => $body:expr, $($rest:tt)*) => {
        #[test]
        fn $name() {
            seeds::run(stringify!($name), $body);
        }
        scenarios!($($rest)*);
    };
    ($name:ident [seeds <= $cap:expr] => $body:expr, $($rest:tt)*) => {
        #[test]
        fn $name() {
            seeds::run_seeds(stringify!($name), seeds::seeds_capped($cap), $body);
        }
        scenarios!($($rest)*);
    };
    ($module:ident :: $name:ident, $($rest:tt)*) => {
        #[test]
        fn $name() {
            seeds::run(stringify!($name), $module::$name);
        }
        scenarios!($($rest)*);
    };
}

scenarios! {
    election::initial_election,
    reelection_after_leader_failure => election::reelection,
    many_elections_under_churn => election::many_elections,
    election::election_crash_storm,
    message_count_bounds => election::message_counts,
    election::prevote_keeps_a_partitioned_node_from_bumping_terms,
    election::check_quorum_deposes_an_isolated_leader_and_drops_its_reads,
    election::followers_that_hear_a_leader_ignore_vote_requests,
    agreement::basic_agreement,
    agreement::fail_agree,
    agreement::fail_no_agree,
    agreement::concurrent_proposals,
    agreement::rejoin_partitioned_leader,
    fast_backup_over_divergent_logs => agreement::fast_backup,
    agreement::single_node_elects_itself_and_commits_only_when_durable,
    agreement::three_nodes_elect_one_leader_and_replicate,
    agreement::leader_counts_itself_only_up_to_its_durable_index,
    agreement::fast_backtracking_over_ten_thousand_divergent_entries,
    agreement::backpressure_and_errors,
    bad_input::inconsistent_input_is_counted_not_fatal,
    bad_input::arbitrary_peer_messages_never_panic,
    persistence_crash_followers => |s| persistence::persistence(s, persistence::Victims::Followers),
    persistence_crash_leaders => |s| persistence::persistence(s, persistence::Victims::Leaders),
    persistence_crash_everyone => |s| persistence::persistence(s, persistence::Victims::Everyone),
    figure8_reliable => |s| persistence::figure8(s, false, None),
    figure8_unreliable => |s| persistence::figure8(s, true, None),
    figure8_scripted => |s| persistence::figure8_scripted(s, None),
    churn_with_crashes_and_partitions => persistence::churn,
    persistence::restart_restores_hard_state_and_log,
    snapshot::snapshot_basic,
    snapshot_install_lagging_follower => snapshot::snapshot_install_lagging,
    snapshot::snapshot_install_unreliable,
    snapshot::snapshot_install_crash,
    snapshot::lagging_follower_receives_a_snapshot_in_chunks,
    membership::leadership_transfer,
    learners_catch_up => membership::learners,
    membership::leadership_transfer_hands_over_and_refuses_proposals_meanwhile,
    membership::transfer_to_an_unreachable_target_aborts_after_an_election_timeout,
    membership_replace_voter => membership_changes::replace_voter,
    membership_idle_learner_catches_up => membership_changes::idle_learner_catches_up,
    membership_grow_three_to_five => membership_changes::grow_three_to_five,
    membership_shrink_five_to_three => membership_changes::shrink_five_to_three,
    membership_remove_leader => membership_changes::remove_leader,
    membership_changes_under_faults => membership_changes::changes_under_faults,
    membership_changes::promotion_goes_through_a_joint_configuration_and_a_second_change_is_refused,
    membership_changes::promotion_is_refused_until_the_learner_is_caught_up,
    membership_changes::joint_configuration_needs_both_majorities_to_commit,
    membership_changes::removed_leader_hands_over_after_the_change_commits,
    membership_changes::a_new_leader_refuses_changes_until_its_term_commits,
    membership_changes::a_removed_follower_learns_it_and_stops_campaigning,
    membership_changes::a_learner_added_to_an_idle_cluster_catches_up_without_new_writes,
    read_index_under_partitions => |s| reads::reads_under_partitions(s, ReadMode::Safe, None),
    lease_reads_under_partitions => |s| reads::reads_under_partitions(s, ReadMode::Lease, None),
    lease_reads_under_clock_drift => |s| {
        reads::lease_reads_under_clock_drift(s, reads::lease_drift_allowed_every())
    },
    reads::read_index_waits_for_a_quorum_heartbeat_round,
    host_scenarios::hosts_quiesce_then_failover,
    host_scenarios::hosts_partition_and_heal,
    hosts_crash_with_1000_groups [seeds <= 3] => host_scenarios::hosts_crash_with_1000_groups,
    routing::routing_handovers_under_faults,
    routing::routing_stale_table_on_a_cut_off_host,
}

/// Checker self-test: range groups that serve every route, whatever its range and epoch (the
/// range check replaced by `true`), must be caught serving a stale route.
#[test]
fn checker_catches_a_group_serving_stale_routes() {
    seeds::expect_violation("checker_catches_a_group_serving_stale_routes", 20, |s| {
        routing::handovers_under_faults(s, true)
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

/// Checker self-test: clocks drifting far beyond the lease's allowance (one tick in two
/// dropped: a lease lasts twice as long in real time as its leader believes) must be caught
/// serving a stale read, so the drift scenario above checks something.
#[test]
fn checker_catches_lease_reads_beyond_the_drift_allowance() {
    seeds::expect_violation(
        "checker_catches_lease_reads_beyond_the_drift_allowance",
        100,
        |s| reads::lease_reads_under_clock_drift(s, 2),
    );
}

/// Checker self-test: a core that answers reads without confirming leadership must be caught.
#[test]
fn checker_catches_read_without_heartbeat() {
    seeds::expect_violation("checker_catches_read_without_heartbeat", 100, |s| {
        reads::reads_under_partitions(s, ReadMode::Safe, Some(Fault::ReadWithoutHeartbeat))
    });
}
