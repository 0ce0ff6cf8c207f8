//! Loki-style storage on local disk: labels indexed, lines in compressed,
//! checksummed chunks, one append-only file per time partition.
//!
//! - A *stream* is one distinct label set; a batch is split by stream and
//!   each stream's lines become one chunk (a frame, see [`chunk`]).
//! - The *index* is in memory and rebuilt from the frames' metadata on
//!   open: per partition, the chunks of each `label=value`.
//! - [`LogStore::append`] returns after `fsync`: what it acknowledged
//!   survives a crash. A frame torn by a crash is cut off on the next open.
//! - Retention drops whole partitions: by age, and the oldest first when
//!   the total size is over the cap.

pub mod chunk;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chunk::{ChunkMeta, Entry};

use crate::domain::{
    CardinalityError, CardinalityGuard, LabelName, Labels, Query, Record, Schema, TimeRange,
};

// ANCHOR: config
/// The store's limits and partitioning.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Width of a time partition, in milliseconds.
    pub partition_ms: i64,
    /// How long lines are kept, in milliseconds.
    pub retention_ms: i64,
    /// The most bytes all partitions may hold together.
    pub max_bytes: u64,
    /// How far ahead of the indexer's clock a line's timestamp may be.
    pub max_future_ms: i64,
    /// Distinct values allowed per label.
    pub max_label_values: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            partition_ms: 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            max_bytes: 1 << 30,
            max_future_ms: 10 * 60_000,
            max_label_values: crate::domain::MAX_VALUES_PER_LABEL,
        }
    }
}
// ANCHOR_END: config

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The label cardinality guard refused the batch.
    #[error(transparent)]
    Cardinality(#[from] CardinalityError),
    /// A line older than retention, or too far in the future.
    #[error("timestamp {ts_ms} is outside the accepted window [{oldest}, {newest}]")]
    OutOfWindow {
        /// The line's timestamp.
        ts_ms: i64,
        /// Oldest accepted.
        oldest: i64,
        /// Newest accepted.
        newest: i64,
    },
    /// The disk.
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    /// A chunk would not encode or decode.
    #[error(transparent)]
    Chunk(#[from] chunk::ChunkError),
}

/// A chunk's place in the index.
#[derive(Debug, Clone)]
struct ChunkRef {
    meta: ChunkMeta,
    body_at: u64,
    body_len: usize,
}

/// One time partition: a file of frames and its label index.
#[derive(Debug)]
struct Partition {
    path: PathBuf,
    bytes: u64,
    chunks: Vec<ChunkRef>,
    postings: BTreeMap<(LabelName, String), Vec<usize>>,
}

impl Partition {
    fn add(&mut self, meta: ChunkMeta, body_at: u64, body_len: usize) {
        let id = self.chunks.len();
        for (k, v) in meta.labels.iter() {
            self.postings
                .entry((k.clone(), v.to_string()))
                .or_default()
                .push(id);
        }
        self.chunks.push(ChunkRef {
            meta,
            body_at,
            body_len,
        });
    }
}

/// What opening a store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Partitions opened.
    pub partitions: usize,
    /// Valid chunks found.
    pub chunks: usize,
    /// Partition files whose tail was torn or corrupt and cut off.
    pub repaired_files: usize,
    /// Bytes cut off those tails.
    pub cut_bytes: u64,
}

/// What a query read and found.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Matching lines, oldest first, at most the limit.
    pub lines: Vec<Record>,
    /// Partitions the store holds.
    pub partitions_total: usize,
    /// Partitions the time range let through (the others were not opened).
    pub partitions_scanned: usize,
    /// Chunks decompressed and scanned.
    pub chunks_scanned: usize,
}

/// Counters the store exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Lines stored since open.
    pub lines: u64,
    /// Lines refused by the cardinality guard.
    pub refused: u64,
    /// Values stored under a typed sub-key because their type changed.
    pub type_conflicts: u64,
    /// Partitions dropped by retention or the size cap.
    pub partitions_dropped: u64,
}

/// The store: a directory of partitions.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    config: StoreConfig,
    partitions: BTreeMap<i64, Partition>,
    guard: CardinalityGuard,
    schema: Schema,
    stats: StoreStats,
}

const PARTITION_PREFIX: &str = "p-";
const PARTITION_SUFFIX: &str = ".chunks";

