//! Source pages: the repository files the book links to, published inside the site.
//!
//! A page links to code the way it would on a forge, with a plain relative
//! link from the markdown file to the repository file:
//!
//! ```markdown
//! [the race test](../../chapters-code/<slug>/tests/races.rs#exactly_one_wins)
//! [the stores](../../chapters-code/<slug>/src/store)
//! ```
//!
//! When the book is built by [`crate::book`], the [`Sources`] preprocessor
//! rewrites every such link (any relative link that leaves `src/` but stays in
//! the repository) to a page of the site, relative to the page it is on, so
//! the site works under any path, from disk, and in `print.html`:
//!
//! | link to | becomes |
//! |---|---|
//! | a file `chapters-code/x/tests/a.rs` | `code/chapters-code/x/tests/a.rs.html` |
//! | a directory `chapters-code/x/src/store` | `code/chapters-code/x/src/store/index.html` |
//!
//! and records what it rewrote. After mdBook has rendered the book,
//! [`write_pages`] writes those pages: each file syntax-highlighted by
//! mdBook's own highlight.js and themes, its line numbers anchors `#L1`,
//! `#L2`, ...; each directory (a linked one, every directory below it, and
//! every directory above a published file) an index of what is published in
//! it. A linked directory publishes every text file below it.
//!
//! A fragment of a file link may be
//!
//! - `#L42`: line 42;
//! - `#L10-L20`: lines 10 to 20 (the page highlights them);
//! - `#name`: the line of `fn`, `struct`, `enum`, `const`, `static`, `trait`,
//!   `mod`, `type`, `union` or `macro_rules!` `name` in the file (it must be
//!   unique), or else the lines between `ANCHOR: name` and `ANCHOR_END: name`.
//!
//! A link to a file or directory that does not exist, a line past the end of
//! the file or a name that is not there fails the build, naming the page and
//! the link. The rewriting ([`rewrite`]) is a pure function of the markdown,
//! the page's path and a [`Tree`] of files, and is tested as such.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use anyhow::{Context, Result, anyhow, bail};
use mdbook_driver::book::{Book, BookItem};
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};
use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};
use regex::Regex;

/// The preprocessor's name, and its table in `book.toml` (`[preprocessor.sources]`).
pub const NAME: &str = "sources";

/// The directory of the site that holds the source pages.
pub const CODE_DIR: &str = "code";

/// Directories never published, wherever a linked directory contains them.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules"];

// ---------------------------------------------------------------------------
// The files a link can point at.

/// What a repository path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A UTF-8 text file and its contents.
    File(String),
    /// A file that is not UTF-8 text (it gets no page).
    Binary,
    /// A directory.
    Dir,
}

/// The repository as [`rewrite`] sees it: paths relative to its root.
pub trait Tree {
    /// What `path` (relative to the root, `/`-separated components) is, if it exists.
    fn node(&self, path: &Path) -> Option<Node>;
}

/// The repository on disk.
#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
}

impl Disk {
    /// The tree rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Disk { root: root.into() }
    }
}

impl Tree for Disk {
    fn node(&self, path: &Path) -> Option<Node> {
        let full = self.root.join(path);
        let meta = std::fs::metadata(&full).ok()?;
        if meta.is_dir() {
            return Some(Node::Dir);
        }
        match std::fs::read(&full) {
            Ok(bytes) => Some(match String::from_utf8(bytes) {
                Ok(text) => Node::File(text),
                Err(_) => Node::Binary,
            }),
            Err(_) => None,
        }
    }
}

/// An in-memory tree, for tests: files and their text; directories are implied.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryTree {
    /// A tree holding `files` (path, text).
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        MemoryTree {
            files: files
                .into_iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        }
    }
}

impl Tree for MemoryTree {
    fn node(&self, path: &Path) -> Option<Node> {
        if let Some(text) = self.files.get(path) {
            return Some(Node::File(text.clone()));
        }
        let is_dir = self
            .files
            .keys()
            .any(|f| f.starts_with(path) && f != path && !path.as_os_str().is_empty());
        is_dir.then_some(Node::Dir)
    }
}

// ---------------------------------------------------------------------------
// Rewriting the links of one page (pure).

/// Repository files and directories that links point at (paths relative to the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Linked files.
    pub files: BTreeSet<PathBuf>,
    /// Linked directories.
    pub dirs: BTreeSet<PathBuf>,
}

impl Published {
    /// Adds everything in `other`.
    pub fn extend(&mut self, other: Published) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
    }

    /// True when nothing is linked.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }
}

/// A link that cannot be turned into a source page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Byte offset of the link's destination in the markdown.
    pub offset: usize,
    /// The destination as written.
    pub link: String,
    /// What is wrong.
    pub message: String,
}

/// The result of [`rewrite`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The markdown, with every link to a repository file pointing at its source page.
    pub markdown: String,
    /// What the page links to.
    pub published: Published,
    /// Links that name something that is not there.
    pub faults: Vec<Fault>,
}

