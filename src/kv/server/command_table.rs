//! The command table: every command the server knows, as Redis 7 describes it, and the
//! `COMMAND` command that reports it.
//!
//! # Entries
//!
//! One [`CommandSpec`] per command, in the fields of Redis 7.0's `COMMAND INFO`: name (lower
//! case; subcommands `parent|sub`), arity (negative: at least that many words, name
//! included), flags, first key, last key (-1: the last argument), key step, ACL categories,
//! tips, key specs and subcommands; then `COMMAND DOCS`' summary, since, group and
//! complexity, and the [`ReplyShape`] of the reply in RESP3. The Redis commands' values are
//! Redis 7.0.15's own `COMMAND INFO` / `COMMAND DOCS` output (argument lists are left out of
//! the docs), except `CLIENT SETINFO`, which is Redis 7.2's. Only the subcommands Ketch
//! serves are listed under `CLIENT`, `COMMAND`, `CONFIG` and `CLUSTER`. The `KETCH.*` commands are
//! Ketch's own (group `server`, since `0.1.0`).
//!
//! The table holds the commands of the whole service; [`COMMANDS`] is what `COMMAND COUNT`
//! counts. A test checks that the dispatcher serves every name in it.
//!
//! # `COMMAND`
//!
//! | request                              | reply                                              |
//! |--------------------------------------|----------------------------------------------------|
//! | `COMMAND`                            | every entry, as `COMMAND INFO` gives it            |
//! | `COMMAND COUNT`                      | the number of entries                              |
//! | `COMMAND INFO [name...]`             | one entry per name (null if unknown); all without names |
//! | `COMMAND DOCS [name...]`             | map name → {summary, since, group, complexity[, subcommands]}; unknown names are left out |
//! | `COMMAND LIST [FILTERBY PATTERN p | ACLCAT c | MODULE m]` | the names (no module is loaded: `MODULE` lists none) |
//!
//! An entry is the Redis 7 array of ten: name, arity, flags (set), first key, last key, step,
//! ACL categories (set), tips (set), key specs (set of maps), subcommands (array of entries;
//! an empty set when there are none), all downgraded for RESP2 as Redis does.

use super::resp3_reply::ReplyShape;
use crate::kv::acl::CommandInfo;
use crate::kv::glob::glob_match;
use crate::kv::resp::Frame;

/// One command, as Redis 7's `COMMAND INFO` and `COMMAND DOCS` describe it (module docs).
#[derive(Debug)]
pub(super) struct CommandSpec {
    /// Lower case; `parent|sub` for a subcommand.
    pub(super) name: &'static str,
    /// Words including the name; negative: at least `-arity`.
    pub(super) arity: i64,
    /// Redis' command flags (`write`, `readonly`, `fast`, ...).
    pub(super) flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub(super) first_key: i64,
    /// Position of the last key; -1: the last argument.
    pub(super) last_key: i64,
    /// Positions between keys.
    pub(super) key_step: i64,
    /// ACL categories, `@`-prefixed.
    pub(super) acl_categories: &'static [&'static str],
    /// Redis' command tips (`nondeterministic_output`, `request_policy:...`).
    pub(super) tips: &'static [&'static str],
    /// Where the keys are, in Redis 7's key-spec terms.
    pub(super) key_specs: &'static [KeySpec],
    /// Subcommands Ketch serves.
    pub(super) subcommands: &'static [CommandSpec],
    /// `COMMAND DOCS`' fields.
    pub(super) docs: Docs,
    /// How the RESP2 reply becomes RESP3.
    pub(super) reply: ReplyShape,
}

/// A Redis 7 key specification.
#[derive(Debug)]
pub(super) struct KeySpec {
    /// Redis' remark on the spec, if it has one.
    pub(super) notes: Option<&'static str>,
    /// `RO`, `RW`, `OW`, `RM`, `access`, `update`, `insert`, `delete`, ...
    pub(super) flags: &'static [&'static str],
    /// Where the search for keys begins.
    pub(super) begin_search: BeginSearch,
    /// How keys are found from there.
    pub(super) find_keys: FindKeys,
}

