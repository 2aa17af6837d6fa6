//! Client users and their rules: what `--requirepass`, `--requirepass-file` and `--acl-file`
//! configure, and the checks the RESP server makes with them (the per-connection side is in
//! the server's `auth` module).
//!
//! # The ACL file
//!
//! One user per line, a subset of Redis 7's ACL file syntax; blank lines and lines starting
//! with `#` are skipped (Redis has no comments: a file with them is Ketch's only). Tokens are
//! separated by spaces or tabs; there is no quoting, so a password cannot hold a space.
//!
//! ```text
//! user default off
//! user app on >s3cret ~app:* +@read +@write
//! user ops on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b allkeys +@all
//! user probe on nopass -@all +ping +info
//! ```
//!
//! | token          | meaning                                                             |
//! |----------------|---------------------------------------------------------------------|
//! | `user NAME`    | the line's first two words; a name appears once in the file          |
//! | `on` / `off`   | the user may / may not authenticate (default `off`, as in Redis)     |
//! | `>password`    | adds a password (kept only as its SHA-256); clears `nopass`          |
//! | `#hex`         | adds a password by its SHA-256, 64 lower-case hex digits; clears `nopass` |
//! | `nopass`       | any password is accepted; forgets the passwords given before         |
//! | `~pattern`     | adds a key pattern (a Redis glob, see [`glob`](super::glob), case-sensitive) |
//! | `allkeys`      | every key (the same as `~*`)                                         |
//! | `+cmd` / `-cmd`| allows / denies a command (`get`) or a subcommand (`client|list`); `+client` covers every `CLIENT` subcommand |
//! | `+@cat` / `-@cat` | allows / denies a category: `all`, or any ACL category of the command table (`read`, `write`, `admin`, `fast`, `keyspace`, `string`, `connection`, `dangerous`, ...) |
//!
//! Anything else (Redis' `resetpass`, `<password`, `%R~`, `&channel`, selectors, ...) is a
//! start-up error naming the file, the line and the token, as is an unknown command or
//! category, a bad hash, a line not starting with `user`, or a user listed twice.
//!
//! Command rules apply in order, as in Redis: a command is allowed if the last rule naming it
//! (by name, by its parent's name, by one of its categories, or `@all`) is a `+` rule; a user
//! with no such rule may not run it. A command's categories are those of its entry in the
//! command table (a subcommand's own entry for `CLIENT LIST`, `CONFIG GET`, ...); the
//! `KETCH.*` admin commands are in `@admin`. The commands Redis marks `no_auth` (`AUTH`,
//! `HELLO`, `QUIT`) are always allowed. A command's keys are the arguments its table entry
//! names (first key, last key, step); each must match one of the user's patterns unless the
//! user has `allkeys`. `KETCH.WRITE` (in `@write`) also needs the wrapped command allowed, on
//! its own keys, as if it had been sent alone.
//!
//! # `default` and unauthenticated connections
//!
//! Without any of the flags, the only user is `default`, `on nopass allkeys +@all`: every
//! connection is authenticated as it from the start, as on a Redis without `requirepass`.
//! `--requirepass PASS` makes it `on >PASS allkeys +@all`. With `--acl-file`, the users are
//! the file's: a connection starts authenticated as `default` only if the file has a
//! `default` that is `on` and `nopass`; otherwise every connection must authenticate first
//! (a file without `default` has no default user, which Redis would create `nopass`: Ketch
//! chooses the closed door). `--acl-file` and `--requirepass` exclude each other.
//!
//! # Threat model
//!
//! Passwords travel in clear text (use a tunnel or TLS in front of an untrusted network);
//! what this guards is the node's own memory and logs. Passwords are hashed with SHA-256 as
//! soon as they are read and only the digests are kept; a candidate is hashed and compared
//! with every digest of the user in constant time, so the time taken does not tell how much
//! of a guess was right. An unknown user is answered like a wrong password (one error text
//! for both, as Redis does), but after a cheaper path: the existence of a user name is not
//! a secret here. Failed attempts are logged with the client's address and the user name,
//! never the password, and bounded per connection (see the server's `auth` module).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::glob::glob_match;

/// A SHA-256 digest of a password.
pub type PasswordDigest = [u8; 32];

/// The digest under which a password is kept.
pub fn password_digest(password: &[u8]) -> PasswordDigest {
    Sha256::digest(password).into()
}

