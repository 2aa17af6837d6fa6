//! Each connection's authentication and what its user may run: the gate every request passes
//! in `dispatch` before it is batched, forwarded or answered, so no unauthenticated or
//! forbidden command reaches the node. The users and rules are [`Acl`]'s (see
//! [`crate::kv::acl`] for the file format and the rule semantics); `AUTH` and `HELLO ...
//! AUTH` (in `local_commands`) log a connection in through [`ConnectionAuth::attempt`].
//!
//! # States of a connection
//!
//! - **New**: no user yet. On its first request, if the server's `default` user is `on
//!   nopass` (always so without `--requirepass` / `--acl-file`), the connection becomes
//!   authenticated as `default` at once, as in Redis.
//! - **Unauthenticated** (no open `default`): requests are answered in Redis 7.0's order
//!   (`processCommand`): an unknown command gets `-ERR unknown command ...`, a wrong number
//!   of arguments gets the arity error, and everything else but the `no_auth` commands
//!   (`AUTH`, `HELLO`, `QUIT`) gets `-NOAUTH Authentication required.`. A subcommand the
//!   table does not list (`CLIENT KILL`) gets `-NOAUTH` too (Redis answers an unknown one
//!   with `-ERR unknown subcommand`; Ketch does not tell known from unknown there).
//! - **Authenticated, unrestricted**: a user with every command and every key. The gate is
//!   one branch on a flag ([`ConnectionAuth::unrestricted`]) and nothing else: this is the
//!   hot path of a server with `--requirepass`.
//! - **Authenticated, restricted**: every request is checked: unknown commands and wrong
//!   arity first (as above, answered by the dispatcher), then the command (`-NOPERM this
//!   user has no permissions to run the '<name>' command`, `<name>` being `client|list` for a
//!   subcommand), then its keys (`-NOPERM this user has no permissions to access one of the
//!   keys used as arguments`), Redis 7.0.15's texts. A command outside the command table is
//!   let through only if the dispatcher answers it itself without the node (unknown, or
//!   refused by name such as `LPUSH`). A subcommand outside the table is checked as its
//!   parent command (by the parent's name and categories).
//! - **Locked**: after [`AUTH_FAILURES_MAX`] failed attempts (below).
//!
//! A failed `AUTH` changes nothing: an authenticated connection stays logged in as its user.
//! A successful one switches to the new user, whose rules apply from the next request of the
//! pipeline on.
//!
//! # Failed attempts
//!
//! Each failure is logged at `warn` with the client's address and the user name (escaped,
//! at most 64 bytes), never the password. A connection gets at most [`AUTH_FAILURES_MAX`]
//! failed attempts in its life (a success does not reset the count); after the last one it
//! is locked: its next request, whatever it is, is answered `-ERR too many failed
//! authentication attempts on this connection; closing it` and the connection is closed.
//! Attempts are thus bounded per connection, connections by
//! [`ServerConfig::connections_max`], and the log lines with them; guessing is as slow as
//! making new TCP connections, and each attempt costs one SHA-256 per stored password.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::client_connection::ClientConnection;
use super::command_table::{acl_catalog, lookup, CommandSpec};
use super::config::ServerConfig;
use super::parse::{arity_error, kind_of, unknown_command_text, Kind};
use crate::kv::acl::{Acl, AclError, AclUser};
use crate::kv::state::commands::unsupported_text;

/// Failed `AUTH` / `HELLO ... AUTH` attempts a connection may make (module docs).
pub const AUTH_FAILURES_MAX: u32 = 10;

/// Redis' reply to a command before authentication.
pub(super) const NOAUTH_TEXT: &str = "NOAUTH Authentication required.";
/// Redis' reply to a wrong user or password (one text for both).
pub(super) const WRONGPASS_TEXT: &str =
    "WRONGPASS invalid username-password pair or user is disabled.";
/// Redis 7.0's reply to `HELLO` without `AUTH` before authentication.
pub(super) const HELLO_NOAUTH_TEXT: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
/// Redis' reply to `AUTH password` when `default` needs no password.
pub(super) const AUTH_WITHOUT_PASSWORD_TEXT: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
const NOPERM_KEYS_TEXT: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
const LOCKED_TEXT: &str =
    "ERR too many failed authentication attempts on this connection; closing it";
/// The most bytes of a user name a log line shows.
const LOGGED_NAME_BYTES_MAX: usize = 64;

/// Reads `--acl-file` against the server's command table (see [`crate::kv::acl`]).
pub fn load_acl_file(path: &Path) -> Result<Acl, AclError> {
    Acl::load(path, &acl_catalog())
}