/// Rewrites the links of one page that point into the repository (outside
/// `src`) to source pages.
///
/// `src` is the book's source directory and `page` the page's path inside
/// it (`<slug>/index.md`), both relative to the repository root that
/// `tree` describes. Links to pages of the book, to other sites, and links
/// that leave the repository are left as they are (the link check of the
/// built site judges those).
pub fn rewrite(markdown: &str, src: &Path, page: &Path, tree: &dyn Tree) -> Rewritten {
    let page_dir = page.parent().unwrap_or(Path::new(""));
    let up = "../".repeat(page_dir.components().count());
    let mut out = Rewritten::default();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for (span, dest) in destinations(markdown) {
        let Some(target) = repository_target(&dest, src, page_dir) else {
            continue;
        };
        match plan(&target, tree) {
            Ok(planned) => {
                match &planned.publish {
                    Publish::File(p) => out.published.files.insert(p.clone()),
                    Publish::Dir(p) => out.published.dirs.insert(p.clone()),
                };
                edits.push((span, format!("{up}{}", planned.href)));
            }
            Err(message) => out.faults.push(Fault {
                offset: span.start,
                link: dest,
                message,
            }),
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let mut text = String::with_capacity(markdown.len());
    let mut at = 0;
    for (span, new) in edits {
        if span.start < at {
            continue; // the same definition found twice
        }
        text.push_str(&markdown[at..span.start]);
        text.push_str(&new);
        at = span.end;
    }
    text.push_str(&markdown[at..]);
    out.markdown = text;
    out
}

/// The markdown options mdBook renders with (tables, footnotes, ...), so that
/// what this module sees as a link is what mdBook renders as one.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_DEFINITION_LIST
        | Options::ENABLE_GFM
}

/// Every link destination of `markdown` (inline links and reference
/// definitions; not images) with the byte range where it is written.
fn destinations(markdown: &str) -> Vec<(Range<usize>, String)> {
    let parser = Parser::new_ext(markdown, options());
    let mut found = Vec::new();
    for (_, def) in parser.reference_definitions().iter() {
        // `[label]: dest "title"`: the destination follows the first `]:`.
        let span = def.span.clone();
        let written = &markdown[span.clone()];
        let after = written.find("]:").map_or(0, |i| i + 2);
        if let Some(at) = written[after..].find(def.dest.as_ref()) {
            let start = span.start + after + at;
            found.push((start..start + def.dest.len(), def.dest.to_string()));
        }
    }
    for (event, range) in parser.into_offset_iter() {
        let Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url,
            ..
        }) = event
        else {
            continue;
        };
        // `[text](dest "title")`: the destination is after the text.
        let written = &markdown[range.clone()];
        let Some(open) = written.rfind("](") else {
            continue;
        };
        if let Some(at) = written[open..].find(dest_url.as_ref()) {
            let start = range.start + open + at;
            found.push((start..start + dest_url.len(), dest_url.to_string()));
        }
    }
    found
}

/// A link into the repository: the path (relative to the root) and the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    path: PathBuf,
    fragment: Option<String>,
}

/// The repository path a link names, if it is a relative link that leaves
/// `src` and stays inside the repository.
fn repository_target(dest: &str, src: &Path, page_dir: &Path) -> Option<Target> {
    static SCHEME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").expect("valid regex"));
    if dest.is_empty() || dest.starts_with(['#', '/', '?']) || SCHEME.is_match(dest) {
        return None;
    }
    let (rest, fragment) = match dest.split_once('#') {
        Some((p, f)) => (p, (!f.is_empty()).then(|| f.to_string())),
        None => (dest, None),
    };
    let rest = rest.split('?').next().unwrap_or("");
    let path = normalize(&src.join(page_dir).join(rest.trim_end_matches('/')))?;
    if path.starts_with(src) || path.as_os_str().is_empty() {
        return None; // a page or asset of the book
    }
    Some(Target { path, fragment })
}

/// `path` without `.` and with `..` resolved; `None` when it climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What a link becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    /// The new destination, relative to the site's root.
    href: String,
    publish: Publish,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Publish {
    File(PathBuf),
    Dir(PathBuf),
}

fn plan(target: &Target, tree: &dyn Tree) -> Result<Planned, String> {
    let shown = url_path(&target.path);
    if let Some(skipped) = target.path.components().find(|c| {
        SKIPPED_DIRS.iter().any(|s| c.as_os_str() == *s)
            || c.as_os_str().to_string_lossy().starts_with('.')
    }) {
        return Err(format!(
            "{shown} is under {:?}, which the site does not publish",
            skipped.as_os_str()
        ));
    }
    match tree.node(&target.path) {
        None => Err(format!(
            "{shown}: no such file or directory in the repository"
        )),
        Some(Node::Binary) => Err(format!("{shown} is not a UTF-8 text file")),
        Some(Node::Dir) => match &target.fragment {
            Some(f) => Err(format!("{shown} is a directory; it has no #{f}")),
            None => Ok(Planned {
                href: dir_page(&target.path),
                publish: Publish::Dir(target.path.clone()),
            }),
        },
        Some(Node::File(text)) => {
            let fragment = match &target.fragment {
                Some(f) => format!(
                    "#{}",
                    resolve_fragment(&text, f).map_err(|e| format!("{shown}: {e}"))?
                ),
                None => String::new(),
            };
            Ok(Planned {
                href: format!("{}{fragment}", file_page(&target.path)),
                publish: Publish::File(target.path.clone()),
            })
        }
    }
}

