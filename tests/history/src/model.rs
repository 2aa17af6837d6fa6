//! The sequential specification of one key: a register holding bytes, or absent.
//!
//! States are interned: the checker memoizes (linearized set, state) pairs, and a small integer
//! hashes and compares faster than the value, which appends can make long.

use std::collections::HashMap;

use super::operation::{Op, Outcome};

/// An interned register value. `StateId::ABSENT` is the key never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StateId(u32);

impl StateId {
    pub(crate) const ABSENT: StateId = StateId(0);
}

/// What one operation does to the register, prepared once so each step is cheap.
#[derive(Debug, Clone)]
pub(crate) enum Transition<'a> {
    /// A read that observed this value: allowed only in exactly that state, which it keeps.
    Observe(StateId),
    /// A put: the state becomes this value whatever it was.
    Overwrite(StateId),
    /// An append of these bytes.
    Extend(&'a [u8]),
}

/// The register's reachable values, interned, with the append transitions memoized.
#[derive(Debug)]
pub(crate) struct RegisterModel {
    values: Vec<Option<Vec<u8>>>,
    ids: HashMap<Option<Vec<u8>>, StateId>,
    /// (state, operation index) -> state after the append.
    appended: HashMap<(StateId, usize), StateId>,
}

impl RegisterModel {
    pub(crate) fn new() -> Self {
        let mut model = RegisterModel {
            values: Vec::new(),
            ids: HashMap::new(),
            appended: HashMap::new(),
        };
        let absent = model.intern(None);
        assert_eq!(absent, StateId::ABSENT);
        model
    }

    pub(crate) fn intern(&mut self, value: Option<Vec<u8>>) -> StateId {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let raw = u32::try_from(self.values.len()).expect("more than 2^32 register states");
        let id = StateId(raw);
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    pub(crate) fn value(&self, state: StateId) -> Option<&[u8]> {
        self.values[state.0 as usize].as_deref()
    }

    /// Prepares the transition of `op`, which must carry a known outcome for a read (a read with
    /// an unknown outcome constrains nothing and is dropped before the search).
    pub(crate) fn transition<'a>(
        &mut self,
        op: &'a Op,
        outcome: Option<&Outcome>,
    ) -> Transition<'a> {
        match op {
            Op::Get { .. } => match outcome {
                Some(Outcome::Get(observed)) => Transition::Observe(self.intern(observed.clone())),
                other => panic!("read without an observed value reached the model: {other:?}"),
            },
            Op::Put { value, .. } => Transition::Overwrite(self.intern(Some(value.clone()))),
            Op::Append { value, .. } => Transition::Extend(value),
        }
    }

    /// Applies operation `op_index` with transition `transition` in `state`; `None` when the
    /// operation's observed outcome is impossible in that state.
    pub(crate) fn step(
        &mut self,
        state: StateId,
        op_index: usize,
        transition: &Transition<'_>,
    ) -> Option<StateId> {
        match *transition {
            Transition::Observe(expected) => (expected == state).then_some(state),
            Transition::Overwrite(next) => Some(next),
            Transition::Extend(suffix) => {
                if let Some(&next) = self.appended.get(&(state, op_index)) {
                    return Some(next);
                }
                let mut extended = self.value(state).unwrap_or_default().to_vec();
                extended.extend_from_slice(suffix);
                let next = self.intern(Some(extended));
                self.appended.insert((state, op_index), next);
                Some(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_semantics() {
        let mut model = RegisterModel::new();
        let put = Op::Put {
            key: b"k".to_vec(),
            value: b"x".to_vec(),
        };
        let append = Op::Append {
            key: b"k".to_vec(),
            value: b"y".to_vec(),
        };
        let get_xy = Op::Get { key: b"k".to_vec() };
        let read_xy = Outcome::Get(Some(b"xy".to_vec()));
        let put_t = model.transition(&put, Some(&Outcome::Put));
        let append_t = model.transition(&append, None);
        let get_t = model.transition(&get_xy, Some(&read_xy));

        // Append to an absent key starts from empty.
        let y = model.step(StateId::ABSENT, 1, &append_t).unwrap();
        assert_eq!(model.value(y), Some(&b"y"[..]));
        let x = model.step(y, 0, &put_t).unwrap();
        assert_eq!(model.value(x), Some(&b"x"[..]));
        let xy = model.step(x, 1, &append_t).unwrap();
        assert_eq!(model.value(xy), Some(&b"xy"[..]));
        // Memoized append gives the same interned state.
        assert_eq!(model.step(x, 1, &append_t), Some(xy));
        assert_eq!(model.step(xy, 2, &get_t), Some(xy));
        assert_eq!(model.step(x, 2, &get_t), None);
        assert_eq!(model.step(StateId::ABSENT, 2, &get_t), None);
    }

    #[test]
    fn absent_differs_from_empty() {
        let mut model = RegisterModel::new();
        let empty = model.intern(Some(Vec::new()));
        assert_ne!(empty, StateId::ABSENT);
        assert_eq!(model.value(StateId::ABSENT), None);
        assert_eq!(model.value(empty), Some(&b""[..]));
    }
}
