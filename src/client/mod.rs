//! A Rust client for the replicated key-value service (RESP2 over TCP).
//!
//! [`Client::connect`] takes the addresses of some or all nodes; any node accepts any command
//! (followers forward to the leader). A call that fails on one node — connection refused or
//! lost, `-TRYAGAIN`, `-TIMEOUT` — is retried on the next node, with exponential backoff,
//! within the bounds of [`ClientOptions`] (attempts and total time).
//!
//! # Routing
//!
//! A sharded cluster splits the 16,384 Redis Cluster hash slots into ranges, each a Raft
//! group with its own leader. With [`ClientOptions::slot_aware`] (the default) the client
//! reads `CLUSTER SLOTS` once after connecting and sends each command with keys to the
//! master of its keys' slot ([`key_slot`](crate::kv::cluster::key_slot), found as the server
//! finds it), opening and caching one connection per node (at most as many as the nodes
//! known). Commands without keys, or with keys in several slots (which any node refuses with
//! `-CROSSSLOT`), and slots the map names no master for go to one node, the any-node
//! failover above. An error or empty `CLUSTER SLOTS` reply (a node without cluster
//! replies, or an election under way) leaves everything on that one node, as without the
//! option.
//!
//! A `-MOVED slot host:port` reply (a node started with `--cluster-mode redirect` that does
//! not lead the slot) sends the command to the named node at once and has the map read
//! again before the next round; a command follows at most five of them, and
//! each one is an attempt of the bounds above. When a master refuses (`-TRYAGAIN`), times
//! out or cannot be reached, the command goes on through the any-node failover (whose
//! nodes forward or redirect it) and the map is read again. The map is read through the
//! failover's connection, one request per round at most, and only after such an event.
//!
//! A pipeline's commands for different nodes go as one batch per node, and a retry round
//! counts once whatever the number of nodes it reaches.
//!
//! # Exactly-once writes
//!
//! The client carries a session (a [`SessionId`](crate::kv::SessionId): creation time and
//! random bits) and numbers its writes. A retried write
//! keeps its number, so the state machine applies it once even if an earlier attempt was
//! applied before its node failed (Raft thesis §6.3). Errors say what the caller may assume:
//! [`ClientError::NotApplied`] (certainly not applied, safe to call again),
//! [`ClientError::MaybeApplied`] (the retry budget ran out while the write may have been
//! applied, at most once), or [`ClientError::Server`] (the command's own error result, such as
//! `ERR value is not an integer or out of range`).
//!
//! A slot-aware client keeps one session for all the groups: each group's state machine
//! keeps its own results for the session, and sees only the sequence numbers of the writes
//! sent to it. The gaps are harmless: every write carries the lowest number still in flight
//! over all groups, and each new number is at least that.
//!
//! # Example
//!
//! ```no_run
//! use ketch::client::{Client, ClientError};
//!
//! # fn main() -> Result<(), ClientError> {
//! let mut client = Client::connect(&["127.0.0.1:6380", "127.0.0.1:6381", "127.0.0.1:6382"])?;
//! client.set("greeting", "hello")?;
//! assert_eq!(client.get("greeting")?, Some(b"hello".to_vec()));
//! match client.incr("visits") {
//!     Ok(n) => println!("visit number {n}"),
//!     // Not counted: calling again is safe.
//!     Err(error) if error.is_not_applied() => eprintln!("try later: {error}"),
//!     // Counted at most once: whether it was is unknown until read back.
//!     Err(error) => eprintln!("unknown outcome: {error}"),
//! }
//! # Ok(())
//! # }
//! ```

pub(crate) mod connection;
mod error;
mod options;
mod session_handle;
mod slot_table;
mod stats;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

pub use crate::kv::resp::Reply;
pub use error::ClientError;
pub use options::ClientOptions;
pub use stats::ClientStats;

use crate::kv::server::request_slot::{request_slot, RequestSlot};
use connection::Connection;
use session_handle::SessionHandle;
use slot_table::{parse_moved, SlotTable};

/// Most `-MOVED` replies one command follows before the call gives up: one is the normal
/// cost of a stale map, a few more cover leadership moving on meanwhile.
const REDIRECTS_MAX: u32 = 5;

/// Most cached connections to masters, whatever the number of nodes known.
const POOL_MAX: usize = 256;

/// Commands that change the state machine: sent with the session and a sequence number.
/// Everything else is sent as is and retried freely (reads change nothing).
const WRITE_COMMANDS: &[&str] = &[
    "SET", "DEL", "INCR", "INCRBY", "DECR", "DECRBY", "APPEND", "MSET", "SETNX", "GETSET",
];

/// A connection to a cluster, with retries across its nodes and a session for exactly-once
/// writes. Not shared between threads: give each thread its own client (each has its own
/// session).
#[derive(Debug)]
pub struct Client {
    addrs: Vec<String>,
    /// Index into `addrs` of the node to use next.
    current: usize,
    /// The any-node failover's connection, to `addrs[current]`.
    connection: Option<Connection>,
    /// Connections to slot masters other than the one above, oldest first.
    pool: Vec<Connection>,
    /// The slot map, if the cluster gave one (and `options.slot_aware`).
    slots: Option<SlotTable>,
    /// Set by a redirect or a failed master: read the map again before the next round.
    slots_stale: bool,
    options: ClientOptions,
    session: SessionHandle,
    stats: ClientStats,
}

