//! `ketch dashboard`: a Grafana dashboard over these metrics, printed as JSON for import.
//!
//! The JSON lives in `dashboard.json` beside this file; its panels: fsync p50/p99 (from the
//! histogram), proposals committed and failed per second, pending proposals, leader changes,
//! `has_leader` per instance, peer bytes per second, peer round trip p99, apply queue, RESP
//! commands per second by command, client connections. Queries use a `$datasource`
//! variable and group by `instance`, so one dashboard shows every node a Prometheus scrapes.
//! A test checks that it parses and that every metric it queries is registered.

/// The dashboard JSON.
pub const DASHBOARD_JSON: &str = include_str!("dashboard.json");

/// Every `ketch_...` metric family a query in `json` mentions, with the histogram series
/// suffixes (`_bucket`, `_sum`, `_count`) taken off; sorted, without repeats.
pub fn referenced_metrics(json: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = json;
    while let Some(at) = rest.find("ketch_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.push(family.to_string());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_dashboard_parses_and_queries_only_registered_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(DASHBOARD_JSON).expect("dashboard.json is valid JSON");
        let panels = dashboard["panels"].as_array().expect("a panels array");
        let mut exprs = Vec::new();
        for panel in panels {
            let title = panel["title"].as_str().expect("every panel has a title");
            let targets = panel["targets"]
                .as_array()
                .expect("every panel has targets");
            assert!(!targets.is_empty(), "panel {title} has no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("every target has an expr");
                exprs.push(expr.to_string());
            }
        }
        let referenced = referenced_metrics(&exprs.join("\n"));
        let registered = Metrics::new().names().to_vec();
        for name in &referenced {
            assert!(
                registered.contains(name),
                "dashboard queries {name}, which is not registered"
            );
        }
        for wanted in [
            "ketch_disk_wal_fsync_duration_seconds",
            "ketch_server_proposals_committed_total",
            "ketch_server_leader_changes_seen_total",
            "ketch_server_has_leader",
            "ketch_network_peer_sent_bytes_total",
            "ketch_network_peer_round_trip_time_seconds",
            "ketch_server_apply_queue_entries",
            "ketch_kv_commands_total",
        ] {
            assert!(
                referenced.iter().any(|n| n == wanted),
                "no panel uses {wanted}"
            );
        }
        // Every name the whole file mentions is a query's, so none hides in a description.
        assert_eq!(referenced_metrics(DASHBOARD_JSON), referenced);
    }

    #[test]
    fn suffixes_are_stripped_and_names_end_at_a_non_name_character() {
        let names = referenced_metrics(
            "rate(ketch_a_bucket[1m]) + ketch_a_count/ketch_b_total{x=\"y\"} ketch_a_sum",
        );
        assert_eq!(names, ["ketch_a", "ketch_b_total"]);
    }
}
