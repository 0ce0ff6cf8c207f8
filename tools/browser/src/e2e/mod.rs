//! The book as a reader gets it: every page in a real, headless Chromium.
//!
//! `cargo xtask e2e` (and `tests/e2e.rs` inside `cargo test`) builds the
//! book, serves it from `127.0.0.1` under a sub-path, and drives Chromium
//! through chromedriver. The pages are found at run time — every HTML file
//! the build wrote, and every link in the sidebar — so a new chapter is
//! covered the moment it exists.
//!
//! On every page:
//! - the browser console shows no error (a failed script, a 404 asset, an
//!   exception, a diagram that failed);
//! - the page requests nothing from any host but the book's own;
//! - every ```mermaid block has become an SVG, and none shows mermaid's
//!   syntax-error output or its error text inside a drawn diagram (a label
//!   such as `"1. Requirements"` is read as a markdown list and drawn as
//!   "Unsupported markdown: list"); a failure names the page and the
//!   diagram (number, markdown file and line, first line of its source);
//! - every code block was processed by highlight.js, names a language it
//!   knows (or a plain one such as `text`), and a listing in a programming
//!   language (rust, sql, toml, ...) has highlighted tokens;
//! - no table is wider than the content column, and no label of a diagram
//!   or SVG plot renders much smaller than the body text (see `layout`;
//!   print.html, which repeats the chapters, is left out).
//!
//! Across the book:
//! - no HTML tag or stylesheet references another host (the static twin of
//!   the network check, covering what a page did not happen to load);
//! - every sidebar link resolves, from every page;
//! - `print.html` holds every chapter, in sidebar order;
//! - search for a word found in exactly one chapter lists only that chapter,
//!   and its result link opens it;
//! - each theme in the picker applies, diagrams follow it, and "Auto"
//!   follows `prefers-color-scheme` (emulated through DevTools), live;
//! - a missing page answers 404 with the book's own, styled, 404 page.
//!
//! Screenshots of the introduction and of the page with the most diagrams,
//! in the light and the preferred dark theme, and of the widest table and
//! the figure with the smallest text, go to `target/e2e/`, beside
//! chromedriver's log. `SDB_E2E_DEBUG=1` prints each page's DevTools
//! network log, for finding the request behind a network failure.

pub mod browser;
pub mod devtools;
mod layout;
mod reader;
pub mod session;
pub mod site;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value as Json;

pub use browser::{Browser, Chromium};

use crate::static_server::{StaticServer, TEST_PREFIX};

/// The themes whose diagrams must be drawn dark (mdBook's dark themes).
pub const DARK_THEMES: &[&str] = &["coal", "navy", "ayu"];

/// How long a page may take to draw its diagrams.
const RENDER_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound on the whole run, so a hung browser fails the run instead of hanging it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every check.
    All,
    /// Only the per-page checks (console, network, diagrams, highlighting).
    Pages,
    /// Only the per-page checks, on one page (a path inside the site, such
    /// as `url-shortener/index.html`): the suite's own tests break one page
    /// and need not open the other few hundred.
    Page(&'a str),
}

/// What a passing run covered.
#[derive(Debug, Default)]
pub struct Report {
    /// HTML pages opened.
    pub pages: usize,
    /// Mermaid diagrams seen rendered, over all pages (print.html included).
    pub diagrams: usize,
    /// Highlighted code blocks, over all pages.
    pub code_blocks: usize,
    /// Tables measured against the content column, over all pages but print.html.
    pub tables: usize,
    /// Figures (diagrams, inline SVGs, SVG plots) whose text size was measured.
    pub figures: usize,
    /// Themes switched through.
    pub themes: Vec<String>,
    /// The word searched for, and the chapter it found.
    pub search: Option<(String, String)>,
    /// Screenshots written.
    pub screenshots: Vec<PathBuf>,
    /// Wall time of the browser part.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} pages, {} diagrams, {} code blocks, {} tables, {} figures checked in {:.1?}",
            self.pages, self.diagrams, self.code_blocks, self.tables, self.figures, self.elapsed
        )?;
        if !self.themes.is_empty() {
            writeln!(f, "themes: {}", self.themes.join(", "))?;
        }
        if let Some((term, page)) = &self.search {
            writeln!(f, "search: {term:?} -> {page}")?;
        }
        for s in &self.screenshots {
            writeln!(f, "screenshot: {}", s.display())?;
        }
        Ok(())
    }
}

