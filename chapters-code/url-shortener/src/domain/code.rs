//! The short code: the path segment that names a link.

use std::fmt;

/// The longest code we accept; aliases set the bound, generated codes are 7.
pub const CODE_MAX_LEN: usize = 32;

// ANCHOR: code
/// A short code: 1 to 32 characters of `0-9 A-Z a-z` plus `-` and `_`.
///
/// Generated codes use only the 62 alphanumerics (base62); `-` and `_` only
/// occur in custom aliases. Codes are case-sensitive: `aZ3` and `Az3` are two
/// different links, which is what makes 62 symbols per character possible.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(String);

/// Why a string is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Nothing to look up.
    #[error("a code cannot be empty")]
    Empty,
    /// Longer than [`CODE_MAX_LEN`].
    #[error("a code has at most {CODE_MAX_LEN} characters, this one has {0}")]
    TooLong(usize),
    /// A character outside `0-9 A-Z a-z - _`.
    #[error("a code uses only 0-9, A-Z, a-z, '-' and '_'; found {0:?}")]
    InvalidChar(char),
}

impl Code {
    /// Parses `s` as a code.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if s.is_empty() {
            return Err(CodeError::Empty);
        }
        if let Some(c) = s.chars().find(|c| !is_code_char(*c)) {
            return Err(CodeError::InvalidChar(c));
        }
        // Every accepted char is ASCII, so bytes == chars here.
        if s.len() > CODE_MAX_LEN {
            return Err(CodeError::TooLong(s.len()));
        }
        Ok(Self(s.to_owned()))
    }
}
// ANCHOR_END: code

impl Code {
    /// Wraps a string already checked against the rules: generator output
    /// (base62 digits) or a parsed alias.
    pub(crate) fn from_valid(s: String) -> Self {
        debug_assert!(Self::parse(&s).is_ok(), "not a valid code: {s:?}");
        Self(s)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for the characters a code may contain.
fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({})", self.0)
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_base62_and_alias_characters() {
        for ok in ["a", "0", "aZ09", "my-link_2", &"x".repeat(CODE_MAX_LEN)] {
            assert_eq!(Code::parse(ok).map(|c| c.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn rejects_with_a_named_reason() {
        assert_eq!(Code::parse(""), Err(CodeError::Empty));
        assert_eq!(Code::parse("a/b"), Err(CodeError::InvalidChar('/')));
        assert_eq!(Code::parse("é"), Err(CodeError::InvalidChar('é')));
        assert_eq!(Code::parse(&"x".repeat(33)), Err(CodeError::TooLong(33)));
    }

    proptest! {
        #[test]
        fn any_string_parses_or_names_its_error(s in any::<String>()) {
            match Code::parse(&s) {
                Ok(code) => prop_assert_eq!(code.as_str(), s.as_str()),
                Err(CodeError::Empty) => prop_assert!(s.is_empty()),
                Err(CodeError::TooLong(n)) => prop_assert!(n > CODE_MAX_LEN),
                Err(CodeError::InvalidChar(c)) => prop_assert!(s.contains(c) && !is_code_char(c)),
            }
        }
    }
}