/// One connection's authentication (module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct ConnectionAuth {
    /// Authenticated as a user that may run anything: nothing to check per request.
    unrestricted: bool,
    /// The authenticated user; `None` before authentication.
    user: Option<Arc<AclUser>>,
    /// Failed attempts so far.
    failures: u32,
    /// [`AUTH_FAILURES_MAX`] reached: the next request closes the connection.
    locked: bool,
}

impl ConnectionAuth {
    /// Whether requests pass without a check: the one branch of the hot path.
    #[inline]
    pub(super) fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// The user `CLIENT LIST` shows: `default` until another one authenticates (as Redis).
    pub(super) fn user_name(&self) -> Cow<'_, str> {
        match &self.user {
            Some(user) => String::from_utf8_lossy(user.name()),
            None => Cow::Borrowed("default"),
        }
    }

    /// Whether the connection is authenticated, logging it in as an open `default` first.
    pub(super) fn authenticated(&mut self, acl: &Acl) -> bool {
        if self.user.is_none() && !self.locked {
            if let Some(default) = acl.open_default() {
                self.log_in(Arc::clone(default));
            }
        }
        self.user.is_some()
    }

    fn log_in(&mut self, user: Arc<AclUser>) {
        self.unrestricted = user.unrestricted() && !self.locked;
        self.user = Some(user);
    }

    /// Logs in as `user` with `password`, or counts, logs and answers the failure
    /// (`WRONGPASS`; module docs).
    pub(super) fn attempt(
        &mut self,
        acl: &Acl,
        peer: Option<SocketAddr>,
        user: &[u8],
        password: &[u8],
    ) -> Result<(), &'static str> {
        if let Some(found) = acl.user(user).filter(|u| u.password_matches(password)) {
            self.log_in(Arc::clone(found));
            return Ok(());
        }
        self.failures += 1;
        let shown = &user[..user.len().min(LOGGED_NAME_BYTES_MAX)];
        log::warn!(
            "RESP client {}: authentication failed for user {:?} ({} of {AUTH_FAILURES_MAX} \
             allowed on this connection)",
            peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
            String::from_utf8_lossy(shown),
            self.failures,
        );
        if self.failures >= AUTH_FAILURES_MAX {
            self.locked = true;
            self.unrestricted = false;
        }
        Err(WRONGPASS_TEXT)
    }

    /// `AUTH password` / `AUTH user password` (Redis 7.0's replies).
    pub(super) fn auth_command(
        &mut self,
        args: &[Vec<u8>],
        acl: &Acl,
        peer: Option<SocketAddr>,
    ) -> Result<(), Cow<'static, str>> {
        match args.len() {
            0 | 1 => Err(arity_error("auth").into()),
            2 if acl.default_is_nopass() => Err(AUTH_WITHOUT_PASSWORD_TEXT.into()),
            2 => Ok(self.attempt(acl, peer, b"default", &args[1])?),
            3 => Ok(self.attempt(acl, peer, &args[1], &args[2])?),
            _ => Err("ERR syntax error".into()),
        }
    }
}

/// What the gate decides for one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Refuse(Cow<'static, str>),
    Close,
}

/// The gate for a connection that is not [`ConnectionAuth::unrestricted`]: answers the
/// request itself and returns false if it may not run (closing a locked connection).
pub(super) fn admit(
    conn: &mut ClientConnection,
    request: &[Vec<u8>],
    config: &ServerConfig,
) -> bool {
    match verdict(&mut conn.state.auth, request, &config.acl) {
        Verdict::Pass => true,
        Verdict::Refuse(text) => {
            conn.reply_error(&text);
            false
        }
        Verdict::Close => {
            conn.reply_error(LOCKED_TEXT);
            conn.closing = true;
            false
        }
    }
}

fn verdict(auth: &mut ConnectionAuth, request: &[Vec<u8>], acl: &Acl) -> Verdict {
    if auth.locked {
        return Verdict::Close;
    }
    if !auth.authenticated(acl) {
        return unauthenticated(request);
    }
    match &auth.user {
        Some(user) if !auth.unrestricted => permitted(user, request),
        _ => Verdict::Pass,
    }
}

fn arity_ok(arity: i64, argc: usize) -> bool {
    let argc = argc as i64;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The command a request runs, as ACL rules see it.
struct Resolved {
    /// Full name: `get`, `client|list`.
    name: Cow<'static, str>,
    categories: &'static [&'static str],
    /// Whose keys (first, last, step) the request has.
    keys_of: &'static CommandSpec,
    no_auth: bool,
}

