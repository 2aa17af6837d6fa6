//! What the recovery targets share: a scratch directory, and damage to the files of a log or
//! store driven by the fuzzer's bytes. Included by `wal_recovery` and `store_recovery`.

use std::path::Path;

/// A scratch directory, on tmpfs when there is one: fsync is free there, and the fuzzer runs
/// hundreds of times faster; the recovery logic under test is the same.
pub fn scratch_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Damages the files in `dir` whose extension is `extension`, six bytes of `rest` per step:
/// which file, a 32-bit offset, and either 0 (cut the file there) or a mask XORed into that
/// byte. Returns whether anything was damaged.
pub fn damage_files(dir: &Path, extension: &str, mut rest: &[u8]) -> bool {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    let mut damaged = false;
    while rest.len() >= 6 && !files.is_empty() {
        let file = &files[rest[0] as usize % files.len()];
        let mut bytes = std::fs::read(file).unwrap();
        if bytes.is_empty() {
            break;
        }
        let offset =
            u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize % bytes.len();
        if rest[5] == 0 {
            bytes.truncate(offset);
        } else {
            bytes[offset] ^= rest[5];
        }
        std::fs::write(file, &bytes).unwrap();
        damaged = true;
        rest = &rest[6..];
    }
    damaged
}
