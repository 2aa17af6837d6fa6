//! `MULTI`, `EXEC`, `DISCARD`, `WATCH` and `UNWATCH`: one connection's transaction state.
//!
//! # How a transaction runs
//!
//! Between `MULTI` and `EXEC` the connection queues commands here and answers `+QUEUED`;
//! nothing reaches the node. `EXEC` proposes the whole queue as one write item
//! ([`Operation::Transaction`]), so the state machine runs every command of it at one log
//! index, with no other client's command in between, or none of them: a crash, a failover or
//! a retry never applies part of a transaction, and the item's session number makes a resent
//! `EXEC` apply once. Reads inside the transaction (`GET` between `MULTI` and `EXEC`) are run
//! by the state machine at that index too, so they see the transaction's own earlier writes.
//!
//! # WATCH
//!
//! `WATCH key...` is a linearizable read of the keys' revisions (the log index that last
//! changed each key, 0 when absent; see `state::keyspace`). `EXEC` carries the revisions
//! seen, and the state machine runs the transaction only if every watched key still has
//! them; otherwise nothing runs and the reply is a null array, as in Redis. If the revision
//! read fails (no leader), `WATCH` answers the error and the keys are recorded with a
//! revision no key has, so the next `EXEC` aborts rather than run unwatched. `EXEC` and
//! `DISCARD` forget the watches; so does `UNWATCH`.
//!
//! # What is checked when
//!
//! As in Redis 7, a command is refused while queuing if it is unknown or has the wrong number
//! of arguments; the refusal marks the transaction, and `EXEC` then answers `EXECABORT` and
//! runs nothing. Everything else (syntax, types, integers) is answered inside `EXEC`'s array
//! by the command itself. Ketch also refuses, with the same effect, commands it cannot run
//! inside the state machine: local commands other than `PING` and `ECHO` (whose replies do
//! not depend on the time they run, so they are computed when queued), admin commands,
//! `KETCH.WRITE`, and a queue that would not fit in one log entry
//! ([`ServerConfig::write_bytes_max`]). Nested `MULTI`, `WATCH` inside `MULTI`, `EXEC` and
//! `DISCARD` without `MULTI` answer Redis's errors without marking anything.
//!
//! # Replies
//!
//! The state machine answers `EXEC` with one RESP2 array of its commands' replies. The
//! connection splices the queued local replies back in at their places and, under RESP3,
//! converts each element by its own command's reply shape (an `HGETALL` inside `EXEC` is a
//! map), in [`ExecReply::finish`].

use super::command_table::reply_shape;
use super::config::ServerConfig;
use super::local_commands::{pure_local_reply, LOCAL_COMMANDS};
use super::parse::{arity_error, kind_of, parse_read, parse_write, size_refusal, Kind};
use super::resp3_reply::{resp2_to_resp3, ReplyShape};
use crate::kv::command::Operation;
use crate::kv::resp::{
    write_array_header, write_error, Frame, Limits, Protocol, Reply, ReplyParser, Request,
};
use crate::kv::server::parse::unknown_command_text;

/// `EXEC` after a refused command.
pub(super) const EXECABORT_TEXT: &str =
    "EXECABORT Transaction discarded because of previous errors.";

/// The revision recorded for a key whose `WATCH` read failed: no key ever has it (revisions
/// are log indexes), so the next `EXEC` aborts.
const REVISION_UNKNOWN: u64 = u64::MAX;

/// A transaction command, which the connection runs itself (never queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

impl Control {
    /// The control command `name` is, if any. `UNWATCH` inside `MULTI` is queued instead
    /// (Redis runs it at `EXEC`, after the watches were checked, so it only answers `+OK`).
    pub(super) fn of(name: &[u8], in_multi: bool) -> Option<Control> {
        let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
        Some(if is("multi") {
            Control::Multi
        } else if is("exec") {
            Control::Exec
        } else if is("discard") {
            Control::Discard
        } else if is("watch") {
            Control::Watch
        } else if is("unwatch") && !in_multi {
            Control::Unwatch
        } else {
            return None;
        })
    }