/// One command of a call, with its sequence number if it is a write and the slot of its keys
/// if it has keys in one slot.
struct Call {
    args: Vec<Vec<u8>>,
    seq: Option<u64>,
    slot: Option<u16>,
}

/// Where one round sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The any-node failover: `addrs[current]`, moving on at each failure.
    Any,
    /// A slot master, or the node a `-MOVED` named.
    Node(SocketAddr),
}

/// What the retry loop knows of one command across rounds.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// Some attempt may have been applied.
    maybe_applied: bool,
    /// `-MOVED` replies followed.
    redirects: u32,
    /// The node the last `-MOVED` named.
    moved_to: Option<SocketAddr>,
    /// Its master failed it: use the any-node failover from now on.
    fallback: bool,
}

/// What one round of the retry loop ended with.
#[derive(Debug, Default)]
struct Round {
    /// Commands to send again, in no particular order.
    unanswered: Vec<usize>,
    last_reason: String,
    /// A node refused or failed: back off before the next round.
    failed: bool,
    renew_session: bool,
}

/// What a reply means for the retry loop.
enum Outcome {
    /// The command's answer (a value or its own error result).
    Done,
    /// `-MOVED`: not applied; the named node serves the slot.
    Moved(SocketAddr),
    /// Refused before being applied: retry elsewhere.
    RetryNotApplied,
    /// May have been applied: retry with the same sequence number.
    RetryMaybeApplied,
    /// The server expired the session: nothing was applied; retry under a new session.
    RetrySessionExpired,
    /// The server no longer holds the result of this sequence number (too many writes of
    /// the session unacknowledged): it may have been applied and cannot be retried.
    GiveUpMaybeApplied,
}

impl Client {
    /// Connects to the first reachable node of `addrs` (`"host:port"` strings or
    /// [`SocketAddr`]s) with the default [`ClientOptions`].
    pub fn connect<A: fmt::Display>(addrs: &[A]) -> Result<Client, ClientError> {
        Client::connect_with(addrs, ClientOptions::default())
    }

