//! Capped exponential backoff with jitter, as AWS's "Exponential Backoff
//! and Jitter" defines it, and the small seeded random source it draws from.
//!
//! With `ceiling(n) = min(cap, base * 2^n)` for the `n`th retry (from 0):
//!
//! - [`Jitter::None`]: sleep `ceiling(n)`;
//! - [`Jitter::Full`]: sleep `rand(0, ceiling(n))`;
//! - [`Jitter::Equal`]: sleep `ceiling(n)/2 + rand(0, ceiling(n)/2)`;
//! - [`Jitter::Decorrelated`]: sleep `min(cap, rand(base, prev * 3))`,
//!   where `prev` is the previous sleep (`base` before the first).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How a delay is spread around its exponential ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Jitter {
    /// No jitter: every client waits exactly the ceiling.
    None,
    /// `rand(0, ceiling)`.
    Full,
    /// `ceiling/2 + rand(0, ceiling/2)`.
    Equal,
    /// `min(cap, rand(base, prev * 3))`.
    Decorrelated,
}

/// A backoff that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackoffError {
    /// A base of zero never grows.
    #[error("the backoff base must be longer than zero")]
    ZeroBase,
    /// A cap below the base would make the first delay exceed the cap.
    #[error("the backoff cap must be at least the base")]
    CapBelowBase,
}

// ANCHOR: backoff
/// Capped exponential backoff with a jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`, spread by `jitter`
    /// (`const`, so a policy can be a constant checked at compile time).
    pub const fn new(base: Duration, cap: Duration, jitter: Jitter) -> Result<Self, BackoffError> {
        if base.is_zero() {
            return Err(BackoffError::ZeroBase);
        }
        if cap.as_nanos() < base.as_nanos() {
            return Err(BackoffError::CapBelowBase);
        }
        Ok(Self { base, cap, jitter })
    }

    /// The first ceiling.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The jitter.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// `min(cap, base * 2^n)`, without overflow.
    pub fn ceiling(&self, n: u32) -> Duration {
        1u32.checked_shl(n)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay before the `n`th retry (from 0); `prev` is the delay before
    /// the previous one (`base` for the first), which only decorrelated
    /// jitter uses.
    pub fn delay(&self, n: u32, prev: Duration, rng: &mut Rng) -> Duration {
        let ceiling = self.ceiling(n);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => rng.between(Duration::ZERO, ceiling),
            Jitter::Equal => {
                let half = ceiling / 2;
                half + rng.between(Duration::ZERO, ceiling - half)
            }
            Jitter::Decorrelated => {
                let prev = prev.max(self.base);
                let top = prev.saturating_mul(3);
                rng.between(self.base, top).min(self.cap)
            }
        }
    }
}
// ANCHOR_END: backoff

/// A small seeded random source (SplitMix64): the same seed gives the
/// same delays on every machine and every version, which the simulation's
/// generated table needs, and no dependency is pulled in for it.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A source that replays the same numbers for the same `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A source seeded from the process's random hasher keys and the clock,
    /// so two clients started together do not draw the same jitter.
    pub fn from_entropy() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self::seeded(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A duration in `[lo, hi]` (`lo` when `hi <= lo`), uniform to the nanosecond.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        // Spans beyond 584 years are cut there, so the product below fits.
        let span = hi.saturating_sub(lo).as_nanos().min(u128::from(u64::MAX));
        if span == 0 {
            return lo;
        }
        // (span + 1) * x / 2^64 is in [0, span] for any 64-bit x.
        let offset = ((span + 1) * u128::from(self.next_u64())) >> 64;
        let offset = u64::try_from(offset).unwrap_or(u64::MAX);
        lo.saturating_add(Duration::from_nanos(offset))
    }
}
