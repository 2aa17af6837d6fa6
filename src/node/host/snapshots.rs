//! Each group's snapshot files, in a directory of its own under the host's data directory:
//! `snapshots/<group id>/` (the file format is `ketch_storage::snapshot`). A group's directory
//! is created on its first snapshot, so a group that never snapshots costs no directory, and
//! no file is held open between uses, so file descriptors do not grow with the groups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ketch_storage::snapshot::{SnapshotOptions, SnapshotStore};

use crate::raft::GroupId;

/// The snapshot stores of every group, opened on first use and shared by the host's threads.
#[derive(Debug, Clone)]
pub struct GroupSnapshots {
    root: PathBuf,
    open: Arc<Mutex<HashMap<GroupId, SnapshotStore>>>,
}

impl GroupSnapshots {
    /// The stores under `data_dir/snapshots`.
    pub fn new(data_dir: &Path) -> GroupSnapshots {
        GroupSnapshots {
            root: data_dir.join("snapshots"),
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The directory of `group`'s snapshots.
    pub fn dir(&self, group: GroupId) -> PathBuf {
        self.root.join(group.to_string())
    }

    /// Whether `group` has a snapshot directory (it built or received a snapshot once).
    pub fn exists(&self, group: GroupId) -> bool {
        self.dir(group).is_dir()
    }

    /// `group`'s store, creating its directory if needed.
    pub fn store(&self, group: GroupId) -> Result<SnapshotStore, String> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = open.get(&group) {
            return Ok(store.clone());
        }
        let dir = self.dir(group);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("creating snapshot directory {}: {e}", dir.display()))?;
        let store = SnapshotStore::open(&dir, SnapshotOptions::default())
            .map_err(|e| format!("opening snapshots of group {group}: {e}"))?;
        open.insert(group, store.clone());
        Ok(store)
    }

    /// Deletes `group`'s snapshots (the group was removed from this host).
    pub fn remove(&self, group: GroupId) -> Result<(), String> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
        let dir = self.dir(group);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!(
                "removing snapshot directory {}: {e}",
                dir.display()
            )),
        }
    }
}