/// The source page of a file, relative to the site's root.
///
/// mdBook turns any link containing `.md` into `.html` (its regex is not
/// anchored), so `.md` in a path is published as `_md`: `README.md` becomes
/// `README_md.html`.
pub fn file_page(path: &Path) -> String {
    format!("{CODE_DIR}/{}.html", url_path(path).replace(".md", "_md"))
}

/// The index page of a directory, relative to the site's root (`code/index.html` for the root).
pub fn dir_page(path: &Path) -> String {
    let p = url_path(path).replace(".md", "_md");
    if p.is_empty() {
        format!("{CODE_DIR}/index.html")
    } else {
        format!("{CODE_DIR}/{p}/index.html")
    }
}

fn url_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks a fragment against the file's text; returns the fragment to link to.
///
/// `L42` and `L10-L20` must lie inside the file; a name resolves to the line
/// that declares it (`L17`) or to the lines of its `ANCHOR` (`L4-L9`).
pub fn resolve_fragment(text: &str, fragment: &str) -> Result<String, String> {
    static LINES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^L([0-9]+)(?:-L([0-9]+))?$").expect("valid regex"));
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex"));
    let count = text.lines().count();
    if let Some(c) = LINES.captures(fragment) {
        let line = |m: &str| m.parse::<usize>().unwrap_or(usize::MAX);
        let from = line(&c[1]);
        let to = c.get(2).map_or(from, |m| line(m.as_str()));
        if from == 0 {
            return Err(format!("#{fragment}: lines are numbered from 1"));
        }
        if to < from {
            return Err(format!("#{fragment}: the range ends before it starts"));
        }
        if to > count {
            return Err(format!(
                "#{fragment}: line {to} is past the end of the file ({count} lines)"
            ));
        }
        return Ok(fragment.to_string());
    }
    if !NAME.is_match(fragment) {
        return Err(format!(
            "#{fragment}: not a line (#L42), a range (#L10-L20) or the name of an item"
        ));
    }
    let mut items = item_lines(text, fragment);
    if items.is_empty() {
        items = macro_argument_lines(text, fragment);
    }
    match items.as_slice() {
        [line] => return Ok(format!("L{line}")),
        [] => {}
        many => {
            let lines: Vec<String> = many.iter().map(ToString::to_string).collect();
            return Err(format!(
                "#{fragment} is declared on several lines ({}); link to one with #L<line>",
                lines.join(", ")
            ));
        }
    }
    match anchor_lines(text, fragment) {
        Some((from, to)) if from <= to => Ok(format!("L{from}-L{to}")),
        Some(_) => Err(format!("#{fragment}: the anchor is empty")),
        None => Err(format!(
            "#{fragment}: no fn, struct, enum, const, static, trait, mod, type, union or \
             macro named {fragment} in the file, no macro call whose first argument it is, \
             and no ANCHOR: {fragment}"
        )),
    }
}

/// 1-based lines that declare an item named `name`.
fn item_lines(text: &str, name: &str) -> Vec<usize> {
    static ITEM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\s*\([^)]*\))?\s+)?(?:(?:default|async|unsafe|const|extern(?:\s+"[^"]*")?)\s+)*(?:fn|struct|enum|const|static(?:\s+mut)?|trait|mod|type|union)\s+([A-Za-z_][A-Za-z0-9_]*)|^\s*macro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)"#,
        )
        .expect("valid regex")
    });
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            ITEM.captures(line).is_some_and(|c| {
                c.get(1)
                    .or_else(|| c.get(2))
                    .is_some_and(|m| m.as_str() == name)
            })
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// 1-based lines where `name` is the first argument of a macro call
/// (`both!(name, body)`), as tests generated by a macro are named.
fn macro_argument_lines(text: &str, name: &str) -> Vec<usize> {
    static CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[A-Za-z_][A-Za-z0-9_]*!\s*[(\[{]\s*([A-Za-z_][A-Za-z0-9_]*)\b")
            .expect("valid regex")
    });
    CALL.captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| m.as_str() == name)
        .map(|m| text[..m.start()].matches('\n').count() + 1)
        .collect()
}

