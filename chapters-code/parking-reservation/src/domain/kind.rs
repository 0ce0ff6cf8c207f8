//! The kinds of spot a lot has, and a driver asks for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a spot is for. A driver reserves a kind; the store assigns a spot of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpotKind {
    /// A small car.
    Compact,
    /// An ordinary car.
    Regular,
    /// A van or a large SUV.
    Large,
    /// A spot with a charger.
    Ev,
    /// A wide spot near the lifts, for holders of a disability permit.
    Accessible,
}

/// The text was not one of the kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown spot kind {0:?}; expected one of compact, regular, large, ev, accessible")]
pub struct KindError(pub String);

impl SpotKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [SpotKind; 5] = [
        SpotKind::Compact,
        SpotKind::Regular,
        SpotKind::Large,
        SpotKind::Ev,
        SpotKind::Accessible,
    ];

    /// The name used in JSON, URLs and the `spots.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SpotKind::Compact => "compact",
            SpotKind::Regular => "regular",
            SpotKind::Large => "large",
            SpotKind::Ev => "ev",
            SpotKind::Accessible => "accessible",
        }
    }
}

impl FromStr for SpotKind {
    type Err = KindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpotKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KindError(s.to_string()))
    }
}

impl fmt::Display for SpotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SpotKind::ALL {
            assert_eq!(k.as_str().parse(), Ok(k));
            assert_eq!(serde_json::to_string(&k).ok(), Some(format!("\"{k}\"")));
        }
        assert_eq!("EV".parse::<SpotKind>(), Err(KindError("EV".into())));
    }
}
