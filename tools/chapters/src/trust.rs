//! The trust-boundary table of the checking page: one row per check, one
//! column per case study, each cell a short phrase linked to the test that
//! shows it or to the sentence of the chapter that states the limit.
//!
//! Each case study writes its column in `chapters-code/<slug>/trust.toml`,
//! one TOML table per check (the keys of [`CHECKS`], all required):
//!
//! ```toml
//! [auth]
//! says = "no accounts: the owner token returned at create authorises delete"
//! test = "tests/service.rs::delete_needs_the_owner_token"
//!
//! [header-trust]
//! says = "trusts no header"
//! page = "failure-modes.md"
//! quote = "The service trusts no header"
//! ```
//!
//! This module reads the six files and verifies every cell before it writes
//! a line: no check missing and no unknown key; `says` is not empty and at
//! most [`MAX_SAYS`] characters; a cell has exactly one of `test` or
//! `page` + `quote`; a `test` names a file of the chapter crate that
//! declares that `fn` under a test attribute (or generates it with a macro
//! whose first argument it is, the form the book's links to code accept); a
//! `quote` of at least [`MIN_QUOTE`] characters is in the page, word for
//! word (a line break in the page matches a space in the quote). A file
//! that fails a check fails the generator with a message naming the file,
//! the check and the problem, so `cargo xtask gen` and book check 6 fail.
//!
//! The table is written to [`TABLE_PATH`] and included by `src/checking.md`.
//! mdBook pastes an included file into the page, so its links are written
//! relative to `src/checking.md`: a test links to the crate file with
//! `#<fn name>` (the build publishes it as a source page and refuses a name
//! that is not there), a quote to its page with the `#id` of the heading
//! above the sentence (the built site's link check refuses an id that is not
//! there).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use anyhow::{Result, bail};
use bookkit::table::markdown_table;
use bookkit::{Chapter, GeneratedFile};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use regex::Regex;

/// The entry's slug: the checking page, `src/checking.md`, includes the table.
pub const SLUG: &str = "checking";
/// The generated table, relative to the repository root.
pub const TABLE_PATH: &str = "src/generated/trust-boundaries.md";
/// The page that includes the table: the table's links are relative to it.
pub const INCLUDED_BY: &str = "src/checking.md";
/// The longest `says`, in characters: a cell is a phrase, not a paragraph.
pub const MAX_SAYS: usize = 90;
/// The shortest `quote`, in characters: long enough to name one sentence.
pub const MIN_QUOTE: usize = 20;

/// One row of the table: a check every service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The TOML table of the check in `trust.toml`.
    pub key: &'static str,
    /// The question the row answers (its label).
    pub question: &'static str,
}

/// The checks, in the order of the rows.
pub const CHECKS: &[Check] = &[
    Check {
        key: "auth",
        question: "Authentication and authorization: who may do what, especially destructive routes",
    },
    Check {
        key: "header-trust",
        question: "Which request headers are trusted, and what happens when they are not",
    },
    Check {
        key: "guessable-ids",
        question: "Are ids, codes or cursors guessable or enumerable, and what stops enumeration",
    },
    Check {
        key: "request-size",
        question: "Body size and per-request element limits",
    },
    Check {
        key: "unbounded-work",
        question: "Work a client can make unbounded, and its bound",
    },
    Check {
        key: "url-validation",
        question: "Validation of URLs or other references a client supplies",
    },
    Check {
        key: "secrets",
        question: "Secrets and their defaults",
    },
    Check {
        key: "rate-limits",
        question: "Where rate limits sit, per what key, spent before or after authentication",
    },
    Check {
        key: "error-content",
        question: "Error bodies carry no internals",
    },
    Check {
        key: "input-panics",
        question: "No panic reachable from input",
    },
    Check {
        key: "integer-overflow",
        question: "Overflow of quantities, money and counters",
    },
];

/// One column of the table: a case study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Its slug: `chapters-code/<slug>/` and `src/<slug>/`.
    pub slug: &'static str,
    /// Its name, as the table of contents gives it.
    pub name: &'static str,
}

