//! Check 9: every problem type a chapter's service can return is documented
//! in the book, at the URI the service puts in `type`.
//!
//! The convention (CONTRIBUTING.md):
//!
//! - `book.toml` names where the book is published, once:
//!   `[preprocessor.sources] site = "https://.../"`, and `output.html.site-url`
//!   is that URL's path;
//! - a chapter crate that answers `application/problem+json` declares
//!   `pub const PROBLEM_TYPES: &[(&str, u16)]` (every type `classify` can
//!   return, with its status; a unit test in the crate proves the list is
//!   exact) and builds its `type` URIs from one string constant equal to
//!   `<site><slug>/problems.html#`;
//! - `src/<slug>/problems.md` has one `## <type>` section per type, and
//!   nothing else at that level, each stating `**Status:** \`<code> ...\``.
//!
//! The check reads the constants from the crate's source, so a chapter is
//! checked as soon as it follows the convention, with no registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use mdbook_driver::config::Config;
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use regex::Regex;

use super::blocks::markdown_options;
use super::{Problem, SRC, files_with_extension, line_of, read, relative, slash};

/// Where the crates of the chapters live.
const CHAPTERS: &str = "chapters-code";

static BASE_LITERAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(https?://[^"\s]*?(?:problems\.html#|/problems/))""#).expect("valid regex")
});
static TYPES_CONST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)PROBLEM_TYPES\s*:\s*&\[\(&str,\s*u16\)\]\s*=\s*&\[(.*?)\];")
        .expect("valid regex")
});
static TYPE_ENTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\(\s*"([^"]+)"\s*,\s*([0-9]{3})\s*,?\s*\)"#).expect("valid regex")
});
static TYPE_URI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"https?://[^\s`)<>]*problems\.html#[A-Za-z0-9_-]+").expect("valid regex")
});

/// What one chapter crate declares.
#[derive(Debug, Default)]
struct Declared {
    /// `(file, line, literal)` of each problem type base string.
    bases: Vec<(PathBuf, usize, String)>,
    /// The file declaring `PROBLEM_TYPES`, and its entries `(type, status)`.
    types: Option<(PathBuf, Vec<(String, u16)>)>,
    /// A file that writes `application/problem+json`.
    problem_json: Option<PathBuf>,
}

/// Check 9.
pub fn check(root: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let site = match published_site(root) {
        Ok(site) => site,
        Err(p) => return vec![p],
    };

    let chapters = root.join(CHAPTERS);
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&chapters)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    crates.sort();
    let mut declaring = BTreeSet::new();
    for krate in crates {
        let slug = krate
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (declared, mut read_problems) = declared(root, &krate);
        problems.append(&mut read_problems);
        let expected = format!("{site}{slug}/problems.html#");
        for (file, line, literal) in &declared.bases {
            if *literal != expected {
                problems.push(Problem::at(
                    file,
                    *line,
                    format!(
                        "problem type base {literal:?} must be {expected:?}: \
                         [preprocessor.sources] site in book.toml, the slug, /problems.html#"
                    ),
                ));
            }
        }
        let Some((types_file, types)) = &declared.types else {
            if let Some(file) = &declared.problem_json {
                problems.push(Problem::file(
                    file,
                    "answers application/problem+json, but the crate declares no \
                     `pub const PROBLEM_TYPES: &[(&str, u16)]` listing its problem types",
                ));
            }
            continue;
        };
        declaring.insert(slug.clone());
        if declared.bases.is_empty() {
            problems.push(Problem::file(
                types_file,
                format!("declares PROBLEM_TYPES but no problem type base {expected:?}"),
            ));
        }
        problems.extend(check_page(root, &slug, &expected, types_file, types));
    }

    // A page of problem types for a chapter whose code declares none.
    let src = root.join(SRC);
    let (pages, mut listing) = files_with_extension(root, &src, "md");
    problems.append(&mut listing);
    for page in pages {
        let rel = relative(&src, &page);
        if rel.file_name().is_some_and(|n| n == "problems.md")
            && let Some(slug) = rel.parent().and_then(|p| p.to_str())
            && !slug.is_empty()
            && !declaring.contains(slug)
        {
            problems.push(Problem::file(
                relative(root, &page),
                format!("documents problem types, but {CHAPTERS}/{slug} declares no PROBLEM_TYPES"),
            ));
        }
    }
    problems
}

/// `[preprocessor.sources] site`, checked against `output.html.site-url`.
fn published_site(root: &Path) -> Result<String, Problem> {
    let toml = root.join("book.toml");
    let config = Config::from_disk(&toml)
        .map_err(|e| Problem::file("book.toml", format!("mdBook cannot read it: {e:#}")))?;
    let site = xtask::book::published_site(&config)
        .map_err(|e| Problem::file("book.toml", format!("{e:#}")))?;
    let path = site
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let site_url = config
        .html_config()
        .and_then(|h| h.site_url)
        .unwrap_or_else(|| "/".to_string());
    if site_url != path {
        return Err(Problem::file(
            "book.toml",
            format!(
                "output.html.site-url is {site_url:?} but the book is published at {site} \
                 ({}); they must agree",
                xtask::book::SITE_KEY
            ),
        ));
    }
    Ok(site)
}

