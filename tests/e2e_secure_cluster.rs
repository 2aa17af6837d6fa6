//! `ketch cluster --secure`, as a new user runs it: the supervisor makes a CA, node
//! certificates and a password, starts three nodes with mutual TLS between peers, a TLS client
//! port and the password, and prints how to connect. The test follows the printed
//! instructions with `redis-cli --tls`, checks that the plaintext port wants the password,
//! that a client without the CA cannot connect, and that a restart keeps the data and the
//! password.
//!
//! redis-cli is skipped with a notice when absent, unless `KETCH_REQUIRE_REDIS_TOOLS` is set
//! (CI sets it). Reproduce with `cargo test --release --test e2e_secure_cluster`.

#[path = "e2e/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn redis_cli_with_tls() -> bool {
    let help = Command::new("redis-cli").arg("--help").output();
    let usable = help.is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout).contains("--tls")
            || String::from_utf8_lossy(&out.stderr).contains("--tls")
    });
    if !usable {
        assert!(
            std::env::var_os("KETCH_REQUIRE_REDIS_TOOLS").is_none(),
            "KETCH_REQUIRE_REDIS_TOOLS is set but redis-cli with --tls is missing"
        );
        eprintln!("SKIPPED: redis-cli with --tls is missing; see tests/README.md");
    }
    usable
}

/// Runs redis-cli with `args` and returns its stdout, trimmed.
fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

struct Supervisor {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Supervisor {
    fn start(dir: &Path, client_port: u16) -> Supervisor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args(["cluster", "--secure", "--nodes", "3", "--data-dir"])
            .arg(dir)
            .args(["--client-port", &client_port.to_string()])
            .args(["--peer-port", &(client_port + 3).to_string()])
            .args(["--tls-port", &(client_port + 6).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ketch cluster --secure");
        support::register_pid(child.id());
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut supervisor = Supervisor {
            child,
            lines,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !supervisor
            .seen
            .iter()
            .any(|l| l.starts_with("leader: node"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match supervisor.lines.recv_timeout(left) {
                Ok(line) => supervisor.seen.push(line),
                Err(_) => panic!("no leader line; output: {:#?}", supervisor.seen),
            }
        }
        for pid in supervisor
            .seen
            .iter()
            .filter_map(|l| l.split("pid ").nth(1))
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .filter_map(|digits| digits.parse::<u32>().ok())
        {
            support::register_pid(pid);
        }
        supervisor
    }

    /// The `redis-cli ...` command line it printed after `try: `.
    fn try_line(&self) -> String {
        self.seen
            .iter()
            .find_map(|l| l.strip_prefix("try: "))
            .map(|rest| rest.split("    stop").next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no try line: {:#?}", self.seen))
    }

    fn stop(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "ketch cluster exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "still running 20 s after SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        support::forget_pid(self.child.id());
    }
}

/// Runs a redis-cli command line the way a shell would expand `"$(cat FILE)"`.
fn run_printed(line: &str, command: &[&str]) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut input = line.split_whitespace();
    while let Some(word) = input.next() {
        if word == "\"$(cat" {
            let file = input
                .next()
                .expect("a file after $(cat")
                .trim_end_matches(")\"");
            words.push(
                std::fs::read_to_string(file)
                    .unwrap()
                    .trim_end()
                    .to_string(),
            );
        } else {
            words.push(word.to_string());
        }
    }
    assert_eq!(words[0], "redis-cli", "{line}");
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.extend(command);
    redis_cli(&args)
}

#[test]
fn ketch_cluster_secure_serves_tls_with_a_password_and_keeps_both_across_a_restart() {
    let done = support::watchdog("secure_cluster", Duration::from_secs(120));
    if !redis_cli_with_tls() {
        done.store(true, Ordering::Release);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client_port = support::free_consecutive_ports(9);
    let tls_port = (client_port + 6).to_string();
    // The printed paths are relative to the supervisor's directory: run it from there.
    let supervisor = Supervisor::start(dir.path(), client_port);
    let try_line = supervisor.try_line();
    assert!(
        try_line.contains("--tls") && try_line.contains(&tls_port),
        "{try_line}"
    );
    assert_eq!(run_printed(&try_line, &["SET", "greeting", "hello"]), "OK");
    // The same through another node's TLS port.
    let other = try_line.replace(&tls_port, &(client_port + 8).to_string());
    assert_eq!(run_printed(&other, &["GET", "greeting"]), "hello");
    // No password: refused on the TLS and the plaintext port.
    let ca = dir.path().join("secure/ca.pem");
    let ca = ca.to_str().unwrap();
    let no_auth = redis_cli(&["--tls", "--cacert", ca, "-p", &tls_port, "GET", "greeting"]);
    assert!(no_auth.starts_with("NOAUTH"), "{no_auth}");
    let plain = redis_cli(&["-p", &client_port.to_string(), "GET", "greeting"]);
    assert!(plain.starts_with("NOAUTH"), "{plain}");
    // Without the CA the server's certificate is not trusted: no reply at all.
    let untrusted = redis_cli(&["--tls", "-p", &tls_port, "PING"]);
    assert!(!untrusted.contains("PONG"), "{untrusted}");
    let password = std::fs::read_to_string(dir.path().join("secure/password")).unwrap();
    supervisor.stop();

    let supervisor = Supervisor::start(dir.path(), client_port);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secure/password")).unwrap(),
        password,
        "a restart keeps the password"
    );
    let try_line = supervisor.try_line();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = run_printed(&try_line, &["GET", "greeting"]);
        if value == "hello" {
            break;
        }
        assert!(Instant::now() < deadline, "greeting after restart: {value}");
        std::thread::sleep(Duration::from_millis(200));
    }
    supervisor.stop();
    done.store(true, Ordering::Release);
}
