//! When a reservation is for: a half-open range of whole 15-minute slots.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Reservations start and end on slot boundaries: :00, :15, :30 or :45.
pub const SLOT_MINUTES: i64 = 15;
/// The longest reservation, in days.
pub const MAX_RANGE_DAYS: i64 = 7;

/// One slot.
pub const SLOT: TimeDelta = TimeDelta::minutes(SLOT_MINUTES);

// ANCHOR: range
/// A half-open time range `[start, end)` on slot boundaries, at most
/// [`MAX_RANGE_DAYS`] long.
///
/// Half-open, like PostgreSQL's default `tstzrange`, so back-to-back
/// reservations (one ends at 10:00, the next starts at 10:00) do not overlap.
/// Slot alignment keeps prices whole and plans simple; the 7-day bound keeps
/// a single request from blocking a spot for a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Why a time range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A time was not in RFC 3339 form (`2026-03-01T09:00:00Z`).
    #[error("{field} is not an RFC 3339 time: {value:?}")]
    Unparsable {
        /// `start` or `end`.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// The end is at or before the start.
    #[error("the end must be after the start")]
    EndNotAfterStart,
    /// A time is not on a slot boundary.
    #[error(
        "times must fall on a {SLOT_MINUTES}-minute boundary (:00, :15, :30, :45, zero seconds)"
    )]
    NotAligned,
    /// Longer than [`MAX_RANGE_DAYS`].
    #[error("a reservation may last at most {MAX_RANGE_DAYS} days")]
    TooLong,
}

impl TimeRange {
    /// Checks `start < end`, slot alignment and the length bound.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, RangeError> {
        if !is_aligned(start) || !is_aligned(end) {
            return Err(RangeError::NotAligned);
        }
        if end <= start {
            return Err(RangeError::EndNotAfterStart);
        }
        if end - start > TimeDelta::days(MAX_RANGE_DAYS) {
            return Err(RangeError::TooLong);
        }
        Ok(Self { start, end })
    }

    /// Parses two RFC 3339 times, then checks them as [`TimeRange::new`] does.
    pub fn parse(start: &str, end: &str) -> Result<Self, RangeError> {
        let parse = |field, value: &str| {
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| RangeError::Unparsable {
                    field,
                    value: value.to_string(),
                })
        };
        Self::new(parse("start", start)?, parse("end", end)?)
    }

    /// True when the two ranges share an instant (PostgreSQL's `&&` on `[)` ranges).
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}
// ANCHOR_END: range

impl TimeRange {
    /// The first instant of the range.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The first instant after the range.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// `end - start`.
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }

    /// The number of slots the range covers.
    pub fn slots(&self) -> i64 {
        self.duration().num_minutes() / SLOT_MINUTES
    }
}

/// True when `t` is on a slot boundary with no seconds.
pub fn is_aligned(t: DateTime<Utc>) -> bool {
    t.timestamp().rem_euclid(SLOT.num_seconds()) == 0 && t.timestamp_subsec_nanos() == 0
}

/// The slot boundary at or before `t`.
pub fn floor_to_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let floored = secs - secs.rem_euclid(SLOT.num_seconds());
    DateTime::from_timestamp(floored, 0).unwrap_or(t)
}

/// The slot boundary at or after `t`.
pub fn ceil_to_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_to_slot(t);
    if floor == t { t } else { floor + SLOT }
}

/// The wire form of a range, checked on the way in.
#[derive(Deserialize)]
struct RawRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawRange> for TimeRange {
    type Error = RangeError;

    fn try_from(raw: RawRange) -> Result<Self, Self::Error> {
        Self::new(raw.start, raw.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_rule_has_its_own_error() {
        let ok = TimeRange::parse("2026-03-02T09:00:00Z", "2026-03-02T10:15:00Z");
        assert_eq!(ok.map(|r| r.slots()), Ok(5));
        assert_eq!(
            TimeRange::parse("yesterday", "2026-03-02T10:00:00Z"),
            Err(RangeError::Unparsable {
                field: "start",
                value: "yesterday".into()
            })
        );
        assert_eq!(
            TimeRange::parse("2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"),
            Err(RangeError::EndNotAfterStart)
        );
        assert_eq!(
            TimeRange::parse("2026-03-02T10:00:00Z", "2026-03-02T09:00:00Z"),
            Err(RangeError::EndNotAfterStart)
        );
        assert_eq!(
            TimeRange::parse("2026-03-02T10:05:00Z", "2026-03-02T11:00:00Z"),
            Err(RangeError::NotAligned)
        );
        assert_eq!(
            TimeRange::parse("2026-03-02T10:00:00.5Z", "2026-03-02T11:00:00Z"),
            Err(RangeError::NotAligned)
        );
        assert_eq!(
            TimeRange::parse("2026-03-01T00:00:00Z", "2026-03-08T00:15:00Z"),
            Err(RangeError::TooLong)
        );
        // Offsets are accepted and normalised to UTC.
        let cet = TimeRange::parse("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00");
        assert_eq!(
            cet.map(|r| r.start().to_rfc3339()),
            Ok("2026-03-02T09:00:00+00:00".into())
        );
    }

    #[test]
    fn json_is_checked_on_the_way_in() {
        let bad = serde_json::from_str::<TimeRange>(
            r#"{"start":"2026-03-02T10:00:00Z","end":"2026-03-02T09:00:00Z"}"#,
        );
        assert!(bad.is_err());
    }

    fn t(slot: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_323_200 + slot * 900, 0).unwrap_or_default()
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric_and_matches_slot_sets(a in 0i64..40, la in 1i64..10, b in 0i64..40, lb in 1i64..10) {
            let (Ok(x), Ok(y)) = (TimeRange::new(t(a), t(a + la)), TimeRange::new(t(b), t(b + lb))) else {
                return Err(TestCaseError::fail("ranges must parse"));
            };
            prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
            let shared = (a..a + la).any(|s| (b..b + lb).contains(&s));
            prop_assert_eq!(x.overlaps(&y), shared);
        }

        #[test]
        fn floor_and_ceil_bracket_the_time(secs in 0i64..4_000_000_000) {
            let Some(x) = DateTime::from_timestamp(secs, 0) else { return Ok(()) };
            let (f, c) = (floor_to_slot(x), ceil_to_slot(x));
            prop_assert!(is_aligned(f) && is_aligned(c));
            prop_assert!(f <= x && x <= c && c - f <= SLOT);
        }
    }
}
