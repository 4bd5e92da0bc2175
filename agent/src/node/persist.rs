//! The routing table on disk, so a restarted node rejoins without seeds.
//!
//! Written atomically ([`crate::state_file::write_atomic`]): a crash leaves
//! the previous table or the new one, never half of one.

use std::fs;
use std::path::{Path, PathBuf};

/// File name of the persisted table in the state directory.
pub(crate) const TABLE_FILE: &str = "routing-table.bin";
/// A persisted table larger than this is not read (it cannot be ours).
const MAX_TABLE_BYTES: u64 = 4 << 20;

/// Path of the table in `state_dir`.
pub(crate) fn table_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TABLE_FILE)
}

/// Reads the persisted table, if there is a usable one.
pub(super) fn read(path: &Path) -> Option<Vec<u8>> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > MAX_TABLE_BYTES {
        tracing::warn!(path = %path.display(), "persisted routing table too large; ignored");
        return None;
    }
    fs::read(path).ok()
}

impl super::Node {
    /// Saves the routing table. A failure (disk full, read-only) is logged
    /// with its cause and counted, and the node goes on: the previous file
    /// stays intact (atomic write), only the newer view is not saved.
    pub(super) fn persist(&mut self) {
        let path = table_path(&self.cfg.state_dir);
        if let Err(e) = crate::state_file::write_atomic(&path, &self.dht.save_table()) {
            self.counters.state_write_errors += 1;
            let hint = crate::state_file::write_error_hint(&e);
            tracing::warn!(path = %path.display(), error = %e, "cannot persist the routing table: {hint}");
        }
    }
}