/// The case studies, in book order.
pub const SERVICES: &[Service] = &[
    Service {
        slug: "url-shortener",
        name: "URL shortener",
    },
    Service {
        slug: "twitter-timeline",
        name: "Twitter timeline",
    },
    Service {
        slug: "ecommerce",
        name: "E-commerce platform",
    },
    Service {
        slug: "order-management",
        name: "Order management",
    },
    Service {
        slug: "parking-reservation",
        name: "Parking reservation",
    },
    Service {
        slug: "inventory",
        name: "Real-time inventory",
    },
];

/// The keys a check's table may hold.
const CELL_KEYS: &[&str] = &["says", "test", "page", "quote"];

/// `chapters-code/<slug>/trust.toml`: the column of `slug`.
pub fn trust_path(slug: &str) -> String {
    format!("chapters-code/{slug}/trust.toml")
}

// ---------------------------------------------------------------------------
// What a file says.

/// What shows a cell's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A test: a file of the chapter crate (relative to it) and the `fn`'s name.
    Test {
        /// The file, relative to `chapters-code/<slug>/`.
        file: String,
        /// The name of the test.
        name: String,
    },
    /// A sentence of a page of the chapter that states the limit.
    Quote {
        /// The page, relative to `src/<slug>/`.
        page: String,
        /// Words of the page, verbatim.
        quote: String,
    },
}

/// One cell as the file writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The phrase the table shows.
    pub says: String,
    /// What it links to.
    pub evidence: Evidence,
}

/// A problem in a trust file: the file, the check it is in (if any) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The trust file, relative to the repository root.
    pub file: String,
    /// The check (the TOML table), when the problem is inside one.
    pub check: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            Some(check) => write!(f, "{}: [{check}]: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Reads a trust file's cells, in the order of [`CHECKS`], or every problem
/// of its form (the links are verified by [`verify`]).
pub fn parse(file: &str, text: &str) -> Result<Vec<Cell>, Vec<Problem>> {
    let problem = |check: Option<&str>, message: String| Problem {
        file: file.to_string(),
        check: check.map(str::to_string),
        message,
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Err(vec![problem(None, format!("not valid TOML: {e}"))]),
    };
    let mut problems = Vec::new();
    for key in table.keys() {
        if !CHECKS.iter().any(|c| c.key == key) {
            let known: Vec<&str> = CHECKS.iter().map(|c| c.key).collect();
            problems.push(problem(
                Some(key),
                format!("unknown check; the checks are {}", known.join(", ")),
            ));
        }
    }
    let mut cells = Vec::new();
    for check in CHECKS {
        let Some(value) = table.get(check.key) else {
            problems.push(problem(
                Some(check.key),
                format!(
                    "missing; every check needs a cell ({}), even when the service has \
                     nothing to say (say so, with a test or a quote)",
                    check.question
                ),
            ));
            continue;
        };
        match cell(value) {
            Ok(c) => cells.push(c),
            Err(messages) => {
                problems.extend(messages.into_iter().map(|m| problem(Some(check.key), m)))
            }
        }
    }
    if problems.is_empty() {
        Ok(cells)
    } else {
        Err(problems)
    }
}

/// One check's table as a [`Cell`], or what is wrong with it.
fn cell(value: &toml::Value) -> Result<Cell, Vec<String>> {
    let Some(table) = value.as_table() else {
        return Err(vec![
            "not a table; write `[<check>]` with `says` and `test` (or `page` and `quote`)"
                .to_string(),
        ]);
    };
    let mut errors = Vec::new();
    for key in table.keys() {
        if !CELL_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "unknown key `{key}`; a cell has `says` and `test`, or `says`, `page` and `quote`"
            ));
        }
    }
    let mut text = |key: &str| match table.get(key) {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("`{key}` is not a string"));
            None
        }
    };
    let says = text("says");
    let test = text("test");
    let page = text("page");
    let quote = text("quote");
    match &says {
        None => errors.push("no `says`: the phrase the table shows".to_string()),
        Some(s) if s.trim().is_empty() => errors.push("`says` is empty".to_string()),
        Some(s) if s.chars().count() > MAX_SAYS => errors.push(format!(
            "`says` has {} characters, more than {MAX_SAYS}: a cell is a phrase, link the rest",
            s.chars().count()
        )),
        Some(s) if s.contains(['\n', '\r']) => {
            errors.push("`says` spans lines: a cell is one phrase".to_string());
        }
        Some(_) => {}
    }
    let evidence = match (test, page, quote) {
        (Some(test), None, None) => match test.split_once("::") {
            Some((file, name)) if !file.is_empty() && is_identifier(name) => Some(Evidence::Test {
                file: file.to_string(),
                name: name.to_string(),
            }),
            _ => {
                errors.push(format!(
                    "`test = {test:?}` is not `<file>::<fn name>` (the file relative to the \
                     chapter crate, one `::`, then the name of the test)"
                ));
                None
            }
        },
        (None, Some(page), Some(quote)) => {
            if quote.trim().chars().count() < MIN_QUOTE {
                errors.push(format!(
                    "`quote` is shorter than {MIN_QUOTE} characters: quote enough of the \
                     sentence to find it"
                ));
            }
            Some(Evidence::Quote { page, quote })
        }
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            errors.push(
                "both `test` and `page`/`quote`: a cell links to one thing (prefer the test)"
                    .to_string(),
            );
            None
        }
        (None, Some(_), None) => {
            errors.push("`page` without `quote`: quote the sentence that states it".to_string());
            None
        }
        (None, None, Some(_)) => {
            errors.push("`quote` without `page`: name the page it is on".to_string());
            None
        }
        (None, None, None) => {
            errors.push(
                "no `test` and no `page` + `quote`: a cell links to the test that shows it or \
                 to the sentence that states the limit"
                    .to_string(),
            );
            None
        }
    };
    match (says, evidence) {
        (Some(says), Some(evidence)) if errors.is_empty() => Ok(Cell { says, evidence }),
        _ => Err(errors),
    }
}

