//! Checks of the book as a whole, done the way a reader would: sidebar,
//! print page, search, theme picker, 404 page; then the screenshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::browser::Browser;
use super::layout::Figure;
use super::{
    DARK_THEMES, DIAGRAMS_JS, Failures, PageInfo, RENDER_TIMEOUT, SETTLED_JS, console_errors,
    is_diagram_error,
};
use crate::static_server::StaticServer;

/// The pages seen, indexed for the book-wide checks.
pub(crate) struct BookView<'a> {
    pages: BTreeMap<&'a str, &'a PageInfo>,
    /// Chapter pages in sidebar order (paths relative to the root, no fragment).
    chapters: Vec<String>,
    /// Every sidebar link seen, with the pages it was seen on.
    sidebar: BTreeMap<String, Vec<&'a str>>,
    base: url::Url,
}

impl<'a> BookView<'a> {
    pub(crate) fn new(server: &StaticServer, seen: &'a [(String, PageInfo)]) -> Self {
        let base = server.base().clone();
        let mut chapters: Vec<String> = Vec::new();
        let mut sidebar: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        // Chapter links carry no fragment; the sidebar's links to the
        // headings of the page being read do, and are checked but are not
        // chapters (on index.html they would make it one).
        let chapter_link = |href: &str| -> Option<String> {
            if href.contains('#') {
                None
            } else {
                relative(&base, href)
            }
        };
        for (page, info) in seen {
            for href in &info.sidebar {
                sidebar.entry(href.clone()).or_default().push(page);
                if let Some(rel) = chapter_link(href)
                    && !chapters.contains(&rel)
                {
                    chapters.push(rel);
                }
            }
        }
        // Sidebar order is the order on any one page; take the index page's.
        if let Some((_, index)) = seen.iter().find(|(p, _)| p == "index.html") {
            let mut ordered: Vec<String> = index
                .sidebar
                .iter()
                .filter_map(|h| chapter_link(h))
                .collect();
            ordered.dedup();
            for c in chapters.drain(..) {
                if !ordered.contains(&c) {
                    ordered.push(c);
                }
            }
            chapters = ordered;
        }
        let pages = seen.iter().map(|(p, i)| (p.as_str(), i)).collect();
        BookView {
            pages,
            chapters,
            sidebar,
            base,
        }
    }

    fn url(&self, page: &str) -> String {
        self.base.join(page).map(String::from).unwrap_or_default()
    }

    /// The introduction, or failing that the first chapter.
    fn introduction(&self) -> Option<&str> {
        self.chapters
            .iter()
            .find(|c| c.as_str() == "introduction.html")
            .or(self.chapters.first())
            .map(String::as_str)
    }

    /// Diagrams of `page` that failed on first load (reported by the page check).
    fn broken(&self, page: &str) -> Vec<usize> {
        self.pages.get(page).map_or(Vec::new(), |p| {
            p.diagrams
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.error.is_some() || d.error_output || d.error_text.is_some() || !d.svg
                })
                .map(|(i, _)| i)
                .collect()
        })
    }

    /// The widest table of the book, as (page, index among the page's tables, width).
    fn widest_table(&self) -> Option<(&str, usize, f64)> {
        self.pages
            .iter()
            .filter_map(|(page, info)| {
                let (i, w) = info.layout.as_ref()?.widest_table()?;
                Some((*page, i, w))
            })
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }

    /// The figure with the smallest label in the book, as (page, figure, size).
    fn smallest_text(&self) -> Option<(&str, &Figure, f64)> {
        self.pages
            .iter()
            .filter_map(|(page, info)| {
                let (f, px) = info.layout.as_ref()?.smallest_text()?;
                Some((*page, f, px))
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
    }

    /// The chapter with the most diagrams, if any chapter has one.
    fn most_diagrams(&self) -> Option<&str> {
        self.chapters
            .iter()
            .filter_map(|c| Some((c.as_str(), self.pages.get(c.as_str())?.diagrams.len())))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(c, n)| (*n, std::cmp::Reverse(*c)))
            .map(|(c, _)| c)
    }
}