/// First and last line between `ANCHOR: name` and `ANCHOR_END: name` (exclusive).
fn anchor_lines(text: &str, name: &str) -> Option<(usize, usize)> {
    let marker = |line: &str, kind: &str| {
        line.split_once(kind)
            .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some(name))
    };
    let mut start = None;
    for (i, line) in text.lines().enumerate() {
        if start.is_none() && marker(line, "ANCHOR:") {
            start = Some(i + 2);
        } else if let Some(s) = start
            && marker(line, "ANCHOR_END:")
        {
            return Some((s, i));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The preprocessor.

/// The mdBook preprocessor that rewrites links to repository files; see the module docs.
///
/// It records what the book links to; [`Sources::published`] hands that to
/// [`write_pages`] once mdBook has rendered the site.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    published: Arc<Mutex<Published>>,
}

impl Sources {
    /// A preprocessor that has seen nothing yet.
    pub fn new() -> Self {
        Sources::default()
    }

    /// What the pages link to (after a build: the files and directories to publish).
    pub fn published(&self) -> Published {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Preprocessor for Sources {
    fn name(&self) -> &str {
        NAME
    }

    fn run(
        &self,
        ctx: &PreprocessorContext,
        mut book: Book,
    ) -> mdbook_preprocessor::errors::Result<Book> {
        let tree = Disk::new(&ctx.root);
        let src = ctx.config.book.src.clone();
        let mut published = Published::default();
        let mut faults = Vec::new();
        book.for_each_mut(|item| {
            let BookItem::Chapter(ch) = item else { return };
            let Some(path) = &ch.path else { return };
            let done = rewrite(&ch.content, &src, path, &tree);
            let source = src.join(ch.source_path.as_ref().unwrap_or(path));
            for f in &done.faults {
                faults.push(format!(
                    "{}: link {}: {}",
                    url_path(&source),
                    f.link,
                    f.message
                ));
            }
            ch.content = done.markdown;
            published.extend(done.published);
        });
        if !faults.is_empty() {
            bail!(
                "{} link(s) to repository files cannot be published:\n{}",
                faults.len(),
                faults.join("\n")
            );
        }
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(published);
        Ok(book)
    }

    fn supports_renderer(&self, renderer: &str) -> mdbook_preprocessor::errors::Result<bool> {
        Ok(renderer == "html")
    }
}

// ---------------------------------------------------------------------------
// Writing the pages.

/// What [`write_pages`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Source pages of files.
    pub files: usize,
    /// Index pages of directories.
    pub dirs: usize,
}

/// Every file and directory to publish: the linked ones, every text file below
/// a linked directory, and every directory above a published file.
pub fn expand(root: &Path, linked: &Published) -> Result<Published> {
    let mut out = Published {
        files: linked.files.clone(),
        dirs: BTreeSet::new(),
    };
    for dir in &linked.dirs {
        out.dirs.insert(dir.clone());
        let walk = walkdir::WalkDir::new(root.join(dir))
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                e.depth() == 0 || !(name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_ref()))
            });
        for entry in walk {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_path_buf();
            if entry.file_type().is_dir() {
                out.dirs.insert(rel);
            } else if entry.file_type().is_file() && std::fs::read_to_string(entry.path()).is_ok() {
                out.files.insert(rel);
            }
        }
    }
    let parents: Vec<PathBuf> = out
        .files
        .iter()
        .chain(out.dirs.iter())
        .flat_map(|p| {
            p.ancestors()
                .skip(1)
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect();
    out.dirs.extend(parents);
    out.dirs.insert(PathBuf::new());
    Ok(out)
}

/// Writes the source pages of `linked` into the built site `site`.
///
/// The pages take their frame (styles, scripts, menu, sidebar, themes) from
/// the site's own `index.html`, so they look like the book, follow the
/// reader's theme, and are highlighted by the same highlight.js.
pub fn write_pages(site: &Path, root: &Path, linked: &Published) -> Result<Written> {
    let code = site.join(CODE_DIR);
    if code.exists() {
        std::fs::remove_dir_all(&code).with_context(|| format!("clearing {}", code.display()))?;
    }
    if linked.is_empty() {
        return Ok(Written::default());
    }
    let index = site.join("index.html");
    let frame = std::fs::read_to_string(&index).with_context(|| {
        format!(
            "reading {} for the frame of the source pages",
            index.display()
        )
    })?;
    let frame = Frame::parse(&frame)?;
    let all = expand(root, linked)?;
    for file in &all.files {
        let text = std::fs::read_to_string(root.join(file))
            .with_context(|| format!("reading {}", file.display()))?;
        let rel = file_page(file);
        let html = frame.page(depth(&rel), &url_path(file), &file_body(file, &text));
        write(&site.join(&rel), &html)?;
    }
    for dir in &all.dirs {
        let rel = dir_page(dir);
        let title = if dir.as_os_str().is_empty() {
            "Source files".to_string()
        } else {
            format!("{}/", url_path(dir))
        };
        let html = frame.page(depth(&rel), &title, &dir_body(dir, &all));
        write(&site.join(&rel), &html)?;
    }
    Ok(Written {
        files: all.files.len(),
        dirs: all.dirs.len(),
    })
}

fn write(path: &Path, html: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))
}

