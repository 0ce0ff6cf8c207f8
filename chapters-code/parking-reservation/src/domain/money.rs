//! Amounts of money, in whole cents.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative amount in cents of the lot's currency.
///
/// Integer cents, never floating point: a price is a sum of many small
/// parts, and every part must round the same way on every machine.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

/// A negative amount was offered as money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount of money cannot be negative ({0} cents)")]
pub struct NegativeMoney(pub i64);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// `cents`, refused when negative.
    pub fn from_cents(cents: i64) -> Result<Self, NegativeMoney> {
        if cents < 0 {
            Err(NegativeMoney(cents))
        } else {
            Ok(Self(cents))
        }
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// The sum (saturating: an amount near `i64::MAX` cents is not a price).
    pub fn plus(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl TryFrom<i64> for Money {
    type Error = NegativeMoney;

    fn try_from(cents: i64) -> Result<Self, Self::Error> {
        Self::from_cents(cents)
    }
}

impl From<Money> for i64 {
    fn from(m: Money) -> Self {
        m.0
    }
}

impl From<u32> for Money {
    fn from(cents: u32) -> Self {
        Self(i64::from(cents))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_never_negative() {
        assert_eq!(Money::from_cents(-1), Err(NegativeMoney(-1)));
        assert_eq!(
            Money::from_cents(1250).map(|m| m.to_string()),
            Ok("12.50".into())
        );
        assert!(serde_json::from_str::<Money>("-5").is_err());
        assert_eq!(serde_json::from_str::<Money>("5").ok(), Some(Money(5)));
    }
}
