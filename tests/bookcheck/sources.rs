//! Check 8: every link from a page to a repository file names a file that
//! exists, and its `#fragment` a line inside it or an item declared in it.
//!
//! The book build refuses such a link too (`xtask::sources`, which turns
//! these links into source pages); this check runs the same rewriting over
//! every page without building, so that it can name the line of the page.
//! Generated pages are left to the build: their links are relative to the
//! page that includes them.

use std::path::Path;

use xtask::sources::{self, Disk};

use super::{Problem, SRC, is_generated, line_of, markdown_files, read, relative};

/// Check 8 over every non-generated markdown page under `src/`.
pub fn check(root: &Path) -> Vec<Problem> {
    let src = root.join(SRC);
    let (files, mut problems) = markdown_files(root, &src);
    let tree = Disk::new(root);
    for md in files.iter().filter(|f| !is_generated(&src, f)) {
        let text = match read(root, md) {
            Ok(t) => t,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let page = relative(&src, md);
        let done = sources::rewrite(&text, Path::new(SRC), &page, &tree);
        for fault in done.faults {
            problems.push(Problem::at(
                relative(root, md),
                line_of(&text, fault.offset),
                format!("link {}: {}", fault.link, fault.message),
            ));
        }
    }
    problems
}