/// Directories between the site's root and a page at `rel` (`code/a/b.rs.html`: 2).
fn depth(rel: &str) -> usize {
    rel.matches('/').count()
}

/// The highlight.js language of a file, by its name.
fn language(path: &Path) -> &'static str {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "rs" => "rust",
        "sql" => "sql",
        "toml" => "ini",
        "json" => "json",
        "yml" | "yaml" => "yaml",
        "sh" | "bash" => "bash",
        "js" => "javascript",
        "css" => "css",
        "html" | "svg" | "xml" => "xml",
        "md" => "markdown",
        "py" => "python",
        _ if name == "Makefile" => "makefile",
        _ => "plaintext",
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The path as a breadcrumb: every directory a link to its index page.
fn breadcrumb(path: &Path, is_dir: bool) -> String {
    let page = if is_dir {
        dir_page(path)
    } else {
        file_page(path)
    };
    let link = |to: &str| escape(&relative_url(&page, to));
    let mut out = format!(
        "<a href=\"{}\">{CODE_DIR}</a>",
        link(&dir_page(Path::new("")))
    );
    let parts: Vec<_> = path.components().collect();
    let mut so_far = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        so_far.push(part);
        let name = escape(&part.as_os_str().to_string_lossy());
        if i + 1 == parts.len() && !is_dir {
            let _ = write!(out, " / {name}");
        } else {
            let _ = write!(
                out,
                " / <a href=\"{}\">{name}</a>",
                link(&dir_page(&so_far))
            );
        }
    }
    out
}

/// The relative URL from the page `from` to the page `to` (both relative to the site's root).
pub fn relative_url(from: &str, to: &str) -> String {
    let from_dirs: Vec<&str> = from.split('/').collect();
    let from_dirs = &from_dirs[..from_dirs.len() - 1];
    let to_parts: Vec<&str> = to.split('/').collect();
    let common = from_dirs
        .iter()
        .zip(&to_parts[..to_parts.len() - 1])
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = "../".repeat(from_dirs.len() - common);
    out.push_str(&to_parts[common..].join("/"));
    out
}

/// The `<main>` of a file's page.
fn file_body(path: &Path, text: &str) -> String {
    let lines = text.lines().count();
    let mut gutter = String::new();
    for n in 1..=lines {
        let _ = write!(gutter, "<a id=\"L{n}\" href=\"#L{n}\">{n}</a>");
    }
    let code = text.strip_suffix('\n').unwrap_or(text);
    format!(
        "<h1 class=\"source-path\">{crumbs}</h1>\n\
         <p class=\"source-meta\"><code>{shown}</code>, {lines} line{s}, as in the book's repository. \
         Click a line number to link to that line.</p>\n\
         <div class=\"source-listing\">\
         <pre class=\"source-gutter\">{gutter}</pre>\
         <pre class=\"source-code\"><code class=\"language-{lang}\">{code}</code></pre>\
         </div>\n\
         <style>{WIDE}</style>\n\
         <script>{SCRIPT}</script>\n",
        crumbs = breadcrumb(path, false),
        shown = escape(&url_path(path)),
        s = if lines == 1 { "" } else { "s" },
        lang = language(path),
        code = escape(code),
    )
}

/// The `<main>` of a directory's index page: what is published in it.
fn dir_body(dir: &Path, all: &Published) -> String {
    let here = dir_page(dir);
    let rel = |page: String| relative_url(&here, &page);
    let mut items = String::new();
    for sub in all
        .dirs
        .iter()
        .filter(|d| d.parent() == Some(dir) && !d.as_os_str().is_empty())
    {
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            items,
            "<li class=\"source-dir\"><a href=\"{}\">{}/</a></li>",
            escape(&rel(dir_page(sub))),
            escape(&name)
        );
    }
    for file in all.files.iter().filter(|f| f.parent() == Some(dir)) {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            items,
            "<li class=\"source-file\"><a href=\"{}\">{}</a></li>",
            escape(&rel(file_page(file))),
            escape(&name)
        );
    }
    let what = if dir.as_os_str().is_empty() {
        "The repository's files that the book links to.".to_string()
    } else {
        format!(
            "What the book publishes of <code>{}/</code> in its repository.",
            escape(&url_path(dir))
        )
    };
    format!(
        "<h1 class=\"source-path\">{}</h1>\n<p class=\"source-meta\">{what}</p>\n<ul class=\"source-index\">\n{items}</ul>\n",
        breadcrumb(dir, true)
    )
}

/// Source lines are long: a source page may be wider than a chapter.
const WIDE: &str = ":root { --content-max-width: 1100px; }";