    /// Connects with the given options. Fails with [`ClientError::NotApplied`] if no node
    /// accepts a connection within the options' retry bounds, and with
    /// [`ClientError::InvalidArgument`] if `addrs` is empty.
    pub fn connect_with<A: fmt::Display>(
        addrs: &[A],
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no node address given".to_string(),
            ));
        }
        let mut client = Client {
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            current: 0,
            connection: None,
            pool: Vec::new(),
            slots: None,
            slots_stale: false,
            options,
            session: SessionHandle::new(),
            stats: ClientStats::default(),
        };
        client.ping()?;
        client.refresh_slots();
        Ok(client)
    }

    /// This client's session id (random, fixed for the client's life unless the cluster
    /// expires it).
    pub fn session_id(&self) -> crate::kv::SessionId {
        self.session.id()
    }

    /// What the client has done so far (attempts, retries, resent writes).
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The address of the any-node failover's connection (the node commands without keys go
    /// to), if any.
    pub fn connected_to(&self) -> Option<SocketAddr> {
        self.connection.as_ref().map(|c| c.addr())
    }

    /// `PING`: checks that some node answers.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        match self.run("PING", vec![b"PING".to_vec()])? {
            Reply::Simple(_) | Reply::Bulk(Some(_)) => Ok(()),
            other => Err(unexpected("PING", &other)),
        }
    }

    /// `GET key`: the value, or `None` if the key does not exist. Linearizable.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        match self.run("GET", vec![b"GET".to_vec(), key.as_ref().to_vec()])? {
            Reply::Bulk(value) => Ok(value),
            other => Err(unexpected("GET", &other)),
        }
    }

    /// `SET key value`.
    pub fn set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let args = vec![
            b"SET".to_vec(),
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ];
        match self.run("SET", args)? {
            Reply::Simple(_) => Ok(()),
            other => Err(unexpected("SET", &other)),
        }
    }

    /// `DEL key...`: how many of the keys existed.
    pub fn del<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<u64, ClientError> {
        self.integer_with_keys("DEL", keys)
    }

    /// `EXISTS key...`: how many of the keys exist (a key named twice counts twice).
    pub fn exists<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<u64, ClientError> {
        self.integer_with_keys("EXISTS", keys)
    }

    /// `INCR key`: the value after the increment.
    pub fn incr(&mut self, key: impl AsRef<[u8]>) -> Result<i64, ClientError> {
        self.integer("INCR", vec![b"INCR".to_vec(), key.as_ref().to_vec()])
    }

    /// `INCRBY key delta`: the value after the increment.
    pub fn incrby(&mut self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64, ClientError> {
        let args = vec![
            b"INCRBY".to_vec(),
            key.as_ref().to_vec(),
            delta.to_string().into_bytes(),
        ];
        self.integer("INCRBY", args)
    }

    /// `APPEND key value`: the value's length after appending.
    pub fn append(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<u64, ClientError> {
        let args = vec![
            b"APPEND".to_vec(),
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ];
        let length = self.integer("APPEND", args)?;
        Ok(length.max(0) as u64)
    }

    /// `MGET key...`: each key's value or `None`, in order.
    pub fn mget<K: AsRef<[u8]>>(
        &mut self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, ClientError> {
        let mut args = vec![b"MGET".to_vec()];
        args.extend(keys.iter().map(|k| k.as_ref().to_vec()));
        match self.run("MGET", args)? {
            Reply::Array(Some(items)) if items.len() == keys.len() => items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(value) => Ok(value),
                    other => Err(unexpected("MGET", &other)),
                })
                .collect(),
            other => Err(unexpected("MGET", &other)),
        }
    }

    /// `MSET key value ...`: sets every pair, atomically.
    pub fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        pairs: &[(K, V)],
    ) -> Result<(), ClientError> {
        let mut args = vec![b"MSET".to_vec()];
        for (key, value) in pairs {
            args.push(key.as_ref().to_vec());
            args.push(value.as_ref().to_vec());
        }
        match self.run("MSET", args)? {
            Reply::Simple(_) => Ok(()),
            other => Err(unexpected("MSET", &other)),
        }
    }

    /// `DBSIZE`: the number of keys.
    pub fn dbsize(&mut self) -> Result<u64, ClientError> {
        let n = self.integer("DBSIZE", vec![b"DBSIZE".to_vec()])?;
        Ok(n.max(0) as u64)
    }

    /// `INFO`: the node's `field:value` report (role, term, leader, commit and applied index,
    /// ...), from whichever node the client is connected to.
    pub fn info(&mut self) -> Result<String, ClientError> {
        match self.run("INFO", vec![b"INFO".to_vec()])? {
            Reply::Bulk(Some(text)) => Ok(String::from_utf8_lossy(&text).into_owned()),
            other => Err(unexpected("INFO", &other)),
        }
    }

    /// Any command, e.g. `client.command(&[b"SET", b"k", b"v", b"NX"])`. Writes (by command
    /// name) go with the session like the typed methods; an error reply becomes
    /// [`ClientError::Server`].
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        let Some(name) = args.first() else {
            return Err(ClientError::InvalidArgument("empty command".to_string()));
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        self.run(&name, args)
    }

    /// Sends `commands` in one batch (pipelining) and returns one result per command, in
    /// order. Failed commands are retried as in single calls; writes keep their sequence
    /// numbers, so each applies at most once.
    pub fn pipeline<A: AsRef<[u8]>>(
        &mut self,
        commands: &[Vec<A>],
    ) -> Vec<Result<Reply, ClientError>> {
        let calls: Vec<Call> = commands
            .iter()
            .map(|args| self.call(args.iter().map(|a| a.as_ref().to_vec()).collect()))
            .collect();
        self.execute(calls)
    }

    fn integer(&mut self, name: &str, args: Vec<Vec<u8>>) -> Result<i64, ClientError> {
        match self.run(name, args)? {
            Reply::Integer(n) => Ok(n),
            other => Err(unexpected(name, &other)),
        }
    }

    fn integer_with_keys<K: AsRef<[u8]>>(
        &mut self,
        name: &str,
        keys: &[K],
    ) -> Result<u64, ClientError> {
        let mut args = vec![name.as_bytes().to_vec()];
        args.extend(keys.iter().map(|k| k.as_ref().to_vec()));
        let n = self.integer(name, args)?;
        Ok(n.max(0) as u64)
    }

    fn run(&mut self, name: &str, args: Vec<Vec<u8>>) -> Result<Reply, ClientError> {
        let call = self.call(args);
        let result = self.execute(vec![call]).pop();
        result.unwrap_or_else(|| {
            Err(ClientError::NotApplied {
                command: name.to_string(),
                attempts: 0,
                reason: "no result".to_string(),
            })
        })
    }

    fn call(&mut self, args: Vec<Vec<u8>>) -> Call {
        let seq = is_write(&args).then(|| self.session.next_seq());
        let slot = match request_slot(&args) {
            RequestSlot::Slot(slot) => Some(slot),
            // Any node answers these alike: keyless, or refused as CROSSSLOT.
            RequestSlot::NoKeys | RequestSlot::CrossSlot => None,
        };
        Call { args, seq, slot }
    }

    /// The retry loop. Bounds: `attempts_max` rounds and `retry_time_max`; each round sends
    /// every unanswered command, those for one node in one batch, and reads their replies in
    /// order. A command follows at most `REDIRECTS_MAX` `-MOVED` replies.
    fn execute(&mut self, mut calls: Vec<Call>) -> Vec<Result<Reply, ClientError>> {
        let started = Instant::now();
        let deadline = started + self.options.retry_time_max;
        let count = calls.len();
        let mut results: Vec<Option<Result<Reply, ClientError>>> =
            (0..count).map(|_| None).collect();
        let mut tracks = vec![Track::default(); count];
        let mut pending: Vec<usize> = (0..count).collect();
        let mut attempts = 0u32;
        let mut backoff = self.options.backoff_initial;
        let mut round = Round::default();
        while !pending.is_empty() {
            let now = Instant::now();
            if attempts >= self.options.attempts_max || (attempts > 0 && now >= deadline) {
                break;
            }
            // A redirect names the node to ask: going there at once is no load on a
            // struggling cluster, unlike a retry after a refusal or a failure.
            if attempts > 0 && round.failed {
                std::thread::sleep(backoff.min(deadline.saturating_duration_since(now)));
                backoff = (backoff * 2).min(self.options.backoff_max);
            }
            attempts += 1;
            self.stats.attempts += 1;
            if attempts > 1 {
                self.stats.retries += 1;
            }
            if self.slots_stale {
                self.refresh_slots();
            }
            // Every write below the first pending one has been answered or given up.
            let in_flight_from = pending
                .iter()
                .filter_map(|&i| calls[i].seq)
                .min()
                .unwrap_or_else(|| self.session.peek_seq());
            let mut groups: Vec<(Route, Vec<usize>)> = Vec::new();
            for &i in &pending {
                let route = self.route(&calls[i], &tracks[i]);
                match groups.iter_mut().find(|(r, _)| *r == route) {
                    Some((_, group)) => group.push(i),
                    None => groups.push((route, vec![i])),
                }
            }
            round = Round::default();
            for (route, group) in groups {
                self.send_group(
                    route,
                    &group,
                    &calls,
                    in_flight_from,
                    attempts,
                    &mut tracks,
                    &mut results,
                    &mut round,
                );
            }
            if round.renew_session {
                // Nothing of the old session is applied any more; new numbers, same commands.
                self.session.renew();
                for &i in &round.unanswered {
                    if calls[i].seq.is_some() {
                        calls[i].seq = Some(self.session.next_seq());
                    }
                }
            }
            pending = std::mem::take(&mut round.unanswered);
            pending.sort_unstable();
        }
        for i in pending {
            let command = command_name(&calls[i].args);
            let reason = round.last_reason.clone();
            results[i] = Some(Err(give_up(
                command,
                attempts,
                reason,
                tracks[i].maybe_applied,
            )));
        }
        results
            .into_iter()
            .map(|r| r.expect("every command answered or given up"))
            .collect()
    }

    /// Where `call` goes this round: where a redirect sent it, else to its slot's master,
    /// else (no table, no key, a master that failed it) to the any-node failover.
    fn route(&self, call: &Call, track: &Track) -> Route {
        if let Some(addr) = track.moved_to {
            return Route::Node(addr);
        }
        if track.fallback {
            return Route::Any;
        }
        match (&self.slots, call.slot) {
            (Some(table), Some(slot)) => table.master_of(slot).map_or(Route::Any, Route::Node),
            _ => Route::Any,
        }
    }

    /// One round's batch for one node: sends `group`'s commands, reads their replies and
    /// records each one's outcome.
    #[allow(clippy::too_many_arguments)]
    fn send_group(
        &mut self,
        route: Route,
        group: &[usize],
        calls: &[Call],
        in_flight_from: u64,
        attempts: u32,
        tracks: &mut [Track],
        results: &mut [Option<Result<Reply, ClientError>>],
        round: &mut Round,
    ) {
        let mut request = Vec::new();
        let mut resent = 0;
        for &i in group {
            resent += u64::from(tracks[i].maybe_applied);
            match calls[i].seq {
                Some(seq) => {
                    self.session
                        .encode_write(&mut request, seq, in_flight_from, &calls[i].args)
                }
                None => crate::kv::resp::encode_request(&mut request, &calls[i].args),
            }
        }
        let connection = match self.connection_for(route) {
            Ok(connection) => connection,
            Err(reason) => {
                round.last_reason = reason;
                round.failed = true;
                round.unanswered.extend_from_slice(group);
                self.fail_route(route, group, tracks);
                return;
            }
        };
        let addr = connection.addr();
        let mut replies = Vec::with_capacity(group.len());
        let mut broken = None;
        match connection.send(&request) {
            Ok(()) => {
                for _ in group {
                    match connection.read_reply() {
                        Ok(reply) => replies.push(reply),
                        Err(error) => {
                            broken = Some(error.to_string());
                            break;
                        }
                    }
                }
            }
            Err(error) => broken = Some(error.to_string()),
        }
        self.stats.writes_resent_maybe_applied += resent;
        let mut refused = false;
        let read = replies.len();
        for (&i, reply) in group.iter().zip(replies) {
            let track = &mut tracks[i];
            let give_up_maybe_applied = |reply: &Reply| ClientError::MaybeApplied {
                command: command_name(&calls[i].args),
                attempts,
                reason: format!("{addr}: {}", describe(reply)),
            };
            match classify(&reply) {
                Outcome::Done => results[i] = Some(into_result(&calls[i].args, reply)),
                Outcome::Moved(target) => {
                    self.slots_stale = true;
                    track.redirects += 1;
                    if track.redirects > REDIRECTS_MAX {
                        let reason = format!("{addr}: {} (too many redirects)", describe(&reply));
                        let command = command_name(&calls[i].args);
                        results[i] =
                            Some(Err(give_up(command, attempts, reason, track.maybe_applied)));
                    } else {
                        round.last_reason = format!("{addr}: {}", describe(&reply));
                        track.moved_to = Some(target);
                        track.fallback = false;
                        round.unanswered.push(i);
                    }
                }
                Outcome::RetryNotApplied => {
                    round.last_reason = format!("{addr}: {}", describe(&reply));
                    round.unanswered.push(i);
                    refused = true;
                }
                Outcome::RetryMaybeApplied => {
                    round.last_reason = format!("{addr}: {}", describe(&reply));
                    track.maybe_applied |= calls[i].seq.is_some();
                    round.unanswered.push(i);
                    refused = true;
                }
                Outcome::GiveUpMaybeApplied => {
                    results[i] = Some(Err(give_up_maybe_applied(&reply)));
                }
                Outcome::RetrySessionExpired if track.maybe_applied => {
                    // An earlier attempt may have been applied and the session that
                    // would deduplicate a retry is gone: retrying could apply twice.
                    results[i] = Some(Err(give_up_maybe_applied(&reply)));
                }
                Outcome::RetrySessionExpired => {
                    round.last_reason = format!("{addr}: {}", describe(&reply));
                    round.unanswered.push(i);
                    round.renew_session = true;
                }
            }
        }
        if let Some(error) = broken {
            round.last_reason = format!("{addr}: {error}");
            for &i in &group[read..] {
                tracks[i].maybe_applied |= calls[i].seq.is_some();
                round.unanswered.push(i);
            }
            refused = true;
        }
        if refused {
            round.failed = true;
            let retried: Vec<usize> = group
                .iter()
                .copied()
                .filter(|&i| results[i].is_none() && tracks[i].moved_to.is_none_or(|a| a == addr))
                .collect();
            self.fail_route(route, &retried, tracks);
        }
    }

    /// After `route` failed `group` (refused, timed out or lost the connection): the any-node
    /// failover moves to the next node; a master's commands go to the failover next, as the
    /// node that forwards or redirects them knows better than this client's table.
    fn fail_route(&mut self, route: Route, group: &[usize], tracks: &mut [Track]) {
        match route {
            Route::Any => self.drop_connection(),
            Route::Node(addr) => {
                self.pool.retain(|c| c.addr() != addr);
                if self.connected_to() == Some(addr) {
                    self.drop_connection();
                }
                self.slots_stale = true;
                for &i in group {
                    tracks[i].moved_to = None;
                    tracks[i].fallback = true;
                }
            }
        }
    }

    /// The connection for `route`, opened if need be. Connections to masters are cached, at
    /// most one per known node; the any-node connection serves a master it happens to reach.
    fn connection_for(&mut self, route: Route) -> Result<&mut Connection, String> {
        let addr = match route {
            Route::Any => {
                self.ensure_connected()?;
                return Ok(self.connection.as_mut().expect("connected above"));
            }
            Route::Node(addr) => addr,
        };
        if self.connected_to() == Some(addr) {
            return Ok(self.connection.as_mut().expect("connected to addr"));
        }
        if let Some(index) = self.pool.iter().position(|c| c.addr() == addr) {
            return Ok(&mut self.pool[index]);
        }
        let connection =
            Connection::open(addr, self.options.connect_timeout, self.options.io_timeout)
                .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
        self.stats.connections_opened += 1;
        let nodes = self
            .addrs
            .len()
            .max(self.slots.as_ref().map_or(0, SlotTable::master_count));
        while self.pool.len() >= nodes.clamp(1, POOL_MAX) {
            // The oldest is likeliest a master that lost its leadership since.
            self.pool.remove(0);
        }
        self.pool.push(connection);
        Ok(self.pool.last_mut().expect("pushed"))
    }

    /// Reads the slot map again through the any-node connection: one request, no retry (a
    /// failure leaves the old map, which later rounds correct). An empty or error reply, as
    /// during an election, leaves the old map too.
    fn refresh_slots(&mut self) {
        self.slots_stale = false;
        if !self.options.slot_aware {
            return;
        }
        if self.ensure_connected().is_err() {
            self.next_node();
            return;
        }
        let connection = self.connection.as_mut().expect("connected above");
        let mut request = Vec::new();
        crate::kv::resp::encode_request(&mut request, &[b"CLUSTER".as_slice(), b"SLOTS"]);
        let reply = connection
            .send(&request)
            .and_then(|()| connection.read_reply());
        match reply {
            Ok(reply) => {
                if let Some(table) = SlotTable::parse(&reply) {
                    self.slots = Some(table);
                }
            }
            Err(_) => self.drop_connection(),
        }
    }

    fn ensure_connected(&mut self) -> Result<(), String> {
        if self.connection.is_some() {
            return Ok(());
        }
        let target = &self.addrs[self.current];
        let addr = target
            .to_socket_addrs()
            .map_err(|e| format!("{target}: cannot resolve: {e}"))?
            .next()
            .ok_or_else(|| format!("{target}: resolves to no address"))?;
        let connection =
            Connection::open(addr, self.options.connect_timeout, self.options.io_timeout)
                .map_err(|e| format!("{target}: cannot connect: {e}"))?;
        self.connection = Some(connection);
        self.stats.connections_opened += 1;
        Ok(())
    }

    /// Forgets the connection and moves on to the next node.
    fn drop_connection(&mut self) {
        self.connection = None;
        self.next_node();
    }

    fn next_node(&mut self) {
        self.current = (self.current + 1) % self.addrs.len();
    }
}