fn is_identifier(name: &str) -> bool {
    static IDENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex"));
    IDENT.is_match(name)
}

// ---------------------------------------------------------------------------
// Verifying the links.

/// The repository as the checks read it: paths relative to its root, `/`-separated.
pub trait Files {
    /// The text of the file at `path`, if it exists and is UTF-8.
    fn read(&self, path: &str) -> Option<String>;
}

/// The repository on disk.
#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
}

impl Disk {
    /// The repository rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Disk { root: root.into() }
    }
}

impl Files for Disk {
    fn read(&self, path: &str) -> Option<String> {
        let full = self.root.join(path);
        if !full.is_file() {
            return None;
        }
        std::fs::read_to_string(full).ok()
    }
}

/// Files held in memory (path, text), for tests.
#[derive(Debug, Clone, Default)]
pub struct Memory(pub Vec<(String, String)>);

impl Files for Memory {
    fn read(&self, path: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
    }
}

/// A relative path with no `..`, no `.` and no root, `/`-separated; `None` otherwise.
fn plain_relative(path: &str) -> Option<String> {
    let parts: Vec<&str> = Path::new(path)
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Verifies the cell's evidence in `files`; returns the link destination,
/// relative to [`INCLUDED_BY`].
pub fn verify(slug: &str, evidence: &Evidence, files: &dyn Files) -> Result<String, String> {
    match evidence {
        Evidence::Test { file, name } => {
            let Some(rel) = plain_relative(file) else {
                return Err(format!(
                    "test file {file:?} is not a plain path inside chapters-code/{slug}/"
                ));
            };
            let path = format!("chapters-code/{slug}/{rel}");
            let Some(text) = files.read(&path) else {
                return Err(format!("test file {path} does not exist"));
            };
            test_line(&text, name).map_err(|e| format!("{path}: {e}"))?;
            Ok(format!("../{path}#{name}"))
        }
        Evidence::Quote { page, quote } => {
            let Some(rel) = plain_relative(page).filter(|p| p.ends_with(".md")) else {
                return Err(format!(
                    "page {page:?} is not a markdown page inside src/{slug}/"
                ));
            };
            if rel.split('/').any(|c| c == "generated") {
                return Err(format!(
                    "page {page:?} is a generated file: quote the page that states the limit"
                ));
            }
            let path = format!("src/{slug}/{rel}");
            let Some(text) = files.read(&path) else {
                return Err(format!("page {path} does not exist"));
            };
            let Some(at) = find_quote(&text, quote) else {
                return Err(format!(
                    "the quote {quote:?} is not in {path} (it must be verbatim; a line break \
                     in the page matches a space)"
                ));
            };
            Ok(match heading_id_before(&text, at) {
                Some(id) => format!("{slug}/{rel}#{id}"),
                None => format!("{slug}/{rel}"),
            })
        }
    }
}

/// The 1-based line where `name` is a test: a `fn name` under a test
/// attribute, declared once, or else the first argument of one macro call.
pub fn test_line(text: &str, name: &str) -> Result<usize, String> {
    static FN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^\s*(?:pub(?:\s*\([^)]*\))?\s+)?(?:(?:async|unsafe|const|extern(?:\s+"[^"]*")?)\s+)*fn\s+([A-Za-z_][A-Za-z0-9_]*)"#,
        )
        .expect("valid regex")
    });
    static CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[A-Za-z_][A-Za-z0-9_]*!\s*[(\[{]\s*([A-Za-z_][A-Za-z0-9_]*)\b")
            .expect("valid regex")
    });
    let lines: Vec<&str> = text.lines().collect();
    let declared: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| FN.captures(l).is_some_and(|c| &c[1] == name))
        .map(|(i, _)| i)
        .collect();
    match declared.as_slice() {
        [i] if has_test_attribute(&lines, *i) || listed_in_a_macro_call(text, name) => {
            return Ok(i + 1);
        }
        [i] => {
            return Err(format!(
                "fn {name} (line {}) has no test attribute (#[test], #[tokio::test], ...) and \
                 no macro call lists it as a test: link to the test that shows the claim",
                i + 1
            ));
        }
        [] => {}
        many => {
            let at: Vec<String> = many.iter().map(|i| (i + 1).to_string()).collect();
            return Err(format!(
                "fn {name} is declared on several lines ({}); the link needs one",
                at.join(", ")
            ));
        }
    }
    let calls: Vec<usize> = CALL
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| m.as_str() == name)
        .map(|m| text[..m.start()].matches('\n').count() + 1)
        .collect();
    match calls.as_slice() {
        [line] => Ok(*line),
        [] => Err(format!(
            "no fn {name} in the file, and no macro call whose first argument it is"
        )),
        many => {
            let at: Vec<String> = many.iter().map(ToString::to_string).collect();
            Err(format!(
                "{name} is the first argument of several macro calls (lines {}); the link needs one",
                at.join(", ")
            ))
        }
    }
}