/// `href` as a path relative to the book's root, without query or fragment;
/// `None` when it points outside the book.
fn relative(base: &url::Url, href: &str) -> Option<String> {
    let mut u = url::Url::parse(href).ok()?;
    u.set_fragment(None);
    u.set_query(None);
    let s = u.as_str();
    s.strip_prefix(base.as_str()).map(|rel| {
        if rel.is_empty() || rel.ends_with('/') {
            format!("{rel}index.html")
        } else {
            rel.to_string()
        }
    })
}

/// HTTP status of a URL, fetched by the page (same origin, no navigation).
const STATUS_JS: &str =
    "return fetch(arguments[0], { cache: 'no-store' }).then(r => r.status, e => String(e));";

/// Every sidebar link, from every page, resolves inside the book.
pub(crate) async fn sidebar_links(
    b: &Browser,
    server: &StaticServer,
    book: &BookView<'_>,
    failures: &mut Failures,
) -> Result<()> {
    if book.sidebar.is_empty() {
        failures.push("sidebar", "no links (toc.js did not fill the sidebar?)");
        return Ok(());
    }
    b.goto(server.base().as_str()).await?;
    for (href, seen_on) in &book.sidebar {
        let on = match seen_on.as_slice() {
            [one] => one.to_string(),
            many => format!("{} pages, e.g. {}", many.len(), many[0]),
        };
        if relative(&book.base, href).is_none() {
            failures.push("sidebar", format!("link {href} (on {on}) leaves the book"));
            continue;
        }
        let status = b.js(STATUS_JS, vec![json!(href)]).await?;
        if status != json!(200) {
            failures.push(
                "sidebar",
                format!("link {href} (on {on}) answered {status}"),
            );
        }
    }
    let _ = b.log("browser").await?;
    let _ = b.log("performance").await?;
    Ok(())
}

/// print.html holds the first heading of every chapter, in sidebar order.
pub(crate) fn print_page(book: &BookView<'_>, failures: &mut Failures) {
    let Some(print) = book.pages.get("print.html") else {
        failures.push("print.html", "not built");
        return;
    };
    let mut from = 0;
    for chapter in &book.chapters {
        let Some(h1) = book.pages.get(chapter.as_str()).and_then(|p| p.h1.as_ref()) else {
            failures.push(
                chapter,
                "has no <h1>, so print.html cannot be checked for it",
            );
            continue;
        };
        match print.h1s.iter().skip(from).position(|h| h == h1) {
            Some(at) => from += at + 1,
            None if print.h1s.contains(h1) => failures.push(
                "print.html",
                format!("has chapter {chapter} ({h1:?}) out of order"),
            ),
            None => failures.push("print.html", format!("lacks chapter {chapter} ({h1:?})")),
        }
    }
}

/// Picks a word that occurs in exactly one chapter, with mdBook's own
/// tokenizer and stemmer (search expands a word to every indexed word it
/// prefixes, so no other chapter may hold a word starting with its stem).
const PICK_TERM_JS: &str = r#"
const [docs, everywhere] = arguments;
const tokens = (text) => elasticlunr.tokenizer(text)
    .map(t => elasticlunr.trimmer(t)).filter(t => t);
const stem = (t) => elasticlunr.stemmer(t);
const entries = [];
docs.forEach((d, i) => {
    for (const t of new Set(tokens(d.text))) entries.push([stem(t), i]);
});
for (const t of new Set(tokens(everywhere))) entries.push([stem(t), -1]);
entries.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
const clashes = (s, i) => {
    let lo = 0, hi = entries.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (entries[mid][0] < s) lo = mid + 1; else hi = mid; }
    for (let k = lo; k < entries.length && entries[k][0].startsWith(s); k++) {
        if (entries[k][1] !== i) return true;
    }
    return false;
};
const candidates = [];
docs.forEach((d, i) => {
    for (const w of new Set(tokens(d.prose))) {
        if (/^[a-z]{7,}$/.test(w)) candidates.push([w, i]);
    }
});
candidates.sort((a, b) => b[0].length - a[0].length || (a[0] < b[0] ? -1 : 1));
for (const [w, i] of candidates) {
    if (!clashes(stem(w), i)) return { term: w, page: docs[i].page };
}
return null;
"#;

#[derive(Deserialize)]
struct Pick {
    term: String,
    page: String,
}