/// Finds the table entry of `request` (its subcommand's, for `CLIENT LIST`); `Err` with the
/// reply for a wrong number of arguments; `Ok(None)` if the table does not have it.
fn resolve(request: &[Vec<u8>]) -> Result<Option<Resolved>, Cow<'static, str>> {
    let Some(spec) = lookup(&request[0]) else {
        return Ok(None);
    };
    if !arity_ok(spec.arity, request.len()) {
        return Err(arity_error(spec.name).into());
    }
    let resolved = |spec: &'static CommandSpec, name: Cow<'static, str>| Resolved {
        name,
        categories: spec.acl_categories,
        keys_of: spec,
        no_auth: spec.flags.contains(&"no_auth"),
    };
    if spec.subcommands.is_empty() || request.len() < 2 {
        return Ok(Some(resolved(spec, Cow::Borrowed(spec.name))));
    }
    let sub = &request[1];
    let found = spec.subcommands.iter().find(|entry| {
        entry
            .name
            .split_once('|')
            .is_some_and(|(_, name)| name.as_bytes().eq_ignore_ascii_case(sub))
    });
    match found {
        Some(entry) if !arity_ok(entry.arity, request.len()) => Err(arity_error(entry.name).into()),
        Some(entry) => Ok(Some(resolved(entry, Cow::Borrowed(entry.name)))),
        None => {
            let name = format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            );
            Ok(Some(resolved(spec, Cow::Owned(name))))
        }
    }
}

fn unauthenticated(request: &[Vec<u8>]) -> Verdict {
    match resolve(request) {
        Err(text) => Verdict::Refuse(text),
        Ok(Some(resolved)) if resolved.no_auth => Verdict::Pass,
        Ok(Some(_)) => Verdict::Refuse(NOAUTH_TEXT.into()),
        // A Redis command that Ketch refuses by name: Redis would want authentication.
        Ok(None) if unsupported_text(&request[0]).is_some() => Verdict::Refuse(NOAUTH_TEXT.into()),
        Ok(None) => Verdict::Refuse(unknown_command_text(request).into()),
    }
}

/// The ACL check of a restricted user (module docs).
fn permitted(user: &AclUser, request: &[Vec<u8>]) -> Verdict {
    let mut request = request;
    // `KETCH.WRITE s q a CMD ...` needs its own permission and that of CMD on CMD's keys;
    // a loop, not recursion: wrappers may nest as deep as a request is long.
    loop {
        let resolved = match resolve(request) {
            Err(text) => return Verdict::Refuse(text),
            Ok(Some(resolved)) => resolved,
            Ok(None) => {
                // Answered by the dispatcher without the node, or else not let through.
                let name = &request[0];
                let local = unsupported_text(name).is_some() || kind_of(name) == Kind::Local;
                if local {
                    return Verdict::Pass;
                }
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                return Verdict::Refuse(noperm_command(&name).into());
            }
        };
        if resolved.no_auth {
            return Verdict::Pass;
        }
        if !user.may_run(&resolved.name, resolved.categories) {
            return Verdict::Refuse(noperm_command(&resolved.name).into());
        }
        if !keys(resolved.keys_of, request).all(|key| user.may_access(key)) {
            return Verdict::Refuse(NOPERM_KEYS_TEXT.into());
        }
        if resolved.name != "ketch.write" {
            return Verdict::Pass;
        }
        // Arity -5: the wrapped command is there.
        request = &request[4..];
    }
}

