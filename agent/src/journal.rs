//! A bounded, crash-safe log of sequenced records on disk: the gateway's
//! store-and-forward queue per subscriber, and a subscriber's inbox.
//!
//! Why segments: dropping the oldest records (when full) and everything a
//! subscriber has acknowledged is then a file deletion, never a rewrite.
//!
//! On disk, a directory of segment files named by their first sequence
//! (`00000000000000000042.seg`), each a run of records:
//!
//! ```text
//! len: u32 BE | seq: u64 BE | crc32c(seq ‖ body): u32 BE | body: len bytes
//! ```
//!
//! Durability: every append is one `write(2)` to the segment, so a record
//! survives a crash of the process (SIGKILL) as soon as `append` returns.
//! Reaching the disk is `sync`'s job: the owner calls it on a timer (and on
//! segment roll and shutdown), so a power cut loses at most the records
//! appended since the last sync. At open, a torn or corrupt tail is cut off
//! at the last good record; nothing before it is touched.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const HEADER: usize = 16;
/// One record's body at most: a journal holds envelopes, which are capped
/// far below this; anything larger on disk is corruption.
pub(crate) const MAX_RECORD: usize = 1024 * 1024;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first: u64,
    last: u64,
    bytes: u64,
    /// `(seq, offset)` of every record: 16 bytes of memory per record
    /// held, so finding a cursor and counting what is pending are exact.
    index: Vec<(u64, u64)>,
}

impl Segment {
    /// Records above `seq`.
    fn above(&self, seq: u64) -> usize {
        self.index.len() - self.index.partition_point(|(s, _)| *s <= seq)
    }
}

/// A bounded sequence log in one directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Records dropped because the journal was full, since it was opened.
    dropped: u64,
    /// Everything at or below this has been acknowledged (trimmed).
    acked: u64,
    unsynced: bool,
}