/// Search finds a word that occurs in only one chapter, lists only that
/// chapter, and its first result opens it.
pub(crate) async fn search(
    b: &Browser,
    server: &StaticServer,
    book: &BookView<'_>,
    failures: &mut Failures,
) -> Result<Option<(String, String)>> {
    b.goto(server.base().as_str()).await?;
    if b.js("return typeof elasticlunr === 'undefined'", vec![])
        .await?
        == json!(true)
    {
        failures.push("search", "elasticlunr is not loaded (is search enabled?)");
        return Ok(None);
    }
    let docs: Vec<Json> = book
        .chapters
        .iter()
        .filter_map(|c| {
            let p = book.pages.get(c.as_str())?;
            Some(json!({ "page": c, "prose": p.prose, "text": p.text }))
        })
        .collect();
    // Chapter names also reach other chapters' entries, through breadcrumbs.
    let names = b
        .js(
            "return [...document.querySelectorAll('#mdbook-sidebar')].map(e => e.innerText).join(' ');",
            vec![],
        )
        .await?;
    let pick = b.js(PICK_TERM_JS, vec![json!(docs), names]).await?;
    let Ok(Pick { term, page }) = serde_json::from_value::<Pick>(pick) else {
        failures.push(
            "search",
            "no word occurs in exactly one chapter to search for",
        );
        return Ok(None);
    };
    let chapter_url = book.url(&page);

    b.click("#mdbook-search-toggle").await?;
    b.wait_js(
        "the search index to load",
        Duration::from_secs(15),
        "const o = document.getElementById('mdbook-searchbar-outer'); \
         return !document.getElementById('mdbook-search-wrapper').classList.contains('hidden') \
                && !o.classList.contains('searching') && !!window.search && !!window.search.index;",
        vec![],
    )
    .await?;
    b.type_into("#mdbook-searchbar", &term).await?;
    let found = b
        .wait_js(
            &format!("search results for {term:?}"),
            Duration::from_secs(10),
            "const a = [...document.querySelectorAll('#mdbook-searchresults li a')].map(a => a.href); \
             return a.length ? a : null;",
            vec![],
        )
        .await;
    let hrefs: Vec<String> = match found {
        Ok(v) => serde_json::from_value(v)?,
        Err(e) => {
            failures.push("search", format!("{term:?} (only in {page}): {e:#}"));
            return Ok(None);
        }
    };
    let elsewhere: Vec<&String> = hrefs
        .iter()
        .filter(|h| relative(&book.base, h).as_deref() != Some(page.as_str()))
        .collect();
    if !elsewhere.is_empty() {
        failures.push(
            "search",
            format!("{term:?} occurs only in {page}, but results also link to {elsewhere:?}"),
        );
    }
    b.click("#mdbook-searchresults li a").await?;
    let opened = b
        .wait_js(
            "the search result to open",
            Duration::from_secs(10),
            "const u = new URL(location.href); u.hash = ''; u.search = ''; \
             return u.href === arguments[0] && document.readyState === 'complete' ? u.href : null;",
            vec![json!(chapter_url)],
        )
        .await;
    if let Err(e) = opened {
        let at = b.client.current_url().await.map(String::from);
        failures.push(
            "search",
            format!("the first result for {term:?} did not open {page} (at {at:?}): {e:#}"),
        );
    }
    for error in console_errors(&b.log("browser").await?, &server.origin()) {
        if !is_diagram_error(&error) {
            failures.push("search", format!("console error: {error}"));
        }
    }
    let _ = b.log("performance").await?;
    Ok(Some((term, page)))
}

#[derive(Debug, Deserialize)]
struct ThemeState {
    classes: String,
    diagrams: Vec<super::DiagramState>,
}

const THEME_STATE_JS: &str =
    "return { classes: document.documentElement.className, diagrams: (() => { DIAGRAMS })() };";

fn theme_state_js() -> String {
    THEME_STATE_JS.replace("DIAGRAMS", DIAGRAMS_JS)
}