/// Marks the lines of `#L10` or `#L10-L20` and scrolls to them.
const SCRIPT: &str = r#"
(function () {
    const listing = document.querySelector('.source-listing');
    const gutter = document.querySelector('.source-gutter');
    if (!listing || !gutter) { return; }
    const mark = document.createElement('div');
    mark.className = 'source-mark';
    mark.hidden = true;
    listing.appendChild(mark);
    function show(scroll) {
        gutter.querySelectorAll('a.selected').forEach(a => a.classList.remove('selected'));
        const m = /^#L([0-9]+)(?:-L([0-9]+))?$/.exec(window.location.hash);
        const from = m && document.getElementById('L' + m[1]);
        const to = m && document.getElementById('L' + (m[2] || m[1]));
        if (!from || !to) { mark.hidden = true; return; }
        for (let n = Number(m[1]); n <= Number(m[2] || m[1]); n++) {
            document.getElementById('L' + n).classList.add('selected');
        }
        const base = listing.getBoundingClientRect().top;
        const top = from.getBoundingClientRect().top - base;
        mark.style.top = top + 'px';
        mark.style.height = (to.getBoundingClientRect().bottom - base - top) + 'px';
        mark.hidden = false;
        if (scroll) { from.scrollIntoView({ block: from === to ? 'center' : 'start' }); }
    }
    window.addEventListener('hashchange', () => show(true));
    window.addEventListener('resize', () => show(false));
    show(true);
})();
"#;

/// A built page of the book, cut around its `<main>`, to frame source pages.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Up to and including `<main>`.
    head: String,
    /// From `</main>` on, without the previous/next chapter buttons.
    tail: String,
}

impl Frame {
    /// Cuts a page at the root of the site (such as `index.html`).
    pub fn parse(html: &str) -> Result<Frame> {
        static NAV: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r#"(?s)<nav class="nav-(?:wide-)?wrapper".*?</nav>"#).expect("valid regex")
        });
        static PATH_TO_ROOT: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r#"const path_to_root = "";"#).expect("valid regex"));
        let open = html
            .find("<main>")
            .ok_or_else(|| anyhow!("no <main> in the page"))?;
        let close = html
            .rfind("</main>")
            .ok_or_else(|| anyhow!("no </main> in the page"))?;
        let head = &html[..open + "<main>".len()];
        if !PATH_TO_ROOT.is_match(head) {
            bail!("the page is not at the root of the site (no `const path_to_root = \"\";`)");
        }
        let tail = NAV.replace_all(&html[close..], "");
        Ok(Frame {
            head: head.to_string(),
            tail: tail.into_owned(),
        })
    }

    /// A page `depth` directories below the root, titled `title`, holding `main`.
    pub fn page(&self, depth: usize, title: &str, main: &str) -> String {
        static TITLE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?s)<title>.*?</title>").expect("valid regex"));
        let up = "../".repeat(depth);
        let head = TITLE.replace(&self.head, |_: &regex::Captures| {
            format!("<title>{}</title>", escape(title))
        });
        format!(
            "{}\n{main}\n{}",
            relocate(&head, &up),
            relocate(&self.tail, &up)
        )
    }
}