fn noperm_command(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

/// The key arguments of `request` by its entry's first key, last key (negative: from the
/// end) and step.
fn keys<'r>(spec: &CommandSpec, request: &'r [Vec<u8>]) -> impl Iterator<Item = &'r [u8]> {
    let argc = request.len() as i64;
    let first = spec.first_key;
    let last = if spec.last_key < 0 {
        argc + spec.last_key
    } else {
        spec.last_key
    };
    let (first, last) = if first <= 0 {
        (1, 0)
    } else {
        (first, last.min(argc - 1))
    };
    let step = spec.key_step.max(1) as usize;
    (first..=last)
        .step_by(step)
        .map(move |at| &request[at as usize][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn acl(text: &str) -> Acl {
        Acl::parse(text, Path::new("test.acl"), &acl_catalog()).unwrap()
    }

    fn refused(text: &str) -> Verdict {
        Verdict::Refuse(Cow::Owned(text.to_string()))
    }

    fn run(auth: &mut ConnectionAuth, acl: &Acl, words: &[&str]) -> Verdict {
        verdict(auth, &args(words), acl)
    }

    #[test]
    fn an_open_server_logs_every_connection_in_as_default() {
        let open = Acl::open();
        let mut auth = ConnectionAuth::default();
        assert!(!auth.unrestricted());
        assert_eq!(run(&mut auth, &open, &["GET", "k"]), Verdict::Pass);
        assert!(auth.unrestricted());
        assert_eq!(auth.user_name(), "default");
    }

    #[test]
    fn before_authentication_redis_order_of_replies() {
        let acl = Acl::with_default_password(b"pw");
        let mut auth = ConnectionAuth::default();
        for (words, reply) in [
            (&["GET", "k"][..], NOAUTH_TEXT.to_string()),
            (&["PING"], NOAUTH_TEXT.to_string()),
            (&["LPUSH", "l", "x"], NOAUTH_TEXT.to_string()),
            (&["CLIENT", "KILL", "x"], NOAUTH_TEXT.to_string()),
            (&["MULTI"], NOAUTH_TEXT.to_string()),
            (&["KETCH.MEMBERS"], NOAUTH_TEXT.to_string()),
            (
                &["NOSUCH", "x"],
                "ERR unknown command 'NOSUCH', with args beginning with: 'x' ".to_string(),
            ),
            (
                &["GET"],
                "ERR wrong number of arguments for 'get' command".to_string(),
            ),
            (
                &["CLIENT"],
                "ERR wrong number of arguments for 'client' command".to_string(),
            ),
            (
                &["CLIENT", "SETNAME"],
                "ERR wrong number of arguments for 'client|setname' command".to_string(),
            ),
        ] {
            assert_eq!(run(&mut auth, &acl, words), refused(&reply), "{words:?}");
        }
        for words in [
            &["AUTH", "x"][..],
            &["HELLO", "3"],
            &["QUIT"],
            &["auth", "a", "b"],
        ] {
            assert_eq!(run(&mut auth, &acl, words), Verdict::Pass, "{words:?}");
        }
        assert!(auth.attempt(&acl, None, b"default", b"pw").is_ok());
        assert!(auth.unrestricted());
    }

    #[test]
    fn auth_command_replies_like_redis() {
        let open = Acl::open();
        let locked = Acl::with_default_password(b"pw");
        let mut auth = ConnectionAuth::default();
        let text = |r: Result<(), Cow<'static, str>>| r.err().map(|t| t.into_owned());
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH"]), &locked, None)).unwrap(),
            "ERR wrong number of arguments for 'auth' command"
        );
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "a", "b", "c"]), &locked, None)).unwrap(),
            "ERR syntax error"
        );
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "x"]), &open, None)).unwrap(),
            AUTH_WITHOUT_PASSWORD_TEXT
        );
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "default", "x"]), &open, None)),
            None
        );
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "bob", "x"]), &open, None)).unwrap(),
            WRONGPASS_TEXT
        );
        let mut auth = ConnectionAuth::default();
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "bad"]), &locked, None)).unwrap(),
            WRONGPASS_TEXT
        );
        assert!(!auth.authenticated(&locked));
        assert_eq!(
            text(auth.auth_command(&args(&["AUTH", "pw"]), &locked, None)),
            None
        );
        assert!(auth.authenticated(&locked) && auth.unrestricted());
        // A failure leaves the connection logged in.
        assert!(auth.attempt(&locked, None, b"default", b"nope").is_err());
        assert!(auth.unrestricted());
    }

    #[test]
    fn restricted_users_get_redis_noperm_texts() {
        let acl = acl("user default off\nuser reader on >r ~app:* +@read\nuser w on >w allkeys +@write -del +client|id");
        let mut auth = ConnectionAuth::default();
        assert!(auth.attempt(&acl, None, b"reader", b"r").is_ok());
        assert!(!auth.unrestricted());
        assert_eq!(auth.user_name(), "reader");
        for (words, reply) in [
            (&["GET", "app:x"][..], None),
            (&["MGET", "app:1", "app:2"], None),
            (&["DBSIZE"], None),
            (&["SCAN", "0"], None),
            (&["HELLO", "3"], None),
            (&["AUTH", "x", "y"], None),
            (&["NOSUCH"], None),
            (&["LPUSH", "l", "x"], None),
            (
                &["GET", "other:x"],
                Some("NOPERM this user has no permissions to access one of the keys used as arguments"),
            ),
            (
                &["MGET", "app:1", "b"],
                Some("NOPERM this user has no permissions to access one of the keys used as arguments"),
            ),
            (
                &["SET", "app:x", "1"],
                Some("NOPERM this user has no permissions to run the 'set' command"),
            ),
            (
                &["CLIENT", "LIST"],
                Some("NOPERM this user has no permissions to run the 'client|list' command"),
            ),
            (
                &["client", "kill", "x"],
                Some("NOPERM this user has no permissions to run the 'client|kill' command"),
            ),
            (
                &["PING"],
                Some("NOPERM this user has no permissions to run the 'ping' command"),
            ),
            (
                &["KETCH.REMOVE", "2"],
                Some("NOPERM this user has no permissions to run the 'ketch.remove' command"),
            ),
            (
                &["SET", "app:x"],
                Some("ERR wrong number of arguments for 'set' command"),
            ),
        ] {
            let expected = reply.map_or(Verdict::Pass, refused);
            assert_eq!(run(&mut auth, &acl, words), expected, "{words:?}");
        }
        let mut writer = ConnectionAuth::default();
        assert!(writer.attempt(&acl, None, b"w", b"w").is_ok());
        let session = "0000018c2f4a3b1d0001a2b3c4d5e6f7";
        for (words, pass) in [
            (&["SET", "k", "v"][..], true),
            (&["DEL", "k"], false),
            (&["GET", "k"], false),
            (&["CLIENT", "ID"], true),
            (&["CLIENT", "INFO"], false),
            (&["KETCH.WRITE", session, "1", "0", "SET", "k", "v"], true),
            (&["KETCH.WRITE", session, "1", "0", "DEL", "k"], false),
            (
                &[
                    "KETCH.WRITE",
                    session,
                    "1",
                    "0",
                    "KETCH.WRITE",
                    session,
                    "1",
                    "0",
                    "DEL",
                    "k",
                ],
                false,
            ),
        ] {
            assert_eq!(
                run(&mut writer, &acl, words) == Verdict::Pass,
                pass,
                "{words:?}"
            );
        }
    }

    #[test]
    fn wrapped_writes_are_checked_on_their_own_keys() {
        let acl = acl("user a on nopass ~app:* +@write");
        let mut auth = ConnectionAuth::default();
        assert!(auth.attempt(&acl, None, b"a", b"").is_ok());
        let s = "0000018c2f4a3b1d0001a2b3c4d5e6f7";
        assert_eq!(
            run(
                &mut auth,
                &acl,
                &["KETCH.WRITE", s, "1", "0", "SET", "app:1", "v"]
            ),
            Verdict::Pass
        );
        assert_eq!(
            run(
                &mut auth,
                &acl,
                &["KETCH.WRITE", s, "1", "0", "SET", "x", "v"]
            ),
            refused(NOPERM_KEYS_TEXT)
        );
        assert_eq!(
            run(&mut auth, &acl, &["MSET", "app:1", "v", "x", "v"]),
            refused(NOPERM_KEYS_TEXT)
        );
        assert_eq!(
            run(&mut auth, &acl, &["MSET", "app:1", "x", "app:2", "y"]),
            Verdict::Pass
        );
    }

    #[test]
    fn a_connection_is_locked_after_its_last_allowed_failure() {
        let acl = Acl::with_default_password(b"pw");
        let mut auth = ConnectionAuth::default();
        assert!(auth.attempt(&acl, None, b"default", b"pw").is_ok());
        for _ in 0..AUTH_FAILURES_MAX {
            assert!(!auth.locked);
            assert_eq!(
                auth.attempt(&acl, None, b"default", b"x"),
                Err(WRONGPASS_TEXT)
            );
        }
        assert!(auth.locked && !auth.unrestricted());
        assert_eq!(run(&mut auth, &acl, &["PING"]), Verdict::Close);
        // Even the right password does not unlock it.
        assert!(auth.attempt(&acl, None, b"default", b"pw").is_ok());
        assert!(!auth.unrestricted());
        assert_eq!(run(&mut auth, &acl, &["PING"]), Verdict::Close);
    }

    #[test]
    fn keys_follow_first_last_and_step() {
        let spec = |name: &str| lookup(name.as_bytes()).unwrap();
        let request = args(&["MSET", "a", "1", "b", "2"]);
        let got: Vec<&[u8]> = keys(spec("mset"), &request).collect();
        assert_eq!(got, [&b"a"[..], b"b"]);
        let request = args(&["SET", "k", "v", "EX", "1"]);
        assert_eq!(keys(spec("set"), &request).collect::<Vec<_>>(), [&b"k"[..]]);
        let request = args(&["DEL", "a", "b", "c"]);
        assert_eq!(keys(spec("del"), &request).count(), 3);
        let request = args(&["SCAN", "0"]);
        assert_eq!(keys(spec("scan"), &request).count(), 0);
    }
}