    fn name(self) -> &'static str {
        match self {
            Control::Multi => "multi",
            Control::Exec => "exec",
            Control::Discard => "discard",
            Control::Watch => "watch",
            Control::Unwatch => "unwatch",
        }
    }

    /// Whether `argc` words (the name included) are what the command takes.
    fn arity_ok(self, argc: usize) -> bool {
        match self {
            Control::Watch => argc >= 2,
            _ => argc == 1,
        }
    }
}

/// One queued command.
#[derive(Debug)]
enum Queued {
    /// Run by the state machine at `EXEC`; its RESP3 form by `shape`.
    Machine { request: Request, shape: ReplyShape },
    /// A reply computed when queued (`PING`, `ECHO`, `UNWATCH`), in the connection's protocol.
    Local(Vec<u8>),
}

/// The queue between `MULTI` and `EXEC`.
#[derive(Debug, Default)]
struct Queue {
    items: Vec<Queued>,
    /// A command was refused while queuing: `EXEC` answers `EXECABORT`.
    refused: bool,
    /// What the queued machine commands add to the write item, encoded.
    encoded_bytes: usize,
}

/// A connection's transaction state: its queue while in `MULTI`, and its watched keys.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    queue: Option<Queue>,
    /// Watched keys with the revision read for each (module docs).
    watches: Vec<(Vec<u8>, u64)>,
    /// The bytes of the watched keys, bounded by the entry size.
    watched_bytes: usize,
}

/// What `dispatch` does with a control command.
#[derive(Debug)]
pub(super) enum ControlStep {
    /// Answer this error or simple reply at once (already encoded).
    Reply(Vec<u8>),
    /// Read these keys' revisions (a `WATCH`); the reply goes through [`Transaction::watched`].
    ReadRevisions(Vec<Vec<u8>>),
    /// Propose this transaction (an `EXEC` with machine commands or watches), and finish its
    /// reply so.
    Propose(ExecPlan, ExecReply),
}

/// An `EXEC` to propose: the queue's machine commands and the watches.
#[derive(Debug)]
pub(super) struct ExecPlan {
    requests: Vec<Request>,
    watches: Vec<(Vec<u8>, u64)>,
}

impl ExecPlan {
    /// The write item: borrows the plan's words.
    pub(super) fn operation(&self) -> Operation<'_> {
        Operation::Transaction {
            watches: self
                .watches
                .iter()
                .map(|(key, revision)| (&key[..], *revision))
                .collect(),
            commands: self
                .requests
                .iter()
                .map(|request| request.iter().map(|word| &word[..]).collect())
                .collect(),
        }
    }
}

/// One element of `EXEC`'s reply.
#[derive(Debug, Clone)]
enum Element {
    /// The next reply of the state machine's array, shaped for RESP3 by this.
    Machine(ReplyShape),
    /// A reply computed when queued.
    Local(Vec<u8>),
}

/// How the state machine's reply to an `EXEC` becomes the client's (module docs).
#[derive(Debug, Clone)]
pub(super) struct ExecReply {
    elements: Vec<Element>,
    protocol: Protocol,
}

fn encoded(frame: Frame, protocol: Protocol) -> Vec<u8> {
    frame.to_bytes(protocol)
}

fn error_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 3);
    write_error(&mut out, text);
    out
}

