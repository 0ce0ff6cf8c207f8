//! The time range of a query, checked before any partition is opened.

use serde::{Deserialize, Serialize};

/// The widest range one query may cover: 31 days, in milliseconds.
pub const MAX_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;

/// The latest timestamp a range may name: the end of the year 9999.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Why a time range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `end` is not after `start`.
    #[error("end ({end}) must be after start ({start})")]
    Inverted {
        /// Given start.
        start: i64,
        /// Given end.
        end: i64,
    },
    /// Before the epoch or after [`MAX_TS_MS`].
    #[error("start and end must be between 0 and {MAX_TS_MS}")]
    OutOfBounds,
    /// Wider than [`MAX_RANGE_MS`].
    #[error("a query covers at most {MAX_RANGE_MS} ms")]
    TooWide,
}

/// `[start_ms, end_ms)`, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    start_ms: i64,
    end_ms: i64,
}

impl TimeRange {
    /// A checked range.
    pub fn new(start_ms: i64, end_ms: i64) -> Result<Self, RangeError> {
        if !(0..=MAX_TS_MS).contains(&start_ms) || !(0..=MAX_TS_MS).contains(&end_ms) {
            return Err(RangeError::OutOfBounds);
        }
        if end_ms <= start_ms {
            return Err(RangeError::Inverted {
                start: start_ms,
                end: end_ms,
            });
        }
        if end_ms.saturating_sub(start_ms) > MAX_RANGE_MS {
            return Err(RangeError::TooWide);
        }
        Ok(Self { start_ms, end_ms })
    }

    /// First millisecond included.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// First millisecond excluded.
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// True if `ts` is inside.
    pub fn contains(&self, ts: i64) -> bool {
        self.start_ms <= ts && ts < self.end_ms
    }

    /// True if `[lo, hi]` (both included) meets this range.
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        lo < self.end_ms && hi >= self.start_ms
    }
}
