//! Client histories and their linearizability checker.