impl Journal {
    /// Opens (or creates, mode 0700) the journal in `dir`, holding at most
    /// about `max_bytes`; recovers from a torn tail.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut firsts: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(first) = first {
                firsts.push((first, path));
            }
        }
        firsts.sort();
        let mut segments = VecDeque::new();
        for (_, path) in firsts {
            match scan(&path)? {
                Some(seg) => segments.push_back(seg),
                None => std::fs::remove_file(&path)?,
            }
        }
        let max_bytes = max_bytes.max(4096);
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            // Fine enough that dropping one segment frees little.
            segment_bytes: (max_bytes / 8).clamp(2048, 1024 * 1024),
            segments,
            dropped: 0,
            acked: 0,
            unsynced: false,
        })
    }

    /// Appends `body` under `seq`, which must be above every sequence in
    /// the journal (and above anything acknowledged). When the journal is
    /// full the oldest segment is dropped (and counted).
    pub(crate) fn append(&mut self, seq: u64, body: &[u8]) -> io::Result<()> {
        if seq <= self.last_seq() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sequence {seq} not above {}", self.last_seq()),
            ));
        }
        if body.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record too large",
            ));
        }
        let size = (HEADER + body.len()) as u64;
        let roll = self
            .segments
            .back()
            .is_none_or(|s| s.bytes + size > self.segment_bytes);
        if roll {
            self.sync()?;
            let path = self.dir.join(format!("{seq:020}.seg"));
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            self.segments.push_back(Segment {
                path,
                first: seq,
                last: seq,
                bytes: 0,
                index: Vec::new(),
            });
            sync_dir(&self.dir)?;
        }
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(&(body.len() as u32).to_be_bytes());
        record.extend_from_slice(&seq.to_be_bytes());
        record.extend_from_slice(&checksum(seq, body).to_be_bytes());
        record.extend_from_slice(body);
        let Some(seg) = self.segments.back_mut() else {
            return Err(io::Error::other("journal has no active segment"));
        };
        // No file handle is kept between appends: a gateway may hold a
        // queue per (device, subscriber), far more than it should hold
        // open files. One O_APPEND write per record, so a crash leaves at
        // most a torn tail, which `open` cuts.
        OpenOptions::new()
            .append(true)
            .open(&seg.path)?
            .write_all(&record)?;
        seg.index.push((seq, seg.bytes));
        seg.last = seq;
        seg.bytes += size;
        self.unsynced = true;
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            if let Some(old) = self.segments.pop_front() {
                self.dropped += old.above(self.acked) as u64;
                std::fs::remove_file(&old.path)?;
            }
        }
        Ok(())
    }

    /// Forgets every record up to and including `seq` (acknowledged).
    pub(crate) fn trim_through(&mut self, seq: u64) -> io::Result<()> {
        self.acked = self.acked.max(seq);
        while self.segments.front().is_some_and(|s| s.last <= seq) {
            // The sequence floor stays in `acked`, so a journal emptied
            // this way still refuses sequences it has seen.
            if let Some(old) = self.segments.pop_front() {
                std::fs::remove_file(&old.path)?;
            }
        }
        Ok(())
    }

    /// Up to `max_records` records with a sequence above `after`, oldest
    /// first, whose bodies add up to at most `max_bytes` — except that the
    /// first is returned whatever its size, so a reader always progresses.
    pub(crate) fn read_after(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let after = after.max(self.acked);
        let mut out = Vec::new();
        let mut total = 0usize;
        for seg in self.segments.iter().filter(|s| s.last > after) {
            let from = seg.index.partition_point(|(s, _)| *s <= after);
            let Some(&(_, start)) = seg.index.get(from) else {
                continue;
            };
            let mut file = File::open(&seg.path)?;
            file.seek(SeekFrom::Start(start))?;
            let mut reader = io::BufReader::new(file.take(seg.bytes - start));
            while let Some((seq, body)) = read_record(&mut reader)? {
                if seq <= after {
                    continue;
                }
                if !out.is_empty() && total + body.len() > max_bytes {
                    return Ok(out);
                }
                total += body.len();
                out.push((seq, body));
                if out.len() >= max_records || total >= max_bytes {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Flushes appended records to the disk.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            if let Some(seg) = self.segments.back() {
                File::open(&seg.path)?.sync_data()?;
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// The highest sequence ever appended or acknowledged.
    pub(crate) fn last_seq(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.last).max(self.acked)
    }

    /// Records held and not acknowledged.
    pub(crate) fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.above(self.acked) as u64)
            .sum()
    }

    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Records dropped because the journal was full, since it was opened.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

fn checksum(seq: u64, body: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(&seq.to_be_bytes());
    d.update(body);
    d.finalize()
}

/// The next record, `None` at a clean end; a torn or corrupt record is an
/// `InvalidData` error.
fn read_record(r: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut header[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(io::ErrorKind::InvalidData, "torn header"))
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[4..12]);
    let seq = u64::from_be_bytes(seq);
    let crc = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    if len > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "record length"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "torn body"))?;
    if checksum(seq, &body) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "checksum"));
    }
    Ok(Some((seq, body)))
}

/// Reads a segment, cutting it at the first bad record (a torn write from
/// a crash). `None` when nothing good is left in it.
fn scan(path: &Path) -> io::Result<Option<Segment>> {
    let file = File::open(path)?;
    let mut reader = io::BufReader::new(file);
    let mut seg = Segment {
        path: path.to_owned(),
        first: 0,
        last: 0,
        bytes: 0,
        index: Vec::new(),
    };
    loop {
        match read_record(&mut reader) {
            Ok(Some((seq, body))) if seg.index.is_empty() || seq > seg.last => {
                if seg.index.is_empty() {
                    seg.first = seq;
                }
                seg.index.push((seq, seg.bytes));
                seg.last = seq;
                seg.bytes += (HEADER + body.len()) as u64;
            }
            Ok(None) => break,
            Ok(Some(_)) | Err(_) => {
                tracing::warn!(path = %path.display(), kept = seg.index.len(), "journal segment cut at a bad record");
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(seg.bytes)?;
                f.sync_all()?;
                break;
            }
        }
    }
    Ok((!seg.index.is_empty()).then_some(seg))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