fn is_write(args: &[Vec<u8>]) -> bool {
    args.first().is_some_and(|name| {
        WRITE_COMMANDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(name))
    })
}

fn classify(reply: &Reply) -> Outcome {
    match reply.error_code() {
        Some("MOVED") => match parse_moved(&describe(reply)[1..]) {
            Some((_, addr)) => Outcome::Moved(addr),
            // A redirect without a usable address: another node may serve it.
            None => Outcome::RetryNotApplied,
        },
        Some("TRYAGAIN") => Outcome::RetryNotApplied,
        Some("TIMEOUT") => Outcome::RetryMaybeApplied,
        Some(_) if session_expired(&describe(reply)) => Outcome::RetrySessionExpired,
        Some(_) if describe(reply).contains("may have been applied") => Outcome::GiveUpMaybeApplied,
        _ => Outcome::Done,
    }
}

/// The error a command ends with once the retry budget is spent.
fn give_up(command: String, attempts: u32, reason: String, maybe_applied: bool) -> ClientError {
    if maybe_applied {
        ClientError::MaybeApplied {
            command,
            attempts,
            reason,
        }
    } else {
        ClientError::NotApplied {
            command,
            attempts,
            reason,
        }
    }
}

fn session_expired(text: &str) -> bool {
    text.contains("session expired")
}

