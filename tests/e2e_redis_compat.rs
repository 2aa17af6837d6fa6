//! Redis compatibility, with Redis itself as the reference: a real `redis-server` and a
//! 3-node cluster of `ketch serve` processes run side by side, and the Python driver in
//! `tests/compat/` sends both the same commands, through a raw RESP client (replies compared
//! byte for byte, under RESP2 and RESP3, on the leader and for a subset on a follower) and
//! through redis-py (application-like workloads, results compared as Python values). See
//! `tests/compat/driver.py` for the result ids and `tests/compat/normalize.py` for the few
//! replies that are compared through a normalizer.
//!
//! The rule: every result that differs must be listed in `tests/compat/known_differences.txt`
//! with a reason, and every listed one must still differ (a line for a difference that is
//! gone fails the test, so the list cannot rot). A line names a result id that exists.
//!
//! Needs `redis-server` on the PATH and a Python with redis-py in `KETCH_PYTHON`; without
//! them the test prints a notice and passes, unless `KETCH_REQUIRE_REDIS_TOOLS` is set (CI
//! sets both), in which case it fails. Reproduce with
//! `KETCH_PYTHON=target/compat-venv/bin/python cargo test --release --test e2e_redis_compat
//! -- --nocapture`; `KETCH_COMPAT_ONLY=<substring>` runs only the result ids containing it.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{RedisServer, TestCluster};

/// The driver runs in about 10 s on an idle machine; this leaves room for a loaded CI box
/// while keeping the whole test under two minutes.
const DRIVER_TIME_MAX: Duration = Duration::from_secs(90);

