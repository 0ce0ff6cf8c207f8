//! The on-disk frame of one chunk: a header with a checksum, the chunk's
//! metadata (its stream's labels, time bounds, trace ids) in clear, and its
//! lines compressed with zstd.
//!
//! ```text
//! magic "LGC1" | meta_len u32 | body_len u32 | crc32(meta ++ body) u32 | meta | body
//! ```
//!
//! A crash can leave the last frame half-written. [`scan`] reads frames
//! until the first one that is short or whose checksum fails, and reports
//! where the valid prefix ends, so the store can cut the file there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{FieldValue, Labels, TraceId};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"LGC1";
/// Header size: magic, two lengths, the checksum.
pub const HEADER_LEN: usize = 16;
/// The zstd level: the library's default, a balance of speed and ratio.
pub const ZSTD_LEVEL: i32 = 3;

// ANCHOR: meta
/// What the index keeps of a chunk, stored uncompressed in its frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkMeta {
    /// The stream: every line of the chunk has exactly these labels.
    pub labels: Labels,
    /// Earliest timestamp in the chunk.
    pub min_ts: i64,
    /// Latest timestamp in the chunk.
    pub max_ts: i64,
    /// Lines in the chunk.
    pub count: u32,
    /// Trace ids of the chunk's lines, sorted and deduplicated: a trace
    /// query opens only the chunks that hold its id.
    pub trace_ids: Vec<TraceId>,
}
// ANCHOR_END: meta

/// One line inside a chunk (its labels are the chunk's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the epoch.
    pub ts_ms: i64,
    /// The text.
    pub message: String,
    /// The request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Fields as stored (type conflicts under typed sub-keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
}

/// Why a chunk could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// JSON of the metadata or an entry.
    #[error("chunk encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// zstd failed.
    #[error("chunk compression: {0}")]
    Zstd(#[from] std::io::Error),
    /// Metadata or body larger than a u32 length.
    #[error("chunk too large")]
    TooLarge,
}

// ANCHOR: encode
/// Encodes one chunk as a frame (header, metadata, compressed lines), and
/// says where in the frame the compressed body starts.
pub fn encode(meta: &ChunkMeta, entries: &[Entry]) -> Result<(Vec<u8>, usize), ChunkError> {
    let meta_bytes = serde_json::to_vec(meta)?;
    let mut raw = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut raw, e)?;
        raw.push(b'\n');
    }
    let body = zstd::bulk::compress(&raw, ZSTD_LEVEL)?;
    let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| ChunkError::TooLarge)?;
    let body_len = u32::try_from(body.len()).map_err(|_| ChunkError::TooLarge)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta_bytes);
    crc.update(&body);
    let mut out = Vec::with_capacity(HEADER_LEN + meta_bytes.len() + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(&body);
    Ok((out, HEADER_LEN + meta_bytes.len()))
}
// ANCHOR_END: encode

/// Where one valid frame lies in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The chunk's metadata.
    pub meta: ChunkMeta,
    /// Offset of the compressed body.
    pub body_at: usize,
    /// Length of the compressed body.
    pub body_len: usize,
    /// Length of the whole frame.
    pub frame_len: usize,
}

/// The frames of a file: the valid prefix, and where it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Every valid frame, in file order.
    pub chunks: Vec<Located>,
    /// Bytes of the valid prefix; anything after it is torn or corrupt.
    pub valid_len: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

// ANCHOR: scan
/// Reads frames from the start of `file` until the end or the first frame
/// that is short, has a bad magic, a bad checksum or unreadable metadata.
pub fn scan(file: &[u8]) -> Scan {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let Some(frame) = frame_at(file, at) else {
            break;
        };
        at += frame.frame_len;
        chunks.push(frame);
    }
    Scan {
        chunks,
        valid_len: at,
    }
}

fn frame_at(file: &[u8], at: usize) -> Option<Located> {
    if file.get(at..at + 4)? != MAGIC {
        return None;
    }
    let meta_len = u32_at(file, at + 4)?;
    let body_len = u32_at(file, at + 8)?;
    let crc = u32::try_from(u32_at(file, at + 12)?).ok()?;
    let meta_at = at + HEADER_LEN;
    let body_at = meta_at.checked_add(meta_len)?;
    let end = body_at.checked_add(body_len)?;
    let payload = file.get(meta_at..end)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let meta = serde_json::from_slice(&file[meta_at..body_at]).ok()?;
    Some(Located {
        meta,
        body_at,
        body_len,
        frame_len: end - at,
    })
}
// ANCHOR_END: scan

/// Decompresses a chunk body into its lines.
pub fn decode_body(body: &[u8], count: u32) -> Result<Vec<Entry>, ChunkError> {
    // The capacity bound: a body never decompresses past 64 MiB, so a
    // corrupt length cannot make us allocate without limit.
    let raw = zstd::bulk::decompress(body, 64 << 20)?;
    let mut out = Vec::with_capacity(count as usize);
    for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        out.push(serde_json::from_slice(line)?);
    }
    Ok(out)
}