/// One command as the ACL rules see it: its full name (lower case; `parent|sub` for a
/// subcommand) and its ACL categories (`@`-prefixed), from the server's command table.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo {
    /// `get`, `client|list`.
    pub name: &'static str,
    /// `@read`, `@fast`, ...
    pub categories: &'static [&'static str],
}

/// What a command rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleTarget {
    /// `@all`.
    All,
    /// A category, with its `@`.
    Category(String),
    /// A command or subcommand, lower case.
    Command(String),
}

/// `+target` (allowed) or `-target`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommandRule {
    allow: bool,
    target: RuleTarget,
}

impl CommandRule {
    fn covers(&self, name: &str, categories: &[&str]) -> bool {
        match &self.target {
            RuleTarget::All => true,
            RuleTarget::Category(category) => categories.contains(&category.as_str()),
            RuleTarget::Command(command) => {
                name == command
                    || name
                        .split_once('|')
                        .is_some_and(|(parent, _)| parent == command)
            }
        }
    }
}

/// One user (module docs).
#[derive(Clone)]
pub struct AclUser {
    name: Vec<u8>,
    enabled: bool,
    nopass: bool,
    password_digests: Vec<PasswordDigest>,
    command_rules: Vec<CommandRule>,
    key_patterns: Vec<Vec<u8>>,
    all_keys: bool,
    /// Every command of the catalog is allowed (computed once the rules are known).
    all_commands: bool,
}

impl fmt::Debug for AclUser {
    // No digests: they are as good as passwords to someone who can guess offline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclUser")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("enabled", &self.enabled)
            .field("nopass", &self.nopass)
            .field("passwords", &self.password_digests.len())
            .field("command_rules", &self.command_rules)
            .field("key_patterns", &self.key_patterns.len())
            .field("all_keys", &self.all_keys)
            .finish()
    }
}

impl AclUser {
    fn new(name: &[u8]) -> Self {
        AclUser {
            name: name.to_vec(),
            enabled: false,
            nopass: false,
            password_digests: Vec::new(),
            command_rules: Vec::new(),
            key_patterns: Vec::new(),
            all_keys: false,
            all_commands: false,
        }
    }

    /// `on nopass allkeys +@all`, or with `password` instead of `nopass`.
    fn superuser(name: &[u8], password: Option<&[u8]>) -> Self {
        let mut user = AclUser::new(name);
        user.enabled = true;
        match password {
            Some(password) => user.password_digests.push(password_digest(password)),
            None => user.nopass = true,
        }
        user.all_keys = true;
        user.command_rules.push(CommandRule {
            allow: true,
            target: RuleTarget::All,
        });
        user.all_commands = true;
        user
    }

    /// The user's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// `on`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `nopass`: any password is accepted.
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// May run every command on every key: the server checks nothing per command for it.
    pub fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys
    }

    /// Whether `password` opens this user: it is `on`, and `nopass` or the password's digest
    /// is one of its digests (compared in constant time, every digest compared).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let candidate = password_digest(password);
        let mut matched = subtle::Choice::from(0);
        for digest in &self.password_digests {
            matched |= digest.ct_eq(&candidate);
        }
        matched.into()
    }

    /// Whether the rules allow the command `name` (full name, lower case) of `categories`.
    pub fn may_run(&self, name: &str, categories: &[&str]) -> bool {
        if self.all_commands {
            return true;
        }
        self.command_rules
            .iter()
            .rev()
            .find(|rule| rule.covers(name, categories))
            .is_some_and(|rule| rule.allow)
    }

    /// Whether the key patterns allow `key`.
    pub fn may_access(&self, key: &[u8]) -> bool {
        self.all_keys
            || self
                .key_patterns
                .iter()
                .any(|pattern| glob_match(pattern, key, false))
    }
}

/// Why an ACL or password file cannot be used.
#[derive(Debug)]
pub enum AclError {
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        error: std::io::Error,
    },
    /// The file holds nothing to use (an empty password file).
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line of an ACL file that is not understood.
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The token at fault (shortened past 64 characters).
        token: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            AclError::Empty { path } => {
                write!(f, "{} is empty: it must hold the password", path.display())
            }
            AclError::Syntax {
                path,
                line,
                token,
                reason,
            } => write!(f, "{}:{line}: {reason}: `{token}`", path.display()),
        }
    }
}

impl std::error::Error for AclError {}

/// The users of a server (module docs).
#[derive(Debug, Clone)]
pub struct Acl {
    users: Vec<Arc<AclUser>>,
}

