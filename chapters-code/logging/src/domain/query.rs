//! The query language, a small subset of Loki's LogQL:
//! `{service="api", level!="debug"} |= "timeout" != "retry" | trace_id="..."`.
//!
//! A stream selector (at least one `=` matcher, or a trace id filter, so no
//! query scans every stream), then line filters. The time range and the
//! limit travel beside the text (see [`super::TimeRange`]).

use std::fmt;

use super::record::{LabelError, LabelName, TraceId, valid_label_value};

/// The most label matchers in one selector.
pub const MAX_MATCHERS: usize = 8;
/// The longest line-filter text, in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// The longest query, in bytes.
pub const MAX_QUERY_LEN: usize = 2048;

/// One label matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label.
    pub name: LabelName,
    /// The value compared with.
    pub value: String,
    /// True for `=`, false for `!=`.
    pub equal: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Label matchers: the part the index answers.
    pub matchers: Vec<Matcher>,
    /// Texts every line must contain (`|=`).
    pub contains: Vec<String>,
    /// Texts no line may contain (`!=`).
    pub excludes: Vec<String>,
    /// Only lines of this request (`| trace_id="..."`).
    pub trace_id: Option<TraceId>,
}

// ANCHOR: query_error
/// Why a query text did not parse. `at` is a byte offset into the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing but blanks.
    #[error("empty query")]
    Empty,
    /// Longer than [`MAX_QUERY_LEN`].
    #[error("query longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    /// A query starts with a `{...}` stream selector.
    #[error("expected `{{` at byte {at}")]
    ExpectedSelector {
        /// Byte offset.
        at: usize,
    },
    /// No `=` matcher and no trace id filter: it would scan every stream.
    #[error("the selector needs at least one `=` matcher, or the query a trace_id filter")]
    NoEqualMatcher,
    /// More than [`MAX_MATCHERS`] matchers.
    #[error("more than {MAX_MATCHERS} matchers")]
    TooManyMatchers,
    /// A label name or value that labels cannot have.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// After a label name: `=` or `!=`.
    #[error("expected `=` or `!=` at byte {at}")]
    ExpectedOperator {
        /// Byte offset.
        at: usize,
    },
    /// A string starts with `"`.
    #[error("expected a quoted string at byte {at}")]
    ExpectedString {
        /// Byte offset.
        at: usize,
    },
    /// A string with no closing quote.
    #[error("string starting at byte {at} is not closed")]
    UnterminatedString {
        /// Byte offset.
        at: usize,
    },
    /// A backslash followed by something other than `"` or `\`.
    #[error("bad escape at byte {at}: only \\\" and \\\\ are allowed")]
    BadEscape {
        /// Byte offset.
        at: usize,
    },
    /// A line filter's text is empty or longer than [`MAX_TEXT_LEN`].
    #[error("line filter text must be 1 to {MAX_TEXT_LEN} bytes")]
    BadText,
    /// Something after the selector that is not `|=`, `!=` or `| trace_id=`.
    #[error("unexpected input at byte {at}")]
    Unexpected {
        /// Byte offset.
        at: usize,
    },
}
// ANCHOR_END: query_error

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.s[self.at..].chars().next() {
            if c.is_whitespace() {
                self.at += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.s[self.at..].starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn done(&mut self) -> bool {
        self.skip_ws();
        self.at == self.s.len()
    }

    fn ident(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.at;
        let rest = &self.s[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.at += len;
        &self.s[start..start + len]
    }

    /// A `"..."` string with `\"` and `\\` escapes.
    fn string(&mut self) -> Result<String, QueryError> {
        self.skip_ws();
        let start = self.at;
        if !self.s[start..].starts_with('"') {
            return Err(QueryError::ExpectedString { at: start });
        }
        let mut out = String::new();
        let mut chars = self.s[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at = start + 1 + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some(_) => return Err(QueryError::BadEscape { at: start + 1 + i }),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(QueryError::UnterminatedString { at: start })
    }
}

impl Query {
    // ANCHOR: parse
    /// Parses a query text; every way it can be wrong has its own error.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let mut c = Cursor { s: text, at: 0 };
        if c.done() {
            return Err(QueryError::Empty);
        }
        if !c.eat("{") {
            return Err(QueryError::ExpectedSelector { at: c.at });
        }
        let mut q = Query::default();
        if !c.eat("}") {
            loop {
                let name = LabelName::parse(c.ident())?;
                let equal = if c.eat("!=") {
                    false
                } else if c.eat("=") {
                    true
                } else {
                    return Err(QueryError::ExpectedOperator { at: c.at });
                };
                let value = c.string()?;
                if !valid_label_value(&value) {
                    return Err(LabelError::BadValue {
                        name: name.to_string(),
                    }
                    .into());
                }
                q.matchers.push(Matcher { name, value, equal });
                if q.matchers.len() > MAX_MATCHERS {
                    return Err(QueryError::TooManyMatchers);
                }
                if c.eat("}") {
                    break;
                }
                if !c.eat(",") {
                    return Err(QueryError::Unexpected { at: c.at });
                }
            }
        }
        while !c.done() {
            if c.eat("|=") {
                q.contains.push(text_filter(c.string()?)?);
            } else if c.eat("!=") {
                q.excludes.push(text_filter(c.string()?)?);
            } else if c.eat("|") {
                let at = c.at;
                if c.ident() != "trace_id" || !c.eat("=") {
                    return Err(QueryError::Unexpected { at });
                }
                q.trace_id = Some(TraceId::parse(&c.string()?)?);
            } else {
                return Err(QueryError::Unexpected { at: c.at });
            }
        }
        if q.trace_id.is_none() && !q.matchers.iter().any(|m| m.equal) {
            return Err(QueryError::NoEqualMatcher);
        }
        Ok(q)
    }
    // ANCHOR_END: parse

    /// True if a line with these labels and text passes every filter.
    pub fn matches(
        &self,
        labels: &super::Labels,
        message: &str,
        trace_id: Option<TraceId>,
    ) -> bool {
        self.matches_labels(labels)
            && self.contains.iter().all(|t| message.contains(t.as_str()))
            && !self.excludes.iter().any(|t| message.contains(t.as_str()))
            && self.trace_id.is_none_or(|t| trace_id == Some(t))
    }

    /// True if a stream with these labels passes the selector.
    pub fn matches_labels(&self, labels: &super::Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| (labels.get(m.name.as_str()) == Some(m.value.as_str())) == m.equal)
    }
}

fn text_filter(s: String) -> Result<String, QueryError> {
    if s.is_empty() || s.len() > MAX_TEXT_LEN {
        Err(QueryError::BadText)
    } else {
        Ok(s)
    }
}

fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Query {
    /// The query as text that parses back to the same query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}", m.name, if m.equal { "=" } else { "!=" })?;
            quoted(f, &m.value)?;
        }
        f.write_str("}")?;
        for t in &self.contains {
            f.write_str(" |= ")?;
            quoted(f, t)?;
        }
        for t in &self.excludes {
            f.write_str(" != ")?;
            quoted(f, t)?;
        }
        if let Some(t) = self.trace_id {
            write!(f, " | trace_id=\"{t}\"")?;
        }
        Ok(())
    }
}
