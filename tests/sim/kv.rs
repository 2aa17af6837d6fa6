//! The key-value state machine every simulated node applies, and the command encoding.
//!
//! Command layout (little endian): `[kind u8][client u64][seq u64][key_len u16][key][value]`,
//! kind 1 = put, 2 = append. `(client, seq)` tags each command so the client that proposed it
//! recognises it when applied.

use std::collections::BTreeMap;

/// A decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1 = put, 2 = append.
    pub kind: u8,
    /// Proposing client.
    pub client: u64,
    /// The client's sequence number.
    pub seq: u64,
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

impl Command {
    /// A put from no client, for scripts that propose commands themselves.
    pub fn put(key: &[u8], value: Vec<u8>) -> Self {
        Self {
            kind: 1,
            client: 0,
            seq: 0,
            key: key.to_vec(),
            value,
        }
    }

    /// Encodes for a log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.key.len() + self.value.len());
        out.push(self.kind);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes a log entry's data.
    pub fn decode(data: &[u8]) -> Option<Self> {
        if data.len() < 19 {
            return None;
        }
        let kind = data[0];
        let client = u64::from_le_bytes(data[1..9].try_into().ok()?);
        let seq = u64::from_le_bytes(data[9..17].try_into().ok()?);
        let key_len = u16::from_le_bytes(data[17..19].try_into().ok()?) as usize;
        let key = data.get(19..19 + key_len)?.to_vec();
        let value = data[19 + key_len..].to_vec();
        Some(Self {
            kind,
            client,
            seq,
            key,
            value,
        })
    }
}

/// The state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kv {
    /// The data.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Kv {
    /// Applies a command.
    pub fn apply(&mut self, command: &Command) {
        match command.kind {
            1 => {
                self.map.insert(command.key.clone(), command.value.clone());
            }
            2 => self
                .map
                .entry(command.key.clone())
                .or_default()
                .extend_from_slice(&command.value),
            other => panic!("SIM VIOLATION: unknown command kind {other} applied"),
        }
    }

    /// Serialises the map (snapshot bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.map {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    /// Restores from snapshot bytes.
    pub fn decode(mut data: &[u8]) -> Self {
        let mut map = BTreeMap::new();
        let take = |data: &mut &[u8]| {
            let len = u32::from_le_bytes(data[..4].try_into().expect("snapshot length")) as usize;
            let bytes = data[4..4 + len].to_vec();
            *data = &data[4 + len..];
            bytes
        };
        while !data.is_empty() {
            let key = take(&mut data);
            let value = take(&mut data);
            map.insert(key, value);
        }
        Self { map }
    }
}