impl Default for Acl {
    fn default() -> Self {
        Acl::open()
    }
}

/// The longest token an error message repeats.
const TOKEN_SHOWN_CHARS_MAX: usize = 64;

impl Acl {
    /// No password: `default` is `on nopass allkeys +@all`.
    pub fn open() -> Acl {
        Acl {
            users: vec![Arc::new(AclUser::superuser(b"default", None))],
        }
    }

    /// `--requirepass`: `default` is `on >password allkeys +@all`.
    pub fn with_default_password(password: &[u8]) -> Acl {
        Acl {
            users: vec![Arc::new(AclUser::superuser(b"default", Some(password)))],
        }
    }

    /// Reads and parses an ACL file (module docs) against the commands of `catalog`.
    pub fn load(path: &Path, catalog: &[CommandInfo]) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|error| AclError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Acl::parse(&text, path, catalog)
    }

    /// Parses the text of an ACL file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, catalog: &[CommandInfo]) -> Result<Acl, AclError> {
        let mut users: Vec<Arc<AclUser>> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let syntax = |token: &str, reason: &str| AclError::Syntax {
                path: path.to_path_buf(),
                line: index + 1,
                token: token.chars().take(TOKEN_SHOWN_CHARS_MAX).collect(),
                reason: reason.to_string(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut tokens = line.split_ascii_whitespace();
            let first = tokens.next().unwrap_or_default();
            if first != "user" {
                return Err(syntax(first, "a line must start with `user NAME`"));
            }
            let Some(name) = tokens.next() else {
                return Err(syntax(first, "`user` needs a name"));
            };
            if users.iter().any(|user| user.name == name.as_bytes()) {
                return Err(syntax(name, "this user is already defined above"));
            }
            let mut user = AclUser::new(name.as_bytes());
            for token in tokens {
                apply_token(&mut user, token, catalog).map_err(|reason| syntax(token, reason))?;
            }
            user.all_commands = catalog
                .iter()
                .all(|command| user.may_run(command.name, command.categories));
            users.push(Arc::new(user));
        }
        Ok(Acl { users })
    }

    /// The user called `name`, if any.
    pub fn user(&self, name: &[u8]) -> Option<&Arc<AclUser>> {
        self.users.iter().find(|user| user.name == name)
    }

    /// `default`, if it is `on` and `nopass`: the user every connection starts as.
    pub fn open_default(&self) -> Option<&Arc<AclUser>> {
        self.user(b"default")
            .filter(|user| user.enabled && user.nopass)
    }

    /// Whether `default` exists and is `nopass` (on or off): `AUTH password` is then an
    /// error, as in Redis.
    pub fn default_is_nopass(&self) -> bool {
        self.user(b"default").is_some_and(|user| user.nopass)
    }

    /// Every user, in file order.
    pub fn users(&self) -> impl Iterator<Item = &AclUser> {
        self.users.iter().map(|user| &**user)
    }
}

/// Applies one rule token to `user`, or says what is wrong with it.
fn apply_token(
    user: &mut AclUser,
    token: &str,
    catalog: &[CommandInfo],
) -> Result<(), &'static str> {
    match token {
        "on" => user.enabled = true,
        "off" => user.enabled = false,
        "nopass" => {
            user.nopass = true;
            user.password_digests.clear();
        }
        "allkeys" => user.all_keys = true,
        _ => match token.as_bytes()[0] {
            b'>' => {
                user.nopass = false;
                user.password_digests
                    .push(password_digest(&token.as_bytes()[1..]));
            }
            b'#' => {
                let digest = parse_digest(&token[1..])
                    .ok_or("a password hash is 64 lower-case hex digits (SHA-256)")?;
                user.nopass = false;
                user.password_digests.push(digest);
            }
            b'~' => {
                let pattern = &token[1..];
                if pattern == "*" {
                    user.all_keys = true;
                }
                user.key_patterns.push(pattern.as_bytes().to_vec());
            }
            sign @ (b'+' | b'-') => {
                let rule = parse_command_rule(sign == b'+', &token[1..], catalog)?;
                user.command_rules.push(rule);
            }
            _ => return Err("unknown or unsupported ACL rule"),
        },
    }
    Ok(())
}