/// The problem type constants of one crate, read from its `src/`.
fn declared(root: &Path, krate: &Path) -> (Declared, Vec<Problem>) {
    let (files, mut problems) = files_with_extension(root, &krate.join("src"), "rs");
    let mut out = Declared::default();
    for file in files {
        let text = match read(root, &file) {
            Ok(t) => t,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let rel = relative(root, &file);
        for c in BASE_LITERAL.captures_iter(&text) {
            let m = c.get(1).map_or(0, |m| m.start());
            out.bases
                .push((rel.clone(), line_of(&text, m), c[1].to_string()));
        }
        if let Some(c) = TYPES_CONST.captures(&text) {
            let entries = TYPE_ENTRY
                .captures_iter(&c[1])
                .map(|e| (e[1].to_string(), e[2].parse().unwrap_or(0)))
                .collect();
            out.types = Some((rel.clone(), entries));
        }
        if text.contains("application/problem+json") && out.problem_json.is_none() {
            out.problem_json = Some(rel);
        }
    }
    (out, problems)
}

/// One `## ` section of a problems page.
#[derive(Debug)]
struct Section {
    line: usize,
    text: String,
}

/// `src/<slug>/problems.md` documents exactly `types`, each with its status.
fn check_page(
    root: &Path,
    slug: &str,
    base: &str,
    types_file: &Path,
    types: &[(String, u16)],
) -> Vec<Problem> {
    let page_rel = Path::new(SRC).join(slug).join("problems.md");
    let page = root.join(&page_rel);
    if !page.is_file() {
        return vec![Problem::file(
            &page_rel,
            format!(
                "missing: {} declares {} problem type(s), and each needs a `## <type>` section here",
                slash(types_file),
                types.len()
            ),
        )];
    }
    let text = match read(root, &page) {
        Ok(t) => t,
        Err(p) => return vec![p],
    };
    let sections = sections(&text);
    let mut problems = Vec::new();
    let declared: BTreeMap<&str, u16> = types.iter().map(|(t, s)| (t.as_str(), *s)).collect();
    for (kind, status) in &declared {
        match sections.get(*kind) {
            None => problems.push(Problem::file(
                &page_rel,
                format!(
                    "no section `## {kind}` for the problem type {kind} ({status}) that {} declares",
                    slash(types_file)
                ),
            )),
            Some(section) => {
                let wanted = format!("**Status:** `{status}");
                if !section.text.contains(&wanted) {
                    problems.push(Problem::at(
                        &page_rel,
                        section.line,
                        format!(
                            "section {kind} must state its status as {wanted} ...` \
                             ({} declares {status})",
                            slash(types_file)
                        ),
                    ));
                }
            }
        }
    }
    for (heading, section) in &sections {
        if !declared.contains_key(heading.as_str()) {
            problems.push(Problem::at(
                &page_rel,
                section.line,
                format!(
                    "section `## {heading}` is not a problem type of {} (PROBLEM_TYPES); \
                     every level-2 heading of this page names one",
                    slash(types_file)
                ),
            ));
        }
    }
    for m in TYPE_URI.find_iter(&text) {
        let uri = m.as_str();
        let known = uri
            .strip_prefix(base)
            .is_some_and(|kind| declared.contains_key(kind));
        if !known {
            problems.push(Problem::at(
                &page_rel,
                line_of(&text, m.start()),
                format!("{uri} is not the type URI of a problem type ({base}<type>)"),
            ));
        }
    }
    problems
}

/// The level-2 sections of a page by heading text (as written, trimmed).
fn sections(text: &str) -> BTreeMap<String, Section> {
    let mut out = BTreeMap::new();
    let mut open: Option<(String, usize, usize)> = None; // heading, line, start of section
    let mut heading: Option<(String, usize, usize)> = None; // text so far, line, offset
    let mut close = |open: &mut Option<(String, usize, usize)>, end: usize| {
        if let Some((title, line, start)) = open.take() {
            out.insert(
                title,
                Section {
                    line,
                    text: text[start..end].to_string(),
                },
            );
        }
    };
    for (event, range) in Parser::new_ext(text, markdown_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H2 => {
                close(&mut open, range.start);
                if level == HeadingLevel::H2 {
                    heading = Some((String::new(), line_of(text, range.start), range.end));
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((h, _, _)) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(HeadingLevel::H2)) => {
                if let Some((h, line, _)) = heading.take() {
                    open = Some((h.trim().to_string(), line, range.end));
                }
            }
            _ => {}
        }
    }
    close(&mut open, text.len());
    out
}
