//! Each device's reading sequence, kept on disk so it never goes back:
//! not across restarts, and not when the clock steps back.
//!
//! A reading's `seq` is above the previous one and at least the clock in
//! microseconds ([`super::reading::next_seq`]). Without a mark on disk, a
//! gateway restarted with its clock an hour behind would number readings
//! below what its subscribers already hold, and they would drop them as
//! duplicates. So the collector keeps, per device, a *reservation*: a
//! sequence persisted ahead of use (`<state>/seq/<device key>`), renewed
//! [`RESERVE`] ahead each time it is reached. After a restart every device
//! resumes above its reservation, whatever the clock says. One small
//! atomic write per device every [`RESERVE`] µs of sequence (about 17
//! minutes of a correct clock), not one per reading.
//!
//! What this module does not do: order readings of different devices
//! (sequences are per device), or keep readings (the outboxes do).

use std::path::{Path, PathBuf};

use crate::identity::PublicKey;
use crate::state_file::{write_atomic, write_error_hint};

/// How far ahead of the last sequence a reservation reaches: 10^9, about
/// 17 minutes of microseconds.
pub(super) const RESERVE: u64 = 1_000_000_000;

/// The reservations of every device, one file each.
#[derive(Debug, Clone)]
pub(super) struct SeqMarks {
    dir: PathBuf,
}

impl SeqMarks {
    /// Reservations under `dir` (created on first write).
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, device: &PublicKey) -> PathBuf {
        self.dir.join(device.to_string())
    }

    /// The reservation kept for `device`: every sequence it used is below
    /// it (0 when none was kept, or the file is unreadable: then the clock
    /// and the queues are all there is to go by, as before).
    pub(super) fn reserved(&self, device: &PublicKey) -> u64 {
        match std::fs::read(self.path(device)) {
            Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(b) => u64::from_be_bytes(b),
                Err(_) => {
                    tracing::warn!(device = %device, "sequence mark unreadable; ignored");
                    0
                }
            },
            Err(_) => 0,
        }
    }

    /// Keeps `upto` as `device`'s reservation. On failure the cause is
    /// logged in words an operator can act on; the caller counts it.
    pub(super) fn reserve(&self, device: &PublicKey, upto: u64) -> std::io::Result<()> {
        let write = || {
            std::fs::create_dir_all(&self.dir)?;
            write_atomic(&self.path(device), &upto.to_be_bytes())
        };
        write().inspect_err(|e| {
            tracing::warn!(
                device = %device,
                error = %e,
                "cannot keep a reading sequence mark: {}; after a restart with the clock set back, this device's readings could be numbered below ones subscribers hold",
                write_error_hint(e)
            );
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn a_reservation_survives_and_a_broken_one_reads_as_none() {
        let tmp = tempfile::tempdir().expect("tmp");
        let marks = SeqMarks::new(&tmp.path().join("seq"));
        let device = Keypair::from_seed(&[9; 32]).public();
        assert_eq!(marks.reserved(&device), 0);
        marks.reserve(&device, 42).expect("write");
        assert_eq!(SeqMarks::new(&tmp.path().join("seq")).reserved(&device), 42);
        std::fs::write(tmp.path().join("seq").join(device.to_string()), b"xy").expect("spoil");
        assert_eq!(marks.reserved(&device), 0);
    }
}
