use super::*;

fn bodies(j: &Journal, after: u64) -> Vec<u64> {
    j.read_after(after, usize::MAX, usize::MAX)
        .expect("read")
        .into_iter()
        .map(|(s, b)| {
            assert_eq!(b, body(s), "body of {s}");
            s
        })
        .collect()
}

fn body(seq: u64) -> Vec<u8> {
    format!("record number {seq} with some padding to look like an envelope")
        .into_bytes()
        .repeat(2)
}

#[test]
fn records_come_back_in_order_after_any_cursor_and_across_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("j");
    let mut j = Journal::open(&path, 1 << 20).expect("open");
    for seq in (10..=2000).step_by(10) {
        j.append(seq, &body(seq)).expect("append");
    }
    assert_eq!(j.len(), 200);
    assert_eq!(bodies(&j, 0).len(), 200);
    assert_eq!(bodies(&j, 995)[0], 1000);
    assert_eq!(bodies(&j, 1000)[0], 1010);
    assert!(bodies(&j, 2000).is_empty());
    let limited = j.read_after(0, 7, usize::MAX).expect("read");
    assert_eq!(limited.len(), 7);
    j.sync().expect("sync");
    drop(j);
    let j = Journal::open(&path, 1 << 20).expect("reopen");
    assert_eq!(j.last_seq(), 2000);
    assert_eq!(bodies(&j, 0), (10..=2000).step_by(10).collect::<Vec<_>>());
}

#[test]
fn sequences_must_grow() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut j = Journal::open(dir.path(), 1 << 20).expect("open");
    j.append(5, b"a").expect("append");
    assert!(j.append(5, b"b").is_err());
    assert!(j.append(4, b"b").is_err());
    assert_eq!(bodies_raw(&j), vec![(5, b"a".to_vec())]);
}

fn bodies_raw(j: &Journal) -> Vec<(u64, Vec<u8>)> {
    j.read_after(0, usize::MAX, usize::MAX).expect("read")
}

#[test]
fn a_full_journal_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut j = Journal::open(dir.path(), 64 * 1024).expect("open");
    for seq in 1..=5000 {
        j.append(seq, &body(seq)).expect("append");
        assert!(j.bytes() <= 64 * 1024, "over the bound at {seq}");
    }
    let kept = bodies(&j, 0);
    assert_eq!(kept.len() as u64 + j.dropped(), 5000);
    assert!(j.dropped() > 0);
    // What is kept is the newest, contiguous, ending at the last append.
    assert_eq!(*kept.last().expect("some"), 5000);
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn acknowledged_records_are_gone_and_stay_gone() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut j = Journal::open(dir.path(), 64 * 1024).expect("open");
    for seq in 1..=1000 {
        j.append(seq, &body(seq)).expect("append");
    }
    j.trim_through(600).expect("trim");
    assert_eq!(j.len(), 400);
    assert_eq!(bodies(&j, 0)[0], 601);
    j.trim_through(1000).expect("trim all");
    assert_eq!(j.len(), 0);
    assert_eq!(j.last_seq(), 1000);
    assert!(j.append(1000, b"x").is_err(), "cannot go below the ack");
    j.append(1001, &body(1001)).expect("append after full ack");
    assert_eq!(bodies(&j, 0), vec![1001]);
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut j = Journal::open(dir.path(), 1 << 20).expect("open");
    for seq in 1..=50 {
        j.append(seq, &body(seq)).expect("append");
    }
    drop(j);
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max()
        .expect("a segment");
    let len = std::fs::metadata(&seg).expect("meta").len();
    // A crash mid-write: half of the last record made it.
    let f = OpenOptions::new().write(true).open(&seg).expect("open seg");
    f.set_len(len - 20).expect("truncate");
    drop(f);
    let mut j = Journal::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(bodies(&j, 0), (1..=49).collect::<Vec<_>>());
    j.append(50, &body(50)).expect("append again");
    assert_eq!(bodies(&j, 0).len(), 50);
    // A flipped byte in the middle: cut there, the rest is kept intact.
    drop(j);
    let mut bytes = std::fs::read(&seg).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, &bytes).expect("write");
    let j = Journal::open(dir.path(), 1 << 20).expect("reopen");
    let kept = bodies(&j, 0);
    assert!(!kept.is_empty() && kept.len() < 50);
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
}
