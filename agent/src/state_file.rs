//! Small files in the state directory (the routing table, sequence
//! marks): written atomically, and failures explained in words an operator
//! can act on.
//!
//! What this module does not do: keys (the keystore writes those, refusing
//! to overwrite), or logs of many records (the journal).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically with mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
pub(crate) fn write_error_hint(e: &std::io::Error) -> &'static str {
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
