//! SETs of fresh keys from RESP clients, what each was told, and the check of every answer
//! against the final state by the service's error rule: `+OK` must be there with its value,
//! `-TRYAGAIN` ("certainly not applied") must not be there, `-TIMEOUT` may be either.

#![allow(dead_code)] // Each suite uses a different part.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What a SET was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// `+OK`.
    Ok,
    /// `-TRYAGAIN ...`: certainly not applied.
    TryAgain,
    /// `-TIMEOUT ...`: may have been applied.
    Timeout,
}

impl Told {
    /// The answer `reply` gives the SET of `key`; any other reply fails the test.
    pub fn of_reply(key: &str, reply: &[u8]) -> Told {
        if reply == b"+OK\r\n" {
            Told::Ok
        } else if reply.starts_with(b"-TRYAGAIN") {
            Told::TryAgain
        } else if reply.starts_with(b"-TIMEOUT") {
            Told::Timeout
        } else {
            panic!(
                "SET {key}: unexpected reply {:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }
}

/// The value written under `key`: `min_bytes` plus up to `spread_bytes` more, chosen by the
/// key, made of the key's bytes (so a value read back names the key it belongs to).
pub fn value_of(key: &str, min_bytes: usize, spread_bytes: usize) -> Vec<u8> {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let len = min_bytes + (hash % spread_bytes.max(1) as u64) as usize;
    key.bytes().cycle().take(len).collect()
}

/// Pipelines windows of 8 SETs of fresh keys (`w{writer}-{seq}`) until `stop`: `send` sends
/// one command, `reply` reads the next reply. Every answer goes into `told_keys`.
pub fn write_until(
    writer: u64,
    stop: &AtomicBool,
    told_keys: &Mutex<Vec<(String, Told)>>,
    value: impl Fn(&str) -> Vec<u8>,
    mut send: impl FnMut(&[&[u8]]),
    mut reply: impl FnMut() -> Vec<u8>,
) {
    let mut seq = 0u64;
    // Bounded: until the flag, which the test sets within its time limit.
    while !stop.load(Ordering::Acquire) {
        let keys: Vec<String> = (0..8)
            .map(|_| {
                seq += 1;
                format!("w{writer}-{seq}")
            })
            .collect();
        for key in &keys {
            send(&[b"SET", key.as_bytes(), &value(key)]);
        }
        let mut refused = false;
        for key in keys {
            let told = Told::of_reply(&key, &reply());
            refused |= told == Told::TryAgain;
            told_keys.lock().unwrap().push((key, told));
        }
        if refused {
            // A node that refuses refuses fast: do not spin on it.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Checks every answer in `told_keys` against the final state, read with `get` (the exact
/// GET reply bytes), and returns how many of each kind there were.
pub fn check_answers(
    seed: u64,
    told_keys: &[(String, Told)],
    value: impl Fn(&str) -> Vec<u8>,
    mut get: impl FnMut(&str) -> Vec<u8>,
) -> BTreeMap<&'static str, usize> {
    let mut tally = BTreeMap::new();
    for (key, told) in told_keys {
        let stored = get(key);
        let present = stored != b"$-1\r\n";
        if present {
            let value = value(key);
            let mut expected = format!("${}\r\n", value.len()).into_bytes();
            expected.extend_from_slice(&value);
            expected.extend_from_slice(b"\r\n");
            assert!(stored == expected, "seed {seed:#x}: GET {key}: wrong value");
        }
        match told {
            Told::Ok => assert!(present, "seed {seed:#x}: acknowledged SET {key} lost"),
            Told::TryAgain => assert!(
                !present,
                "seed {seed:#x}: SET {key} was answered -TRYAGAIN (not applied) but was applied"
            ),
            Told::Timeout => {}
        }
        let name = match (told, present) {
            (Told::Ok, _) => "+OK",
            (Told::TryAgain, _) => "-TRYAGAIN",
            (Told::Timeout, false) => "-TIMEOUT, not applied",
            (Told::Timeout, true) => "-TIMEOUT, applied",
        };
        *tally.entry(name).or_default() += 1;
    }
    tally
}
