//! The `ketch` command-line tool.

fn main() {}