/// Failures collected over a run; reported together.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<String>);

impl Failures {
    /// Records a failure; the same line twice (a console error seen by
    /// several steps on one page) is kept once.
    pub(crate) fn push(&mut self, where_: &str, what: impl std::fmt::Display) {
        let line = format!("{where_}: {what}");
        if !self.0.contains(&line) {
            self.0.push(line);
        }
    }
}

/// Builds the book at `root` (for [`TEST_PREFIX`]) into a fresh directory
/// under `out`, then checks it in the browser; screenshots and the
/// chromedriver log are left in `out`.
///
/// Each run builds its own copy, so `cargo xtask e2e` and `cargo test` can
/// run side by side. Blocking; starts its own tokio runtime.
pub fn run(root: &Path, out: &Path, chromium: &Chromium, scope: Scope<'_>) -> Result<Report> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("site-")
        .tempdir_in(out)
        .with_context(|| format!("creating a build directory in {}", out.display()))?;
    let site = tmp.path().join("book");
    site::build(root, &site, Some(TEST_PREFIX))?;
    check_site(&site, &root.join("src"), out, chromium, scope)
}

/// Checks an already built site (built for [`TEST_PREFIX`]); `src` is the
/// book's markdown, for naming the file and line of a broken diagram.
///
/// Blocking; starts its own tokio runtime.
pub fn check_site(
    site: &Path,
    src: &Path,
    out: &Path,
    chromium: &Chromium,
    scope: Scope<'_>,
) -> Result<Report> {
    let started = Instant::now();
    let (mut report, failures) = session::with_browser(
        site,
        chromium,
        out,
        SUITE_TIMEOUT,
        "the browser suite",
        async |b, server| suite(b, server, site, src, out, scope).await,
    )?;
    report.elapsed = started.elapsed();
    if !failures.0.is_empty() {
        bail!(
            "{} browser check(s) failed:\n  - {}",
            failures.0.len(),
            failures.0.join("\n  - ")
        );
    }
    Ok(report)
}

async fn suite(
    b: &Browser,
    server: &StaticServer,
    site: &Path,
    src: &Path,
    out: &Path,
    scope: Scope<'_>,
) -> Result<(Report, Failures)> {
    let mut report = Report::default();
    let mut failures = Failures::default();

    for reference in site::external_references(site)? {
        failures.push(
            "static site",
            format!("references another host: {reference}"),
        );
    }

    let pages = match scope {
        Scope::Page(page) if site.join(page).is_file() => vec![page.to_string()],
        Scope::Page(page) => bail!("{page} is not a page of {}", site.display()),
        Scope::All | Scope::Pages => site::html_pages(site)?,
    };
    let mut seen = Vec::new();
    for page in &pages {
        let t = Instant::now();
        let info = check_page(b, server, site, src, page, &mut failures).await?;
        let (tables, figures) = info
            .layout
            .as_ref()
            .map_or((0, 0), |l| (l.tables.len(), l.figures.len()));
        eprintln!(
            "e2e: {page}: {} diagrams, {} code blocks, {tables} tables, {figures} figures ({:.1?})",
            info.diagrams.len(),
            info.code.len(),
            t.elapsed()
        );
        report.diagrams += info.diagrams.len();
        report.code_blocks += info.code.len();
        report.tables += tables;
        report.figures += figures;
        seen.push((page.clone(), info));
    }
    report.pages = seen.len();
    if scope != Scope::All {
        return Ok((report, failures));
    }

    let book = reader::BookView::new(server, &seen);
    let t = Instant::now();
    reader::sidebar_links(b, server, &book, &mut failures).await?;
    reader::print_page(&book, &mut failures);
    eprintln!("e2e: sidebar links and print.html ({:.1?})", t.elapsed());
    let t = Instant::now();
    report.search = reader::search(b, server, &book, &mut failures).await?;
    eprintln!("e2e: search ({:.1?})", t.elapsed());
    let t = Instant::now();
    report.themes = reader::themes(b, server, &book, &mut failures).await?;
    eprintln!("e2e: themes ({:.1?})", t.elapsed());
    let t = Instant::now();
    reader::not_found(b, server, &mut failures).await?;
    eprintln!("e2e: 404 page ({:.1?})", t.elapsed());
    let t = Instant::now();
    report.screenshots = reader::screenshots(b, &book, out, &mut failures).await?;
    eprintln!("e2e: screenshots ({:.1?})", t.elapsed());
    Ok((report, failures))
}

