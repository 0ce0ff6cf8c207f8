//! Money: integer minor units of one currency.
//!
//! A price is a count of the currency's smallest unit (cents for EUR and USD,
//! yen for JPY), never a float: totals are sums of many parts, and every part
//! must round the same way on every machine. Two amounts in different
//! currencies cannot be added; trying is an error, not a conversion.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

// ANCHOR: currency
/// The currencies the shop sells in (ISO 4217 codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    /// Euro, 2 decimals.
    Eur,
    /// US dollar, 2 decimals.
    Usd,
    /// Japanese yen, no decimals.
    Jpy,
}

impl Currency {
    /// Digits after the decimal point (ISO 4217 "minor unit").
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Eur | Currency::Usd => 2,
            Currency::Jpy => 0,
        }
    }

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Jpy => "JPY",
        }
    }
}
// ANCHOR_END: currency

/// A currency code the shop does not sell in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}; expected EUR, USD or JPY")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EUR" => Ok(Currency::Eur),
            "USD" => Ok(Currency::Usd),
            "JPY" => Ok(Currency::Jpy),
            _ => Err(UnknownCurrency(s.to_string())),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = UnknownCurrency;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.code().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

// ANCHOR: money
/// A non-negative amount: minor units of one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    /// Minor units (cents, yen); never negative.
    minor: i64,
    /// The currency of `minor`.
    currency: Currency,
}

/// Why an arithmetic step on money was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A negative amount.
    #[error("an amount of money cannot be negative ({0} minor units)")]
    Negative(i64),
    /// Two currencies in one sum.
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 63 bits.
    #[error("amount too large")]
    Overflow,
}

/// The wire form, checked by [`Money::new`] on the way in.
#[derive(Deserialize)]
struct RawMoney {
    minor: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = MoneyError;

    fn try_from(raw: RawMoney) -> Result<Self, Self::Error> {
        Money::new(raw.minor, raw.currency)
    }
}

impl Money {
    /// `minor` units of `currency`, refused when negative.
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative(minor));
        }
        Ok(Self { minor, currency })
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// `self + other`, same currency only.
    pub fn plus(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self - other`, same currency, refused when the result would be negative.
    pub fn minus(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::new(self.minor - other.minor, self.currency)
    }

    /// `self * n`.
    pub fn times(self, n: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(n))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }
}
// ANCHOR_END: money

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.currency.exponent() {
            0 => write!(f, "{} {}", self.minor, self.currency),
            e => {
                let scale = 10i64.pow(e);
                write!(
                    f,
                    "{}.{:0width$} {}",
                    self.minor / scale,
                    self.minor % scale,
                    self.currency,
                    width = e as usize
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_never_negative_and_never_mixes_currencies() {
        assert_eq!(Money::new(-1, Currency::Eur), Err(MoneyError::Negative(-1)));
        let eur = Money::new(1250, Currency::Eur).expect("valid");
        let usd = Money::new(1, Currency::Usd).expect("valid");
        assert_eq!(
            eur.plus(usd),
            Err(MoneyError::CurrencyMismatch(Currency::Eur, Currency::Usd))
        );
        assert_eq!(eur.to_string(), "12.50 EUR");
        assert_eq!(
            Money::new(1250, Currency::Jpy).map(|m| m.to_string()),
            Ok("1250 JPY".into())
        );
        assert_eq!(
            eur.minus(eur.times(2).expect("fits")),
            Err(MoneyError::Negative(-1250))
        );
        assert_eq!(
            Money::new(i64::MAX, Currency::Eur).expect("valid").times(2),
            Err(MoneyError::Overflow)
        );
        assert!("eur".parse::<Currency>().is_err());
    }
}