/// A key spec's `begin_search`.
#[derive(Debug)]
pub(super) enum BeginSearch {
    /// At this argument position. (Redis' other kind, after a keyword, is used by no
    /// command in the table.)
    Index(i64),
}

/// A key spec's `find_keys`.
#[derive(Debug)]
pub(super) enum FindKeys {
    /// Keys up to `last_key` (relative; -1: the last argument), every `key_step`, and
    /// `limit` (0: none). (Redis' other kind, a key count argument, is used by no command in
    /// the table.)
    Range {
        last_key: i64,
        key_step: i64,
        limit: i64,
    },
}

/// `COMMAND DOCS`' fields (argument lists are not kept).
#[derive(Debug)]
pub(super) struct Docs {
    pub(super) summary: &'static str,
    pub(super) since: &'static str,
    pub(super) group: &'static str,
    pub(super) complexity: &'static str,
}

/// Every command the service knows (module docs).
pub(super) static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "set",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: Some("RW and ACCESS due to the optional `GET` argument"), flags: &["RW", "access", "update", "variable_flags"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the string value of a key", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the value of a key", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "del",
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        key_specs: &[KeySpec { notes: None, flags: &["RM", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Delete a key", since: "1.0.0", group: "generic", complexity: "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1)." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Determine if a key exists", since: "1.0.0", group: "generic", complexity: "O(N) where N is the number of keys to check." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "append",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "insert"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Append a value to a key", since: "2.0.0", group: "string", complexity: "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "incr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Increment the integer value of a key by one", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "incrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Increment the integer value of a key by the given amount", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "decr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Decrement the integer value of a key by one", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "decrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Decrement the integer value of a key by the given number", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "mget",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["@read", "@string", "@fast"],
        tips: &["request_policy:multi_shard"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the values of all the given keys", since: "1.0.0", group: "string", complexity: "O(N) where N is the number of keys to retrieve." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "mset",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        key_step: 2,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:all_succeeded"],
        key_specs: &[KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 2, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set multiple keys to multiple values", since: "1.0.1", group: "string", complexity: "O(N) where N is the number of keys to set." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "setnx",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["OW", "insert"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the value of a key, only if the key does not exist", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "getset",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the string value of a key and return its old value", since: "1.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "getdel",
        arity: 2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the value of a key and delete the key", since: "6.2.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "getrange",
        arity: 4,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@string", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get a substring of the string stored at a key", since: "2.4.0", group: "string", complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "setrange",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Overwrite part of a string at key starting at the specified offset", since: "2.2.0", group: "string", complexity: "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "strlen",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the length of the value stored in a key", since: "2.2.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "incrbyfloat",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Increment the float value of a key by the given amount", since: "2.6.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "msetnx",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        key_step: 2,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:agg_min"],
        key_specs: &[KeySpec { notes: None, flags: &["OW", "insert"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 2, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set multiple keys to multiple values, only if none of the keys exist", since: "1.0.1", group: "string", complexity: "O(N) where N is the number of keys to set." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "setex",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the value and expiration of a key", since: "2.0.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "psetex",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the value and expiration in milliseconds of a key", since: "2.6.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "getex",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: Some("RW and UPDATE because it changes the TTL"), flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the value of a key and optionally set its expiration", since: "6.2.0", group: "string", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "expire",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set a key's time to live in seconds", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "pexpire",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set a key's time to live in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "expireat",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the expiration for a key as a UNIX timestamp", since: "1.2.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "pexpireat",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the expiration for a key as a UNIX timestamp specified in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ttl",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["nondeterministic_output"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the time to live for a key in seconds", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "pttl",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["nondeterministic_output"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the time to live for a key in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "expiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the expiration Unix timestamp for a key", since: "7.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "pexpiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the expiration Unix timestamp for a key in milliseconds", since: "7.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "persist",
        arity: 2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Remove the expiration from a key", since: "2.2.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        key_specs: &[KeySpec { notes: None, flags: &["RM", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", since: "4.0.0", group: "generic", complexity: "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "type",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Determine the type stored at key", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "rename",
        arity: 3,
        flags: &["write"],
        first_key: 1,
        last_key: 2,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@slow"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }, KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Rename a key", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "renamenx",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 2,
        key_step: 1,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }, KeySpec { notes: None, flags: &["OW", "insert"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Rename a key, only if the new key does not exist", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@read", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "nondeterministic_output_order"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Find all keys matching the given pattern", since: "1.0.0", group: "generic", complexity: "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@read", "@slow"],
        tips: &["nondeterministic_output", "request_policy:special"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Incrementally iterate the keys space", since: "2.8.0", group: "generic", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "randomkey",
        arity: 1,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@read", "@slow"],
        tips: &["request_policy:all_shards", "nondeterministic_output"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Return a random key from the keyspace", since: "1.0.0", group: "generic", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Remove all keys from the current database", since: "1.0.0", group: "server", complexity: "O(N) where N is the number of keys in the selected database" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "flushall",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Remove all keys from all databases", since: "1.0.0", group: "server", complexity: "O(N) where N is the total number of keys in all databases" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "dbsize",
        arity: 1,
        flags: &["readonly", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["request_policy:all_shards", "response_policy:agg_sum"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Return the number of keys in the selected database", since: "1.0.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "time",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast"],
        tips: &["nondeterministic_output"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Return the current server time", since: "2.6.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the string value of a hash field", since: "2.0.0", group: "hash", complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hget",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the value of a hash field", since: "2.0.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hmget",
        arity: -3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the values of all the given hash fields", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields being requested." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hmset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set multiple hash fields to multiple values", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields being set." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hdel",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Delete one or more hash fields", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields to be removed." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hgetall",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get all the fields and values in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash." },
        reply: ReplyShape::MapFromPairs,
    },
    CommandSpec {
        name: "hkeys",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get all the fields in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hvals",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get all the values in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hlen",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the number of fields in a hash", since: "2.0.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hexists",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Determine if a hash field exists", since: "2.0.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hincrby",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Increment the integer value of a hash field by the given number", since: "2.0.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hincrbyfloat",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "access", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Increment the float value of a hash field by the given amount", since: "2.6.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hsetnx",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RW", "insert"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Set the value of a hash field, only if the field does not exist", since: "2.0.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hscan",
        arity: -3,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output"],
        key_specs: &[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Incrementally iterate hash fields and associated values", since: "2.8.0", group: "hash", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hstrlen",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: 0, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Get the length of the value of a hash field", since: "3.2.0", group: "hash", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "multi",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@transaction"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Mark the start of a transaction block", since: "1.2.0", group: "transactions", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "exec",
        arity: 1,
        flags: &["noscript", "loading", "stale", "skip_slowlog"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow", "@transaction"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Execute all commands issued after MULTI", since: "1.2.0", group: "transactions", complexity: "Depends on commands in the transaction" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "discard",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@transaction"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Discard all commands issued after MULTI", since: "2.0.0", group: "transactions", complexity: "O(N), when N is the number of queued commands" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "watch",
        arity: -2,
        flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["@fast", "@transaction"],
        tips: &[],
        key_specs: &[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { last_key: -1, key_step: 1, limit: 0 } }],
        subcommands: &[],
        docs: Docs { summary: "Watch the given keys to determine execution of the MULTI/EXEC block", since: "2.2.0", group: "transactions", complexity: "O(1) for every key." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "unwatch",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@transaction"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Forget about all watched keys", since: "2.2.0", group: "transactions", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Ping the server", since: "1.0.0", group: "connection", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "echo",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Echo the given string", since: "1.0.0", group: "connection", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "quit",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Close the connection", since: "1.0.0", group: "connection", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Change the selected database for the current connection", since: "1.0.0", group: "connection", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "auth",
        arity: -2,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Authenticate to the server", since: "1.0.0", group: "connection", complexity: "O(N) where N is the number of passwords defined for the user" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "hello",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Handshake with Redis", since: "6.0.0", group: "connection", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "client",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow"],
        tips: &[],
        key_specs: &[],
        subcommands: &[
            CommandSpec {
                name: "client|info",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Returns information about the current client connection.", since: "6.2.0", group: "connection", complexity: "O(1)" },
                reply: ReplyShape::Verbatim,
            },
            CommandSpec {
                name: "client|getname",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get the current connection name", since: "2.6.9", group: "connection", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "client|id",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Returns the client ID for the current connection", since: "5.0.0", group: "connection", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "client|setname",
                arity: 3,
                flags: &["noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Set the current connection name", since: "2.6.9", group: "connection", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
        CommandSpec {
                name: "client|setinfo",
                arity: 4,
                flags: &["noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Set client or connection specific info", since: "7.2.0", group: "connection", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "client|list",
                arity: -2,
                flags: &["admin", "noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@admin", "@slow", "@dangerous", "@connection"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get the list of client connections", since: "2.4.0", group: "connection", complexity: "O(N) where N is the number of client connections" },
                reply: ReplyShape::Verbatim,
            },
        ],
        docs: Docs { summary: "A container for client connection commands", since: "2.4.0", group: "connection", complexity: "Depends on subcommand." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow", "@connection"],
        tips: &["nondeterministic_output_order"],
        key_specs: &[],
        subcommands: &[
            CommandSpec {
                name: "command|info",
                arity: -2,
                flags: &["loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &["nondeterministic_output_order"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get array of specific Redis command details, or all when no argument is given.", since: "2.8.13", group: "server", complexity: "O(N) where N is the number of commands to look up" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "command|docs",
                arity: -2,
                flags: &["loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &["nondeterministic_output_order"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get array of specific Redis command documentation", since: "7.0.0", group: "server", complexity: "O(N) where N is the number of commands to look up" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "command|count",
                arity: 2,
                flags: &["loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get total number of Redis commands", since: "2.8.13", group: "server", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "command|list",
                arity: -2,
                flags: &["loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow", "@connection"],
                tips: &["nondeterministic_output_order"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get an array of Redis command names", since: "7.0.0", group: "server", complexity: "O(N) where N is the total number of Redis commands" },
                reply: ReplyShape::Plain,
            },
        ],
        docs: Docs { summary: "Get array of Redis command details", since: "2.8.13", group: "server", complexity: "O(N) where N is the total number of Redis commands" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "config",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow"],
        tips: &[],
        key_specs: &[],
        subcommands: &[
            CommandSpec {
                name: "config|get",
                arity: -3,
                flags: &["admin", "noscript", "loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@admin", "@slow", "@dangerous"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get the values of configuration parameters", since: "2.0.0", group: "server", complexity: "O(N) when N is the number of configuration parameters provided" },
                reply: ReplyShape::MapFromPairs,
            },
        ],
        docs: Docs { summary: "A container for server configuration commands", since: "2.0.0", group: "server", complexity: "Depends on subcommand." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow", "@dangerous"],
        tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Get information and statistics about the server", since: "1.0.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Verbatim,
    },
    CommandSpec {
        name: "readonly",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Enables read queries for a connection to a cluster replica node", since: "3.0.0", group: "cluster", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "readwrite",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Disables read queries for a connection to a cluster replica node", since: "3.0.0", group: "cluster", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "cluster",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@slow"],
        tips: &[],
        key_specs: &[],
        subcommands: &[
            CommandSpec {
                name: "cluster|keyslot",
                arity: 3,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Returns the hash slot of the specified key", since: "3.0.0", group: "cluster", complexity: "O(N) where N is the number of bytes in the key" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "cluster|myid",
                arity: 2,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Return the node id", since: "3.0.0", group: "cluster", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "cluster|info",
                arity: 2,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Provides info about Redis Cluster node state", since: "3.0.0", group: "cluster", complexity: "O(1)" },
                reply: ReplyShape::Verbatim,
            },
            CommandSpec {
                name: "cluster|slots",
                arity: 2,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get array of Cluster slot to node mappings", since: "3.0.0", group: "cluster", complexity: "O(N) where N is the total number of Cluster nodes" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "cluster|shards",
                arity: 2,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get array of cluster slots to node mappings", since: "7.0.0", group: "cluster", complexity: "O(N) where N is the total number of cluster nodes" },
                reply: ReplyShape::Plain,
            },
            CommandSpec {
                name: "cluster|nodes",
                arity: 2,
                flags: &["stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &["nondeterministic_output"],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Get Cluster config for the node", since: "3.0.0", group: "cluster", complexity: "O(N) where N is the total number of Cluster nodes" },
                reply: ReplyShape::Verbatim,
            },
            CommandSpec {
                name: "cluster|help",
                arity: 2,
                flags: &["loading", "stale"],
                first_key: 0,
                last_key: 0,
                key_step: 0,
                acl_categories: &["@slow"],
                tips: &[],
                key_specs: &[],
                subcommands: &[],
                docs: Docs { summary: "Show helpful text about the different subcommands", since: "5.0.0", group: "cluster", complexity: "O(1)" },
                reply: ReplyShape::Plain,
            },
        ],
        docs: Docs { summary: "A container for cluster commands", since: "3.0.0", group: "cluster", complexity: "Depends on subcommand." },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.addlearner",
        arity: 3,
        flags: &["admin", "noscript"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow", "@dangerous"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Add a node to the cluster as a learner (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.promote",
        arity: 2,
        flags: &["admin", "noscript"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow", "@dangerous"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Make a learner a voter (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.demote",
        arity: 2,
        flags: &["admin", "noscript"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow", "@dangerous"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Make a voter a learner (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.remove",
        arity: 2,
        flags: &["admin", "noscript"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow", "@dangerous"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Remove a node from the cluster (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.transfer",
        arity: 2,
        flags: &["admin", "noscript"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow", "@dangerous"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Hand leadership to another voter (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.members",
        arity: 1,
        flags: &["admin", "readonly", "stale"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@admin", "@slow"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "The cluster configuration as this node sees it (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
    CommandSpec {
        name: "ketch.write",
        arity: -5,
        flags: &["write", "denyoom"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &["@write", "@slow"],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        docs: Docs { summary: "Run a write as one numbered step of an explicit session (Ketch)", since: "0.1.0", group: "server", complexity: "O(1)" },
        reply: ReplyShape::Plain,
    },
];

/// Every command and subcommand with its ACL categories, for the ACL rules
/// ([`Acl`](crate::kv::acl::Acl)).
pub(super) fn acl_catalog() -> Vec<CommandInfo> {
    let mut catalog = Vec::new();
    for spec in COMMANDS {
        catalog.push(CommandInfo {
            name: spec.name,
            categories: spec.acl_categories,
        });
        catalog.extend(spec.subcommands.iter().map(|sub| CommandInfo {
            name: sub.name,
            categories: sub.acl_categories,
        }));
    }
    catalog
}

/// The entry for `name` (any case), if the table has it.
pub(super) fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// The RESP3 shape of the reply to `request`: the table's, of the wrapped command for
/// `KETCH.WRITE`, `Plain` for anything unknown.
pub(super) fn reply_shape(request: &[Vec<u8>]) -> ReplyShape {
    let Some(name) = request.first() else {
        return ReplyShape::Plain;
    };
    if name.eq_ignore_ascii_case(b"ketch.write") {
        return match request.get(4..) {
            Some(wrapped) if !wrapped.is_empty() => reply_shape(wrapped),
            _ => ReplyShape::Plain,
        };
    }
    lookup(name).map_or(ReplyShape::Plain, |spec| spec.reply)
}

fn simple_set(words: &[&str]) -> Frame {
    Frame::Set(words.iter().map(|w| Frame::Simple(w.to_string())).collect())
}

fn key_spec_frame(spec: &KeySpec) -> Frame {
    let begin = match &spec.begin_search {
        BeginSearch::Index(index) => Frame::map([
            ("type", Frame::bulk("index")),
            ("spec", Frame::map([("index", Frame::Integer(*index))])),
        ]),
    };
    let find = match &spec.find_keys {
        FindKeys::Range {
            last_key,
            key_step,
            limit,
        } => Frame::map([
            ("type", Frame::bulk("range")),
            (
                "spec",
                Frame::map([
                    ("lastkey", Frame::Integer(*last_key)),
                    ("keystep", Frame::Integer(*key_step)),
                    ("limit", Frame::Integer(*limit)),
                ]),
            ),
        ]),
    };
    let mut fields = Vec::with_capacity(4);
    if let Some(notes) = spec.notes {
        fields.push(("notes", Frame::bulk(notes)));
    }
    fields.push(("flags", simple_set(spec.flags)));
    fields.push(("begin_search", begin));
    fields.push(("find_keys", find));
    Frame::map(fields)
}

/// The `COMMAND INFO` entry of `spec` (module docs).
pub(super) fn info_frame(spec: &CommandSpec) -> Frame {
    let subcommands = if spec.subcommands.is_empty() {
        Frame::Set(Vec::new())
    } else {
        Frame::Array(spec.subcommands.iter().map(info_frame).collect())
    };
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity),
        simple_set(spec.flags),
        Frame::Integer(spec.first_key),
        Frame::Integer(spec.last_key),
        Frame::Integer(spec.key_step),
        simple_set(spec.acl_categories),
        Frame::Set(spec.tips.iter().map(Frame::bulk).collect()),
        Frame::Set(spec.key_specs.iter().map(key_spec_frame).collect()),
        subcommands,
    ])
}

/// The `COMMAND DOCS` map of `spec` (module docs).
pub(super) fn docs_frame(spec: &CommandSpec) -> Frame {
    let mut fields = vec![
        ("summary", Frame::bulk(spec.docs.summary)),
        ("since", Frame::bulk(spec.docs.since)),
        ("group", Frame::bulk(spec.docs.group)),
        ("complexity", Frame::bulk(spec.docs.complexity)),
    ];
    if !spec.subcommands.is_empty() {
        let subcommands = spec
            .subcommands
            .iter()
            .map(|sub| (sub.name, docs_frame(sub)));
        fields.push(("subcommands", Frame::map(subcommands)));
    }
    Frame::map(fields)
}

fn wrong_arity(name: &str) -> Frame {
    Frame::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Answers `COMMAND ...` (`args[0]` is `COMMAND`) from the table (module docs).
pub(super) fn command_command(args: &[Vec<u8>]) -> Frame {
    let Some(sub) = args.get(1) else {
        return Frame::Array(COMMANDS.iter().map(info_frame).collect());
    };
    let sub_upper = sub.to_ascii_uppercase();
    match &sub_upper[..] {
        b"COUNT" if args.len() == 2 => Frame::Integer(COMMANDS.len() as i64),
        b"COUNT" => wrong_arity("command|count"),
        b"INFO" if args.len() == 2 => Frame::Array(COMMANDS.iter().map(info_frame).collect()),
        b"INFO" => Frame::Array(
            args[2..]
                .iter()
                .map(|name| lookup(name).map_or(Frame::Null, info_frame))
                .collect(),
        ),
        b"DOCS" => {
            let specs: Vec<&CommandSpec> = if args.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                args[2..].iter().filter_map(|name| lookup(name)).collect()
            };
            Frame::map(specs.into_iter().map(|spec| (spec.name, docs_frame(spec))))
        }
        b"LIST" => match command_list_filter(&args[2..]) {
            Ok(keep) => Frame::Array(
                COMMANDS
                    .iter()
                    .filter(|spec| keep(spec))
                    .map(|spec| Frame::bulk(spec.name))
                    .collect(),
            ),
            Err(error) => error,
        },
        _ => Frame::Error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

type ListFilter = Box<dyn Fn(&CommandSpec) -> bool>;

/// `COMMAND LIST`'s optional `FILTERBY MODULE|ACLCAT|PATTERN value`.
fn command_list_filter(options: &[Vec<u8>]) -> Result<ListFilter, Frame> {
    match options {
        [] => Ok(Box::new(|_| true)),
        [filterby, kind, value] if filterby.eq_ignore_ascii_case(b"FILTERBY") => {
            let value = value.clone();
            match &kind.to_ascii_uppercase()[..] {
                b"PATTERN" => Ok(Box::new(move |spec| {
                    glob_match(&value, spec.name.as_bytes(), true)
                })),
                b"ACLCAT" => Ok(Box::new(move |spec| {
                    spec.acl_categories
                        .iter()
                        .any(|cat| cat.as_bytes()[1..].eq_ignore_ascii_case(&value))
                })),
                // No modules are loaded.
                b"MODULE" => Ok(Box::new(|_| false)),
                _ => Err(Frame::Error("ERR syntax error".to_string())),
            }
        }
        _ => Err(Frame::Error("ERR syntax error".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::resp::Protocol;
    use std::collections::BTreeSet;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    /// The metrics keep their own sorted copy of the names (this table is private to the
    /// server): every command here must have its own `ketch_kv_commands_total` series.
    #[test]
    fn every_command_has_its_own_metrics_series() {
        let known = crate::metrics::kv_commands::KNOWN_COMMANDS;
        for spec in COMMANDS
            .iter()
            .filter(|spec| !spec.name.starts_with("ketch."))
        {
            assert!(
                known.binary_search(&spec.name).is_ok(),
                "{} is not in metrics::kv_commands::KNOWN_COMMANDS",
                spec.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut seen = BTreeSet::new();
        for spec in COMMANDS {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!spec.name.contains('|'), "{} is a subcommand", spec.name);
            let mut subs = BTreeSet::new();
            for sub in spec.subcommands {
                assert!(subs.insert(sub.name), "{} twice", sub.name);
                assert!(
                    sub.name.starts_with(&format!("{}|", spec.name)),
                    "{} under {}",
                    sub.name,
                    spec.name
                );
            }
        }
    }

    #[test]
    fn entries_are_consistent() {
        for spec in COMMANDS {
            assert_ne!(spec.arity, 0, "{}", spec.name);
            assert!(spec.acl_categories.iter().all(|c| c.starts_with('@')));
            if spec.first_key == 0 {
                assert_eq!((spec.last_key, spec.key_step), (0, 0), "{}", spec.name);
            } else {
                assert!(spec.key_step >= 1, "{}", spec.name);
                assert!(!spec.key_specs.is_empty(), "{}", spec.name);
            }
            assert!(!spec.docs.summary.is_empty() && !spec.docs.group.is_empty());
        }
    }

    #[test]
    fn get_is_described_as_redis_7_describes_it() {
        // Redis 7.0.15's `COMMAND INFO get`, byte for byte.
        let expected = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        let reply = command_command(&args(&["COMMAND", "INFO", "GET"]));
        assert_eq!(
            String::from_utf8_lossy(&reply.to_bytes(Protocol::Resp2)),
            String::from_utf8_lossy(expected)
        );
        // RESP3: sets and maps, and a null for an unknown command.
        let reply = command_command(&args(&["COMMAND", "INFO", "get", "nosuch"]));
        let bytes = reply.to_bytes(Protocol::Resp3);
        assert!(bytes.starts_with(b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n"));
        assert!(bytes.ends_with(b"~0\r\n_\r\n"));
    }

    #[test]
    fn count_list_info_and_docs_agree_with_the_table() {
        let count = match command_command(&args(&["COMMAND", "COUNT"])) {
            Frame::Integer(n) => n as usize,
            other => panic!("{other:?}"),
        };
        assert_eq!(count, COMMANDS.len());
        let Frame::Array(names) = command_command(&args(&["COMMAND", "LIST"])) else {
            panic!()
        };
        let Frame::Array(all) = command_command(&args(&["COMMAND"])) else {
            panic!()
        };
        let Frame::Map(docs) = command_command(&args(&["COMMAND", "DOCS"])) else {
            panic!()
        };
        assert_eq!((names.len(), all.len(), docs.len()), (count, count, count));
        for ((name, entry), (doc_name, _)) in names.iter().zip(&all).zip(&docs) {
            let Frame::Array(fields) = entry else {
                panic!()
            };
            assert_eq!(&fields[0], name);
            assert_eq!(doc_name, name);
        }
        let Frame::Array(hashes) =
            command_command(&args(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "h*"]))
        else {
            panic!()
        };
        assert!(hashes.contains(&Frame::bulk("hgetall")) && hashes.contains(&Frame::bulk("hello")));
        assert!(!hashes.contains(&Frame::bulk("get")));
        let Frame::Array(transactions) = command_command(&args(&[
            "COMMAND",
            "LIST",
            "FILTERBY",
            "ACLCAT",
            "transaction",
        ])) else {
            panic!()
        };
        assert_eq!(transactions.len(), 5);
        assert_eq!(
            command_command(&args(&["COMMAND", "LIST", "x"])),
            Frame::Error("ERR syntax error".into())
        );
        assert_eq!(
            command_command(&args(&["COMMAND", "foo"])),
            Frame::Error("ERR unknown subcommand 'foo'. Try COMMAND HELP.".into())
        );
        assert_eq!(
            command_command(&args(&["COMMAND", "COUNT", "x"])),
            Frame::Error("ERR wrong number of arguments for 'command|count' command".into())
        );
        // Docs of unknown names are left out, as Redis does.
        assert_eq!(
            command_command(&args(&["COMMAND", "DOCS", "nosuch"])),
            Frame::Map(Vec::new())
        );
    }

    #[test]
    fn cluster_subcommands_are_those_answered() {
        let cluster = lookup(b"CLUSTER").unwrap();
        let listed: BTreeSet<&str> = cluster
            .subcommands
            .iter()
            .map(|sub| sub.name.trim_start_matches("cluster|"))
            .collect();
        let answered: BTreeSet<&str> = crate::kv::cluster::command::SUBCOMMANDS
            .iter()
            .copied()
            .collect();
        assert_eq!(listed, answered);
        // Redis 7.0.15's `COMMAND INFO readonly`, byte for byte.
        let reply = command_command(&args(&["COMMAND", "INFO", "readonly"]));
        assert_eq!(
            String::from_utf8_lossy(&reply.to_bytes(Protocol::Resp2)),
            "*1\r\n*10\r\n$8\r\nreadonly\r\n:1\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"
        );
    }

    #[test]
    fn reply_shapes_follow_redis_7() {
        assert_eq!(
            reply_shape(&args(&["hgetall", "h"])),
            ReplyShape::MapFromPairs
        );
        assert_eq!(reply_shape(&args(&["MGET", "a"])), ReplyShape::Plain);
        let text = "0000018c2f4a3b1d0001a2b3c4d5e6f7";
        assert_eq!(
            reply_shape(&args(&["KETCH.WRITE", text, "1", "0", "HGETALL", "h"])),
            ReplyShape::MapFromPairs
        );
        assert_eq!(reply_shape(&args(&["nosuch"])), ReplyShape::Plain);
    }
}
