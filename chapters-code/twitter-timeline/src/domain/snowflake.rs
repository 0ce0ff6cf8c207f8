//! Time-sortable 64-bit post ids in the Snowflake layout.
//!
//! An id is `time | node | sequence`: 41 bits of milliseconds since
//! [`EPOCH_MS`], 10 bits naming the generating node, 12 bits counting ids
//! within one millisecond. Sorting ids sorts posts by creation time, so a
//! timeline is a list of ids kept in descending order, a cursor is an id,
//! and a k-way merge of several authors' posts needs nothing but the ids.
//!
//! The generator is a pure state machine fed with clock readings, so its
//! properties (unique across nodes, strictly increasing per node, and what
//! happens when the clock steps back) are tested without sleeping.

use std::fmt;

// ANCHOR: layout
/// Milliseconds since the Unix epoch of id time zero (2026-01-01T00:00:00Z).
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Bits of milliseconds: 2^41 ms is about 69 years.
pub const TIME_BITS: u32 = 41;
/// Bits of node number: 1,024 generators may run at once.
pub const NODE_BITS: u32 = 10;
/// Bits of sequence: 4,096 ids per node per millisecond.
pub const SEQUENCE_BITS: u32 = 12;
/// The largest node number.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
/// How far ahead of the wall clock a node may run before it refuses to issue
/// ids: the clock stepped back by more than this (or the node issued more
/// than 4,096 ids a millisecond for this long).
pub const MAX_DRIFT_MS: u64 = 2_000;
// ANCHOR_END: layout

/// A post id: a Snowflake, positive, ordered by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PostId(u64);

impl PostId {
    /// The smallest id.
    pub const MIN: PostId = PostId(1);
    /// The largest id (`i64::MAX`, the largest PostgreSQL `bigint`).
    pub const MAX: PostId = PostId(i64::MAX as u64);

    /// The id with these raw bits, if it can be one of ours (positive as an `i64`, non-zero).
    pub fn from_raw(raw: u64) -> Option<Self> {
        (raw > 0 && raw <= i64::MAX as u64).then_some(Self(raw))
    }

    /// Builds an id from its parts (for tests and simulations).
    pub fn compose(ms_since_epoch: u64, node: u16, sequence: u16) -> Self {
        Self(
            (ms_since_epoch << (NODE_BITS + SEQUENCE_BITS))
                | (u64::from(node & MAX_NODE) << SEQUENCE_BITS)
                | (u64::from(sequence) & MAX_SEQUENCE),
        )
    }

    /// The raw 64 bits.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// As PostgreSQL's `bigint`.
    pub fn as_i64(self) -> i64 {
        // `from_raw` and `compose` (41 time bits) keep the top bit clear.
        self.0 as i64
    }

    /// Milliseconds since [`EPOCH_MS`] when the id was issued.
    pub fn ms_since_epoch(self) -> u64 {
        self.0 >> (NODE_BITS + SEQUENCE_BITS)
    }

    /// The node that issued the id.
    pub fn node(self) -> u16 {
        ((self.0 >> SEQUENCE_BITS) & u64::from(MAX_NODE)) as u16
    }

    /// The sequence number within its millisecond.
    pub fn sequence(self) -> u16 {
        (self.0 & MAX_SEQUENCE) as u16
    }
}

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the generator refused to issue an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The wall clock is behind the last issued id by more than [`MAX_DRIFT_MS`].
    #[error("the clock is {behind_ms} ms behind the last id issued; refusing until it catches up")]
    ClockBehind {
        /// How far behind.
        behind_ms: u64,
    },
    /// The clock reads before [`EPOCH_MS`] or beyond the 41-bit range.
    #[error("the clock reading {0} ms is outside the id range")]
    OutOfRange(u64),
    /// The node number does not fit in [`NODE_BITS`].
    #[error("node {0} is larger than {MAX_NODE}")]
    BadNode(u16),
}

// ANCHOR: generator
/// One node's id generator: the last millisecond used and its sequence.
#[derive(Clone, Debug)]
pub struct Snowflake {
    node: u16,
    last_ms: u64,
    sequence: u64,
}

