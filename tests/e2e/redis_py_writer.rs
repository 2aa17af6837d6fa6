//! The redis-py writer of `tests/e2e/redis_py_cluster.py writer`, for the tests that run a
//! `RedisCluster` workload across a failure (included with `#[path]`, beside `support`), and
//! how those tests find redis-py and skip what needs a missing tool.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{self, TestCluster};

fn required() -> bool {
    std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_some()
}

/// Prints a notice that `what` is skipped, or fails if the tools are required.
pub fn skip(what: &str, why: &str) {
    assert!(!required(), "KETCH_REQUIRE_REDIS_TOOLS is set but {why}");
    eprintln!("SKIPPED: {what}: {why}");
}

/// The Python with redis-py, or `None` (with a notice) without one.
pub fn python() -> Option<String> {
    let Ok(python) = std::env::var("KETCH_PYTHON") else {
        skip("redis-py RedisCluster", "KETCH_PYTHON is not set");
        return None;
    };
    Some(python)
}

/// The script that drives redis-py's `RedisCluster`.
pub fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/redis_py_cluster.py")
}

/// The redis-py writer of `redis_py_cluster.py writer`, running.
pub struct Writer {
    child: Child,
    progress: PathBuf,
    stop: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl Writer {
    pub fn start(python: &str, cluster: &TestCluster, dir: &Path) -> Writer {
        let progress = dir.join("progress");
        let stop = dir.join("stop");
        let (out, err) = (dir.join("out"), dir.join("err"));
        let child = Command::new(python)
            .arg("-B")
            .arg(cluster_script())
            .arg("writer")
            .arg(&progress)
            .arg(&stop)
            .args(cluster.client_addrs().iter().map(|a| a.to_string()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("run KETCH_PYTHON");
        support::register_pid(child.id());
        Writer {
            child,
            progress,
            stop,
            out,
            err,
        }
    }

    pub fn acked(&self) -> usize {
        std::fs::read_to_string(&self.progress)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Asks it to stop and waits (it reads every acknowledged key back first); its summary
    /// line.
    pub fn stop(mut self, cluster: &TestCluster) -> String {
        std::fs::write(&self.stop, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the writer does not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        support::forget_pid(self.child.id());
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        assert!(
            status.success(),
            "writer: {status}\n{out}\n{err}\n{}",
            cluster.logs()
        );
        // Its failed SETs (each retried with the next key), for the record.
        let failures = err.lines().filter(|l| l.starts_with("set ")).count();
        if failures > 0 {
            let first: Vec<&str> = err.lines().take(3).collect();
            eprintln!("writer: {failures} failed SETs, the first: {first:?}");
        }
        out.trim().to_string()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