/// True when the page wears theme `class` and every diagram is drawn in a
/// matching (light or dark) palette. Diagrams in `broken` (which failed on
/// first load, and were reported by name by the page check) are left out.
fn theme_matches(state: &ThemeState, class: &str, broken: &[usize]) -> bool {
    let dark = DARK_THEMES.contains(&class);
    state.classes.split_whitespace().any(|c| c == class)
        && state
            .diagrams
            .iter()
            .enumerate()
            .filter(|(i, _)| !broken.contains(i))
            .all(|(_, d)| d.svg && !d.error_output && d.dark == Some(dark))
}

async fn expect_theme(
    b: &Browser,
    step: &str,
    class: &str,
    broken: &[usize],
    failures: &mut Failures,
) -> Result<()> {
    let script = theme_state_js();
    let mut last = None;
    for _ in 0..100 {
        let state: ThemeState = serde_json::from_value(b.js(&script, vec![]).await?)?;
        if theme_matches(&state, class, broken) {
            return Ok(());
        }
        last = Some(state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = last.expect("at least one poll");
    let diagrams: Vec<String> = state
        .diagrams
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let drawn = match d.dark {
                Some(true) => "dark",
                Some(false) => "light",
                None => "not drawn",
            };
            format!("diagram {} {drawn}", i + 1)
        })
        .collect();
    let want = if DARK_THEMES.contains(&class) {
        "dark"
    } else {
        "light"
    };
    failures.push(
        "themes",
        format!(
            "{step}: wanted theme {class:?} with {want} diagrams; after 10s <html class={:?}>, {}",
            state.classes,
            if diagrams.is_empty() {
                "no diagrams".to_string()
            } else {
                diagrams.join(", ")
            }
        ),
    );
    Ok(())
}

/// Opens the theme picker (unless it is open) and clicks entry `id`, as a reader would.
async fn pick_theme(b: &Browser, id: &str) -> Result<()> {
    let open = b
        .js(
            "return document.getElementById('mdbook-theme-list').style.display === 'block';",
            vec![],
        )
        .await?;
    if open != json!(true) {
        b.click("#mdbook-theme-toggle").await?;
    }
    b.click(&format!("#mdbook-theme-{id}")).await
}

/// Every theme in the picker applies and the diagrams follow it; "Auto"
/// follows the operating system's light or dark preference, also live.
pub(crate) async fn themes(
    b: &Browser,
    server: &StaticServer,
    book: &BookView<'_>,
    failures: &mut Failures,
) -> Result<Vec<String>> {
    let Some(page) = book.most_diagrams().or(book.introduction()) else {
        failures.push("themes", "no chapter to try the themes on");
        return Ok(Vec::new());
    };
    if book.most_diagrams().is_none() {
        eprintln!("e2e: NOTE the book has no diagram; themes are checked without diagrams");
    }
    let url = book.url(page);
    let broken = book.broken(page);
    b.emulate_color_scheme("light").await?;
    b.goto(&url).await?;
    b.js("localStorage.clear();", vec![]).await?;
    b.goto(&url).await?;
    b.wait_js("the diagrams to render", RENDER_TIMEOUT, SETTLED_JS, vec![])
        .await?;
    let ids: Vec<String> = serde_json::from_value(
        b.js(
            "return [...document.querySelectorAll('#mdbook-theme-list button.theme')]\
             .map(e => e.id.replace(/^mdbook-theme-/, ''));",
            vec![],
        )
        .await?,
    )?;
    let defaults: (String, String) = serde_json::from_value(
        b.js("return [default_light_theme, default_dark_theme];", vec![])
            .await?,
    )
    .context("reading mdBook's default_light_theme and default_dark_theme")?;
    let (light_default, dark_default) = defaults;
    if !ids.iter().any(|i| i == "default_theme") {
        failures.push("themes", "the picker has no \"Auto\" (default_theme) entry");
    }
    if !ids.iter().any(|i| DARK_THEMES.contains(&i.as_str())) {
        failures.push("themes", "the picker offers no dark theme");
    }

    let here = format!("on {page}");
    expect_theme(
        b,
        &format!("first load {here}"),
        &light_default,
        &broken,
        failures,
    )
    .await?;
    // Every entry, in picker order, with the system preference light.
    for id in &ids {
        let class = if id == "default_theme" {
            &light_default
        } else {
            id
        };
        pick_theme(b, id).await?;
        expect_theme(
            b,
            &format!("picked {id:?} {here}"),
            class,
            &broken,
            failures,
        )
        .await?;
    }
    // "Auto" when the system turns dark: the case the stock script misses.
    pick_theme(b, "light").await?;
    expect_theme(
        b,
        &format!("picked \"light\" {here}"),
        "light",
        &broken,
        failures,
    )
    .await?;
    b.emulate_color_scheme("dark").await?;
    expect_theme(
        b,
        &format!("system turned dark, \"light\" still picked {here}"),
        "light",
        &broken,
        failures,
    )
    .await?;
    pick_theme(b, "default_theme").await?;
    expect_theme(
        b,
        &format!("picked \"Auto\" with a dark system {here}"),
        &dark_default,
        &broken,
        failures,
    )
    .await?;
    b.emulate_color_scheme("light").await?;
    expect_theme(
        b,
        &format!("\"Auto\" picked, system turned light {here}"),
        &light_default,
        &broken,
        failures,
    )
    .await?;
    b.emulate_color_scheme("dark").await?;
    expect_theme(
        b,
        &format!("\"Auto\" picked, system turned dark {here}"),
        &dark_default,
        &broken,
        failures,
    )
    .await?;
    b.goto(&url).await?;
    expect_theme(
        b,
        &format!("page opened with \"Auto\" and a dark system {here}"),
        &dark_default,
        &broken,
        failures,
    )
    .await?;

    b.emulate_color_scheme("light").await?;
    b.js("localStorage.clear();", vec![]).await?;
    for error in console_errors(&b.log("browser").await?, &server.origin()) {
        if broken.is_empty() || !is_diagram_error(&error) {
            failures.push("themes", format!("console error: {error}"));
        }
    }
    let _ = b.log("performance").await?;
    Ok(ids)
}

