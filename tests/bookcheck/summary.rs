//! Check 3: `src/SUMMARY.md` and the pages in `src/` agree.
//!
//! Every non-draft link in SUMMARY.md must name a file, and every `.md` file
//! under `src/` must be listed, except SUMMARY.md itself and files in a
//! `generated/` directory (those are included into pages, not pages).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Parser, Tag};

use super::blocks::markdown_options;
use super::{
    Problem, SRC, is_generated, line_of, markdown_files, normalize, read, relative, slash,
};

/// One link in SUMMARY.md.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line in SUMMARY.md.
    pub line: usize,
    /// The link target as written, without any `#fragment`; empty for a draft.
    pub dest: String,
}

/// The links of a SUMMARY.md text, in order.
pub fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (event, range) in Parser::new_ext(text, markdown_options()).into_offset_iter() {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            let dest = dest_url.split('#').next().unwrap_or("").trim().to_string();
            out.push(Entry {
                line: line_of(text, range.start),
                dest,
            });
        }
    }
    out
}

/// Check 3.
pub fn check(root: &Path) -> Vec<Problem> {
    let src = root.join(SRC);
    let summary_path = src.join("SUMMARY.md");
    let summary_rel = relative(root, &summary_path);
    let text = match read(root, &summary_path) {
        Ok(t) => t,
        Err(p) => return vec![p],
    };
    let mut problems = Vec::new();

    // Pages listed in SUMMARY.md, by normalized path relative to src/.
    let mut listed: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for entry in entries(&text) {
        if entry.dest.is_empty() {
            continue; // a draft chapter: listed on purpose, no file yet
        }
        if entry.dest.contains("://") || entry.dest.starts_with("mailto:") {
            problems.push(Problem::at(
                &summary_rel,
                entry.line,
                format!("{}: SUMMARY.md may link only to pages in src/", entry.dest),
            ));
            continue;
        }
        let page = normalize(Path::new(entry.dest.trim_start_matches('/')));
        if !src.join(&page).is_file() {
            problems.push(Problem::at(
                &summary_rel,
                entry.line,
                format!(
                    "{}: listed page has no file (expected {}); write it, or make the entry a draft with ()",
                    entry.dest,
                    slash(&Path::new(SRC).join(&page))
                ),
            ));
        }
        if let Some(first) = listed.insert(page, entry.line) {
            problems.push(Problem::at(
                &summary_rel,
                entry.line,
                format!("{}: listed twice (first on line {first})", entry.dest),
            ));
        }
    }

    let (pages, walk_problems) = markdown_files(root, &src);
    problems.extend(walk_problems);
    for page in pages {
        if page == summary_path || is_generated(&src, &page) {
            continue;
        }
        let rel = relative(&src, &page);
        if !listed.contains_key(&rel) {
            problems.push(Problem::file(
                relative(root, &page),
                format!(
                    "orphan page: not listed in {}; add it there or delete it",
                    slash(&summary_rel)
                ),
            ));
        }
    }
    problems
}
