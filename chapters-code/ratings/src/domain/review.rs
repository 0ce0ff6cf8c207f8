//! A review and the values it is made of.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::moderation::ModState;

/// A buyer's account id (authentication is the gateway's; see the API page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A product id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(pub i64);

/// A review id, assigned by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReviewId(pub i64);

// ANCHOR: rating
/// A star rating, 1 to 5; only [`Rating::new`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Rating(u8);

/// Why a rating was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rating must be between 1 and 5, got {0}")]
pub struct RatingError(pub i64);

impl Rating {
    /// The rating `stars`, if it is 1 to 5.
    pub fn new(stars: i64) -> Result<Self, RatingError> {
        match u8::try_from(stars) {
            Ok(s @ 1..=5) => Ok(Self(s)),
            _ => Err(RatingError(stars)),
        }
    }

    /// The stars, 1 to 5.
    pub fn stars(self) -> u8 {
        self.0
    }

    /// Index into a five-bucket histogram (0 for one star).
    pub fn bucket(self) -> usize {
        usize::from(self.0 - 1)
    }
}
// ANCHOR_END: rating

// ANCHOR: body
/// Longest body accepted, in characters (the schema's `body_length` agrees).
pub const MAX_BODY_CHARS: usize = 5000;

/// The text of a review: trimmed, not blank, at most [`MAX_BODY_CHARS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Body(String);

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Nothing but white space (or invisible characters).
    #[error("the review text is empty")]
    Empty,
    /// Longer than [`MAX_BODY_CHARS`].
    #[error("the review text has {chars} characters; at most {max} are allowed")]
    TooLong {
        /// Characters given, after trimming.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A control character other than a line break or tab.
    #[error("the review text contains a control character")]
    Control,
}

impl Body {
    /// Parses a body: trims, refuses blank, too long, or control characters.
    pub fn parse(raw: &str) -> Result<Self, BodyError> {
        let text = raw.trim();
        // Invisible characters (zero-width, fillers) do not make a review.
        if text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(BodyError::Empty);
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(BodyError::Control);
        }
        let chars = text.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(BodyError::TooLong {
                chars,
                max: MAX_BODY_CHARS,
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that render as nothing: zero-width space and joiners, the
/// soft hyphen, word joiner, BOM, Hangul fillers, braille blank.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{00AD}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{2800}'
    )
}
// ANCHOR_END: body

/// A stored review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Its id.
    pub id: ReviewId,
    /// The author.
    pub user: UserId,
    /// The product.
    pub product: ProductId,
    /// The stars.
    pub rating: Rating,
    /// The text.
    pub body: Body,
    /// Where moderation has it.
    pub state: ModState,
    /// Helpful votes received.
    pub helpful: i64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited or moderated.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_rating_parses_exactly_when_it_is_one_to_five(n in any::<i64>()) {
            prop_assert_eq!(Rating::new(n).is_ok(), (1..=5).contains(&n));
        }
    }

    #[test]
    fn blank_and_invisible_bodies_are_empty() {
        for raw in ["", "   ", "\n\t", "\u{200B}\u{3164}", " \u{2800} "] {
            assert_eq!(Body::parse(raw), Err(BodyError::Empty), "{raw:?}");
        }
    }

    #[test]
    fn a_body_over_the_limit_is_too_long_and_at_the_limit_is_fine() {
        let at = "é".repeat(MAX_BODY_CHARS);
        assert!(Body::parse(&at).is_ok());
        let over = "é".repeat(MAX_BODY_CHARS + 1);
        assert!(matches!(Body::parse(&over), Err(BodyError::TooLong { .. })));
    }

    #[test]
    fn a_control_character_is_refused() {
        assert_eq!(Body::parse("nice\u{0}"), Err(BodyError::Control));
        assert!(Body::parse("line one\nline two").is_ok());
    }
}
