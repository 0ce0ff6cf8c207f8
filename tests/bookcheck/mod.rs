//! The book's integrity checks, one module per check.
//!
//! Every check takes the root of a repository laid out like this one (the real
//! repository, or a fixture in a temporary directory) and returns the list of
//! [`Problem`]s it found; an empty list means the check passed. The checks do
//! not panic on a broken book: a missing file or an unreadable page is itself
//! reported as a problem, so one run shows everything that is wrong.

use std::fmt;
use std::path::{Component, Path, PathBuf};

pub mod blocks;
pub mod crates;
pub mod fixture;
pub mod generated;
pub mod includes;
pub mod problems;
pub mod render;
pub mod sources;
pub mod sql;
pub mod summary;

/// The book's source directory, relative to the root (`book.toml`'s `src`).
pub const SRC: &str = "src";

/// One thing wrong with the book, located as precisely as the check can.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file at fault, relative to the repository root.
    pub file: PathBuf,
    /// The 1-based line in `file`, when the check knows it.
    pub line: Option<usize>,
    /// What is wrong, and where useful how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem in `file` (relative to the root) at `line`.
    pub fn at(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// A problem with `file` (relative to the root) as a whole.
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = slash(&self.file);
        match self.line {
            Some(line) => write!(f, "{file}:{line}: {}", self.message),
            None => write!(f, "{file}: {}", self.message),
        }
    }
}

/// Panics with every problem on its own line unless `problems` is empty.
pub fn assert_no_problems(check: &str, problems: &[Problem]) {
    if problems.is_empty() {
        return;
    }
    let mut sorted = problems.to_vec();
    sorted.sort();
    sorted.dedup();
    let list: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    panic!(
        "book check \"{check}\" found {} problem(s):\n{}\n",
        list.len(),
        list.join("\n")
    );
}

/// `path` relative to `root` (or unchanged when it is not under `root`).
pub fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// `path` with `/` separators, for messages that read the same on every OS.
pub fn slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Removes `.` and resolves `..` without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The 1-based line on which byte `offset` of `text` lies.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// True when `path` lies in a directory named `generated` (below `base`).
pub fn is_generated(base: &Path, path: &Path) -> bool {
    relative(base, path)
        .components()
        .any(|c| c.as_os_str() == "generated")
}

/// Every `.md` file under `dir`, sorted; unreadable directories become problems.
pub fn markdown_files(root: &Path, dir: &Path) -> (Vec<PathBuf>, Vec<Problem>) {
    files_with_extension(root, dir, "md")
}

/// Every file under `dir` whose extension is `ext`, sorted.
pub fn files_with_extension(root: &Path, dir: &Path, ext: &str) -> (Vec<PathBuf>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                if e.path().extension().is_some_and(|x| x == ext) {
                    files.push(e.into_path());
                }
            }
            Ok(_) => {}
            Err(e) => {
                let at = e.path().unwrap_or(dir);
                problems.push(Problem::file(
                    relative(root, at),
                    format!("cannot read directory: {e}"),
                ));
            }
        }
    }
    (files, problems)
}

/// Reads `path` as UTF-8, or says why not as a problem.
pub fn read(root: &Path, path: &Path) -> Result<String, Problem> {
    std::fs::read_to_string(path)
        .map_err(|e| Problem::file(relative(root, path), format!("cannot read: {e}")))
}
