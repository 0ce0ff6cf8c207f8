//! The store on a real directory: durability of what was acknowledged, torn
//! files cut back to their valid prefix, retention, the size cap, pruning.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use logging::domain::{Labels, Query, Record, TimeRange, TraceId};
use logging::store::{LogStore, StoreConfig, StoreError};

const HOUR: i64 = 3_600_000;
/// A fixed "now" for the tests: 2030-01-01T00:00Z.
const NOW: i64 = 1_893_456_000_000;

fn config() -> StoreConfig {
    StoreConfig {
        partition_ms: HOUR,
        retention_ms: 24 * HOUR,
        max_bytes: 1 << 30,
        max_future_ms: 600_000,
        max_label_values: 50,
    }
}

fn rec(ts: i64, service: &str, msg: &str) -> Record {
    Record::new(
        ts,
        Labels::from_pairs([("service", service), ("level", "info")]).expect("valid"),
        msg,
    )
}

fn all(store: &LogStore, q: &str, from: i64, to: i64) -> Vec<Record> {
    store
        .query(
            &Query::parse(q).expect("query"),
            TimeRange::new(from, to).expect("range"),
            usize::MAX,
        )
        .expect("query runs")
        .lines
}

fn partition_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

/// Three batches (three frames) in one partition; returns the file.
fn three_frames(dir: &Path) -> PathBuf {
    let (mut s, _) = LogStore::open(dir, config()).expect("open");
    for i in 0..3 {
        let batch: Vec<Record> = (0..10)
            .map(|j| {
                rec(
                    NOW - HOUR / 2 + i * 100 + j,
                    "api",
                    &format!("batch {i} line {j}"),
                )
            })
            .collect();
        s.append(&batch, NOW).expect("append");
    }
    let files = partition_files(dir);
    assert_eq!(files.len(), 1);
    files[0].clone()
}

#[test]
fn acknowledged_lines_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_frames(dir.path());
    let (s, report) = LogStore::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.chunks, 3);
    assert_eq!(report.repaired_files, 0);
    assert_eq!(all(&s, "{service=\"api\"}", NOW - HOUR, NOW).len(), 30);
}

// ANCHOR: torn
#[test]
fn a_torn_last_frame_is_cut_and_the_valid_prefix_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = three_frames(dir.path());
    let len = fs::metadata(&file).expect("meta").len();
    // A crash in the middle of the third frame's write.
    OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 7)
        .expect("truncate");
    let (mut s, report) = LogStore::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.chunks, 2);
    assert_eq!(report.repaired_files, 1);
    assert!(report.cut_bytes > 0);
    assert_eq!(all(&s, "{service=\"api\"}", NOW - HOUR, NOW).len(), 20);
    // The file was cut back: a new append lands after the valid prefix and
    // is found by the next open.
    s.append(&[rec(NOW - 10, "api", "after repair")], NOW)
        .expect("append");
    drop(s);
    let (s, report) = LogStore::open(dir.path(), config()).expect("reopen again");
    assert_eq!(report.repaired_files, 0);
    assert_eq!(all(&s, "{service=\"api\"}", NOW - HOUR, NOW).len(), 21);
}
// ANCHOR_END: torn

#[test]
fn a_flipped_byte_fails_the_checksum_and_what_follows_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = three_frames(dir.path());
    let mut bytes = fs::read(&file).expect("read");
    // Flip the last byte: inside the third frame's compressed body.
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, &bytes).expect("write");
    let (s, report) = LogStore::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.chunks, 2, "the corrupt frame is not served");
    assert_eq!(report.repaired_files, 1);
    assert_eq!(all(&s, "{service=\"api\"}", NOW - HOUR, NOW).len(), 20);
}

#[test]
fn retention_drops_partitions_older_than_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    for h in 0..5 {
        s.append(&[rec(NOW - h * HOUR - 1, "api", "x")], NOW)
            .expect("append");
    }
    assert_eq!(s.partitions().len(), 5);
    // Partitions hold [NOW - 5h, NOW) an hour each. With a 24-hour window,
    // 19 hours later nothing has expired; 22 hours later the three that
    // ended at or before NOW - 2h are gone.
    assert!(
        s.enforce_retention(NOW + 19 * HOUR)
            .expect("retention")
            .is_empty()
    );
    let dropped = s.enforce_retention(NOW + 22 * HOUR).expect("retention");
    assert_eq!(dropped.len(), 3);
    assert_eq!(s.partitions().len(), 2);
    assert_eq!(
        partition_files(dir.path()).len(),
        2,
        "the files are deleted"
    );
    assert_eq!(s.stats().partitions_dropped, 3);
}

#[test]
fn the_size_cap_drops_the_oldest_partitions_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    for h in (0..4).rev() {
        let batch: Vec<Record> = (0..50)
            .map(|i| {
                rec(
                    NOW - h * HOUR - 100 + i,
                    "api",
                    &format!("line {i} of hour {h}"),
                )
            })
            .collect();
        s.append(&batch, NOW).expect("append");
    }
    let per_partition = s.total_bytes() / 4;
    drop(s);
    let capped = StoreConfig {
        max_bytes: per_partition * 2 + per_partition / 2,
        ..config()
    };
    let (mut s, _) = LogStore::open(dir.path(), capped).expect("reopen");
    let before = s.partitions();
    let dropped = s.enforce_retention(NOW).expect("cap");
    assert_eq!(dropped, before[..2].to_vec(), "the two oldest go");
    assert!(s.total_bytes() <= capped.max_bytes);
    assert_eq!(s.partitions(), before[2..].to_vec());
}

