//! A structured log record and its labels.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::FieldValue;

/// The longest label value accepted, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 128;
/// The longest message kept, in bytes; a longer one is cut at a character
/// boundary (the cut is counted by the caller, never silent).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Why a label name or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Label names are `[a-z_][a-z0-9_]*`, at most 32 bytes.
    #[error("label name {0:?} must match [a-z_][a-z0-9_]* and be at most 32 bytes")]
    BadName(String),
    /// Label values are printable, without quotes, at most [`MAX_LABEL_VALUE_LEN`] bytes.
    #[error("label value for {name} is empty, too long or holds a quote or control character")]
    BadValue {
        /// The label whose value was refused.
        name: String,
    },
    /// A trace id is 32 lowercase hex digits (W3C trace context).
    #[error("trace id {0:?} is not 32 lowercase hex digits")]
    BadTraceId(String),
}

/// A label name: `[a-z_][a-z0-9_]*`, at most 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelName(String);

impl LabelName {
    /// Parses a label name.
    pub fn parse(s: &str) -> Result<Self, LabelError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(LabelError::BadName(s.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LabelName {
    type Error = LabelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LabelName> for String {
    fn from(n: LabelName) -> String {
        n.0
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a label value: non-empty, at most [`MAX_LABEL_VALUE_LEN`] bytes,
/// no quote, backslash or control character (so a query can quote it).
pub fn valid_label_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LABEL_VALUE_LEN
        && !v.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// The labels of a record: what the store indexes. A stream is one
/// distinct set of labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Labels(BTreeMap<LabelName, String>);

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = LabelError;
    /// Labels read from outside (a push, a broker) pass the same checks as
    /// labels built in code.
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::from_pairs(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds labels from pairs, checking every name and value.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LabelError> {
        let mut l = Self::new();
        for (k, v) in pairs {
            l.insert(LabelName::parse(k)?, v)?;
        }
        Ok(l)
    }

    /// Sets one label, checking the value.
    pub fn insert(&mut self, name: LabelName, value: &str) -> Result<(), LabelError> {
        if !valid_label_value(value) {
            return Err(LabelError::BadValue {
                name: name.as_str().to_string(),
            });
        }
        self.0.insert(name, value.to_string());
        Ok(())
    }

    /// The value of one label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every label, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&LabelName, &str)> {
        self.0.iter().map(|(k, v)| (k, v.as_str()))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    /// `{a="x", b="y"}`: the stream selector that matches exactly this stream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}=\"{v}\"")?;
        }
        f.write_str("}")
    }
}

/// A W3C trace id: 32 lowercase hex digits. It links the lines of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceId(u128);

impl TraceId {
    /// Parses 32 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, LabelError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            u128::from_str_radix(s, 16)
                .map(Self)
                .map_err(|_| LabelError::BadTraceId(s.to_string()))
        } else {
            Err(LabelError::BadTraceId(s.to_string()))
        }
    }

    /// A trace id from its 128 bits.
    pub fn from_u128(v: u128) -> Self {
        Self(v)
    }
}

impl TryFrom<String> for TraceId {
    type Error = LabelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TraceId> for String {
    fn from(t: TraceId) -> String {
        t.to_string()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A log level, as `tracing` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very verbose.
    Trace,
    /// For developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd that was handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The label value of this level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

// ANCHOR: record
/// One structured log line: when, from which stream (labels), what was
/// said, the request it belongs to, and any typed fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch, as the emitter's clock saw it.
    pub ts_ms: i64,
    /// The indexed labels (service, level, ...): few values each.
    pub labels: Labels,
    /// The free text, searched by scanning.
    pub message: String,
    /// The request this line belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Structured fields: not indexed, kept with their type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
}
// ANCHOR_END: record

impl Record {
    /// A record with no trace id and no fields.
    pub fn new(ts_ms: i64, labels: Labels, message: impl Into<String>) -> Self {
        Self {
            ts_ms,
            labels,
            message: message.into(),
            trace_id: None,
            fields: BTreeMap::new(),
        }
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary; true if it cut.
pub fn truncate_at_boundary(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}