impl LogStore {
    // ANCHOR: open
    /// Opens (or creates) a store, rebuilding the index from the frames and
    /// cutting any torn or corrupt tail back to the last valid frame.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(Self, OpenReport), StoreError> {
        fs::create_dir_all(dir)?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            config,
            partitions: BTreeMap::new(),
            guard: CardinalityGuard::new(config.max_label_values, crate::domain::MAX_LABELS),
            schema: Schema::new(),
            stats: StoreStats::default(),
        };
        let mut report = OpenReport::default();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(start) = partition_start(&path) else {
                continue;
            };
            let bytes = fs::read(&path)?;
            let scan = chunk::scan(&bytes);
            if scan.valid_len < bytes.len() {
                // The tail after the last good frame is what a crash tore:
                // it was never acknowledged (append acks after fsync of the
                // whole batch), so cutting it loses nothing acknowledged.
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(scan.valid_len as u64)?;
                f.sync_all()?;
                report.repaired_files += 1;
                report.cut_bytes += (bytes.len() - scan.valid_len) as u64;
            }
            let mut p = Partition {
                path: path.clone(),
                bytes: scan.valid_len as u64,
                chunks: Vec::new(),
                postings: BTreeMap::new(),
            };
            for c in scan.chunks {
                // Re-learn the label values, so the guard's limit holds
                // across restarts.
                let _ = store.guard.admit([&c.meta.labels]);
                p.add(c.meta, c.body_at as u64, c.body_len);
                report.chunks += 1;
            }
            store.partitions.insert(start, p);
        }
        report.partitions = store.partitions.len();
        Ok((store, report))
    }
    // ANCHOR_END: open

    fn partition_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.config.partition_ms) * self.config.partition_ms
    }

    // ANCHOR: append
    /// Stores a batch, durably: the call returns after the partition files
    /// are fsync'd. The batch is refused whole (nothing written) if a label
    /// would pass the cardinality limit or a timestamp is outside the window.
    pub fn append(&mut self, batch: &[Record], now_ms: i64) -> Result<usize, StoreError> {
        let oldest = now_ms.saturating_sub(self.config.retention_ms);
        let newest = now_ms.saturating_add(self.config.max_future_ms);
        if let Some(r) = batch.iter().find(|r| r.ts_ms < oldest || r.ts_ms > newest) {
            return Err(StoreError::OutOfWindow {
                ts_ms: r.ts_ms,
                oldest,
                newest,
            });
        }
        self.guard.admit(batch.iter().map(|r| &r.labels))?;
        // One chunk per (partition, stream) of the batch.
        let mut groups: BTreeMap<(i64, &Labels), Vec<Entry>> = BTreeMap::new();
        for r in batch {
            let fields = self.schema.store(&r.fields);
            groups
                .entry((self.partition_of(r.ts_ms), &r.labels))
                .or_default()
                .push(Entry {
                    ts_ms: r.ts_ms,
                    message: r.message.clone(),
                    trace_id: r.trace_id,
                    fields,
                });
        }
        // All or none: every frame is written and every touched file
        // fsync'd before the index learns of any chunk; on any error each
        // touched file is cut back to its length before the batch.
        let mut before: BTreeMap<i64, u64> = BTreeMap::new();
        let mut ends: BTreeMap<i64, u64> = BTreeMap::new();
        let mut staged = Vec::new();
        let written = (|| -> Result<(), StoreError> {
            for ((start, labels), entries) in groups {
                let meta = ChunkMeta {
                    labels: labels.clone(),
                    min_ts: entries.iter().map(|e| e.ts_ms).min().unwrap_or(start),
                    max_ts: entries.iter().map(|e| e.ts_ms).max().unwrap_or(start),
                    count: u32::try_from(entries.len()).map_err(|_| chunk::ChunkError::TooLarge)?,
                    trace_ids: entries
                        .iter()
                        .filter_map(|e| e.trace_id)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                };
                let (frame, body_offset) = chunk::encode(&meta, &entries)?;
                let p = self.partition_entry(start)?;
                let end = *ends.entry(start).or_insert(p.bytes);
                before.entry(start).or_insert(p.bytes);
                OpenOptions::new()
                    .append(true)
                    .open(&p.path)?
                    .write_all(&frame)?;
                staged.push((
                    start,
                    meta,
                    end + body_offset as u64,
                    frame.len() - body_offset,
                ));
                ends.insert(start, end + frame.len() as u64);
            }
            for start in ends.keys() {
                if let Some(p) = self.partitions.get(start) {
                    File::open(&p.path)?.sync_data()?;
                }
            }
            Ok(())
        })();
        if let Err(e) = written {
            for (start, len) in &before {
                if let Some(p) = self.partitions.get(start) {
                    let f = OpenOptions::new().write(true).open(&p.path)?;
                    f.set_len(*len)?;
                    f.sync_data()?;
                }
            }
            return Err(e);
        }
        for (start, meta, body_at, body_len) in staged {
            if let Some(p) = self.partitions.get_mut(&start) {
                p.add(meta, body_at, body_len);
            }
        }
        for (start, end) in ends {
            if let Some(p) = self.partitions.get_mut(&start) {
                p.bytes = end;
            }
        }
        self.stats.lines += batch.len() as u64;
        Ok(batch.len())
    }
    // ANCHOR_END: append

    fn partition_entry(&mut self, start: i64) -> Result<&mut Partition, StoreError> {
        if !self.partitions.contains_key(&start) {
            let path = self
                .dir
                .join(format!("{PARTITION_PREFIX}{start}{PARTITION_SUFFIX}"));
            // Never `File::create`: it would truncate a file the map lost
            // track of (a failed unlink, a file restored by hand).
            OpenOptions::new().create(true).append(true).open(&path)?;
            // The new file's directory entry must be durable too, or a crash
            // could lose the whole partition after its lines were acked.
            File::open(&self.dir)?.sync_all()?;
            self.partitions.insert(
                start,
                Partition {
                    path,
                    bytes: 0,
                    chunks: Vec::new(),
                    postings: BTreeMap::new(),
                },
            );
        }
        self.partitions
            .get_mut(&start)
            .ok_or_else(|| io::Error::other("partition vanished").into())
    }

    // ANCHOR: query
    /// Runs a query over a time range: partitions outside the range are
    /// never opened; inside, the label index and the chunks' trace ids pick
    /// the chunks; only those are decompressed and scanned for text.
    pub fn query(
        &self,
        q: &Query,
        range: TimeRange,
        limit: usize,
    ) -> Result<QueryResult, StoreError> {
        let mut out = QueryResult {
            partitions_total: self.partitions.len(),
            ..QueryResult::default()
        };
        let first = self.partition_of(range.start_ms());
        for (_, p) in self.partitions.range(first..range.end_ms()) {
            out.partitions_scanned += 1;
            let mut file = None;
            for id in candidates(p, q) {
                let c = &p.chunks[id];
                if !range.overlaps(c.meta.min_ts, c.meta.max_ts)
                    || !q.matches_labels(&c.meta.labels)
                    || q.trace_id
                        .is_some_and(|t| c.meta.trace_ids.binary_search(&t).is_err())
                {
                    continue;
                }
                let f = match &mut file {
                    Some(f) => f,
                    None => file.insert(File::open(&p.path)?),
                };
                let mut body = vec![0; c.body_len];
                f.seek(SeekFrom::Start(c.body_at))?;
                f.read_exact(&mut body)?;
                out.chunks_scanned += 1;
                for e in chunk::decode_body(&body, c.meta.count)? {
                    if range.contains(e.ts_ms) && q.matches(&c.meta.labels, &e.message, e.trace_id)
                    {
                        out.lines.push(Record {
                            ts_ms: e.ts_ms,
                            labels: c.meta.labels.clone(),
                            message: e.message,
                            trace_id: e.trace_id,
                            fields: e.fields,
                        });
                    }
                }
            }
            // Every line of a later partition is later than every line of
            // this one: once the limit is reached, the fan-out stops, so a
            // wide range costs one partition's matches, not the range's.
            if out.lines.len() >= limit {
                break;
            }
        }
        out.lines.sort_by_key(|r| r.ts_ms);
        out.lines.truncate(limit);
        Ok(out)
    }
    // ANCHOR_END: query

    // ANCHOR: retention
    /// Drops partitions that ended before `now - retention`, then the
    /// oldest ones while the total is over the size cap (the newest
    /// partition is kept, so the cap never empties the store). Returns the
    /// starts of the partitions dropped.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        let cutoff = now_ms.saturating_sub(self.config.retention_ms);
        let mut dropped = Vec::new();
        let expired: Vec<i64> = self
            .partitions
            .keys()
            .copied()
            .filter(|s| s.saturating_add(self.config.partition_ms) <= cutoff)
            .collect();
        for start in expired {
            self.drop_partition(start)?;
            dropped.push(start);
        }
        while self.total_bytes() > self.config.max_bytes && self.partitions.len() > 1 {
            let Some(&oldest) = self.partitions.keys().next() else {
                break;
            };
            self.drop_partition(oldest)?;
            dropped.push(oldest);
        }
        Ok(dropped)
    }
    // ANCHOR_END: retention

    fn drop_partition(&mut self, start: i64) -> Result<(), StoreError> {
        if let Some(p) = self.partitions.remove(&start) {
            fs::remove_file(&p.path)?;
            self.stats.partitions_dropped += 1;
        }
        Ok(())
    }

    /// Bytes on disk over all partitions.
    pub fn total_bytes(&self) -> u64 {
        self.partitions.values().map(|p| p.bytes).sum()
    }

    /// Bytes of chunk metadata (the index's source) over all partitions.
    pub fn index_bytes(&self) -> u64 {
        self.partitions
            .values()
            .flat_map(|p| &p.chunks)
            .map(|c| serde_json::to_vec(&c.meta).map_or(0, |v| v.len() as u64))
            .sum()
    }

    /// The starts of the partitions held, oldest first.
    pub fn partitions(&self) -> Vec<i64> {
        self.partitions.keys().copied().collect()
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            refused: self.guard.refused(),
            type_conflicts: self.schema.conflicts(),
            ..self.stats
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The chunks that can match: the smallest posting list among the `=`
/// matchers, or every chunk when the query selects by trace id only.
fn candidates(p: &Partition, q: &Query) -> Vec<usize> {
    let lists: Vec<&Vec<usize>> = q
        .matchers
        .iter()
        .filter(|m| m.equal)
        .map(|m| {
            p.postings
                .get(&(m.name.clone(), m.value.clone()))
                .unwrap_or(&EMPTY)
        })
        .collect();
    match lists.into_iter().min_by_key(|l| l.len()) {
        Some(l) => l.clone(),
        None => (0..p.chunks.len()).collect(),
    }
}

static EMPTY: Vec<usize> = Vec::new();

fn partition_start(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix(PARTITION_PREFIX)?
        .strip_suffix(PARTITION_SUFFIX)?
        .parse()
        .ok()
}
