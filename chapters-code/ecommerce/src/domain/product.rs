//! Products and the identifiers and quantities that refer to them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::money::Money;

/// Longest SKU, in characters.
pub const SKU_MAX_LEN: usize = 32;
/// Most units of one product in one cart line or order line.
pub const MAX_QUANTITY: u32 = 99;

// ANCHOR: sku
/// A stock-keeping unit: 1 to 32 characters of `A-Z`, `0-9` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

/// Why a SKU was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    /// Empty or longer than [`SKU_MAX_LEN`].
    #[error("a SKU has 1 to {SKU_MAX_LEN} characters")]
    Length,
    /// A character outside `A-Z0-9-`.
    #[error("a SKU may contain only A-Z, 0-9 and '-'")]
    Character,
}

impl Sku {
    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, SkuError> {
        if raw.is_empty() || raw.len() > SKU_MAX_LEN {
            return Err(SkuError::Length);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(SkuError::Character);
        }
        Ok(Self(raw.to_string()))
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
// ANCHOR_END: sku

impl TryFrom<String> for Sku {
    type Error = SkuError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Sku::parse(&s)
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> Self {
        s.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ANCHOR: quantity
/// A quantity of one product: 1 to [`MAX_QUANTITY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

/// Why a quantity was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Below zero.
    #[error("a quantity cannot be negative ({0})")]
    Negative(i64),
    /// Zero (to remove a product, remove it).
    #[error("a quantity must be at least 1")]
    Zero,
    /// More than [`MAX_QUANTITY`].
    #[error("at most {MAX_QUANTITY} of one product ({0} asked)")]
    TooMany(i64),
}

impl Quantity {
    /// Checks `n`.
    pub fn new(n: i64) -> Result<Self, QuantityError> {
        match n {
            n if n < 0 => Err(QuantityError::Negative(n)),
            0 => Err(QuantityError::Zero),
            n if n > i64::from(MAX_QUANTITY) => Err(QuantityError::TooMany(n)),
            // In 1..=99, so it fits.
            n => Ok(Self(n as u32)),
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}
// ANCHOR_END: quantity

impl TryFrom<i64> for Quantity {
    type Error = QuantityError;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        Quantity::new(n)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> Self {
        q.0
    }
}

/// How a product is taxed (the rate per class is in [`super::pricing::TaxRates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxClass {
    /// The standard rate.
    Standard,
    /// The reduced rate (books, food).
    Reduced,
    /// Not taxed.
    Exempt,
}

impl TaxClass {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxClass::Standard => "standard",
            TaxClass::Reduced => "reduced",
            TaxClass::Exempt => "exempt",
        }
    }

    /// The inverse of [`TaxClass::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(TaxClass::Standard),
            "reduced" => Some(TaxClass::Reduced),
            "exempt" => Some(TaxClass::Exempt),
            _ => None,
        }
    }
}

// ANCHOR: product
/// A product as the catalog shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its SKU.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Longer text, searched with the name.
    pub description: String,
    /// The unit price, before tax.
    pub price: Money,
    /// How it is taxed.
    pub tax_class: TaxClass,
    /// Bumped by every change; caches keep the highest version they have seen.
    pub version: i64,
}
// ANCHOR_END: product

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_and_quantities_parse() {
        assert!(Sku::parse("MUG-RED-01").is_ok());
        assert_eq!(Sku::parse(""), Err(SkuError::Length));
        assert_eq!(Sku::parse("mug"), Err(SkuError::Character));
        assert_eq!(Sku::parse(&"A".repeat(33)), Err(SkuError::Length));
        assert_eq!(Quantity::new(-1), Err(QuantityError::Negative(-1)));
        assert_eq!(Quantity::new(0), Err(QuantityError::Zero));
        assert_eq!(Quantity::new(100), Err(QuantityError::TooMany(100)));
        assert_eq!(Quantity::new(99).map(Quantity::get), Ok(99));
        assert!(serde_json::from_str::<Quantity>("-3").is_err());
    }
}
