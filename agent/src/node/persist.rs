//! The routing table on disk, so a restarted node rejoins without seeds.
//!
//! Written atomically (temporary file, fsync, rename, fsync the directory):
//! a crash leaves the previous table or the new one, never half of one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// File name of the persisted table in the state directory.
pub(crate) const TABLE_FILE: &str = "routing-table.bin";
/// A persisted table larger than this is not read (it cannot be ours).
const MAX_TABLE_BYTES: u64 = 4 << 20;

/// Path of the table in `state_dir`.
pub(crate) fn table_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TABLE_FILE)
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What a failed write of the state directory means for an operator: the
/// usual causes (disk full, read-only mount, permissions) named in plain
/// words, so the log line says what to fix and not only an errno.
pub(super) fn write_error_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "the state directory's file system is full; free space there"
        }
        ErrorKind::ReadOnlyFilesystem => {
            "the state directory is on a read-only file system; remount it read-write"
        }
        ErrorKind::PermissionDenied => {
            "no permission to write in the state directory; check its owner and mode"
        }
        _ => "writing in the state directory failed",
    }
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
