//! A limit, and the answer to a request that exceeds it.

use std::time::Duration;

/// A limit: one request per `period` sustained, and up to `burst` at once.
///
/// Kept as integer nanoseconds so that the token bucket and GCRA compute
/// with exactly the numbers `governor` uses (it truncates `1 s / rate` to
/// whole nanoseconds too), and a replay of a trace is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    period_ns: u64,
    burst: u32,
}

/// Why a limit was refused at configuration time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A rate of zero admits nothing; leave the limit out instead.
    #[error("the rate must be at least 1 per period")]
    ZeroRate,
    /// A burst of zero admits nothing.
    #[error("the burst must be at least 1")]
    ZeroBurst,
    /// Below one request per nanosecond the period rounds to zero.
    #[error("the period must be at least one nanosecond")]
    PeriodTooShort,
    /// `burst × period` does not fit in 64-bit nanoseconds (584 years).
    #[error("burst × period is longer than 584 years")]
    TooLarge,
}

impl Quota {
    /// `rate` requests per second sustained, `burst` at once.
    pub fn per_second(rate: u32, burst: u32) -> Result<Self, QuotaError> {
        if rate == 0 {
            return Err(QuotaError::ZeroRate);
        }
        Self::with_period(Duration::from_secs(1) / rate, burst)
    }

    /// One request per `period` sustained, `burst` at once.
    pub fn with_period(period: Duration, burst: u32) -> Result<Self, QuotaError> {
        let period_ns = u64::try_from(period.as_nanos()).map_err(|_| QuotaError::TooLarge)?;
        if period_ns == 0 {
            return Err(QuotaError::PeriodTooShort);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        period_ns
            .checked_mul(u64::from(burst))
            .ok_or(QuotaError::TooLarge)?;
        Ok(Self { period_ns, burst })
    }

    /// The time one request costs: the emission interval, `T` in GCRA.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The emission interval in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Requests admitted at once from rest.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// A full bucket, in nanoseconds of credit: `burst × period`.
    pub fn capacity_ns(&self) -> u64 {
        // Checked in the constructor.
        self.period_ns * u64::from(self.burst)
    }

    /// The same limit as a `governor` quota.
    pub fn to_governor(&self) -> governor::Quota {
        let burst = std::num::NonZeroU32::new(self.burst).unwrap_or(std::num::NonZeroU32::MIN);
        governor::Quota::with_period(self.period())
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// A refusal: the request exceeds the limit; one like it is admitted after `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// How long until the same request would be admitted.
    pub retry_after: Duration,
}

impl Refused {
    /// The value of a `Retry-After` header: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        };
        rounded.max(1)
    }
}

/// What a limiter answers: admitted, or refused with a wait.
pub type Decision = Result<(), Refused>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_limits_are_named_errors() {
        assert_eq!(Quota::per_second(0, 5), Err(QuotaError::ZeroRate));
        assert_eq!(Quota::per_second(5, 0), Err(QuotaError::ZeroBurst));
        assert_eq!(
            Quota::with_period(Duration::ZERO, 1),
            Err(QuotaError::PeriodTooShort)
        );
        assert_eq!(
            Quota::with_period(Duration::from_secs(1 << 40), u32::MAX),
            Err(QuotaError::TooLarge)
        );
        let q = Quota::per_second(3, 2).expect("valid");
        assert_eq!(q.period_ns(), 333_333_333, "truncated as governor does");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = |ms| Refused {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(r(0).retry_after_secs(), 1);
        assert_eq!(r(1).retry_after_secs(), 1);
        assert_eq!(r(1000).retry_after_secs(), 1);
        assert_eq!(r(1001).retry_after_secs(), 2);
    }
}