/// One line of `known_differences.txt`: `<result id> <reason>`.
struct KnownDifference {
    line: usize,
    reason: String,
}

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// The Python to run the driver with, if it can import redis-py; else why not.
fn python_with_redis_py() -> Result<String, String> {
    let python = std::env::var("KETCH_PYTHON")
        .map_err(|_| "KETCH_PYTHON is not set (a Python with redis-py)".to_string())?;
    let output = Command::new(&python)
        .args(["-c", "import redis; print(redis.__version__)"])
        .output()
        .map_err(|e| format!("KETCH_PYTHON={python} does not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "KETCH_PYTHON={python} cannot import redis: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!(
        "redis-py {} via {python}",
        String::from_utf8_lossy(&output.stdout).trim()
    );
    Ok(python)
}

/// Parses `known_differences.txt`: `#` comments and blank lines aside, `<id> <reason>`.
fn parse_known(text: &str) -> Result<BTreeMap<String, KnownDifference>, String> {
    let mut known = BTreeMap::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line
            .split_once(char::is_whitespace)
            .map(|(id, reason)| (id, reason.trim()))
            .unwrap_or((line, ""));
        if reason.is_empty() {
            return Err(format!("line {}: `{id}` has no reason", index + 1));
        }
        let entry = KnownDifference {
            line: index + 1,
            reason: reason.to_string(),
        };
        if let Some(first) = known.insert(id.to_string(), entry) {
            return Err(format!(
                "line {}: `{id}` is listed twice (first on line {})",
                index + 1,
                first.line
            ));
        }
    }
    Ok(known)
}

/// Parses the driver's `results.txt`: result id -> differs.
fn parse_results(text: &str) -> BTreeMap<String, bool> {
    text.lines()
        .filter_map(|line| {
            let (id, verdict) = line.split_once('\t')?;
            assert!(
                verdict == "same" || verdict == "differs",
                "bad results line {line:?}"
            );
            Some((id.to_string(), verdict == "differs"))
        })
        .collect()
}

/// The driver's report block for each result id.
fn parse_report(text: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    for block in text.split("#### ").filter(|b| !b.is_empty()) {
        let id = block.split_whitespace().next().unwrap_or("").to_string();
        blocks.insert(id, format!("#### {block}"));
    }
    blocks
}

/// Runs the driver against the two servers; the contents of its results and report files.
fn run_driver(
    python: &str,
    redis: &RedisServer,
    leader: std::net::SocketAddr,
    follower: std::net::SocketAddr,
) -> (String, String) {
    let out = tempfile::tempdir().unwrap();
    let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut command = Command::new(python);
    command
        .arg("-B") // no __pycache__ inside the checkout
        .arg(compat_dir().join("driver.py"))
        .args(["--redis", &redis.addr.to_string()])
        .args(["--ketch", &leader.to_string()])
        .args(["--ketch-follower", &follower.to_string()])
        .arg("--out")
        .arg(out.path());
    if let Ok(only) = std::env::var("KETCH_COMPAT_ONLY") {
        command.args(["--only", &only]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start the compat driver");
    support::register_pid(child.id());
    let deadline = Instant::now() + DRIVER_TIME_MAX;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the compat driver still runs after {DRIVER_TIME_MAX:?}:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    support::forget_pid(child.id());
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "the compat driver failed ({status}):\n{stdout}\n{stderr}"
    );
    eprint!("{stdout}");
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap();
    (read("results.txt"), read("report.txt"))
}

#[test]
fn ketch_answers_like_redis_server_except_listed_differences() {
    let required = std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_some();
    let python = match (RedisServer::available(), python_with_redis_py()) {
        (true, Ok(python)) => python,
        (available, python) => {
            let why = if available {
                python.unwrap_err()
            } else {
                "redis-server is not installed (apt-get install redis-server)".to_string()
            };
            assert!(!required, "KETCH_REQUIRE_REDIS_TOOLS is set but {why}");
            eprintln!("SKIPPED: {why}; see tests/README.md");
            return;
        }
    };
    let known_path = compat_dir().join("known_differences.txt");
    let known = parse_known(&std::fs::read_to_string(&known_path).expect("read known list"))
        .unwrap_or_else(|e| panic!("{}: {e}", known_path.display()));

    let done = support::watchdog("redis_compat", Duration::from_secs(115));
    let redis = RedisServer::start();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let follower = cluster.follower_of(leader);
    let (results_text, report_text) = run_driver(
        &python,
        &redis,
        cluster.node(leader).client_addr,
        cluster.node(follower).client_addr,
    );
    let results = parse_results(&results_text);
    let report = parse_report(&report_text);
    assert!(!results.is_empty(), "the driver reported no result");

    let filtered = std::env::var_os("KETCH_COMPAT_ONLY").is_some();
    let unexplained: Vec<&String> = results
        .iter()
        .filter(|(id, &differs)| differs && !known.contains_key(*id))
        .map(|(id, _)| id)
        .collect();
    let stale: Vec<(&String, &KnownDifference)> = known
        .iter()
        .filter(|(id, _)| results.get(*id) == Some(&false))
        .collect();
    let unknown_ids: Vec<&String> = known
        .keys()
        .filter(|id| !filtered && !results.contains_key(*id))
        .collect();

    let mut failure = String::new();
    for id in &unexplained {
        failure.push_str(
            report
                .get(*id)
                .map_or("(no report block)\n", String::as_str),
        );
    }
    if !unexplained.is_empty() {
        failure.push_str(&format!(
            "\n{} result(s) differ from Redis and are not in {}: {unexplained:?}\n\
             Fix Ketch, or add a line `<id> <reason>` for a deliberate difference.\n",
            unexplained.len(),
            known_path.display()
        ));
    }
    for (id, entry) in &stale {
        failure.push_str(&format!(
            "{}:{}: `{id}` now answers like Redis: remove the line (reason was: {})\n",
            known_path.display(),
            entry.line,
            entry.reason
        ));
    }
    for id in &unknown_ids {
        failure.push_str(&format!(
            "{}:{}: `{id}` is no result id of the driver (renamed or removed case?)\n",
            known_path.display(),
            known[*id].line
        ));
    }
    let differing = results.values().filter(|&&d| d).count();
    eprintln!(
        "compat: {} results, {differing} differ from Redis, {} of them not listed",
        results.len(),
        unexplained.len()
    );
    assert!(
        failure.is_empty(),
        "{failure}\n(reproduce: KETCH_PYTHON=target/compat-venv/bin/python [KETCH_COMPAT_ONLY=<id>] \
         cargo test --release --test e2e_redis_compat \
         -- --nocapture)\n{}",
        cluster.logs()
    );
    done.store(true, Ordering::Release);
}
