//! Users, post bodies and posts: types that can only be built by parsing.

use serde::{Deserialize, Serialize};

use super::PostId;

/// A user id (PostgreSQL `bigint`, positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

// ANCHOR: body
/// The most characters (Unicode scalar values) a post may have.
pub const MAX_POST_CHARS: usize = 280;

/// Why a post body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Nothing but whitespace.
    #[error("a post needs at least one visible character")]
    Empty,
    /// More than [`MAX_POST_CHARS`] characters.
    #[error("a post has at most {MAX_POST_CHARS} characters, this one has {0}")]
    TooLong(usize),
    /// A control character other than a line break.
    #[error("a post may not contain control characters")]
    ControlCharacter,
}

impl BodyError {
    /// The machine-readable name of the rule, for the problem document.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong(_) => "too-long",
            Self::ControlCharacter => "control-character",
        }
    }
}

/// A post's text: 1 to 280 characters, something visible, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PostBody(String);

impl PostBody {
    /// Parses a body; the only way to make one.
    pub fn parse(text: &str) -> Result<Self, BodyError> {
        let chars = text.chars().count();
        if chars > MAX_POST_CHARS {
            return Err(BodyError::TooLong(chars));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(BodyError::ControlCharacter);
        }
        if text.trim().is_empty() {
            return Err(BodyError::Empty);
        }
        Ok(Self(text.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
// ANCHOR_END: body

/// A stored post, as a timeline returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Post {
    /// Time-sortable id.
    pub id: PostId,
    /// Who wrote it.
    pub author: UserId,
    /// The text.
    pub body: PostBody,
}

impl Serialize for PostId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As a string: JavaScript numbers lose ids above 2^53.
        s.serialize_str(&self.to_string())
    }
}

/// Why a handle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Not 1 to 15 characters of `a-z`, `0-9` and `_`.
    #[error("a handle is 1 to 15 characters of a-z, 0-9 and _")]
    Invalid,
}

/// A user's handle: 1 to 15 characters of `a-z`, `0-9`, `_`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    /// Parses a handle.
    pub fn parse(text: &str) -> Result<Self, HandleError> {
        let ok = (1..=15).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(HandleError::Invalid)
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed() {
        assert_eq!(PostBody::parse("hello").map(|b| b.0), Ok("hello".into()));
        assert_eq!(PostBody::parse(""), Err(BodyError::Empty));
        assert_eq!(PostBody::parse(" \n "), Err(BodyError::Empty));
        assert_eq!(PostBody::parse("a\u{7}"), Err(BodyError::ControlCharacter));
        assert!(PostBody::parse("line\nbreak").is_ok());
        let max = "é".repeat(MAX_POST_CHARS);
        assert!(PostBody::parse(&max).is_ok(), "280 two-byte characters fit");
        assert_eq!(
            PostBody::parse(&format!("{max}x")),
            Err(BodyError::TooLong(MAX_POST_CHARS + 1))
        );
    }

    #[test]
    fn handles_are_parsed() {
        assert!(Handle::parse("ada_1815").is_ok());
        for bad in ["", "Ada", "a-b", "sixteen_chars_xx", "é"] {
            assert_eq!(Handle::parse(bad), Err(HandleError::Invalid), "{bad}");
        }
    }
}