/// What the browser saw on one page.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PageInfo {
    /// Text of the first `<h1>` in `<main>`.
    pub h1: Option<String>,
    /// Texts of every `<h1>` in `<main>` (for print.html).
    pub h1s: Vec<String>,
    pub diagrams: Vec<DiagramState>,
    /// Mermaid's error picture anywhere on the page (it may land outside the block).
    pub error_svgs: usize,
    pub code: Vec<CodeState>,
    /// Absolute URLs of the sidebar's links.
    pub sidebar: Vec<String>,
    /// The text of `<main>` outside code and diagrams, a space between text nodes.
    pub prose: String,
    /// `innerText` of `<main>`.
    pub text: String,
    /// Widths of tables and sizes of figure text (not measured on print.html).
    #[serde(default)]
    pub layout: Option<layout::Layout>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DiagramState {
    /// The block holds a mermaid SVG that is not the error picture.
    pub svg: bool,
    /// The block holds or says mermaid's syntax-error output.
    pub error_output: bool,
    /// The message mermaid-init.js recorded for a failed diagram.
    pub error: Option<String>,
    /// Mermaid's error text inside a drawn diagram ("Unsupported markdown: list"), with a count.
    pub error_text: Option<String>,
    /// The diagram is drawn in dark colours (text lighter than 50% grey).
    pub dark: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CodeState {
    pub classes: String,
    pub language: Option<String>,
    pub known_language: bool,
    pub tokens: usize,
    pub chars: usize,
}

/// Waits for the diagrams of the current page to settle; true when they all drew.
pub(crate) const SETTLED_JS: &str = r#"
const pres = [...document.querySelectorAll('pre.mermaid')];
if (pres.length === 0) return 'none';
if (document.documentElement.dataset.mermaidStatus === 'done') return 'done';
if (pres.every(p => p.querySelector(':scope > svg:not([aria-roledescription="error"])'))) return 'drawn';
return null;
"#;

/// Reports the state of every diagram on the current page.
pub(crate) const DIAGRAMS_JS: &str = r#"
const ERROR_TEXT = /Unsupported markdown|Syntax error in text|Parse error on line/i;
const luminance = (color) => {
    const m = color && color.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/);
    if (!m) return null;
    return (0.2126 * m[1] + 0.7152 * m[2] + 0.0722 * m[3]) / 255;
};
// Mermaid writes its theme's text colour as the fill of the SVG's root
// (#333 in "default", #ccc in "dark"), whatever the kind of diagram: light
// text means a dark theme.
const textLuminance = (svg) => luminance(getComputedStyle(svg).fill);
return [...document.querySelectorAll('pre.mermaid')].map((pre) => {
    const svg = pre.querySelector(':scope > svg:not([aria-roledescription="error"])');
    const errorSvg = pre.querySelector('svg[aria-roledescription="error"]');
    const l = svg ? textLuminance(svg) : null;
    // Mermaid also reports some problems inside a diagram it did draw: a
    // label it could not format reads "Unsupported markdown: list".
    const errorText = [...pre.querySelectorAll('svg text, svg foreignObject')]
        .map(e => e.textContent.trim())
        .filter(t => ERROR_TEXT.test(t));
    return {
        svg: !!svg,
        error_output: !!errorSvg || /Syntax error in text/i.test(pre.textContent),
        error_text: errorText.length ? errorText.length + ' × ' + JSON.stringify(errorText[0]) : null,
        error: pre.dataset.mermaidError || null,
        dark: l === null ? null : l > 0.5,
    };
});
"#;

