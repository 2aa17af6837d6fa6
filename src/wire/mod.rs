//! Peer message encoding and framing.
