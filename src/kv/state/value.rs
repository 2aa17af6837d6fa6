//! [`Value`]: what a key holds. One variant per Redis type Ketch implements; a new type (a
//! hash, say) is a new variant, its `TYPE` name in [`Value::type_name`], and its commands in a
//! file of their own that reach its variant through one accessor like [`Value::as_string`].
//! Every type check goes through those accessors, so every command that meets the wrong type
//! answers Redis' [`WRONGTYPE_TEXT`].

use super::hashes::Hash;

/// Redis' reply to a command on a key holding another type.
pub const WRONGTYPE_TEXT: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// A key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (binary safe).
    String(Vec<u8>),
    /// A hash (fields to values; see `hashes`).
    Hash(Hash),
}

/// A command met a value of another type (answer [`WRONGTYPE_TEXT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

impl Value {
    /// The name `TYPE` answers (and `SCAN ... TYPE` matches).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash(_) => "hash",
        }
    }

    /// The string, or [`WrongType`].
    pub fn as_string(&self) -> Result<&Vec<u8>, WrongType> {
        match self {
            Value::String(bytes) => Ok(bytes),
            Value::Hash(_) => Err(WrongType),
        }
    }

    /// The string to change in place, or [`WrongType`].
    pub fn as_string_mut(&mut self) -> Result<&mut Vec<u8>, WrongType> {
        match self {
            Value::String(bytes) => Ok(bytes),
            Value::Hash(_) => Err(WrongType),
        }
    }

    /// The hash, or [`WrongType`].
    pub fn as_hash(&self) -> Result<&Hash, WrongType> {
        match self {
            Value::Hash(hash) => Ok(hash),
            Value::String(_) => Err(WrongType),
        }
    }

    /// The hash to change in place, or [`WrongType`].
    pub fn as_hash_mut(&mut self) -> Result<&mut Hash, WrongType> {
        match self {
            Value::Hash(hash) => Ok(hash),
            Value::String(_) => Err(WrongType),
        }
    }

    /// Bytes of payload (for the snapshot's and the memory docs' accounting).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::String(bytes) => bytes.len(),
            Value::Hash(hash) => hash.payload_bytes(),
        }
    }
}