#[test]
fn a_query_opens_only_the_partitions_its_range_meets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    for h in 0..6 {
        s.append(&[rec(NOW - h * HOUR - 1, "api", "tick")], NOW)
            .expect("append");
    }
    let r = s
        .query(
            &Query::parse("{service=\"api\"}").expect("q"),
            TimeRange::new(NOW - 2 * HOUR, NOW).expect("range"),
            100,
        )
        .expect("query");
    assert_eq!(r.partitions_total, 6);
    assert_eq!(r.partitions_scanned, 2);
    assert_eq!(r.lines.len(), 2);
}

#[test]
fn labels_pick_chunks_and_text_is_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    let batch = vec![
        rec(NOW - 5, "api", "GET /cart 200"),
        rec(NOW - 4, "api", "GET /cart 500 timeout"),
        rec(NOW - 3, "search", "query timeout"),
    ];
    s.append(&batch, NOW).expect("append");
    let r = s
        .query(
            &Query::parse("{service=\"api\"} |= \"timeout\"").expect("q"),
            TimeRange::new(NOW - HOUR, NOW).expect("range"),
            100,
        )
        .expect("query");
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].message, "GET /cart 500 timeout");
    assert_eq!(
        r.chunks_scanned, 1,
        "the search stream's chunk was not opened"
    );
}

#[test]
fn a_trace_id_links_lines_across_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    let t = TraceId::from_u128(0xabc);
    let mut batch = vec![
        rec(NOW - 9, "gateway", "POST /checkout"),
        rec(NOW - 8, "payments", "charge ok"),
        rec(NOW - 7, "payments", "another request"),
    ];
    batch[0].trace_id = Some(t);
    batch[1].trace_id = Some(t);
    s.append(&batch, NOW).expect("append");
    let lines = all(&s, &format!("{{}} | trace_id=\"{t}\""), NOW - HOUR, NOW);
    let msgs: Vec<&str> = lines.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(msgs, ["POST /checkout", "charge ok"]);
}

#[test]
fn a_refused_batch_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tight = StoreConfig {
        max_label_values: 2,
        ..config()
    };
    let (mut s, _) = LogStore::open(dir.path(), tight).expect("open");
    s.append(&[rec(NOW - 1, "a", "x")], NOW).expect("append");
    let bytes = s.total_bytes();
    let batch = vec![rec(NOW - 1, "b", "x"), rec(NOW - 1, "c", "x")];
    assert!(matches!(
        s.append(&batch, NOW),
        Err(StoreError::Cardinality(_))
    ));
    assert_eq!(s.total_bytes(), bytes);
    assert_eq!(s.stats().refused, 2);
    let late = vec![rec(NOW - 25 * HOUR, "a", "too old")];
    assert!(matches!(
        s.append(&late, NOW),
        Err(StoreError::OutOfWindow { .. })
    ));
    let future = vec![rec(NOW + HOUR, "a", "from a skewed clock")];
    assert!(matches!(
        s.append(&future, NOW),
        Err(StoreError::OutOfWindow { .. })
    ));
    assert_eq!(s.total_bytes(), bytes);
}

#[test]
fn the_fan_out_stops_at_the_partition_that_fills_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    for h in 0..6 {
        let batch: Vec<Record> = (0..3)
            .map(|i| rec(NOW - h * HOUR - 10 + i, "api", "tick"))
            .collect();
        s.append(&batch, NOW).expect("append");
    }
    let r = s
        .query(
            &Query::parse("{service=\"api\"}").expect("q"),
            TimeRange::new(NOW - 6 * HOUR, NOW).expect("range"),
            4,
        )
        .expect("query");
    assert_eq!(r.partitions_scanned, 2, "the third partition is not opened");
    let ts: Vec<i64> = r.lines.iter().map(|l| l.ts_ms).collect();
    let oldest: Vec<i64> = vec![
        NOW - 5 * HOUR - 10,
        NOW - 5 * HOUR - 9,
        NOW - 5 * HOUR - 8,
        NOW - 4 * HOUR - 10,
    ];
    assert_eq!(ts, oldest, "the oldest lines, in order");
}

#[test]
fn a_batch_that_fails_part_way_is_stored_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = LogStore::open(dir.path(), config()).expect("open");
    // A directory where the second partition's file must go: its create fails
    // after the first partition's frame is written.
    fs::create_dir(dir.path().join(format!("p-{NOW}.chunks"))).expect("mkdir");
    let batch = vec![rec(NOW - 1, "api", "first"), rec(NOW + 1, "api", "second")];
    assert!(s.append(&batch, NOW + 2).is_err());
    assert!(
        all(&s, "{service=\"api\"}", NOW - HOUR, NOW).is_empty(),
        "nothing served"
    );
    drop(s);
    fs::remove_dir(dir.path().join(format!("p-{NOW}.chunks"))).expect("rmdir");
    let (s, report) = LogStore::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.chunks, 0, "nothing left on disk");
    assert!(all(&s, "{service=\"api\"}", NOW - HOUR, NOW + HOUR).is_empty());
}