impl Transaction {
    /// Whether the connection is between `MULTI` and `EXEC`/`DISCARD`.
    pub(super) fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// Runs a control command; `protocol` is the connection's.
    pub(super) fn control(
        &mut self,
        control: Control,
        request: &Request,
        protocol: Protocol,
        config: &ServerConfig,
    ) -> ControlStep {
        if !control.arity_ok(request.len()) {
            // As Redis: an arity error while queuing marks the transaction.
            if let Some(queue) = &mut self.queue {
                queue.refused = true;
            }
            return ControlStep::Reply(error_bytes(&arity_error(control.name())));
        }
        let ok = || ControlStep::Reply(b"+OK\r\n".to_vec());
        match control {
            Control::Multi => {
                if self.queue.is_some() {
                    return ControlStep::Reply(error_bytes("ERR MULTI calls can not be nested"));
                }
                self.queue = Some(Queue::default());
                ok()
            }
            Control::Discard => {
                if self.queue.take().is_none() {
                    return ControlStep::Reply(error_bytes("ERR DISCARD without MULTI"));
                }
                self.unwatch();
                ok()
            }
            Control::Unwatch => {
                self.unwatch();
                ok()
            }
            Control::Watch => {
                if self.queue.is_some() {
                    return ControlStep::Reply(error_bytes(
                        "ERR WATCH inside MULTI is not allowed",
                    ));
                }
                let added: usize = request[1..].iter().map(|key| key.len() + 12).sum();
                if self.watched_bytes + added > config.write_bytes_max() / 2 {
                    return ControlStep::Reply(error_bytes(&format!(
                        "ERR WATCH: too many watched keys ({} bytes with these; limit {})",
                        self.watched_bytes + added,
                        config.write_bytes_max() / 2
                    )));
                }
                ControlStep::ReadRevisions(request[1..].to_vec())
            }
            Control::Exec => {
                let Some(queue) = self.queue.take() else {
                    return ControlStep::Reply(error_bytes("ERR EXEC without MULTI"));
                };
                let watches = std::mem::take(&mut self.watches);
                self.watched_bytes = 0;
                if queue.refused {
                    return ControlStep::Reply(error_bytes(EXECABORT_TEXT));
                }
                let mut requests = Vec::new();
                let mut elements = Vec::with_capacity(queue.items.len());
                for item in queue.items {
                    match item {
                        Queued::Machine { request, shape } => {
                            requests.push(request);
                            elements.push(Element::Machine(shape));
                        }
                        Queued::Local(reply) => elements.push(Element::Local(reply)),
                    }
                }
                let reply = ExecReply { elements, protocol };
                if requests.is_empty() && watches.is_empty() {
                    // Nothing for the state machine to run or check.
                    return ControlStep::Reply(reply.finish(b"*0\r\n"));
                }
                let plan = ExecPlan { requests, watches };
                if let Some(text) = size_refusal(&plan.operation(), config) {
                    return ControlStep::Reply(error_bytes(&text));
                }
                ControlStep::Propose(plan, reply)
            }
        }
    }

    /// Queues a request while in `MULTI` and returns its immediate reply: `+QUEUED`, or the
    /// refusal that marks the transaction (module docs).
    pub(super) fn queue(
        &mut self,
        request: Request,
        protocol: Protocol,
        config: &ServerConfig,
    ) -> Vec<u8> {
        let queue = self.queue.as_mut().expect("queue is called in MULTI");
        match queued(request, protocol, config, queue.encoded_bytes) {
            Ok((item, bytes)) => {
                queue.encoded_bytes += bytes;
                queue.items.push(item);
                b"+QUEUED\r\n".to_vec()
            }
            Err(text) => {
                queue.refused = true;
                error_bytes(&text)
            }
        }
    }

    /// Records the reply to a `WATCH` of `keys` (the revisions array, or an error) and
    /// returns what the client gets: `+OK`, or the error.
    pub(super) fn watched(&mut self, keys: &[Vec<u8>], reply: &[u8]) -> Vec<u8> {
        let revisions = match ReplyParser::new(Limits::default()).parse(reply) {
            Ok(Some((Reply::Array(Some(items)), _))) if items.len() == keys.len() => items
                .into_iter()
                .map(|item| match item {
                    Reply::Integer(revision) if revision >= 0 => revision as u64,
                    _ => REVISION_UNKNOWN,
                })
                .collect(),
            _ => vec![REVISION_UNKNOWN; keys.len()],
        };
        for (key, revision) in keys.iter().zip(revisions) {
            match self.watches.iter_mut().find(|(watched, _)| watched == key) {
                // The earlier read stands unless it failed: Redis watches from the first
                // WATCH.
                Some((_, seen)) if *seen != REVISION_UNKNOWN => {}
                Some((_, seen)) => *seen = revision,
                None => {
                    self.watched_bytes += key.len() + 12;
                    self.watches.push((key.clone(), revision));
                }
            }
        }
        if reply.first() == Some(&b'-') {
            reply.to_vec()
        } else {
            b"+OK\r\n".to_vec()
        }
    }

