//! The time rules of a reservation, stated once.

use chrono::{DateTime, TimeDelta, Utc};

use super::range::{TimeRange, floor_to_slot};

// ANCHOR: policy
/// An unconfirmed hold lapses this long after it was made.
pub const HOLD_TTL: TimeDelta = TimeDelta::minutes(10);
/// A driver may check in this long before the reservation starts.
pub const EARLY_CHECK_IN: TimeDelta = TimeDelta::minutes(15);
/// A confirmed driver who has not checked in this long after the start is a
/// no-show: the spot is released and the full quote is charged.
pub const NO_SHOW_GRACE: TimeDelta = TimeDelta::minutes(30);
/// Cancelling a confirmed reservation at least this long before the start is
/// free; later, the tariff's cancellation fee is charged (never more than the quote).
pub const FREE_CANCELLATION_NOTICE: TimeDelta = TimeDelta::hours(1);
/// How far ahead a reservation may start, in days.
pub const BOOKING_HORIZON_DAYS: i64 = 90;
/// A confirm that arrives up to this long after the hold lapsed (the
/// payment went through, but late) still confirms, if nobody has taken the
/// spot meanwhile; the exclusion constraint decides.
pub const LATE_CONFIRM_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// A plate may keep at most this many unconfirmed holds at once, so that a
/// script cannot squat a lot with free holds. Advisory: the plate is typed
/// by the client, and a script that invents plates is not stopped by it.
pub const MAX_HOLDS_PER_PLATE: u32 = 2;
/// A plate may have at most this many reservations that take a spot at once
/// (unlapsed holds, confirmed, checked in for a stay not yet ended),
/// checked at every reserve, walk-in and confirm, so that one plate cannot
/// book a lot ahead. Advisory, for the same reason; and since a plate is
/// public, a stranger can also use it up for a plate that is not theirs. A
/// plate is parked in at most one spot: a walk-in or check-in of a plate
/// checked in for a stay not yet ended is refused.
pub const MAX_ACTIVE_PER_PLATE: u32 = 4;
// ANCHOR_END: policy

/// Why a well-formed range cannot be booked now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// The range starts before the current slot.
    #[error("the reservation would start in the past (the current slot began at {current_slot})")]
    StartsInPast {
        /// The start of the slot that contains "now".
        current_slot: DateTime<Utc>,
    },
    /// The range starts more than [`BOOKING_HORIZON_DAYS`] ahead.
    #[error("reservations open {BOOKING_HORIZON_DAYS} days ahead")]
    BeyondHorizon,
}

/// Checks that `range` may be booked at `now`: it starts in the current slot or
/// later, and within the booking horizon.
pub fn check_bookable(range: &TimeRange, now: DateTime<Utc>) -> Result<(), BookingError> {
    let current_slot = floor_to_slot(now);
    if range.start() < current_slot {
        return Err(BookingError::StartsInPast { current_slot });
    }
    if range.start() - now > TimeDelta::days(BOOKING_HORIZON_DAYS) {
        return Err(BookingError::BeyondHorizon);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_slot_and_later_within_the_horizon_are_bookable() {
        let now = DateTime::parse_from_rfc3339("2026-03-02T09:07:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let r = |s: &str, e: &str| TimeRange::parse(s, e).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check_bookable(&r("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"), now),
            Ok(())
        );
        assert!(matches!(
            check_bookable(&r("2026-03-02T08:45:00Z", "2026-03-02T10:00:00Z"), now),
            Err(BookingError::StartsInPast { .. })
        ));
        assert_eq!(
            check_bookable(&r("2026-06-01T09:00:00Z", "2026-06-01T10:00:00Z"), now),
            Err(BookingError::BeyondHorizon)
        );
    }
}