/// True when `name` is a whole argument of a macro call in `text` (not
/// `macro_rules!`): the body of a test that a macro generates once per
/// store, as in `behaviour_suite!(reserve_assigns_a_spot, ...)`.
fn listed_in_a_macro_call(text: &str, name: &str) -> bool {
    static CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b([A-Za-z_][A-Za-z0-9_]*)!\s*([(\[{])").expect("valid regex")
    });
    let Ok(argument) = Regex::new(&format!(r"[(\[{{,]\s*{name}\s*[,)\]}}]")) else {
        return false;
    };
    CALL.captures_iter(text).any(|c| {
        if &c[1] == "macro_rules" {
            return false;
        }
        let Some(open) = c.get(2) else { return false };
        // The call's arguments: up to the bracket that closes the open one.
        let mut depth = 0usize;
        let mut end = text.len();
        for (i, ch) in text[open.start()..].char_indices() {
            match ch {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = open.start() + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        argument.is_match(&text[open.start()..end])
    })
}

/// True when the lines just above `line` (its attributes and doc comments)
/// hold a test attribute: `#[test]`, `#[tokio::test(...)]`, `#[sqlx::test]`, ...
fn has_test_attribute(lines: &[&str], line: usize) -> bool {
    static TEST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"#\[\s*(?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_0-9]*test[A-Za-z_0-9]*\b")
            .expect("valid regex")
    });
    for above in lines[..line].iter().rev() {
        let t = above.trim();
        if t.starts_with("//") {
            continue; // a doc comment or a comment
        }
        if t.is_empty() || t.ends_with('}') || t.ends_with(';') || t.ends_with('{') {
            return false; // the end of the item before, or the start of the block
        }
        if TEST.is_match(t) {
            return true;
        }
    }
    false
}