    /// Marks the open transaction, if any, as refused: a command was refused before it could
    /// be queued (authentication, ACL), so `EXEC` answers `EXECABORT`.
    pub(super) fn mark_refused(&mut self) {
        if let Some(queue) = &mut self.queue {
            queue.refused = true;
        }
    }

    fn unwatch(&mut self) {
        self.watches.clear();
        self.watched_bytes = 0;
    }
}

/// The queued form of `request` and the bytes it adds to the write item, or the refusal.
fn queued(
    request: Request,
    protocol: Protocol,
    config: &ServerConfig,
    queued_bytes: usize,
) -> Result<(Queued, usize), String> {
    let name = &request[0];
    if name.eq_ignore_ascii_case(b"unwatch") {
        return if request.len() == 1 {
            Ok((Queued::Local(b"+OK\r\n".to_vec()), 0))
        } else {
            Err(arity_error("unwatch"))
        };
    }
    let operation = match kind_of(name) {
        Kind::Write => parse_write(&request)?.expect("kind_of says write"),
        Kind::Read => match parse_read(&request)? {
            Some(_) => Operation::Command(request.iter().map(|word| &word[..]).collect()),
            None => unreachable!("kind_of says read"),
        },
        Kind::Local => {
            if let Some(frame) = pure_local_reply(&request) {
                if let Frame::Error(text) = frame {
                    return Err(text);
                }
                return Ok((Queued::Local(encoded(frame, protocol)), 0));
            }
            let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
            if LOCAL_COMMANDS.contains(&&upper[..]) {
                return Err(format!(
                    "ERR {upper} inside MULTI is not supported by ketch (only commands on keys, PING and ECHO are)"
                ));
            }
            return Err(unknown_command_text(&request));
        }
        Kind::Explicit | Kind::Admin => {
            let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
            return Err(format!(
                "ERR {upper} inside MULTI is not supported by ketch"
            ));
        }
    };
    if let Some(text) = size_refusal(&operation, config) {
        return Err(text);
    }
    let bytes = operation.encoded_bytes();
    // The item's own fields and the watches are checked again, whole, at EXEC.
    if queued_bytes + bytes > config.write_bytes_max() {
        return Err(format!(
            "ERR transaction too large ({} bytes queued with this command; limit {})",
            queued_bytes + bytes,
            config.write_bytes_max()
        ));
    }
    let shape = reply_shape(&request);
    Ok((Queued::Machine { request, shape }, bytes))
}

