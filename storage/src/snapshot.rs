//! zstd-compressed snapshot files, installed atomically.