/// The byte offset in `page` where `quote` starts, comparing runs of
/// whitespace as one space (a quote may cross a line break of the page).
pub fn find_quote(page: &str, quote: &str) -> Option<usize> {
    let (flat, offsets) = collapse_whitespace(page);
    let (needle, _) = collapse_whitespace(quote.trim());
    if needle.is_empty() {
        return None;
    }
    flat.find(&needle).map(|at| offsets[at])
}

/// `text` with each run of whitespace as one space, and for each byte of
/// the result the offset of the byte of `text` it came from.
fn collapse_whitespace(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut offsets = Vec::with_capacity(text.len());
    let mut in_space = false;
    for (at, ch) in text.char_indices() {
        if ch.is_whitespace() {
            if !in_space {
                out.push(' ');
                offsets.push(at);
            }
            in_space = true;
        } else {
            let before = out.len();
            out.push(ch);
            offsets.extend(std::iter::repeat_n(at, out.len() - before));
            in_space = false;
        }
    }
    (out, offsets)
}

/// The markdown options mdBook renders with (as `xtask::sources` does).
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_DEFINITION_LIST
        | Options::ENABLE_GFM
}

/// The `id` mdBook gives the last heading that starts before byte `at` of
/// `page`: its `{#id}` if written, else its text lowercased, spaces as `-`,
/// other punctuation dropped, `-1`, `-2`, ... after an id already used
/// (mdBook's `id_from_content` and `unique_id`, which also number
/// definition-list terms). Headings of files the page includes are not
/// seen (no included markdown file has one today); if one ever shifts an id,
/// the built site's link check refuses the link, naming the checking page.
pub fn heading_id_before(page: &str, at: usize) -> Option<String> {
    let mut used = HashSet::new();
    let mut last = None;
    // The element being read: where it starts, its written id, its text,
    // and whether it is a heading (a definition-list term only takes an id).
    let mut open: Option<(Range<usize>, Option<String>, String, bool)> = None;
    for (event, range) in Parser::new_ext(page, options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { id, .. }) => {
                open = Some((range, id.map(|i| i.to_string()), String::new(), true));
            }
            Event::Start(Tag::DefinitionListTitle) => {
                open = Some((range, None, String::new(), false));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, text, _)) = open.as_mut() {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_) | TagEnd::DefinitionListTitle) => {
                let Some((range, written, text, is_heading)) = open.take() else {
                    continue;
                };
                let id = match written {
                    Some(id) => id,
                    None => unique_id(&id_from_content(&text), &mut used),
                };
                if is_heading && range.start < at {
                    last = Some(id);
                }
            }
            _ => {}
        }
    }
    last
}