const PAGE_JS: &str = r#"
const main = document.querySelector('main');
const h1s = main ? [...main.querySelectorAll('h1')].map(h => h.textContent.trim().replace(/\s+/g, ' ')) : [];
const code = [...document.querySelectorAll('pre > code')].map((c) => {
    const lang = [...c.classList].find(k => k.startsWith('language-'));
    const language = lang ? lang.slice('language-'.length) : null;
    return {
        classes: c.className,
        language,
        known_language: !!(language && window.hljs && hljs.getLanguage(language)),
        tokens: c.querySelectorAll('[class^="hljs-"], [class*=" hljs-"]').length,
        chars: c.textContent.trim().length,
    };
});
// Prose: the text nodes outside code and diagrams, each its own word run
// (table cells and list items must not run together).
const parts = [];
if (main) {
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (!n.parentElement.closest('pre, code, svg')) parts.push(n.textContent);
    }
}
const prose = parts.join(' ');
return {
    h1: h1s.length ? h1s[0] : null,
    h1s,
    diagrams: [],
    error_svgs: document.querySelectorAll('svg[aria-roledescription="error"]').length
        + (/Syntax error in text/i.test(document.body.innerText) ? 1 : 0),
    code,
    sidebar: [...document.querySelectorAll('#mdbook-sidebar a[href]')].map(a => a.href),
    prose,
    text: main ? main.innerText : '',
};
"#;

/// Languages a block may name to be shown plain on purpose.
const PLAIN_LANGUAGES: &[&str] = &["text", "txt", "plain", "plaintext", "output", "none"];

/// Languages in which any listing has something to colour (a keyword, a
/// string, a number). A `console` line such as `cargo test` has none, so
/// for the others being known to highlight.js is all that is asked.
const TOKEN_LANGUAGES: &[&str] = &[
    "rust",
    "sql",
    "toml",
    "json",
    "yaml",
    "ini",
    "javascript",
    "js",
    "typescript",
    "ts",
    "python",
    "go",
    "c",
    "cpp",
    "java",
    "xml",
    "html",
    "css",
    "diff",
];

