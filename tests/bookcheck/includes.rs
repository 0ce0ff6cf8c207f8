//! Check 1: every `{{#include}}` / `{{#rustdoc_include}}` names a file that
//! exists, and the anchor or line range it selects is there.
//!
//! mdBook's `links` preprocessor only logs a missing file or anchor and goes
//! on (an unknown anchor renders as an empty code block), so `mdbook build`
//! exits 0 on a broken listing. This check makes it an error. Directives are
//! recognised with mdBook's own pattern, including its escape rule: a
//! directive preceded by a backslash (`\{{#include x}}`) is literal text.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{Problem, SRC, line_of, markdown_files, normalize, read, relative, slash};

/// mdBook 0.5's link pattern (`mdbook-driver/src/builtin_preprocessors/links.rs`).
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        \\\{\{\#.*\}\}      # an escaped directive: literal text
        |
        \{\{\s*\#([a-zA-Z0-9_]+)\s+([^}]+)\}\}",
    )
    .expect("valid regex")
});

/// mdBook's anchor markers; any comment syntax works because only the marker is matched.
static ANCHOR_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ANCHOR:\s*(?P<name>[\w_-]+)").expect("valid regex"));
static ANCHOR_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ANCHOR_END:\s*(?P<name>[\w_-]+)").expect("valid regex"));

/// Which directive pulls the file in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{{#include}}`
    Include,
    /// `{{#rustdoc_include}}`
    RustdocInclude,
    /// `{{#playground}}` (or its old name `playpen`)
    Playground,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Include => "include",
            Kind::RustdocInclude => "rustdoc_include",
            Kind::Playground => "playground",
        }
    }
}

/// What part of the file the directive selects, parsed as mdBook parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The whole file.
    Whole,
    /// The lines between `ANCHOR: name` and `ANCHOR_END: name`.
    Anchor(String),
    /// 1-based first line (if any) and last line (if any), both inclusive.
    Lines(Option<usize>, Option<usize>),
}

/// One directive found in a markdown file.
#[derive(Debug, Clone)]
pub struct Directive {
    /// The markdown file, absolute.
    pub md: PathBuf,
    /// 1-based line of the directive in `md`.
    pub line: usize,
    /// The kind of directive.
    pub kind: Kind,
    /// The argument as written, e.g. `../code/src/a.rs:foo`.
    pub arg: String,
    /// The file it points to, absolute and normalized.
    pub target: PathBuf,
    /// The selected part of the file.
    pub selector: Selector,
}

impl Directive {
    /// `include ../code/src/a.rs:foo`, as used in messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.name(), self.arg)
    }
}

/// A directive-like span mdBook does not expand (unknown `{{#name ...}}`).
#[derive(Debug, Clone)]
struct Unknown {
    line: usize,
    text: String,
}

/// Finds the directives in one markdown text, exactly as mdBook would.
fn parse(md: &Path, text: &str) -> (Vec<Directive>, Vec<Unknown>) {
    let base = md.parent().unwrap_or(Path::new(""));
    let mut directives = Vec::new();
    let mut unknown = Vec::new();
    for cap in LINK.captures_iter(text) {
        let whole = cap.get(0).expect("group 0 always matches");
        let (Some(typ), Some(rest)) = (cap.get(1), cap.get(2)) else {
            continue; // escaped: literal text, not a directive
        };
        let line = line_of(text, whole.start());
        let kind = match typ.as_str() {
            "include" => Kind::Include,
            "rustdoc_include" => Kind::RustdocInclude,
            "playground" | "playpen" => Kind::Playground,
            "title" => continue,
            _ => {
                unknown.push(Unknown {
                    line,
                    text: whole.as_str().to_string(),
                });
                continue;
            }
        };
        let Some(arg) = rest.as_str().split_whitespace().next() else {
            continue;
        };
        let (path, selector) = match kind {
            Kind::Playground => (arg, Selector::Whole),
            _ => {
                let mut parts = arg.splitn(2, ':');
                let path = parts.next().unwrap_or("");
                (path, parse_selector(parts.next()))
            }
        };
        directives.push(Directive {
            md: md.to_path_buf(),
            line,
            kind,
            arg: arg.to_string(),
            target: normalize(&base.join(path)),
            selector,
        });
    }
    (directives, unknown)
}