/// A missing page answers 404 with the book's own 404 page, styled and with
/// a working sidebar, even two directories deep.
pub(crate) async fn not_found(
    b: &Browser,
    server: &StaticServer,
    failures: &mut Failures,
) -> Result<()> {
    let missing = server.base().join("no/such/chapter.html")?;
    b.goto(server.base().as_str()).await?;
    let status = b.js(STATUS_JS, vec![json!(missing.as_str())]).await?;
    if status != json!(404) {
        failures.push("404", format!("{missing} answered {status}, not 404"));
    }
    let _ = b.log("browser").await?;
    let _ = b.log("performance").await?;

    b.goto(missing.as_str()).await?;
    let state = b
        .js(
            r#"
            const sheets = [...document.styleSheets].filter(s => !s.disabled && s.href);
            const loaded = sheets.filter(s => { try { return s.cssRules.length > 0; } catch (e) { return false; } });
            const links = [...document.querySelectorAll('#mdbook-sidebar a[href]')].map(a => a.href);
            return {
                title: document.title,
                h1: (document.querySelector('main h1') || {}).textContent || '',
                sheets: sheets.length,
                loaded: loaded.length,
                links,
                scripts: typeof hljs !== 'undefined' && typeof mermaid !== 'undefined',
            };
            "#,
            vec![],
        )
        .await?;
    if !state["h1"].as_str().unwrap_or_default().contains("404")
        && !state["title"].as_str().unwrap_or_default().contains("404")
    {
        failures.push(
            "404",
            format!("{missing} did not show the 404 page: {state}"),
        );
    }
    if state["sheets"] == json!(0) || state["sheets"] != state["loaded"] {
        failures.push(
            "404",
            format!("stylesheets did not load at {missing} (is site-url right?): {state}"),
        );
    }
    if state["scripts"] != json!(true) {
        failures.push("404", format!("scripts did not load at {missing}"));
    }
    let links: Vec<String> = serde_json::from_value(state["links"].clone()).unwrap_or_default();
    if links.is_empty() {
        failures.push("404", "the 404 page has no sidebar links");
    }
    for error in console_errors(&b.log("browser").await?, &server.origin()) {
        // The page itself answering 404 is the point.
        if !error.contains(missing.as_str()) {
            failures.push("404", format!("console error: {error}"));
        }
    }
    let log = b.log("performance").await?;
    for problem in super::network_problems(&log, &server.origin(), Some(missing.as_str())) {
        failures.push("404", problem);
    }
    for href in links {
        let status = b.js(STATUS_JS, vec![json!(href)]).await?;
        if status != json!(200) {
            failures.push("404", format!("sidebar link {href} answered {status}"));
        }
    }
    Ok(())
}

