//! Check 4: the book builds in-process and its HTML is whole.
//!
//! The book is built with mdbook-driver and mdbook-mermaid as libraries (the
//! versions `cargo xtask serve` installs) into a temporary directory. Then:
//!
//! - no page holds an unexpanded `{{#` beyond the ones its source shows on
//!   purpose (escaped as `\{{#` or written with `&#123;` entities);
//! - every ```mermaid block of a page (after includes) became
//!   `<pre class="mermaid">`, and no `language-mermaid` code block is left;
//! - every relative `href`/`src` in every HTML file names a file of the built
//!   book, and every `#fragment` names an `id` in that file. The source pages
//!   (`code/**.html`, see `xtask::sources`) are files of the book like any
//!   other; on them a range `#L10-L20` needs the ids `L10` and `L20`.
//! - no link points at the book's own published site (`[preprocessor.sources]
//!   site` in book.toml) except at a page the build wrote.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use mdbook_driver::book::BookItem;
use mdbook_driver::builtin_renderers::MarkdownRenderer;
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag};
use regex::Regex;

use super::blocks::markdown_options;
use super::includes;
use super::{Problem, SRC, files_with_extension, normalize, relative, slash};

static URL_ATTR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\s(?:href|src)\s*=\s*"([^"]*)""#).expect("valid regex"));
/// `{{#` written so that mdBook leaves it alone: `\{{#` or with the braces as HTML entities.
static SHOWN_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    let brace = r"(?:\{|&#123;|&#x0*7[bB];|&lbrace;|&lcub;)";
    let first = r"(?:\\\{|&#123;|&#x0*7[bB];|&lbrace;|&lcub;)";
    Regex::new(&[first, brace, "#"].concat()).expect("valid regex")
});
static ID_ATTR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\sid\s*=\s*"([^"]*)""#).expect("valid regex"));

/// Set this variable to keep the built HTML (its directory is printed) for inspection.
pub const KEEP_VAR: &str = "BOOK_CHECK_KEEP";

/// Whether the build runs the mermaid preprocessor (fixtures turn it off to
/// prove the mermaid check can fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mermaid {
    /// Run `mdbook_mermaid::Mermaid`, as the real build does.
    On,
    /// Leave ```mermaid blocks as code blocks.
    Off,
}

/// A chapter of the built book.
#[derive(Debug, Clone)]
struct Page {
    /// The markdown source, relative to the root (`src/...`).
    source: PathBuf,
    /// The HTML file, relative to the build directory.
    html: PathBuf,
    /// Raw markdown of the source file.
    raw: String,
    /// ```mermaid fences after includes were expanded.
    mermaid_fences: usize,
}

/// Check 4: builds the book under `root` and checks its HTML.
pub fn check(root: &Path, mermaid: Mermaid) -> Vec<Problem> {
    let out = match tempfile::Builder::new().prefix("book-check-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return vec![Problem::file(
                "book.toml",
                format!("cannot create a temporary build directory: {e}"),
            )];
        }
    };
    let build_dir = out.path().join("html");
    let pages = match build(root, &build_dir, mermaid) {
        Ok(pages) => pages,
        Err(p) => return vec![p],
    };
    let (directives, _) = includes::scan(root);
    let mut problems = Vec::new();
    problems.extend(check_pages(root, &build_dir, &pages, &directives));
    problems.extend(check_links(root, &build_dir, &pages));
    if std::env::var_os(KEEP_VAR).is_some() {
        let kept = out.keep();
        let _ = writeln!(
            std::io::stderr(),
            "{KEEP_VAR}: built HTML kept in {}",
            kept.display()
        );
    }
    problems
}

/// Builds the book into `build_dir`; returns its chapters.
fn build(root: &Path, build_dir: &Path, mermaid: Mermaid) -> Result<Vec<Page>, Problem> {
    let fail = |what: &str, e: anyhow::Error| Problem::file("book.toml", format!("{what}: {e:#}"));
    let mut book =
        xtask::book::load(root, build_dir).map_err(|e| fail("mdBook cannot load the book", e))?;

    // The book after `links` and `index` only: what the reader's markdown
    // becomes before mermaid runs, to count the diagrams each page must show.
    let (expanded, _) = book
        .preprocess_book(&MarkdownRenderer::new())
        .map_err(|e| fail("mdBook preprocessing failed", e))?;
    let mut pages = Vec::new();
    for item in expanded.iter() {
        let BookItem::Chapter(ch) = item else {
            continue;
        };
        let (Some(path), Some(source)) = (&ch.path, &ch.source_path) else {
            continue; // a draft
        };
        let source = Path::new(SRC).join(source);
        let raw = std::fs::read_to_string(root.join(&source)).unwrap_or_default();
        pages.push(Page {
            html: path.with_extension("html"),
            mermaid_fences: mermaid_fences(&ch.content),
            source,
            raw,
        });
    }

    if mermaid == Mermaid::On {
        book.with_preprocessor(mdbook_mermaid::Mermaid);
    }
    xtask::book::build_loaded(&mut book).map_err(|e| fail("mdBook build failed", e))?;
    Ok(pages)
}