async fn check_page(
    b: &Browser,
    server: &StaticServer,
    site: &Path,
    src: &Path,
    page: &str,
    failures: &mut Failures,
) -> Result<PageInfo> {
    let url = server.base().join(page)?;
    b.goto(url.as_str()).await?;
    if let Err(e) = b
        .wait_js("the diagrams to render", RENDER_TIMEOUT, SETTLED_JS, vec![])
        .await
    {
        failures.push(page, format!("{e:#}"));
    }
    let mut info: PageInfo = serde_json::from_value(b.js(PAGE_JS, vec![]).await?)
        .with_context(|| format!("reading the state of {page}"))?;
    info.diagrams = serde_json::from_value(b.js(DIAGRAMS_JS, vec![]).await?)
        .with_context(|| format!("reading the diagrams of {page}"))?;

    // Diagrams, named by number, markdown file and line, and first line.
    let html = std::fs::read_to_string(site.join(page))?;
    let sources = site::mermaid_sources(&html);
    let count = info.diagrams.len();
    if count != sources.len() {
        failures.push(
            page,
            format!(
                "{} ```mermaid blocks in the HTML but {count} <pre class=\"mermaid\"> in the browser",
                sources.len()
            ),
        );
    }
    for (i, d) in info.diagrams.iter().enumerate() {
        let source = sources.get(i).map(String::as_str);
        let name = site::name_diagram(site, src, page, i, count, source);
        if d.error_output || d.error.is_some() || !d.svg {
            let why = match (&d.error, d.error_output, d.svg) {
                (Some(msg), _, _) => format!("failed to render: {}", one_line(msg)),
                (None, true, _) => "shows mermaid's syntax-error output".to_string(),
                (None, false, _) => "was not rendered to an SVG".to_string(),
            };
            failures.push(page, format!("{name} {why}"));
        } else if let Some(text) = &d.error_text {
            failures.push(
                page,
                format!(
                    "{name} is drawn, but shows mermaid's error text {text} where labels should be"
                ),
            );
        }
    }
    if info.error_svgs > 0 && info.diagrams.iter().all(|d| !d.error_output) {
        failures.push(
            page,
            "shows mermaid's syntax-error output outside any diagram",
        );
    }

    // Highlighting.
    for (i, c) in info.code.iter().enumerate() {
        let name = format!(
            "code block {} ({})",
            i + 1,
            c.language.as_deref().unwrap_or("no language")
        );
        if !c.classes.split_whitespace().any(|k| k == "hljs") {
            failures.push(page, format!("{name} was not processed by highlight.js"));
            continue;
        }
        let Some(lang) = c.language.as_deref() else {
            continue;
        };
        if PLAIN_LANGUAGES.contains(&lang) {
            continue;
        }
        if !c.known_language {
            failures.push(
                page,
                format!(
                    "{name}: highlight.js does not know the language {lang:?}, so it is shown plain"
                ),
            );
        } else if c.tokens == 0 && c.chars > 0 && TOKEN_LANGUAGES.contains(&lang) {
            failures.push(page, format!("{name} has no highlighted token"));
        }
    }

    // Tables and figures readable at the column's width. print.html
    // repeats every chapter at the same width: measured there, each
    // failure would be reported twice.
    if page != "print.html" {
        let measured = b
            .js(layout::LAYOUT_JS, vec![])
            .await
            .with_context(|| format!("measuring the tables and figures of {page}"))?;
        info.layout = serde_json::from_value(measured)
            .with_context(|| format!("reading the tables and figures of {page}"))?;
        if let Some(layout) = &info.layout {
            layout::check(page, layout, failures);
        }
    }

    // Console and network.
    let diagram_failed = info.diagrams.iter().any(|d| d.error.is_some());
    for error in console_errors(&b.log("browser").await?, &server.origin()) {
        // mermaid-init.js logs each failed diagram; it is reported above, by name.
        if !(diagram_failed && is_diagram_error(&error)) {
            failures.push(page, format!("console error: {error}"));
        }
    }
    let perf = b.log("performance").await?;
    if std::env::var_os("SDB_E2E_DEBUG").is_some() {
        for e in &perf {
            eprintln!("{page}: {}", e.message);
        }
    }
    for problem in network_problems(&perf, &server.origin(), None) {
        failures.push(page, problem);
    }
    Ok(info)
}

/// Requests to other hosts, and failed responses, in a DevTools network log.
///
/// `expected_404` is a URL allowed to answer 404 (the missing page the 404 check opens).
pub(crate) fn network_problems(
    log: &[browser::LogEntry],
    origin: &str,
    expected_404: Option<&str>,
) -> Vec<String> {
    let mut problems = BTreeSet::new();
    let mut urls = std::collections::HashMap::new();
    for entry in log {
        let Ok(event) = serde_json::from_str::<Json>(&entry.message) else {
            continue;
        };
        let message = &event["message"];
        let params = &message["params"];
        let request = params["requestId"].as_str().unwrap_or_default().to_string();
        match message["method"].as_str() {
            Some("Network.requestWillBeSent") => {
                let url = params["request"]["url"].as_str().unwrap_or_default();
                urls.insert(request, url.to_string());
                // A page without a <link rel=icon> (toc.html, the noscript
                // sidebar) makes the browser itself ask for /favicon.ico.
                if url == format!("{origin}/favicon.ico") {
                    continue;
                }
                if is_foreign(url, origin) {
                    problems.insert(format!("requested another host: {url}"));
                }
            }
            Some("Network.responseReceived") => {
                let url = params["response"]["url"].as_str().unwrap_or_default();
                let status = params["response"]["status"].as_u64().unwrap_or(0);
                if status >= 400
                    && Some(url) != expected_404
                    && url != format!("{origin}/favicon.ico")
                {
                    problems.insert(format!("{url} answered {status}"));
                }
            }
            Some("Network.loadingFailed") => {
                let why = params["errorText"].as_str().unwrap_or_default();
                let url = urls.get(&request).map_or("?", String::as_str);
                // Aborted loads are navigation moving on, not a broken asset.
                if why != "net::ERR_ABORTED" {
                    problems.insert(format!("loading {url} failed: {why}"));
                }
            }
            _ => {}
        }
    }
    problems.into_iter().collect()
}