/// Moves the relative URLs of a root page `up` directories down.
fn relocate(html: &str, up: &str) -> String {
    static URL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(\s(?:href|src)=")([^"]*)""#).expect("valid regex"));
    static SCHEME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").expect("valid regex"));
    static SEARCH_INDEX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(window\.path_to_searchindex_js = ")([^"]*")"#).expect("valid regex")
    });
    if up.is_empty() {
        return html.to_string();
    }
    let moved = URL.replace_all(html, |c: &regex::Captures| {
        let url = &c[2];
        if url.is_empty() || url.starts_with(['#', '/']) || SCHEME.is_match(url) {
            c[0].to_string()
        } else {
            format!("{}{up}{url}\"", &c[1])
        }
    });
    let moved = moved.replace(
        r#"const path_to_root = "";"#,
        &format!(r#"const path_to_root = "{up}";"#),
    );
    SEARCH_INDEX
        .replace(&moved, |c: &regex::Captures| {
            format!("{}{up}{}", &c[1], &c[2])
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_RS: &str = "//! Tests.\n\n#[tokio::test]\nasync fn alias_race_has_one_winner() {\n    assert!(true);\n}\n\n// ANCHOR: setup\nfn setup() {}\nconst LIMIT: u32 = 3;\n// ANCHOR_END: setup\n";

    fn tree() -> MemoryTree {
        MemoryTree::new([
            ("chapters-code/demo/tests/races.rs", TEST_RS),
            ("chapters-code/demo/src/lib.rs", "pub mod store;\n"),
            ("chapters-code/demo/src/store/mod.rs", "pub struct Store;\n"),
            (
                "chapters-code/demo/sql/schema.sql",
                "-- ANCHOR: t\nCREATE TABLE t ();\n-- ANCHOR_END: t\n",
            ),
            ("benches/latency.rs", "fn main() {}\n"),
            ("src/demo/index.md", "# Demo\n"),
        ])
    }

    fn run(markdown: &str, page: &str) -> Rewritten {
        rewrite(markdown, Path::new("src"), Path::new(page), &tree())
    }

    #[test]
    fn a_file_link_becomes_its_source_page_relative_to_the_page() {
        let r = run(
            "See [the test](../../chapters-code/demo/tests/races.rs).\n",
            "demo/failure-modes.md",
        );
        assert_eq!(
            r.markdown,
            "See [the test](../code/chapters-code/demo/tests/races.rs.html).\n"
        );
        assert!(r.faults.is_empty(), "{:?}", r.faults);
        assert_eq!(
            r.published.files,
            BTreeSet::from([PathBuf::from("chapters-code/demo/tests/races.rs")])
        );
        let top = run("[bench](../benches/latency.rs)\n", "checking.md");
        assert_eq!(top.markdown, "[bench](code/benches/latency.rs.html)\n");
    }

    #[test]
    fn reference_definitions_are_rewritten_once_however_often_they_are_used() {
        let md = "Read [it][t] and [again][t].\n\n[t]: ../../chapters-code/demo/src/lib.rs \"the lib\"\n";
        let r = run(md, "demo/index.md");
        assert_eq!(
            r.markdown,
            "Read [it][t] and [again][t].\n\n[t]: ../code/chapters-code/demo/src/lib.rs.html \"the lib\"\n"
        );
    }

    #[test]
    fn a_directory_link_becomes_its_index_page() {
        let r = run(
            "[stores](../../chapters-code/demo/src/store/)\n",
            "demo/index.md",
        );
        assert_eq!(
            r.markdown,
            "[stores](../code/chapters-code/demo/src/store/index.html)\n"
        );
        assert_eq!(
            r.published.dirs,
            BTreeSet::from([PathBuf::from("chapters-code/demo/src/store")])
        );
    }

    #[test]
    fn fragments_name_lines_ranges_items_and_anchors() {
        let cases = [
            ("L5", "L5"),
            ("L4-L6", "L4-L6"),
            ("alias_race_has_one_winner", "L4"),
            ("LIMIT", "L10"),
            ("setup", "L9"), // the fn wins over the anchor of the same name
        ];
        for (fragment, want) in cases {
            let md = format!("[x](../../chapters-code/demo/tests/races.rs#{fragment})");
            let r = run(&md, "demo/index.md");
            assert!(r.faults.is_empty(), "{fragment}: {:?}", r.faults);
            assert_eq!(
                r.markdown,
                format!("[x](../code/chapters-code/demo/tests/races.rs.html#{want})"),
                "{fragment}"
            );
        }
        let tree = MemoryTree::new([(
            "tests/suite.rs",
            "macro_rules! both {\n    ($n:ident) => {};\n}\nboth!(\n    lapsed_units_are_reclaimed,\n);\nboth!(a_second);\n",
        )]);
        let r = rewrite(
            "[m](../tests/suite.rs#lapsed_units_are_reclaimed) [n](../tests/suite.rs#a_second) [o](../tests/suite.rs#both)",
            Path::new("src"),
            Path::new("p.md"),
            &tree,
        );
        assert!(r.faults.is_empty(), "{:?}", r.faults);
        assert_eq!(
            r.markdown,
            "[m](code/tests/suite.rs.html#L5) [n](code/tests/suite.rs.html#L7) [o](code/tests/suite.rs.html#L1)"
        );
        let sql = run(
            "[t](../../chapters-code/demo/sql/schema.sql#t)",
            "demo/index.md",
        );
        assert_eq!(
            sql.markdown,
            "[t](../code/chapters-code/demo/sql/schema.sql.html#L2-L2)"
        );
    }

    #[test]
    fn missing_files_lines_past_the_end_and_unknown_names_are_faults() {
        let md = "[a](../../chapters-code/demo/tests/gone.rs)\n\
                  [b](../../chapters-code/demo/tests/races.rs#L12)\n\
                  [c](../../chapters-code/demo/tests/races.rs#L3-L40)\n\
                  [d](../../chapters-code/demo/tests/races.rs#no_such_test)\n\
                  [e](../../chapters-code/demo/tests/races.rs#L0)\n\
                  [f](../../chapters-code/demo/src/store#L1)\n\
                  [g](../../chapters-code/demo/target/x.rs)\n";
        let r = run(md, "demo/index.md");
        let messages: Vec<&str> = r.faults.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(r.faults.len(), 7, "{messages:#?}");
        assert!(
            messages[0].contains("gone.rs: no such file"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("line 12 is past the end of the file (11 lines)"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].contains("line 40 is past the end"),
            "{}",
            messages[2]
        );
        assert!(messages[3].contains("no fn, struct"), "{}", messages[3]);
        assert!(messages[4].contains("numbered from 1"), "{}", messages[4]);
        assert!(messages[5].contains("is a directory"), "{}", messages[5]);
        assert!(messages[6].contains("does not publish"), "{}", messages[6]);
        assert_eq!(r.faults[0].link, "../../chapters-code/demo/tests/gone.rs");
        assert_eq!(&md[r.faults[1].offset..r.faults[1].offset + 3], "../");
        // A faulty link is left as written.
        assert_eq!(r.markdown, md);
    }

    #[test]
    fn a_name_declared_twice_is_ambiguous() {
        let tree = MemoryTree::new([(
            "a.rs",
            "impl A {\n    fn new() {}\n}\nimpl B {\n    fn new() {}\n}\n",
        )]);
        let r = rewrite(
            "[n](../a.rs#new)",
            Path::new("src"),
            Path::new("p.md"),
            &tree,
        );
        assert!(
            r.faults[0].message.contains("several lines (2, 5)"),
            "{:?}",
            r.faults
        );
    }

    #[test]
    fn pages_external_links_images_and_code_are_left_alone() {
        let md = "[page](index.md#demo) [web](https://example.com/a.rs) [here](#top) \
                  ![img](../../chapters-code/demo/src/lib.rs)\n\n\
                  `[not](../../chapters-code/demo/src/lib.rs)`\n\n\
                  ```text\n[not](../../chapters-code/demo/src/lib.rs)\n```\n\
                  [up](../../../outside.rs) [abs](/chapters-code/demo/src/lib.rs)\n";
        let r = run(md, "demo/index.md");
        assert_eq!(r.markdown, md);
        assert!(r.faults.is_empty() && r.published.is_empty(), "{r:?}");
    }

    #[test]
    fn relative_urls_climb_only_as_far_as_needed() {
        assert_eq!(
            relative_url("code/a/b/x.rs.html", "code/a/b/index.html"),
            "index.html"
        );
        assert_eq!(
            relative_url("code/a/b/index.html", "code/a/c/y.rs.html"),
            "../c/y.rs.html"
        );
        assert_eq!(
            relative_url("code/index.html", "code/a/index.html"),
            "a/index.html"
        );
        assert_eq!(
            relative_url("code/a/index.html", "print.html"),
            "../../print.html"
        );
    }

    #[test]
    fn markdown_files_get_pages_whose_links_mdbook_does_not_rewrite() {
        assert_eq!(
            file_page(Path::new("tools/README.md")),
            "code/tools/README_md.html"
        );
        assert_eq!(dir_page(Path::new("")), "code/index.html");
    }

    #[test]
    fn the_frame_moves_relative_urls_and_keeps_the_rest() {
        let html = r##"<html><head><title>Intro - Book</title>
<link rel="stylesheet" href="css/general-1.css"><script>
const path_to_root = "";
window.path_to_searchindex_js = "searchindex-2.js";
</script></head><body><a href="print.html">p</a><a href="https://x.org/">x</a><a href="#top">t</a>
<main><h1>Intro</h1></main>
<nav class="nav-wrapper" aria-label="Page navigation"><a rel="next" href="next.html">n</a></nav>
<nav class="nav-wide-wrapper" aria-label="Page navigation"><a href="next.html">n</a></nav>
<script src="book-3.js"></script></body></html>"##;
        let frame = Frame::parse(html).unwrap_or_else(|e| panic!("{e}"));
        let page = frame.page(2, "a <b>", "<p>listing</p>");
        assert!(page.contains("<title>a &lt;b&gt;</title>"), "{page}");
        assert!(page.contains(r#"href="../../css/general-1.css""#), "{page}");
        assert!(page.contains(r#"const path_to_root = "../../";"#), "{page}");
        assert!(
            page.contains(r#"window.path_to_searchindex_js = "../../searchindex-2.js";"#),
            "{page}"
        );
        assert!(page.contains(r#"href="../../print.html""#), "{page}");
        assert!(page.contains(r#"href="https://x.org/""#), "{page}");
        assert!(page.contains(r##"href="#top""##), "{page}");
        assert!(page.contains(r#"src="../../book-3.js""#), "{page}");
        assert!(page.contains("<main>\n<p>listing</p>\n</main>"), "{page}");
        assert!(!page.contains("next.html"), "{page}");
        assert!(!page.contains("<h1>Intro</h1>"), "{page}");
    }

    #[test]
    fn a_file_page_numbers_every_line_as_an_anchor() {
        let body = file_body(
            Path::new("chapters-code/demo/src/lib.rs"),
            "fn a() {}\nlet x = 1 < 2;\n",
        );
        assert!(
            body.contains(r##"<a id="L1" href="#L1">1</a><a id="L2" href="#L2">2</a></pre>"##),
            "{body}"
        );
        assert!(!body.contains("id=\"L3\""), "{body}");
        assert!(
            body.contains(
                r#"<code class="language-rust">fn a() {}
let x = 1 &lt; 2;</code>"#
            ),
            "{body}"
        );
        assert!(
            body.contains(
                r#"<a href="../../../index.html">code</a> / <a href="../../index.html">chapters-code</a> / <a href="../index.html">demo</a> / <a href="index.html">src</a> / lib.rs"#
            ),
            "{body}"
        );
    }
}