fn into_result(args: &[Vec<u8>], reply: Reply) -> Result<Reply, ClientError> {
    match reply {
        Reply::Error(message) => Err(ClientError::Server {
            command: command_name(args),
            message,
        }),
        reply => Ok(reply),
    }
}

fn command_name(args: &[Vec<u8>]) -> String {
    args.first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default()
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Error(text) => format!("-{text}"),
        other => format!("{other:?}"),
    }
}

fn unexpected(name: &str, reply: &Reply) -> ClientError {
    ClientError::UnexpectedReply {
        command: name.to_string(),
        reply: describe(reply),
    }
}

/// The backoff sequence the retry loop sleeps, for documentation and tests.
#[cfg(test)]
fn backoff_sequence(options: &ClientOptions, attempts: u32) -> Vec<std::time::Duration> {
    let mut backoff = options.backoff_initial;
    (1..attempts)
        .map(|_| {
            let this = backoff;
            backoff = (backoff * 2).min(options.backoff_max);
            this
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn writes_are_recognized_by_name_in_any_case() {
        assert!(is_write(&[b"set".to_vec(), b"k".to_vec()]));
        assert!(is_write(&[b"IncrBy".to_vec()]));
        assert!(!is_write(&[b"GET".to_vec()]));
        assert!(!is_write(&[]));
    }

    #[test]
    fn error_replies_are_classified_by_the_error_rule() {
        let error = |s: &str| Reply::Error(s.to_string());
        assert!(matches!(
            classify(&error("TRYAGAIN no leader")),
            Outcome::RetryNotApplied
        ));
        assert!(matches!(
            classify(&error("TIMEOUT commit")),
            Outcome::RetryMaybeApplied
        ));
        assert!(matches!(
            classify(&error(
                "ERR result of sequence number 3 no longer held; the write may have been applied"
            )),
            Outcome::GiveUpMaybeApplied
        ));
        assert!(matches!(
            classify(&error(
                "ERR session expired or evicted; the write was not applied"
            )),
            Outcome::RetrySessionExpired
        ));
        assert!(matches!(
            classify(&error("ERR not an integer")),
            Outcome::Done
        ));
        assert!(matches!(classify(&Reply::Integer(1)), Outcome::Done));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let options = ClientOptions {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(35),
            ..ClientOptions::default()
        };
        let ms: Vec<u128> = backoff_sequence(&options, 5)
            .iter()
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(ms, [10, 20, 35, 35]);
    }

    fn fast_options() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_millis(200),
            io_timeout: Duration::from_millis(500),
            attempts_max: 4,
            retry_time_max: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            slot_aware: false,
        }
    }

    /// A node that answers every request with the next canned reply, one request per read.
    fn scripted_node(
        replies: Vec<&'static [u8]>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut seen = Vec::new();
            for reply in replies {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                stream.write_all(reply).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn a_write_refused_with_tryagain_is_retried_with_the_same_sequence_number() {
        let (addr, node) = scripted_node(vec![b"+PONG\r\n", b"-TRYAGAIN no leader\r\n"]);
        // The second node answers the retried write.
        let (addr2, node2) = scripted_node(vec![b":7\r\n"]);
        let mut client = Client::connect_with(&[addr, addr2], fast_options()).unwrap();
        assert_eq!(client.incr("n").unwrap(), 7);
        let first = String::from_utf8_lossy(&node.join().unwrap()).into_owned();
        let second = String::from_utf8_lossy(&node2.join().unwrap()).into_owned();
        let tag = format!("{}\r\n$1\r\n1\r\n", client.session_id());
        // TRYAGAIN: refused, not applied, so the resend is not a maybe-applied one.
        assert_eq!(client.stats().writes_resent_maybe_applied, 0);
        assert!(client.stats().retries >= 1);
        assert!(
            first.contains(&tag),
            "first attempt carries seq 1: {first:?}"
        );
        assert!(
            second.contains(&tag),
            "retry carries seq 1 again: {second:?}"
        );
    }

    #[test]
    fn a_write_whose_node_vanishes_is_maybe_applied_and_a_read_not_applied() {
        let (addr, node) = scripted_node(vec![b"+PONG\r\n", b""]);
        let mut client = Client::connect_with(&[addr], fast_options()).unwrap();
        let error = client.set("k", "v").unwrap_err();
        assert!(error.is_maybe_applied(), "{error}");
        node.join().unwrap();
        let error = client.get("k").unwrap_err();
        assert!(error.is_not_applied(), "{error}");
    }

    #[test]
    fn an_error_result_is_a_server_error_not_a_retry() {
        let (addr, node) = scripted_node(vec![
            b"+PONG\r\n",
            b"-ERR value is not an integer or out of range\r\n",
        ]);
        let mut client = Client::connect_with(&[addr], fast_options()).unwrap();
        let error = client.incr("k").unwrap_err();
        assert!(
            matches!(&error, ClientError::Server { message, .. } if message.starts_with("ERR value")),
            "{error}"
        );
        node.join().unwrap();
    }

    #[test]
    fn an_expired_session_is_replaced_and_the_write_retried_under_the_new_one() {
        let (addr, node) = scripted_node(vec![
            b"+PONG\r\n",
            b"-ERR session expired or evicted; the write was not applied: use a new session\r\n",
            b"+OK\r\n",
        ]);
        let mut client = Client::connect_with(&[addr], fast_options()).unwrap();
        let old = client.session_id();
        client.set("k", "v").unwrap();
        let new = client.session_id();
        assert_ne!(old, new);
        let seen = String::from_utf8_lossy(&node.join().unwrap()).into_owned();
        assert!(seen.contains(&old.to_string()), "{seen:?}");
        assert!(seen.contains(&new.to_string()), "{seen:?}");
    }

    #[test]
    fn a_result_the_server_no_longer_holds_is_maybe_applied_without_retry() {
        let (addr, node) = scripted_node(vec![
            b"+PONG\r\n",
            b"-ERR result of sequence number 1 no longer held; the write may have been applied\r\n",
        ]);
        let mut client = Client::connect_with(&[addr], fast_options()).unwrap();
        let error = client.incr("n").unwrap_err();
        assert!(error.is_maybe_applied(), "{error}");
        assert_eq!(client.stats().retries, 0);
        node.join().unwrap();
    }

    #[test]
    fn no_addresses_is_an_invalid_argument() {
        let none: [&str; 0] = [];
        assert!(matches!(
            Client::connect(&none),
            Err(ClientError::InvalidArgument(_))
        ));
    }

    /// `CLUSTER SLOTS` naming `master` for every slot, as a canned reply.
    fn all_slots_at(master: SocketAddr) -> &'static [u8] {
        let reply = slot_table::tests::slots_reply(&[(0, 16383, master.port())]);
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        Box::leak(bytes.into_boxed_slice())
    }

    fn slot_aware_options() -> ClientOptions {
        ClientOptions {
            slot_aware: true,
            ..fast_options()
        }
    }

    /// A port nothing listens on.
    fn dead_addr() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn a_keyed_command_goes_to_its_master_and_follows_moved_without_surfacing_it() {
        // The map is read once from A, which first names B and after the redirect itself.
        let listener_a = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr_a = listener_a.local_addr().unwrap();
        drop(listener_a);
        let moved: &'static [u8] = Box::leak(
            format!("-MOVED 12539 {addr_a}\r\n")
                .into_bytes()
                .into_boxed_slice(),
        );
        let (addr_b, node_b) = scripted_node(vec![moved]);
        let listener_a = TcpListener::bind(addr_a).unwrap();
        let slots_b = all_slots_at(addr_b);
        let slots_a = all_slots_at(addr_a);
        let node_a = std::thread::spawn(move || {
            let (mut stream, _) = listener_a.accept().unwrap();
            let mut seen = Vec::new();
            for reply in [b"+PONG\r\n".as_slice(), slots_b, slots_a, b"$1\r\nv\r\n"] {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                stream.write_all(reply).unwrap();
            }
            seen
        });
        let mut client = Client::connect_with(&[addr_a], slot_aware_options()).unwrap();
        assert_eq!(client.get("k").unwrap(), Some(b"v".to_vec()));
        let at_a = String::from_utf8_lossy(&node_a.join().unwrap()).into_owned();
        let at_b = String::from_utf8_lossy(&node_b.join().unwrap()).into_owned();
        assert!(at_b.contains("GET"), "{at_b:?}");
        assert_eq!(at_a.matches("SLOTS").count(), 2, "{at_a:?}");
        assert!(at_a.ends_with("$3\r\nGET\r\n$1\r\nk\r\n"), "{at_a:?}");
        assert_eq!(client.stats().connections_opened, 2);
    }

    #[test]
    fn a_write_whose_master_is_unreachable_goes_through_the_failover_once() {
        let dead = dead_addr();
        let slots = all_slots_at(dead);
        let (addr, node) = scripted_node(vec![b"+PONG\r\n", slots, slots, b"+OK\r\n"]);
        let mut client = Client::connect_with(&[addr], slot_aware_options()).unwrap();
        client.set("k", "v").unwrap();
        let seen = String::from_utf8_lossy(&node.join().unwrap()).into_owned();
        assert_eq!(seen.matches("KETCH.WRITE").count(), 1, "{seen:?}");
        assert_eq!(client.stats().writes_resent_maybe_applied, 0);
    }

    #[test]
    fn without_a_slot_map_everything_goes_to_one_node() {
        let (addr, node) = scripted_node(vec![
            b"+PONG\r\n",
            b"-ERR unknown command 'CLUSTER'\r\n",
            b":3\r\n",
        ]);
        let mut client = Client::connect_with(&[addr], slot_aware_options()).unwrap();
        assert_eq!(client.incr("n").unwrap(), 3);
        assert_eq!(client.stats().connections_opened, 1);
        node.join().unwrap();
    }

    #[test]
    fn redirects_are_bounded() {
        let (addr, node) = scripted_node(vec![b"+PONG\r\n", b"*0\r\n"]);
        let mut client = Client::connect_with(&[addr], slot_aware_options()).unwrap();
        node.join().unwrap();
        // A node that redirects every request to itself, and answers the map read empty.
        let listener = TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let moved = format!("-MOVED 12539 {addr}\r\n");
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let reply = if text.contains("SLOTS") {
                    "*0\r\n"
                } else {
                    moved.as_str()
                };
                if stream.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let options = ClientOptions {
            attempts_max: 100,
            ..slot_aware_options()
        };
        client.options = options;
        let error = client.get("k").unwrap_err();
        assert!(error.is_not_applied(), "{error}");
        assert!(error.to_string().contains("too many redirects"), "{error}");
        // PING, one round that finds the first script's connection closed, then one per
        // redirect and the one that gives up: far below the 100 attempts allowed.
        assert_eq!(
            client.stats().attempts,
            1 + 1 + u64::from(REDIRECTS_MAX) + 1
        );
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_pipeline_goes_as_one_batch_per_master_and_answers_in_order() {
        assert_eq!(crate::kv::cluster::key_slot(b"bar"), 5061);
        assert_eq!(crate::kv::cluster::key_slot(b"foo"), 12182);
        let (addr_b, node_b) = scripted_node(vec![b"$-1\r\n"]);
        let listener_a = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr_a = listener_a.local_addr().unwrap();
        let reply = slot_table::tests::slots_reply(&[
            (0, 8191, addr_a.port()),
            (8192, 16383, addr_b.port()),
        ]);
        let mut slots = Vec::new();
        reply.encode(&mut slots);
        let node_a = std::thread::spawn(move || {
            let (mut stream, _) = listener_a.accept().unwrap();
            let mut seen = Vec::new();
            for reply in [b"+PONG\r\n".as_slice(), &slots, b"+OK\r\n$1\r\n1\r\n"] {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                stream.write_all(reply).unwrap();
            }
            seen
        });
        let mut client = Client::connect_with(&[addr_a], slot_aware_options()).unwrap();
        let commands: Vec<Vec<&str>> = vec![
            vec!["SET", "bar", "1"],
            vec!["GET", "foo"],
            vec!["GET", "bar"],
        ];
        let results = client.pipeline(&commands);
        assert_eq!(results[0], Ok(Reply::Simple("OK".to_string())));
        assert_eq!(results[1], Ok(Reply::Bulk(None)));
        assert_eq!(results[2], Ok(Reply::Bulk(Some(b"1".to_vec()))));
        assert_eq!(client.stats().retries, 0);
        let at_a = String::from_utf8_lossy(&node_a.join().unwrap()).into_owned();
        let at_b = String::from_utf8_lossy(&node_b.join().unwrap()).into_owned();
        assert!(at_a.contains("KETCH.WRITE") && at_a.contains("$3\r\nGET\r\n$3\r\nbar"));
        assert!(!at_a.contains("foo"), "{at_a:?}");
        assert_eq!(at_b, "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n");
    }
}