impl ExecReply {
    /// The client's reply from the state machine's `reply` to the transaction (module docs):
    /// an error (no leader, a timeout) and an aborted transaction's null array pass through
    /// (the null in the connection's protocol).
    pub(super) fn finish(&self, reply: &[u8]) -> Vec<u8> {
        if reply.first() == Some(&b'-') {
            return reply.to_vec();
        }
        if reply.starts_with(b"*-1\r\n") {
            return match self.protocol {
                Protocol::Resp2 => reply.to_vec(),
                Protocol::Resp3 => b"_\r\n".to_vec(),
            };
        }
        let all_machine_resp2 = self.protocol == Protocol::Resp2
            && self
                .elements
                .iter()
                .all(|e| matches!(e, Element::Machine(_)));
        if all_machine_resp2 {
            return reply.to_vec();
        }
        let machine_count = self
            .elements
            .iter()
            .filter(|e| matches!(e, Element::Machine(_)))
            .count();
        let items = match ReplyParser::new(Limits::unbounded()).parse(reply) {
            Ok(Some((Reply::Array(Some(items)), used)))
                if used == reply.len() && items.len() == machine_count =>
            {
                items
            }
            other => {
                debug_assert!(false, "not the transaction's reply: {other:?}");
                return reply.to_vec();
            }
        };
        let mut items = items.into_iter();
        let mut out = Vec::with_capacity(reply.len() + 16);
        write_array_header(&mut out, self.elements.len());
        let mut element_bytes = Vec::new();
        for element in &self.elements {
            match element {
                Element::Local(bytes) => out.extend_from_slice(bytes),
                Element::Machine(shape) => {
                    element_bytes.clear();
                    items.next().expect("counted").encode(&mut element_bytes);
                    match self.protocol {
                        Protocol::Resp2 => out.extend_from_slice(&element_bytes),
                        Protocol::Resp3 => {
                            out.extend_from_slice(&resp2_to_resp3(&element_bytes, *shape))
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(words: &[&str]) -> Request {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn config() -> ServerConfig {
        ServerConfig::default()
    }

    fn reply_of(step: ControlStep) -> String {
        match step {
            ControlStep::Reply(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("not a reply: {other:?}"),
        }
    }

    fn control(tx: &mut Transaction, words: &[&str], protocol: Protocol) -> ControlStep {
        let request = request(words);
        let control = Control::of(&request[0], tx.in_multi()).expect("a control command");
        tx.control(control, &request, protocol, &config())
    }

    #[test]
    fn multi_queue_exec_builds_one_item_with_the_queued_words() {
        let mut tx = Transaction::default();
        assert_eq!(
            reply_of(control(&mut tx, &["MULTI"], Protocol::Resp2)),
            "+OK\r\n"
        );
        let q = |tx: &mut Transaction, words: &[&str]| {
            String::from_utf8(tx.queue(request(words), Protocol::Resp2, &config())).unwrap()
        };
        assert_eq!(q(&mut tx, &["SET", "a", "1"]), "+QUEUED\r\n");
        assert_eq!(q(&mut tx, &["PING"]), "+QUEUED\r\n");
        assert_eq!(q(&mut tx, &["GET", "a"]), "+QUEUED\r\n");
        let ControlStep::Propose(plan, reply) = control(&mut tx, &["EXEC"], Protocol::Resp2) else {
            panic!("EXEC proposes");
        };
        assert!(!tx.in_multi());
        let Operation::Transaction { watches, commands } = plan.operation() else {
            panic!("a transaction item");
        };
        assert!(watches.is_empty());
        assert_eq!(
            commands,
            vec![vec![&b"SET"[..], b"a", b"1"], vec![&b"GET"[..], b"a"]]
        );
        // PING's reply is spliced in at its place.
        assert_eq!(
            reply.finish(b"*2\r\n+OK\r\n$1\r\n1\r\n"),
            b"*3\r\n+OK\r\n+PONG\r\n$1\r\n1\r\n"
        );
        assert_eq!(reply.finish(b"*-1\r\n"), b"*-1\r\n");
        assert_eq!(reply.finish(b"-TRYAGAIN x\r\n"), b"-TRYAGAIN x\r\n");
    }

    #[test]
    fn refusals_while_queuing_abort_exec_and_redis_errors_do_not() {
        let mut tx = Transaction::default();
        assert_eq!(
            reply_of(control(&mut tx, &["EXEC"], Protocol::Resp2)),
            "-ERR EXEC without MULTI\r\n"
        );
        assert_eq!(
            reply_of(control(&mut tx, &["DISCARD"], Protocol::Resp2)),
            "-ERR DISCARD without MULTI\r\n"
        );
        control(&mut tx, &["MULTI"], Protocol::Resp2);
        assert_eq!(
            reply_of(control(&mut tx, &["MULTI"], Protocol::Resp2)),
            "-ERR MULTI calls can not be nested\r\n"
        );
        assert_eq!(
            reply_of(control(&mut tx, &["WATCH", "k"], Protocol::Resp2)),
            "-ERR WATCH inside MULTI is not allowed\r\n"
        );
        // Not refusals: an empty EXEC answers an empty array.
        assert_eq!(
            reply_of(control(&mut tx, &["EXEC"], Protocol::Resp2)),
            "*0\r\n"
        );

        for bad in [
            &["NOSUCH", "x"][..],
            &["SET", "a"],
            &["CLIENT", "LIST"],
            &["PING", "a", "b"],
        ] {
            control(&mut tx, &["MULTI"], Protocol::Resp2);
            let reply = tx.queue(request(bad), Protocol::Resp2, &config());
            assert!(reply.starts_with(b"-ERR "), "{bad:?}");
            tx.queue(request(&["SET", "b", "2"]), Protocol::Resp2, &config());
            assert_eq!(
                reply_of(control(&mut tx, &["EXEC"], Protocol::Resp2)),
                format!("-{EXECABORT_TEXT}\r\n"),
                "{bad:?}"
            );
        }
        // A control command's arity error while queuing aborts too.
        control(&mut tx, &["MULTI"], Protocol::Resp2);
        control(&mut tx, &["EXEC", "x"], Protocol::Resp2);
        assert!(tx.in_multi());
        assert_eq!(
            reply_of(control(&mut tx, &["EXEC"], Protocol::Resp2)),
            format!("-{EXECABORT_TEXT}\r\n")
        );
    }

    #[test]
    fn watches_carry_their_revisions_and_a_failed_read_aborts() {
        let mut tx = Transaction::default();
        let ControlStep::ReadRevisions(keys) =
            control(&mut tx, &["WATCH", "a", "b"], Protocol::Resp2)
        else {
            panic!("WATCH reads");
        };
        assert_eq!(tx.watched(&keys, b"*2\r\n:7\r\n:0\r\n"), b"+OK\r\n");
        // A second WATCH of `a` keeps the first revision; `c`'s read failed.
        assert_eq!(
            tx.watched(&[b"a".to_vec(), b"c".to_vec()], b"-TRYAGAIN no leader\r\n"),
            b"-TRYAGAIN no leader\r\n"
        );
        control(&mut tx, &["MULTI"], Protocol::Resp2);
        // UNWATCH inside MULTI is queued and changes nothing now.
        assert_eq!(
            tx.queue(request(&["UNWATCH"]), Protocol::Resp2, &config()),
            b"+QUEUED\r\n"
        );
        let ControlStep::Propose(plan, reply) = control(&mut tx, &["EXEC"], Protocol::Resp2) else {
            panic!("watches make EXEC propose");
        };
        let Operation::Transaction { watches, commands } = plan.operation() else {
            panic!("a transaction item");
        };
        assert!(commands.is_empty());
        assert_eq!(
            watches,
            vec![
                (&b"a"[..], 7),
                (&b"b"[..], 0),
                (&b"c"[..], REVISION_UNKNOWN)
            ]
        );
        assert_eq!(reply.finish(b"*0\r\n"), b"*1\r\n+OK\r\n");
        // EXEC forgot the watches.
        control(&mut tx, &["MULTI"], Protocol::Resp2);
        assert_eq!(
            reply_of(control(&mut tx, &["EXEC"], Protocol::Resp2)),
            "*0\r\n"
        );
    }

    #[test]
    fn resp3_elements_take_their_own_commands_shapes() {
        let mut tx = Transaction::default();
        control(&mut tx, &["MULTI"], Protocol::Resp3);
        tx.queue(request(&["HGETALL", "h"]), Protocol::Resp3, &config());
        tx.queue(request(&["GET", "missing"]), Protocol::Resp3, &config());
        let ControlStep::Propose(_, reply) = control(&mut tx, &["EXEC"], Protocol::Resp3) else {
            panic!("EXEC proposes");
        };
        assert_eq!(
            reply.finish(b"*2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n$-1\r\n"),
            b"*2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n"
        );
        assert_eq!(reply.finish(b"*-1\r\n"), b"_\r\n");
    }

    #[test]
    fn a_queue_past_one_entry_is_refused() {
        let config = ServerConfig {
            max_value_bytes: 1 << 20,
            ..ServerConfig::default()
        };
        let mut tx = Transaction::default();
        tx.control(
            Control::Multi,
            &request(&["MULTI"]),
            Protocol::Resp2,
            &config,
        );
        let value = vec![b'x'; 1 << 20];
        let mut refused = false;
        for i in 0..(config.write_bytes_max() >> 20) + 2 {
            let set = vec![b"SET".to_vec(), format!("k{i}").into_bytes(), value.clone()];
            let reply = tx.queue(set, Protocol::Resp2, &config);
            if reply.starts_with(b"-ERR transaction too large") {
                refused = true;
                break;
            }
            assert_eq!(reply, b"+QUEUED\r\n");
        }
        assert!(refused);
        assert_eq!(
            reply_of(tx.control(Control::Exec, &request(&["EXEC"]), Protocol::Resp2, &config)),
            format!("-{EXECABORT_TEXT}\r\n")
        );
    }
}
