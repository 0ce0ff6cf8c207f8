//! When a link stops redirecting.

use chrono::{DateTime, TimeDelta, Utc};

/// Links are kept five years (the retention requirement), so no expiry may be later.
pub const MAX_LIFETIME_DAYS: i64 = 5 * 365 + 1;

// ANCHOR: expiry
/// A moment strictly after creation and at most [`MAX_LIFETIME_DAYS`] later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry(DateTime<Utc>);

// ANCHOR: expiry_error
/// Why an expiry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// The request gave both `expires_at` and `ttl_seconds`.
    #[error("give expires_at or ttl_seconds, not both")]
    BothGiven,
    /// The moment is now or already past.
    #[error("the expiry must be in the future")]
    NotInFuture,
    /// Later than the retention period allows.
    #[error("the expiry may be at most {MAX_LIFETIME_DAYS} days away")]
    TooFar,
}
// ANCHOR_END: expiry_error

// ANCHOR: expiry_parse
impl Expiry {
    /// The expiry a request asked for, if any: an absolute time or a TTL in seconds.
    pub fn from_request(
        expires_at: Option<DateTime<Utc>>,
        ttl_seconds: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<Self>, ExpiryError> {
        let at = match (expires_at, ttl_seconds) {
            (Some(_), Some(_)) => return Err(ExpiryError::BothGiven),
            (None, None) => return Ok(None),
            (Some(at), None) => at,
            (None, Some(ttl)) if ttl <= 0 => return Err(ExpiryError::NotInFuture),
            // A TTL too large for `TimeDelta` is certainly too far.
            (None, Some(ttl)) => TimeDelta::try_seconds(ttl)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or(ExpiryError::TooFar)?,
        };
        Self::at(at, now).map(Some)
    }

    /// Checks an absolute expiry against `now`.
    pub fn at(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, ExpiryError> {
        if at <= now {
            return Err(ExpiryError::NotInFuture);
        }
        if at - now > TimeDelta::days(MAX_LIFETIME_DAYS) {
            return Err(ExpiryError::TooFar);
        }
        Ok(Self(at))
    }
}
// ANCHOR_END: expiry_parse
// ANCHOR_END: expiry

// ANCHOR: expiry_reason
impl ExpiryError {
    /// A stable, machine-readable name for the rule that refused the expiry.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BothGiven => "expiry_both_given",
            Self::NotInFuture => "expiry_not_in_future",
            Self::TooFar => "expiry_too_far",
        }
    }
}
// ANCHOR_END: expiry_reason

impl Expiry {
    /// The moment itself.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default() // 2026-01-01
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let n = now();
        assert_eq!(Expiry::from_request(None, None, n), Ok(None));
        assert_eq!(
            Expiry::from_request(Some(n), Some(5), n),
            Err(ExpiryError::BothGiven)
        );
        assert_eq!(
            Expiry::from_request(Some(n), None, n),
            Err(ExpiryError::NotInFuture)
        );
        assert_eq!(
            Expiry::from_request(None, Some(0), n),
            Err(ExpiryError::NotInFuture)
        );
        assert_eq!(
            Expiry::from_request(None, Some(-3), n),
            Err(ExpiryError::NotInFuture)
        );
        assert_eq!(
            Expiry::from_request(None, Some(i64::MAX), n),
            Err(ExpiryError::TooFar)
        );
        let far = n + TimeDelta::days(MAX_LIFETIME_DAYS) + TimeDelta::seconds(1);
        assert_eq!(
            Expiry::from_request(Some(far), None, n),
            Err(ExpiryError::TooFar)
        );
        let ok = Expiry::from_request(None, Some(60), n);
        assert_eq!(
            ok.map(|e| e.map(Expiry::instant)),
            Ok(Some(n + TimeDelta::seconds(60)))
        );
    }

    proptest! {
        #[test]
        fn accepted_expiries_lie_in_the_allowed_window(ttl in any::<i64>()) {
            let n = now();
            if let Ok(Some(e)) = Expiry::from_request(None, Some(ttl), n) {
                prop_assert!(e.instant() > n);
                prop_assert!(e.instant() - n <= TimeDelta::days(MAX_LIFETIME_DAYS));
            }
        }
    }
}