/// The introduction and the page with the most diagrams, light and dark.
pub(crate) async fn screenshots(
    b: &Browser,
    book: &BookView<'_>,
    out: &Path,
    failures: &mut Failures,
) -> Result<Vec<PathBuf>> {
    let dark: String = serde_json::from_value(b.js("return default_dark_theme;", vec![]).await?)?;
    let mut pages: Vec<&str> = book.introduction().into_iter().collect();
    if let Some(p) = book.most_diagrams()
        && !pages.contains(&p)
    {
        pages.push(p);
    }
    let mut written = Vec::new();
    for page in pages {
        let url = book.url(page);
        let name = page.trim_end_matches(".html").replace('/', "-");
        let broken = book.broken(page);
        for theme in ["light", dark.as_str()] {
            b.goto(&url).await?;
            b.js(
                "localStorage.setItem('mdbook-theme', arguments[0]);",
                vec![json!(theme)],
            )
            .await?;
            b.goto(&url).await?;
            expect_theme(
                b,
                &format!("screenshot of {page}"),
                theme,
                &broken,
                failures,
            )
            .await?;
            // The first diagram at the top, below the menu bar, if there is one.
            b.js(
                "const d = document.querySelector('pre.mermaid'); \
                 window.scrollTo(0, d ? d.getBoundingClientRect().top + window.scrollY - 80 : 0);",
                vec![],
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = b.screenshot().await?;
            let path = out.join(format!("{name}-{theme}.png"));
            std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
            if png.len() < 10_000 {
                failures.push(
                    page,
                    format!("screenshot {} is suspiciously small", path.display()),
                );
            }
            written.push(path);
        }
    }

    // What the readability checks measured at their worst, in the light
    // theme: the widest table and the figure with the smallest text.
    let mut worst: Vec<(String, &str, &str, usize)> = Vec::new();
    if let Some((page, i, _)) = book.widest_table() {
        worst.push(("widest-table".into(), page, "table", i));
    }
    if let Some((page, f, _)) = book.smallest_text() {
        worst.push(("smallest-text".into(), page, f.kind.as_str(), f.index));
    }
    for (what, page, kind, index) in worst {
        let url = book.url(page);
        b.goto(&url).await?;
        b.js("localStorage.setItem('mdbook-theme', 'light');", vec![])
            .await?;
        b.goto(&url).await?;
        let _ = b
            .wait_js("the diagrams to render", RENDER_TIMEOUT, SETTLED_JS, vec![])
            .await;
        let found = b.js(SCROLL_TO_JS, vec![json!(kind), json!(index)]).await?;
        if found != json!(true) {
            failures.push(
                page,
                format!("{kind} {} not found for its screenshot", index + 1),
            );
            continue;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = b.screenshot().await?;
        let name = page.trim_end_matches(".html").replace('/', "-");
        let path = out.join(format!("{what}-{name}.png"));
        std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }

    b.js("localStorage.clear();", vec![]).await?;
    let _ = b.log("browser").await?;
    let _ = b.log("performance").await?;
    Ok(written)
}

/// Scrolls the `arguments[1]`-th element of a kind (as `layout` counts
/// them) to the top, below the menu bar; false when there is none.
const SCROLL_TO_JS: &str = r#"
const [kind, index] = arguments;
const main = document.querySelector('main');
const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
const isSvgFile = (img) => /\.svg$/i.test(new URL(img.currentSrc || img.src, location.href).pathname);
const all = {
    'table': () => [...main.querySelectorAll('table')],
    'diagram': () => [...main.querySelectorAll('pre.mermaid')],
    'inline SVG': () => [...main.querySelectorAll('svg')].filter(svg =>
        !svg.closest('pre.mermaid') && !(svg.parentElement && svg.parentElement.closest('svg')) && visible(svg)),
    'plot': () => [...main.querySelectorAll('img')].filter(img => isSvgFile(img) && visible(img)),
};
const el = main && all[kind] ? all[kind]()[index] : null;
if (!el) return false;
window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 80);
return true;
"#;
