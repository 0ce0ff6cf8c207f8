//! Custom aliases: codes chosen by the user instead of generated.

use super::code::Code;

/// Shortest alias: one- and two-character codes are left to the generator.
pub const ALIAS_MIN_LEN: usize = 3;
/// Longest alias, the same bound as [`super::CODE_MAX_LEN`].
pub const ALIAS_MAX_LEN: usize = 32;

// ANCHOR: alias_lists
/// Path segments the service uses (or may use) itself. An alias equal to one
/// of them would be shadowed by the route, or would shadow a future one.
const RESERVED: &[&str] = &[
    "about", "admin", "api", "assets", "docs", "health", "help", "login", "logout", "metrics",
    "signup", "static", "status", "www",
];

/// Words no alias may contain, after the normalisation in [`normalise`].
///
/// Deliberately tiny: a real deployment loads a maintained list. Substring
/// matching refuses "scunthorpe" too (the "Scunthorpe problem"); we accept
/// that cost because a refused alias only means "pick another one".
const BLOCKED: &[&str] = &[
    "bitch", "cunt", "fuck", "nazi", "porn", "shit", "slut", "whore",
];
// ANCHOR_END: alias_lists

// ANCHOR: alias
/// A user-chosen code: 3 to 32 of `A-Z a-z 0-9 _ -`, not reserved, not offensive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Alias(Code);

// ANCHOR: alias_error
/// Why an alias was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Fewer than [`ALIAS_MIN_LEN`] characters.
    #[error("an alias has at least {ALIAS_MIN_LEN} characters, this one has {0}")]
    TooShort(usize),
    /// More than [`ALIAS_MAX_LEN`] characters.
    #[error("an alias has at most {ALIAS_MAX_LEN} characters, this one has {0}")]
    TooLong(usize),
    /// A character outside `A-Z a-z 0-9 _ -`.
    #[error("an alias uses only A-Z, a-z, 0-9, '_' and '-'; found {0:?}")]
    InvalidChar(char),
    /// A path the service keeps for itself (compared case-insensitively).
    #[error("{0:?} is reserved")]
    Reserved(String),
    /// Contains a blocked word, possibly spelled with digits for letters.
    #[error("the alias contains a blocked word")]
    Offensive,
}
// ANCHOR_END: alias_error

// ANCHOR: alias_parse
impl Alias {
    /// Parses a requested alias.
    pub fn parse(s: &str) -> Result<Self, AliasError> {
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(AliasError::InvalidChar(c));
        }
        // ASCII only from here on, so `len()` counts characters.
        match s.len() {
            n if n < ALIAS_MIN_LEN => return Err(AliasError::TooShort(n)),
            n if n > ALIAS_MAX_LEN => return Err(AliasError::TooLong(n)),
            _ => {}
        }
        if is_reserved(s) {
            return Err(AliasError::Reserved(s.to_ascii_lowercase()));
        }
        if normalise(s)
            .iter()
            .any(|n| BLOCKED.iter().any(|w| n.contains(w)))
        {
            return Err(AliasError::Offensive);
        }
        Ok(Self(Code::from_valid(s.to_owned())))
    }
}

/// The spellings we compare with the block list: lower case, separators
/// dropped, digits read as the letters they imitate. `1` reads as both `i`
/// and `l`, so there are two spellings.
fn normalise(s: &str) -> [String; 2] {
    let read = |one: char| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| match c.to_ascii_lowercase() {
                '0' => 'o',
                '1' => one,
                '3' => 'e',
                '4' => 'a',
                '5' => 's',
                '7' => 't',
                '8' => 'b',
                '9' => 'g',
                other => other,
            })
            .collect()
    };
    [read('i'), read('l')]
}
// ANCHOR_END: alias_parse
// ANCHOR_END: alias

// ANCHOR: alias_reason
impl AliasError {
    /// A stable, machine-readable name for the rule that refused the alias.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "alias_too_short",
            Self::TooLong(_) => "alias_too_long",
            Self::InvalidChar(_) => "alias_invalid_char",
            Self::Reserved(_) => "alias_reserved",
            Self::Offensive => "alias_offensive",
        }
    }
}
// ANCHOR_END: alias_reason

/// True when `s` names a path the service keeps for itself, in any case.
pub(crate) fn is_reserved(s: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

impl Alias {
    /// The alias as a code.
    pub fn as_code(&self) -> &Code {
        &self.0
    }

    /// The alias as a code, by value.
    pub fn into_code(self) -> Code {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_aliases() {
        for ok in ["abc", "my-launch_2026", "Spring-Sale", &"a".repeat(32)] {
            assert!(Alias::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn each_rule_has_its_own_error() {
        assert_eq!(Alias::parse("ab"), Err(AliasError::TooShort(2)));
        assert_eq!(Alias::parse(&"a".repeat(33)), Err(AliasError::TooLong(33)));
        assert_eq!(Alias::parse("a b"), Err(AliasError::InvalidChar(' ')));
        assert_eq!(Alias::parse("a/b"), Err(AliasError::InvalidChar('/')));
        assert_eq!(Alias::parse("ünï"), Err(AliasError::InvalidChar('ü')));
        assert_eq!(Alias::parse("API"), Err(AliasError::Reserved("api".into())));
        assert_eq!(
            Alias::parse("Health"),
            Err(AliasError::Reserved("health".into()))
        );
        assert_eq!(Alias::parse("fuck"), Err(AliasError::Offensive));
    }

    #[test]
    fn leetspeak_and_separators_do_not_hide_a_blocked_word() {
        for bad in ["5H1T", "sh1t-happens", "f-u-c-k", "p0rn", "s1ut", "NAZ1"] {
            assert_eq!(Alias::parse(bad), Err(AliasError::Offensive), "{bad}");
        }
    }

    #[test]
    fn substring_matching_refuses_some_innocent_words() {
        // The documented cost of substring matching.
        assert_eq!(Alias::parse("scunthorpe"), Err(AliasError::Offensive));
    }

    proptest! {
        #[test]
        fn any_string_is_accepted_or_refused_for_a_named_reason(s in any::<String>()) {
            match Alias::parse(&s) {
                Ok(a) => {
                    prop_assert_eq!(a.as_code().as_str(), s.as_str());
                    prop_assert!((ALIAS_MIN_LEN..=ALIAS_MAX_LEN).contains(&s.len()));
                }
                Err(AliasError::InvalidChar(c)) => prop_assert!(s.contains(c)),
                Err(AliasError::TooShort(n)) => prop_assert!(n < ALIAS_MIN_LEN),
                Err(AliasError::TooLong(n)) => prop_assert!(n > ALIAS_MAX_LEN),
                Err(AliasError::Reserved(r)) => prop_assert_eq!(r, s.to_ascii_lowercase()),
                Err(AliasError::Offensive) => {}
            }
        }

        #[test]
        fn well_formed_aliases_are_accepted_unless_reserved_or_blocked(s in "[A-Za-z0-9_-]{3,32}") {
            let verdict = Alias::parse(&s);
            let expected_ok = !is_reserved(&s)
                && !normalise(&s).iter().any(|n| BLOCKED.iter().any(|w| n.contains(w)));
            prop_assert_eq!(verdict.is_ok(), expected_ok);
        }
    }
}