impl Snowflake {
    /// A generator for `node` (0 to [`MAX_NODE`]).
    pub fn new(node: u16) -> Result<Self, IdError> {
        if node > MAX_NODE {
            return Err(IdError::BadNode(node));
        }
        Ok(Self {
            node,
            last_ms: 0,
            sequence: 0,
        })
    }

    /// The next id, given the wall clock in Unix milliseconds.
    ///
    /// The id's time is `max(clock, last)`: when the clock steps back the
    /// node keeps counting from where it was, so ids stay strictly
    /// increasing. When a millisecond's 4,096 sequence numbers run out, the
    /// node borrows the next millisecond instead of waiting. Either way it
    /// runs ahead of the clock; beyond [`MAX_DRIFT_MS`] ahead it refuses,
    /// because ids would no longer say when a post was made.
    pub fn next_id(&mut self, unix_ms: u64) -> Result<PostId, IdError> {
        let now = unix_ms
            .checked_sub(EPOCH_MS)
            .filter(|ms| *ms < (1 << TIME_BITS))
            .ok_or(IdError::OutOfRange(unix_ms))?;
        if now > self.last_ms {
            self.last_ms = now;
            self.sequence = 0;
        } else if self.sequence < MAX_SEQUENCE {
            // Same millisecond, or the clock stepped back: keep counting.
            self.sequence += 1;
        } else {
            // Borrow the next millisecond.
            self.last_ms += 1;
            self.sequence = 0;
        }
        let ahead = self.last_ms - now;
        if ahead > MAX_DRIFT_MS {
            // Undo, so the refusal changes nothing.
            self.rewind();
            return Err(IdError::ClockBehind { behind_ms: ahead });
        }
        Ok(PostId::compose(
            self.last_ms,
            self.node,
            self.sequence as u16,
        ))
    }
    // ANCHOR_END: generator

    fn rewind(&mut self) {
        if self.sequence > 0 {
            self.sequence -= 1;
        } else {
            self.last_ms -= 1;
            self.sequence = MAX_SEQUENCE;
        }
    }

    /// The node number.
    pub fn node(&self) -> u16 {
        self.node
    }
}

/// The wall clock in Unix milliseconds.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let id = PostId::compose(123_456, 7, 89);
        assert_eq!(id.ms_since_epoch(), 123_456);
        assert_eq!(id.node(), 7);
        assert_eq!(id.sequence(), 89);
    }

    #[test]
    fn ids_exceed_what_a_double_holds_exactly() {
        // 2^31 ms (under 25 days) after the epoch an id needs more than 53
        // bits, which is why Redis scores (doubles) cannot hold them.
        let id = PostId::compose(25 * 86_400_000, 0, 0);
        assert!(id.raw() > 1 << 53);
    }

    #[test]
    fn a_full_millisecond_borrows_the_next() {
        let mut g = Snowflake::new(1).expect("node");
        let t = EPOCH_MS + 10;
        let mut last = g.next_id(t).expect("id");
        for _ in 0..5_000 {
            let id = g.next_id(t).expect("id");
            assert!(id > last);
            last = id;
        }
        assert_eq!(last.ms_since_epoch(), 11);
    }

    #[test]
    fn a_clock_far_behind_is_refused_and_changes_nothing() {
        let mut g = Snowflake::new(1).expect("node");
        let a = g.next_id(EPOCH_MS + 10_000).expect("id");
        assert_eq!(
            g.next_id(EPOCH_MS + 10_000 - MAX_DRIFT_MS - 1),
            Err(IdError::ClockBehind {
                behind_ms: MAX_DRIFT_MS + 1
            })
        );
        let b = g.next_id(EPOCH_MS + 10_000).expect("id");
        assert_eq!(b.raw(), a.raw() + 1);
    }

    #[test]
    fn bad_nodes_and_clocks_are_refused() {
        assert_eq!(Snowflake::new(1024).err(), Some(IdError::BadNode(1024)));
        let mut g = Snowflake::new(0).expect("node");
        assert_eq!(g.next_id(5), Err(IdError::OutOfRange(5)));
        assert!(PostId::from_raw(0).is_none());
        assert!(PostId::from_raw(u64::MAX).is_none());
    }
}