/// The errors in a console log (level `SEVERE`), on one line each.
pub(crate) fn console_errors(log: &[browser::LogEntry], origin: &str) -> Vec<String> {
    let favicon = format!("{origin}/favicon.ico ");
    log.iter()
        .filter(|e| e.level == "SEVERE" && !e.message.starts_with(&favicon))
        .map(|e| one_line(&e.message))
        .collect()
}

/// A console line of mermaid-init.js about a diagram that failed to render.
pub(crate) fn is_diagram_error(message: &str) -> bool {
    message.contains("mermaid: diagram ")
}

fn is_foreign(url: &str, origin: &str) -> bool {
    let local_schemes = ["data:", "blob:", "about:", "chrome:", "chrome-extension:"];
    if local_schemes.iter().any(|s| url.starts_with(s)) {
        return false;
    }
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization() != origin,
        Err(_) => true,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `cargo xtask e2e [--book DIR] [--pages-only | --page PAGE]`.
///
/// Fails (rather than skips) without Chromium: asking for the browser tests
/// and getting none is an error.
pub fn cli(repo: &Path, args: &[String]) -> Result<std::process::ExitCode> {
    let mut book_root = repo.to_path_buf();
    let mut scope = Scope::All;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--book" => book_root = PathBuf::from(it.next().context("--book needs a directory")?),
            "--pages-only" => scope = Scope::Pages,
            "--page" => {
                scope = Scope::Page(
                    it.next()
                        .context("--page needs a page, such as url-shortener/index.html")?,
                )
            }
            other => bail!("unknown e2e option {other:?}"),
        }
    }
    let chromium = Chromium::find().map_err(|why| {
        anyhow::anyhow!("{why}\ninstall it with: apt-get install -y chromium chromium-driver")
    })?;
    let out = repo.join("target").join("e2e");
    let started = Instant::now();
    let report = run(&book_root, &out, &chromium, scope)?;
    print!("{report}");
    println!("e2e: all checks passed in {:.1?}", started.elapsed());
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &str, params: Json) -> browser::LogEntry {
        browser::LogEntry {
            level: "INFO".into(),
            message: serde_json::json!({ "message": { "method": method, "params": params } })
                .to_string(),
        }
    }

    #[test]
    fn requests_to_other_hosts_and_failed_loads_are_problems() {
        let origin = "http://127.0.0.1:4000";
        let log = [
            entry(
                "Network.requestWillBeSent",
                serde_json::json!({ "requestId": "1", "request": { "url": "http://127.0.0.1:4000/sub/path/book.js" } }),
            ),
            entry(
                "Network.requestWillBeSent",
                serde_json::json!({ "requestId": "2", "request": { "url": "https://fonts.googleapis.com/css" } }),
            ),
            entry(
                "Network.requestWillBeSent",
                serde_json::json!({ "requestId": "3", "request": { "url": "data:image/png;base64,xx" } }),
            ),
            entry(
                "Network.responseReceived",
                serde_json::json!({ "requestId": "4", "response": { "url": "http://127.0.0.1:4000/sub/path/x.css", "status": 404 } }),
            ),
            entry(
                "Network.loadingFailed",
                serde_json::json!({ "requestId": "2", "errorText": "net::ERR_NAME_NOT_RESOLVED" }),
            ),
            entry(
                "Network.loadingFailed",
                serde_json::json!({ "requestId": "1", "errorText": "net::ERR_ABORTED" }),
            ),
        ];
        assert_eq!(
            network_problems(&log, origin, None),
            [
                "http://127.0.0.1:4000/sub/path/x.css answered 404",
                "loading https://fonts.googleapis.com/css failed: net::ERR_NAME_NOT_RESOLVED",
                "requested another host: https://fonts.googleapis.com/css",
            ]
        );
        let missing = "http://127.0.0.1:4000/sub/path/x.css";
        assert_eq!(
            network_problems(&log[3..4], origin, Some(missing)),
            Vec::<String>::new()
        );
    }
}