fn parse_command_rule(
    allow: bool,
    name: &str,
    catalog: &[CommandInfo],
) -> Result<CommandRule, &'static str> {
    let lower = name.to_ascii_lowercase();
    let target = if let Some(category) = lower.strip_prefix('@') {
        if category == "all" {
            RuleTarget::All
        } else if catalog
            .iter()
            .any(|c| c.categories.iter().any(|known| known[1..] == *category))
        {
            RuleTarget::Category(format!("@{category}"))
        } else {
            return Err("unknown command category");
        }
    } else if catalog.iter().any(|c| c.name == lower) {
        RuleTarget::Command(lower)
    } else {
        return Err("unknown command");
    };
    Ok(CommandRule { allow, target })
}

fn parse_digest(hex: &str) -> Option<PasswordDigest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut digest = [0u8; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(digest)
}

/// Reads `--requirepass-file`: the file's bytes less one trailing newline (`\n` or `\r\n`).
/// An unreadable or empty file is an error naming it.
pub fn read_password_file(path: &Path) -> Result<Vec<u8>, AclError> {
    let mut bytes = std::fs::read(path).map_err(|error| AclError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(AclError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &[CommandInfo] = &[
        CommandInfo {
            name: "get",
            categories: &["@read", "@string", "@fast"],
        },
        CommandInfo {
            name: "set",
            categories: &["@write", "@string", "@slow"],
        },
        CommandInfo {
            name: "ping",
            categories: &["@fast", "@connection"],
        },
        CommandInfo {
            name: "client",
            categories: &["@slow", "@connection"],
        },
        CommandInfo {
            name: "client|list",
            categories: &["@admin", "@slow", "@dangerous", "@connection"],
        },
        CommandInfo {
            name: "client|id",
            categories: &["@slow", "@connection"],
        },
        CommandInfo {
            name: "ketch.remove",
            categories: &["@admin", "@slow", "@dangerous"],
        },
    ];

    fn parse(text: &str) -> Result<Acl, AclError> {
        Acl::parse(text, Path::new("users.acl"), CATALOG)
    }

    fn user(acl: &Acl, name: &str) -> AclUser {
        (**acl.user(name.as_bytes()).unwrap()).clone()
    }

    fn error_of(text: &str) -> (usize, String, String) {
        match parse(text).unwrap_err() {
            AclError::Syntax {
                line,
                token,
                reason,
                ..
            } => (line, token, reason),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn every_token_is_understood() {
        let hash = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"; // "secret"
        let acl = parse(&format!(
            "# comment\n\nuser a on >pw ~app:* ~x +@read +set -get\n\
             user b off #{hash} allkeys +@all -@admin\n\
             user c on nopass ~* -@all +ping +client\n\
             user d on >one nopass\n\
             user e on nopass >two +@write\n"
        ))
        .unwrap();
        let a = user(&acl, "a");
        assert!(a.enabled() && !a.nopass());
        assert!(a.password_matches(b"pw") && !a.password_matches(b"pW"));
        assert!(a.may_run("set", &["@write"]));
        assert!(
            !a.may_run("get", &["@read", "@string", "@fast"]),
            "-get after +@read"
        );
        assert!(!a.may_run("ping", &["@fast", "@connection"]));
        assert!(a.may_access(b"app:1") && a.may_access(b"x") && !a.may_access(b"xy"));
        assert!(!a.unrestricted());

        let b = user(&acl, "b");
        assert!(!b.enabled());
        assert!(
            !b.password_matches(b"secret"),
            "an off user never authenticates"
        );
        assert!(b.may_access(b"anything"));
        assert!(!b.may_run("ketch.remove", &["@admin", "@slow", "@dangerous"]));
        assert!(!b.may_run("client|list", &["@admin", "@slow", "@dangerous"]));
        assert!(b.may_run("client|id", &["@slow", "@connection"]));

        let c = user(&acl, "c");
        assert!(c.nopass() && c.password_matches(b"anything"));
        assert!(c.may_run("ping", &["@fast"]));
        assert!(
            c.may_run("client|list", &["@admin"]),
            "+client covers subcommands"
        );
        assert!(!c.may_run("get", &["@read"]));
        assert!(c.all_keys && !c.unrestricted());

        let d = user(&acl, "d");
        assert!(d.nopass() && d.password_digests.is_empty());
        let e = user(&acl, "e");
        assert!(!e.nopass() && e.password_matches(b"two") && !e.password_matches(b"x"));
        assert!(!e.may_access(b"k"), "no key pattern: no key");
    }

    #[test]
    fn a_hash_opens_its_password() {
        let hex: String = password_digest(b"secret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let acl = parse(&format!("user h on #{hex} allkeys +@all")).unwrap();
        let h = user(&acl, "h");
        assert!(h.password_matches(b"secret") && !h.password_matches(b"secret\n"));
        assert!(h.unrestricted());
    }

    #[test]
    fn all_commands_and_all_keys_make_a_user_unrestricted() {
        let acl = parse("user a on nopass ~* +@all\nuser b on nopass allkeys +@all -ping\nuser c on nopass allkeys +@read +@write +@admin +@connection +@fast +@slow").unwrap();
        assert!(user(&acl, "a").unrestricted());
        assert!(!user(&acl, "b").unrestricted());
        assert!(
            user(&acl, "c").unrestricted(),
            "every command of the catalog"
        );
        assert!(Acl::open().user(b"default").unwrap().unrestricted());
        assert!(Acl::open().open_default().is_some());
        let locked = Acl::with_default_password(b"pw");
        assert!(locked.open_default().is_none() && !locked.default_is_nopass());
        assert!(locked.user(b"default").unwrap().password_matches(b"pw"));
    }

    #[test]
    fn default_is_only_open_when_on_and_nopass() {
        let acl = parse("user app on >x +@all").unwrap();
        assert!(acl.open_default().is_none() && !acl.default_is_nopass());
        let acl = parse("user default off nopass").unwrap();
        assert!(acl.open_default().is_none() && acl.default_is_nopass());
        let acl = parse("user default on nopass -@all").unwrap();
        assert!(acl.open_default().is_some());
    }

    #[test]
    fn bad_lines_name_their_line_and_token() {
        for (text, line, token, reason) in [
            ("user a on\nusr b on", 2, "usr", "start with"),
            ("\n\nuser", 3, "user", "needs a name"),
            ("user a on\nuser a off", 2, "a", "already defined"),
            ("user a on resetpass", 1, "resetpass", "unsupported"),
            ("user a on <pw", 1, "<pw", "unsupported"),
            ("user a on %R~x", 1, "%R~x", "unsupported"),
            ("user a on &chan", 1, "&chan", "unsupported"),
            ("user a on +nosuch", 1, "+nosuch", "unknown command"),
            (
                "user a on -@nosuch",
                1,
                "-@nosuch",
                "unknown command category",
            ),
            ("user a on #abc", 1, "#abc", "64 lower-case hex"),
            (
                "user a on #2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B",
                1,
                // Shown shortened to 64 characters.
                "#2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25",
                "64 lower-case hex",
            ),
            (
                "# c\nuser a on\n  user b on ~x +get pw",
                3,
                "pw",
                "unsupported",
            ),
        ] {
            let (at, bad, why) = error_of(text);
            assert_eq!((at, &bad[..]), (line, token), "{text:?}");
            assert!(why.contains(reason), "{text:?}: {why}");
        }
        let shown = parse("user a on +get\nuser b x").unwrap_err().to_string();
        assert_eq!(shown, "users.acl:2: unknown or unsupported ACL rule: `x`");
    }

    #[test]
    fn command_names_and_categories_are_case_insensitive() {
        let acl = parse("user a on nopass +GET +@Connection -CLIENT|List").unwrap();
        let a = user(&acl, "a");
        assert!(a.may_run("get", &[]));
        assert!(a.may_run("ping", &["@fast", "@connection"]));
        assert!(!a.may_run("client|list", &["@connection"]));
        assert!(a.may_run("client|id", &["@connection"]));
    }

    #[test]
    fn password_files_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        for (content, password) in [
            (&b"s3cret\n"[..], &b"s3cret"[..]),
            (b"s3cret\r\n", b"s3cret"),
            (b"s3cret", b"s3cret"),
            (b"two words\n\n", b"two words\n"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_password_file(&path).unwrap(), password);
        }
        std::fs::write(&path, b"\n").unwrap();
        let empty = read_password_file(&path).unwrap_err().to_string();
        assert!(empty.contains(&path.display().to_string()) && empty.contains("empty"));
        let missing = read_password_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        let bad = Acl::load(&dir.path().join("nope.acl"), CATALOG).unwrap_err();
        assert!(bad.to_string().contains("nope.acl"), "{bad}");
    }

    #[test]
    fn debug_shows_no_digest() {
        let acl = Acl::with_default_password(b"pw");
        let shown = format!("{acl:?}");
        let hex: String = password_digest(b"pw")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&hex) && !shown.contains("pw\""), "{shown}");
        assert!(!shown.contains(&format!("{:?}", password_digest(b"pw"))));
    }
}