/// mdBook's `parse_range_or_anchor`, with 1-based inclusive line numbers.
fn parse_selector(spec: Option<&str>) -> Selector {
    let Some(spec) = spec else {
        return Selector::Whole;
    };
    let mut parts = spec.splitn(3, ':');
    let first = parts.next().unwrap_or("");
    let start = match first.parse::<usize>() {
        Ok(n) => Some(n.max(1)),
        Err(_) if first.is_empty() => None,
        Err(_) => return Selector::Anchor(first.to_string()),
    };
    match (start, parts.next().map(str::parse::<usize>)) {
        (Some(s), Some(Ok(e))) => Selector::Lines(Some(s), Some(e)),
        (Some(s), Some(Err(_))) => Selector::Lines(Some(s), None),
        (Some(s), None) => Selector::Lines(Some(s), Some(s)),
        (None, Some(Ok(e))) => Selector::Lines(None, Some(e)),
        (None, _) => Selector::Whole,
    }
}

/// Every include directive of every markdown file under `src/`, plus the
/// problems met while finding them (unreadable files, unknown directives).
pub fn scan(root: &Path) -> (Vec<Directive>, Vec<Problem>) {
    let (files, mut problems) = markdown_files(root, &root.join(SRC));
    let mut directives = Vec::new();
    for md in files {
        let text = match read(root, &md) {
            Ok(t) => t,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let (found, unknown) = parse(&md, &text);
        directives.extend(found);
        for u in unknown {
            problems.push(Problem::at(
                relative(root, &md),
                u.line,
                format!(
                    "{}: not a directive mdBook knows (include, rustdoc_include, playground, title); \
                     it would be printed as is (escape it as \\{{{{#...}}}} if that is intended)",
                    u.text
                ),
            ));
        }
    }
    (directives, problems)
}

/// Check 1: every directive's file exists and its anchor or lines are there.
pub fn check(root: &Path) -> Vec<Problem> {
    let (directives, mut problems) = scan(root);
    for d in &directives {
        if let Err(message) = check_one(root, d) {
            problems.push(Problem::at(
                relative(root, &d.md),
                d.line,
                format!("{}: {message}", d.describe()),
            ));
        }
    }
    problems
}

fn check_one(root: &Path, d: &Directive) -> Result<(), String> {
    let shown = slash(&relative(root, &d.target));
    if !d.target.is_file() {
        return Err(if d.target.is_dir() {
            format!("{shown} is a directory, not a file")
        } else {
            format!("file not found (looked for {shown})")
        });
    }
    let text =
        std::fs::read_to_string(&d.target).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match &d.selector {
        Selector::Whole => Ok(()),
        Selector::Anchor(name) => check_anchor(&text, name).map_err(|m| format!("{m} in {shown}")),
        Selector::Lines(start, end) => {
            let count = text.lines().count();
            if let (Some(s), Some(e)) = (start, end)
                && e < s
            {
                return Err(format!("line range {s}:{e} is empty"));
            }
            match start {
                Some(s) if *s > count => Err(format!(
                    "selects from line {s}, but {shown} has only {count} line(s)"
                )),
                _ => Ok(()),
            }
        }
    }
}

/// The anchor must open, close after it opens, and hold at least one non-blank line.
fn check_anchor(text: &str, name: &str) -> Result<(), String> {
    let mut opened = false;
    let mut content = false;
    for line in text.lines() {
        if opened {
            if ANCHOR_END
                .captures(line)
                .is_some_and(|c| &c["name"] == name)
            {
                return if content {
                    Ok(())
                } else {
                    Err(format!(
                        "anchor \"{name}\" selects no code (nothing but blank lines or markers)"
                    ))
                };
            }
            if !ANCHOR_START.is_match(line) && !ANCHOR_END.is_match(line) && !line.trim().is_empty()
            {
                content = true;
            }
        } else if ANCHOR_START
            .captures(line)
            .is_some_and(|c| &c["name"] == name)
        {
            opened = true;
        }
    }
    if opened {
        Err(format!("anchor \"{name}\" has no ANCHOR_END: {name}"))
    } else {
        Err(format!("anchor \"{name}\" not found"))
    }
}

/// True when `text` is one include directive and nothing else (used by check 2).
pub fn is_only_an_include(text: &str) -> bool {
    let text = text.trim();
    let (directives, unknown) = parse(Path::new("x.md"), text);
    unknown.is_empty()
        && directives.len() == 1
        && matches!(directives[0].kind, Kind::Include | Kind::RustdocInclude)
        && LINK
            .find(text)
            .is_some_and(|m| m.start() == 0 && m.end() == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_like_mdbook() {
        assert_eq!(parse_selector(None), Selector::Whole);
        assert_eq!(parse_selector(Some("foo")), Selector::Anchor("foo".into()));
        assert_eq!(parse_selector(Some("3")), Selector::Lines(Some(3), Some(3)));
        assert_eq!(
            parse_selector(Some("3:7")),
            Selector::Lines(Some(3), Some(7))
        );
        assert_eq!(parse_selector(Some("3:")), Selector::Lines(Some(3), None));
        assert_eq!(parse_selector(Some(":7")), Selector::Lines(None, Some(7)));
    }
}