/// Number of fenced blocks whose language is `mermaid`.
fn mermaid_fences(markdown: &str) -> usize {
    Parser::new_ext(markdown, markdown_options())
        .filter(|e| {
            matches!(e, Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if info.split(|c: char| c == ',' || c.is_whitespace()).next() == Some("mermaid"))
        })
        .count()
}

/// Leftover directives and unconverted diagrams, page by page.
fn check_pages(
    root: &Path,
    build_dir: &Path,
    pages: &[Page],
    directives: &[includes::Directive],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for page in pages {
        let html_path = build_dir.join(&page.html);
        let html = match std::fs::read_to_string(&html_path) {
            Ok(h) => h,
            Err(e) => {
                problems.push(Problem::file(
                    &page.source,
                    format!("its page {} was not written: {e}", slash(&page.html)),
                ));
                continue;
            }
        };

        // `\{{#...}}` in the source shows `{{#...}}` on purpose; any other `{{#` is a failed directive.
        let escaped = escaped_directives(root, page, directives);
        let left = html.matches("{{#").count();
        if left > escaped {
            let at = html.find("{{#").unwrap_or(0);
            let rest = &html[at..];
            let end = rest.find("}}").map_or(rest.len(), |i| i + 2);
            let snippet: String = rest[..end].chars().take(80).collect();
            problems.push(Problem::file(
                &page.source,
                format!(
                    "{} holds {left} unexpanded \"{{{{#\" ({escaped} escaped on purpose), first: {snippet:?}; \
                     a directive mdBook could not expand, or text that should be escaped as \\{{{{#...}}}}",
                    slash(&page.html)
                ),
            ));
        }

        let converted = html.matches(r#"<pre class="mermaid">"#).count();
        let unconverted = html.matches("language-mermaid").count();
        if converted < page.mermaid_fences || unconverted > 0 {
            problems.push(Problem::file(
                &page.source,
                format!(
                    "{} ```mermaid block(s) in the page, but {} has {converted} <pre class=\"mermaid\"> \
                     and {unconverted} mermaid code block(s) left as code; is the mermaid preprocessor \
                     running, and is the fence exactly ```mermaid?",
                    page.mermaid_fences,
                    slash(&page.html)
                ),
            ));
        }
    }
    problems
}

/// How many `{{#` a page may show: directives its source writes as text
/// (`\{{#...}}`, or `&#123;&#123;#...`), plus any `{{#` in the files it includes.
fn escaped_directives(root: &Path, page: &Page, directives: &[includes::Directive]) -> usize {
    let mut count = SHOWN_DIRECTIVE.find_iter(&page.raw).count();
    let md = normalize(&root.join(&page.source));
    for d in directives.iter().filter(|d| normalize(&d.md) == md) {
        if let Ok(text) = std::fs::read_to_string(&d.target) {
            count += text.matches("{{#").count();
        }
    }
    count
}

/// Every relative link and fragment in every HTML file resolves.
fn check_links(root: &Path, build_dir: &Path, pages: &[Page]) -> Vec<Problem> {
    let (files, mut problems) = files_with_extension(root, build_dir, "html");
    let mut by_html: HashMap<PathBuf, &Page> = pages.iter().map(|p| (p.html.clone(), p)).collect();
    // mdBook copies the first chapter to index.html when no chapter is index.md.
    if let Some(first) = pages.first() {
        by_html.entry(PathBuf::from("index.html")).or_insert(first);
    }
    let mut ids: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut seen = BTreeSet::new();
    // The 404 page is served from any depth, so mdBook gives it an absolute
    // `<base href>` of the site's URL path; that path is the build root.
    let config = mdbook_driver::config::Config::from_disk(root.join("book.toml")).ok();
    let site_url = config
        .as_ref()
        .and_then(|c| c.html_config())
        .and_then(|h| h.site_url)
        .unwrap_or_else(|| "/".to_string());
    // Links to the published book itself (as problem type URIs are) must name
    // a page of this build.
    let published = config
        .as_ref()
        .and_then(|c| xtask::book::published_site(c).ok());

    for file in files {
        let rel = relative(build_dir, &file);
        let Ok(html) = std::fs::read_to_string(&file) else {
            problems.push(Problem::file(
                relative(root, &file),
                "cannot read built HTML",
            ));
            continue;
        };
        let base = base_dir(&html, &rel, &site_url);
        for cap in URL_ATTR.captures_iter(&html) {
            let url = decode_entities(&cap[1]);
            let own = published.as_deref().and_then(|site| url.strip_prefix(site));
            let Some((path, fragment)) = own.map_or_else(|| internal(&url), |u| internal(u)) else {
                continue;
            };
            let target = if path.is_empty() && own.is_none() {
                rel.clone()
            } else if own.is_some() {
                normalize(Path::new(&percent_decode(path)))
            } else {
                normalize(&base.join(percent_decode(path)))
            };
            let target = if build_dir.join(&target).is_dir() {
                target.join("index.html")
            } else {
                target
            };
            let error = if target.starts_with("..") || !build_dir.join(&target).is_file() {
                Some(format!(
                    "links to {url}, but the built book has no {}",
                    slash(&target)
                ))
            } else if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
                let fragment = percent_decode(fragment);
                let known = ids
                    .entry(target.clone())
                    .or_insert_with(|| ids_in(&build_dir.join(&target)));
                let needed = line_range(&fragment).unwrap_or_else(|| vec![fragment.clone()]);
                (!needed.iter().all(|id| known.contains(id))).then(|| {
                    format!(
                        "links to {url}, but {} has no id=\"{fragment}\"",
                        slash(&target)
                    )
                })
            } else {
                None
            };
            let Some(error) = error else { continue };
            // Name the markdown page (and line) when the link comes from one.
            let problem = match by_html.get(&rel) {
                Some(page) => match find_line(&page.raw, &url) {
                    Some(line) => Problem::at(&page.source, line, error),
                    None => Problem::file(&page.source, format!("{error} (in {})", slash(&rel))),
                },
                None => Problem::file(Path::new("book").join(&rel), error),
            };
            if seen.insert(problem.to_string()) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// The directory relative links of `html` resolve against (honours `<base href>`).
fn base_dir(html: &str, rel: &Path, site_url: &str) -> PathBuf {
    static BASE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"<base\s+href\s*=\s*"([^"]*)""#).expect("valid regex"));
    match BASE.captures(html) {
        Some(c) if c[1].starts_with(site_url) => PathBuf::from(&c[1][site_url.len()..]),
        Some(c) if c[1].starts_with('/') => PathBuf::from(c[1].trim_start_matches('/')),
        Some(c) => normalize(&rel.parent().unwrap_or(Path::new("")).join(&c[1])),
        None => rel.parent().unwrap_or(Path::new("")).to_path_buf(),
    }
}

/// The path and fragment of a link into the book; `None` for external links.
fn internal(url: &str) -> Option<(&str, Option<&str>)> {
    let url = url.trim();
    if url.is_empty() || url.starts_with("//") || url.starts_with('/') {
        return None;
    }
    // Anything with a scheme (http:, https:, mailto:, javascript:, data:) is external.
    let before_slash = url.split(['/', '#', '?']).next().unwrap_or("");
    if before_slash.contains(':') {
        return None;
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (url, None),
    };
    let path = rest.split('?').next().unwrap_or("");
    Some((path, fragment))
}

/// The ids a line range `L10-L20` of a source page needs (`L10`, `L20`).
fn line_range(fragment: &str) -> Option<Vec<String>> {
    static RANGE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(L[0-9]+)-(L[0-9]+)$").expect("valid regex"));
    let c = RANGE.captures(fragment)?;
    Some(vec![c[1].to_string(), c[2].to_string()])
}

/// Every `id="..."` in an HTML file.
fn ids_in(path: &Path) -> BTreeSet<String> {
    let html = std::fs::read_to_string(path).unwrap_or_default();
    ID_ATTR
        .captures_iter(&html)
        .map(|c| decode_entities(&c[1]))
        .collect()
}

/// The first line of `markdown` that mentions the link (as `.html` or as `.md`).
fn find_line(markdown: &str, url: &str) -> Option<usize> {
    let as_md = url.replace(".html", ".md");
    let candidates = [url.to_string(), as_md];
    markdown
        .lines()
        .position(|l| candidates.iter().any(|c| l.contains(c.as_str())))
        .map(|i| i + 1)
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|&b| (b as char).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
