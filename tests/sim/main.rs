//! Deterministic cluster simulator.
