//! Identifiers and quantities that parse, so a bad one never reaches a store.

use std::fmt;

use serde::{Deserialize, Serialize};

// ANCHOR: qty
/// The most units one request may move. Larger numbers are typos, not orders.
pub const MAX_QTY: i64 = 1_000_000;

/// A positive number of units, at most [`MAX_QTY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "i64")]
pub struct Qty(i64);

/// Why a quantity was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    /// Zero units: nothing to do, and almost always a client bug.
    #[error("quantity must be at least 1, got 0")]
    Zero,
    /// A negative number of units.
    #[error("quantity must be positive, got {0}")]
    Negative(i64),
    /// More than [`MAX_QTY`] (or [`MAX_COUNT`] for a count).
    #[error("{0} is more units than any real request or count")]
    TooLarge(i64),
}

impl Qty {
    /// The quantity `n`, if it is between 1 and [`MAX_QTY`].
    pub fn new(n: i64) -> Result<Self, QtyError> {
        match n {
            0 => Err(QtyError::Zero),
            n if n < 0 => Err(QtyError::Negative(n)),
            n if n > MAX_QTY => Err(QtyError::TooLarge(n)),
            n => Ok(Qty(n)),
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}
// ANCHOR_END: qty

impl From<Qty> for i64 {
    fn from(q: Qty) -> i64 {
        q.0
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Qty::new(n).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The most units a stock count may report.
pub const MAX_COUNT: i64 = 1_000_000_000;

/// The result of counting a position: zero or more units, at most [`MAX_COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "i64")]
pub struct Count(i64);

impl Count {
    /// The count `n`, if it is between 0 and [`MAX_COUNT`].
    pub fn new(n: i64) -> Result<Self, QtyError> {
        match n {
            n if n < 0 => Err(QtyError::Negative(n)),
            n if n > MAX_COUNT => Err(QtyError::TooLarge(n)),
            n => Ok(Count(n)),
        }
    }

    /// The number of units counted.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl From<Count> for i64 {
    fn from(c: Count) -> i64 {
        c.0
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Count::new(n).map_err(serde::de::Error::custom)
    }
}

/// A code that names a SKU or a warehouse was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The empty string.
    #[error("{what} code is empty")]
    Empty {
        /// `SKU` or `warehouse`.
        what: &'static str,
    },
    /// Longer than the limit.
    #[error("{what} code is longer than {max} characters")]
    TooLong {
        /// `SKU` or `warehouse`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A character outside `A-Z`, `0-9` and `-`, or a leading `-`.
    #[error("{what} code {code:?} may hold only A-Z, 0-9 and '-', and must not start with '-'")]
    BadCharacter {
        /// `SKU` or `warehouse`.
        what: &'static str,
        /// The code as given.
        code: String,
    },
}

fn parse_code(what: &'static str, s: &str, max: usize) -> Result<String, CodeError> {
    if s.is_empty() {
        return Err(CodeError::Empty { what });
    }
    if s.len() > max {
        return Err(CodeError::TooLong { what, max });
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-');
    if !ok {
        return Err(CodeError::BadCharacter {
            what,
            code: s.to_string(),
        });
    }
    Ok(s.to_string())
}

macro_rules! code_type {
    ($name:ident, $what:literal, $max:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a code: 1 to
            #[doc = stringify!($max)]
            /// characters of `A-Z`, `0-9` and `-`.
            pub fn parse(s: &str) -> Result<Self, CodeError> {
                parse_code($what, s, $max).map($name)
            }

            /// The code as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(c: $name) -> String {
                c.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    Sku,
    "SKU",
    32,
    "A stock-keeping unit: what is sold, e.g. `SHOE-42-RED`."
);
code_type!(
    Warehouse,
    "warehouse",
    16,
    "A place stock is kept, e.g. `AMS-1`."
);

/// One stock position: a SKU in a warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StockKey {
    /// What.
    pub sku: Sku,
    /// Where.
    pub warehouse: Warehouse,
}

impl StockKey {
    /// The position of `sku` in `warehouse`.
    pub fn new(sku: Sku, warehouse: Warehouse) -> Self {
        Self { sku, warehouse }
    }
}

impl fmt::Display for StockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.sku, self.warehouse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_positive_and_bounded() {
        assert_eq!(Qty::new(0), Err(QtyError::Zero));
        assert_eq!(Qty::new(-3), Err(QtyError::Negative(-3)));
        assert_eq!(Qty::new(MAX_QTY + 1), Err(QtyError::TooLarge(MAX_QTY + 1)));
        assert_eq!(Qty::new(MAX_QTY).map(Qty::get), Ok(MAX_QTY));
        assert!(serde_json::from_str::<Qty>("0").is_err());
        assert!(serde_json::from_str::<Qty>("-1").is_err());
        assert_eq!(serde_json::from_str::<Qty>("7").map(Qty::get).ok(), Some(7));
    }

    #[test]
    fn codes_parse_or_name_the_reason() {
        assert!(Sku::parse("SHOE-42-RED").is_ok());
        assert!(matches!(Sku::parse(""), Err(CodeError::Empty { .. })));
        assert!(matches!(
            Sku::parse("shoe"),
            Err(CodeError::BadCharacter { .. })
        ));
        assert!(matches!(
            Sku::parse("-A"),
            Err(CodeError::BadCharacter { .. })
        ));
        assert!(matches!(
            Warehouse::parse(&"A".repeat(17)),
            Err(CodeError::TooLong { max: 16, .. })
        ));
        assert!(serde_json::from_str::<Sku>("\"a b\"").is_err());
    }
}