/// mdBook's `id_from_content` (mdbook-html 0.5).
fn id_from_content(content: &str) -> String {
    content
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|ch| {
            if ch.is_alphanumeric() || ch == '_' || ch == '-' {
                Some(ch)
            } else if ch.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// mdBook's `unique_id` (mdbook-html 0.5).
fn unique_id(id: &str, used: &mut HashSet<String>) -> String {
    if used.insert(id.to_string()) {
        return id.to_string();
    }
    let mut counter: u32 = 1;
    loop {
        let candidate = format!("{id}-{counter}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
        counter += 1;
    }
}

// ---------------------------------------------------------------------------
// The table.

/// One service's column: for each check, in order, the phrase and its link.
pub fn column(slug: &str, files: &dyn Files) -> Result<Vec<(String, String)>, Vec<Problem>> {
    let file = trust_path(slug);
    let Some(text) = files.read(&file) else {
        return Err(vec![Problem {
            file,
            check: None,
            message: "does not exist: the chapter's column of the trust-boundary table".to_string(),
        }]);
    };
    let cells = parse(&file, &text)?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (check, cell) in CHECKS.iter().zip(&cells) {
        match verify(slug, &cell.evidence, files) {
            Ok(href) => out.push((cell.says.clone(), href)),
            Err(message) => problems.push(Problem {
                file: file.clone(),
                check: Some(check.key.to_string()),
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The phrase as the text of a link in a table cell.
fn link_text(says: &str) -> String {
    let mut out = String::with_capacity(says.len());
    for ch in says.trim().chars() {
        if matches!(ch, '|' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The markdown of the table for `services`, read from `files`, or every
/// problem of every file.
pub fn table(services: &[Service], files: &dyn Files) -> Result<String> {
    let mut columns = Vec::new();
    let mut problems = Vec::new();
    for service in services {
        match column(service.slug, files) {
            Ok(c) => columns.push(c),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!(
            "the trust-boundary table cannot be built ({} problem{}):\n{}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n")
        );
    }
    let mut header = vec!["Check".to_string()];
    header.extend(
        services
            .iter()
            .map(|s| format!("[{}]({}/index.md)", s.name, s.slug)),
    );
    let rows: Vec<Vec<String>> = CHECKS
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let mut row = vec![check.question.to_string()];
            row.extend(columns.iter().map(|c| {
                let (says, href) = &c[i];
                format!("[{}]({href})", link_text(says))
            }));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let sources: Vec<String> = services.iter().map(|s| trust_path(s.slug)).collect();
    Ok(format!(
        "<!-- Generated by `cargo xtask gen` from {}; do not edit by hand. \
         Links are relative to {INCLUDED_BY}, the page that includes this file. -->\n\n{}",
        sources.join(", "),
        markdown_table(&header, &rows)
    ))
}

fn table_markdown() -> Result<String> {
    table(SERVICES, &Disk::new(bookkit::repo_root()))
}

/// The checking page's entry: the trust-boundary table.
pub fn book() -> Chapter {
    Chapter {
        slug: SLUG,
        package: "chapters",
        generated: vec![GeneratedFile::pure(TABLE_PATH, table_markdown)],
        report: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trust file whose every check quotes the same sentence, with `auth`
    /// replaced by `auth_cell` (a TOML table body).
    fn trust_file(auth_cell: &str) -> String {
        let mut out = format!("[auth]\n{auth_cell}\n");
        for check in &CHECKS[1..] {
            out.push_str(&format!(
                "\n[{}]\nsays = \"stated on the page\"\npage = \"failure-modes.md\"\n\
                 quote = \"The service trusts no header\"\n",
                check.key
            ));
        }
        out
    }

    const GOOD_AUTH: &str = "says = \"the owner token authorises delete | nothing else\"\n\
                             test = \"tests/service.rs::delete_needs_the_owner_token\"";

    const PAGE: &str = "# Failure modes\n\n## Who may do what\n\nSome words.\n\n\
                        ## Trust and `headers`\n\nThe service trusts no\nheader, and says why.\n";

    const TESTS: &str = "use x;\n\n#[tokio::test(flavor = \"multi_thread\")]\n\
                         /// Deletes need the token.\n\
                         async fn delete_needs_the_owner_token() {\n}\n\n\
                         fn helper() {}\n\n\
                         both_stores!(create_then_read, |s| async move {});\n\n\
                         suite!(\n    listed_body,\n    other_body,\n);\n\n\
                         async fn listed_body(s: &Store) {\n    assert!(helper());\n}\n";

    fn repo(trust: &str) -> Memory {
        Memory(vec![
            (trust_path("demo"), trust.to_string()),
            ("src/demo/failure-modes.md".to_string(), PAGE.to_string()),
            (
                "chapters-code/demo/tests/service.rs".to_string(),
                TESTS.to_string(),
            ),
        ])
    }

    const DEMO: &[Service] = &[Service {
        slug: "demo",
        name: "Demo",
    }];

    fn problems(trust: &str) -> String {
        match table(DEMO, &repo(trust)) {
            Ok(t) => panic!("expected problems, got a table:\n{t}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_good_file_gives_a_row_per_check_with_its_links() -> Result<()> {
        let t = table(DEMO, &repo(&trust_file(GOOD_AUTH)))?;
        assert!(t.starts_with(
            "<!-- Generated by `cargo xtask gen` from chapters-code/demo/trust.toml;"
        ));
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), CHECKS.len() + 1, "{t}");
        assert!(rows[0].contains("[Demo](demo/index.md)"), "{t}");
        assert!(
            rows[1].contains(
                "[the owner token authorises delete \\| nothing else]\
                 (../chapters-code/demo/tests/service.rs#delete_needs_the_owner_token)"
            ),
            "{t}"
        );
        assert!(
            rows[1].starts_with(&format!("| {} |", CHECKS[0].question)),
            "{t}"
        );
        // The quote crosses a line break of the page; the link names its heading.
        assert!(
            rows[2].contains("[stated on the page](demo/failure-modes.md#trust-and-headers)"),
            "{t}"
        );
        Ok(())
    }

    #[test]
    fn a_test_generated_by_a_macro_is_accepted() -> Result<()> {
        let auth = "says = \"x\"\ntest = \"tests/service.rs::create_then_read\"";
        let t = table(DEMO, &repo(&trust_file(auth)))?;
        assert!(t.contains("(../chapters-code/demo/tests/service.rs#create_then_read)"));
        Ok(())
    }

    #[test]
    fn a_test_body_that_a_macro_call_lists_is_accepted() -> Result<()> {
        let auth = "says = \"x\"\ntest = \"tests/service.rs::listed_body\"";
        let t = table(DEMO, &repo(&trust_file(auth)))?;
        assert!(t.contains("(../chapters-code/demo/tests/service.rs#listed_body)"));
        Ok(())
    }

    #[test]
    fn a_missing_check_is_named() {
        let text = trust_file(GOOD_AUTH).replace("[secrets]", "[auth-again]");
        let p = problems(&text);
        assert!(
            p.contains(
                "chapters-code/demo/trust.toml: [secrets]: missing; every check needs a cell"
            ),
            "{p}"
        );
        assert!(p.contains("[auth-again]: unknown check"), "{p}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let p = match table(DEMO, &Memory::default()) {
            Ok(t) => panic!("{t}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            p.contains("chapters-code/demo/trust.toml: does not exist"),
            "{p}"
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        let p = problems(&trust_file(&format!("{GOOD_AUTH}\nlink = \"x\"")));
        assert!(
            p.contains("chapters-code/demo/trust.toml: [auth]: unknown key `link`"),
            "{p}"
        );
    }

    #[test]
    fn a_test_link_to_a_missing_file_or_fn_is_named() {
        let p = problems(&trust_file(
            "says = \"x\"\ntest = \"tests/nowhere.rs::delete_needs_the_owner_token\"",
        ));
        assert!(
            p.contains("[auth]: test file chapters-code/demo/tests/nowhere.rs does not exist"),
            "{p}"
        );
        let p = problems(&trust_file(
            "says = \"x\"\ntest = \"tests/service.rs::no_such_test\"",
        ));
        assert!(
            p.contains("[auth]: chapters-code/demo/tests/service.rs: no fn no_such_test"),
            "{p}"
        );
        let p = problems(&trust_file(
            "says = \"x\"\ntest = \"tests/service.rs::helper\"",
        ));
        assert!(
            p.contains("fn helper (line 8) has no test attribute"),
            "{p}"
        );
        let p = problems(&trust_file("says = \"x\"\ntest = \"tests/service.rs\""));
        assert!(p.contains("is not `<file>::<fn name>`"), "{p}");
        let p = problems(&trust_file(
            "says = \"x\"\ntest = \"../other/tests/a.rs::t\"",
        ));
        assert!(
            p.contains("is not a plain path inside chapters-code/demo/"),
            "{p}"
        );
    }

    #[test]
    fn a_quote_not_in_the_page_is_named() {
        let p = problems(&trust_file(
            "says = \"x\"\npage = \"failure-modes.md\"\nquote = \"The service trusts every header\"",
        ));
        assert!(
            p.contains(
                "[auth]: the quote \"The service trusts every header\" is not in \
                 src/demo/failure-modes.md"
            ),
            "{p}"
        );
        let p = problems(&trust_file(
            "says = \"x\"\npage = \"nowhere.md\"\nquote = \"The service trusts no header\"",
        ));
        assert!(
            p.contains("[auth]: page src/demo/nowhere.md does not exist"),
            "{p}"
        );
        let p = problems(&trust_file(
            "says = \"x\"\npage = \"failure-modes.md\"\nquote = \"Some words\"",
        ));
        assert!(
            p.contains("[auth]: `quote` is shorter than 20 characters"),
            "{p}"
        );
    }

    #[test]
    fn both_test_and_page_are_refused() {
        let p = problems(&trust_file(&format!(
            "{GOOD_AUTH}\npage = \"failure-modes.md\"\nquote = \"The service trusts no header\""
        )));
        assert!(p.contains("[auth]: both `test` and `page`/`quote`"), "{p}");
        let p = problems(&trust_file("says = \"x\""));
        assert!(
            p.contains("[auth]: no `test` and no `page` + `quote`"),
            "{p}"
        );
    }

    #[test]
    fn says_must_be_a_short_phrase() {
        let p = problems(&trust_file(
            "says = \"  \"\ntest = \"tests/service.rs::create_then_read\"",
        ));
        assert!(p.contains("[auth]: `says` is empty"), "{p}");
        let long = "a".repeat(MAX_SAYS + 1);
        let p = problems(&trust_file(&format!(
            "says = \"{long}\"\ntest = \"tests/service.rs::create_then_read\""
        )));
        assert!(
            p.contains("[auth]: `says` has 91 characters, more than 90"),
            "{p}"
        );
        let p = problems(&trust_file("test = \"tests/service.rs::create_then_read\""));
        assert!(p.contains("[auth]: no `says`"), "{p}");
    }

    #[test]
    fn every_problem_of_every_file_is_reported_at_once() {
        let text = trust_file(GOOD_AUTH)
            .replace("[secrets]", "[nope]")
            .replace("[rate-limits]", "[nope-2]");
        let p = problems(&text);
        assert!(p.contains("(4 problems)"), "{p}");
        let p = problems("this is = not toml [");
        assert!(
            p.contains("chapters-code/demo/trust.toml: not valid TOML"),
            "{p}"
        );
    }

    #[test]
    fn heading_ids_are_mdbooks() {
        let page = "# Title\n\n## A `code` heading, with [a link](x.md)!\n\ntext one\n\n\
                    ## Same\n\n## Same\n\ntext two\n\n## Custom {#mine}\n\ntext three\n";
        let id = |quote: &str| heading_id_before(page, page.find(quote).expect("in page"));
        assert_eq!(
            id("text one").as_deref(),
            Some("a-code-heading-with-a-link")
        );
        assert_eq!(id("text two").as_deref(), Some("same-1"));
        assert_eq!(id("text three").as_deref(), Some("mine"));
        assert_eq!(heading_id_before("text before any heading", 0), None);
    }

    /// The repository's own files, those that exist: a chapter's helper
    /// sees a bad cell here before the whole table is registered and built.
    #[test]
    fn every_trust_file_of_the_repository_passes_its_checks() {
        let files = Disk::new(bookkit::repo_root());
        let mut problems = Vec::new();
        for s in SERVICES {
            if files.read(&trust_path(s.slug)).is_some()
                && let Err(p) = column(s.slug, &files)
            {
                problems.extend(p.iter().map(ToString::to_string));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn every_service_is_a_case_study_of_the_table_of_contents() {
        let summary = include_str!("../../../src/SUMMARY.md");
        for s in SERVICES {
            let entry = format!("- [{}]({}/index.md)", s.name, s.slug);
            assert!(summary.contains(&entry), "{entry} is not in src/SUMMARY.md");
        }
    }

    #[test]
    fn checks_and_services_are_unique() {
        let keys: HashSet<_> = CHECKS.iter().map(|c| c.key).collect();
        assert_eq!(keys.len(), CHECKS.len());
        assert_eq!(CHECKS.len(), 11);
        let slugs: HashSet<_> = SERVICES.iter().map(|s| s.slug).collect();
        assert_eq!(slugs.len(), SERVICES.len());
    }
}
