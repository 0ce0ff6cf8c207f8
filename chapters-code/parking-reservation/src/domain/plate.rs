//! Licence plates: who a reservation is for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Shortest accepted plate, in characters.
pub const PLATE_MIN_LEN: usize = 2;
/// Longest accepted plate, in characters.
pub const PLATE_MAX_LEN: usize = 12;

// ANCHOR: plate
/// A licence plate, normalised: upper case, spaces and dashes removed,
/// `[A-Z0-9]{2,12}`.
///
/// Normalising at the boundary means "ab 123", "AB-123" and "AB123" are the
/// same car everywhere after it (its limits, its one parked spot, its
/// idempotency fingerprints): separators are how a plate is printed, not
/// part of its registration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Plate(String);

/// Why a plate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlateError {
    /// Fewer than [`PLATE_MIN_LEN`] or more than [`PLATE_MAX_LEN`] characters after normalising.
    #[error("a plate has {PLATE_MIN_LEN} to {PLATE_MAX_LEN} letters or digits")]
    Length,
    /// A character other than a letter, a digit, a dash or a space.
    #[error("a plate may contain only letters A-Z, digits and dashes, not {0:?}")]
    Character(char),
}

impl Plate {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, PlateError> {
        let mut plate = String::with_capacity(raw.len());
        for c in raw.chars().filter(|c| !matches!(c, ' ' | '-')) {
            let c = c.to_ascii_uppercase();
            if !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-') {
                return Err(PlateError::Character(c));
            }
            plate.push(c);
        }
        if !(PLATE_MIN_LEN..=PLATE_MAX_LEN).contains(&plate.len()) {
            return Err(PlateError::Length);
        }
        Ok(Self(plate))
    }
}
// ANCHOR_END: plate

impl Plate {
    /// The normalised plate.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Plate {
    type Error = PlateError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Plate> for String {
    fn from(p: Plate) -> Self {
        p.0
    }
}

impl fmt::Display for Plate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plates_are_normalised_or_refused() {
        assert_eq!(Plate::parse("ab 123").map(|p| p.0), Ok("AB123".into()));
        assert_eq!(Plate::parse("B-XY-9").map(|p| p.0), Ok("BXY9".into()));
        assert_eq!(Plate::parse("ab-123"), Plate::parse("AB123"));
        assert_eq!(Plate::parse("A-"), Err(PlateError::Length));
        assert_eq!(Plate::parse("A"), Err(PlateError::Length));
        assert_eq!(Plate::parse("   "), Err(PlateError::Length));
        assert_eq!(Plate::parse("ABCDEFGHIJKLM"), Err(PlateError::Length));
        assert_eq!(Plate::parse("AB_1"), Err(PlateError::Character('_')));
        assert_eq!(Plate::parse("ÄB1"), Err(PlateError::Character('Ä')));
    }

    proptest! {
        #[test]
        fn accepted_plates_match_the_schema_check(raw in "\\PC{0,16}") {
            if let Ok(p) = Plate::parse(&raw) {
                // The same rule as the CHECK on reservations.plate.
                prop_assert!((2..=12).contains(&p.0.len()));
                prop_assert!(p.0.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            }
        }
    }
}
