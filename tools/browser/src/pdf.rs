//! `cargo xtask pdf`: the whole book as one PDF, printed by headless Chromium.
//!
//! mdBook's `print.html` holds every chapter, one after another, with a page
//! break before each. It is served over HTTP (the same server as the browser
//! tests), opened in Chromium, and printed with DevTools' `Page.printToPDF`
//! only after every diagram has been drawn as an SVG, the fonts have loaded
//! and the images are complete (a `--print-to-pdf` command line can only
//! guess with a time budget). The print goes over a DevTools connection of
//! our own ([`crate::e2e::devtools`]), not through chromedriver, which
//! allows any print 10 s. Diagrams are printed in mermaid's light theme.
//! The page's own `window.print()` on load is replaced by a no-op before
//! its scripts run (see [`Browser::launch`]), so it cannot start a print
//! job that ours would collide with.
//!
//! Then the PDF is checked with poppler's tools (`pdfinfo`, `pdftotext`,
//! `pdftocairo`, `pdftohtml`): a plausible number of pages for the amount of
//! text, every chapter title, in order and with a bookmark in the PDF's
//! outline, no mermaid error text, and each diagram present as vector
//! drawing — its labels are text in the PDF, and the page it is on has
//! path drawings.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::e2e::browser::{Browser, Chromium};
use crate::e2e::{DIAGRAMS_JS, DiagramState, SETTLED_JS, console_errors, session, site};
use crate::static_server::StaticServer;

/// File name of the PDF, inside the built site so it is published beside it.
pub const PDF_NAME: &str = "designing-systems-in-rust.pdf";

/// What the browser saw on print.html before printing.
#[derive(Debug, Deserialize)]
pub struct Printed {
    /// Each diagram, in page order.
    pub diagrams: Vec<PrintedDiagram>,
    /// Words of the rendered print page, as a reader sees them.
    pub words: usize,
    /// Calls the page made to `window.print()` (made harmless), counted
    /// once ours is done.
    #[serde(default)]
    pub page_print_calls: usize,
}

/// One diagram as drawn in the browser.
#[derive(Debug, Deserialize)]
pub struct PrintedDiagram {
    /// Its text labels (node names, messages), without repeats.
    pub labels: Vec<String>,
    /// Visible shapes (rectangles, paths, lines, ...), outside markers and definitions.
    pub shapes: usize,
}

/// What the PDF check found.
#[derive(Debug)]
pub struct PdfReport {
    /// Pages in the PDF.
    pub pages: usize,
    /// Words in the PDF's text.
    pub words: usize,
    /// Chapter titles found.
    pub chapters: usize,
    /// Entries of the PDF's outline (its bookmarks, from the headings).
    pub bookmarks: usize,
    /// Diagrams found as vector drawings.
    pub diagrams: usize,
}

/// `cargo xtask pdf [--book DIR]`: build `book/` as `cargo xtask build` does, print it, check the PDF.
pub fn cli(repo: &Path, args: &[String]) -> Result<ExitCode> {
    let mut book_root = repo.to_path_buf();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--book" => book_root = PathBuf::from(it.next().context("--book needs a directory")?),
            other => bail!("unknown pdf option {other:?}"),
        }
    }
    let chromium = Chromium::find().map_err(|why| {
        anyhow!("{why}\ninstall it with: apt-get install -y chromium chromium-driver poppler-utils")
    })?;
    let site = book_root.join("book");
    xtask::book::build_html(&book_root, &site, true)?;
    let pdf = site.join(PDF_NAME);
    let started = Instant::now();
    let printed = print(
        &site,
        &book_root.join("src"),
        &pdf,
        &chromium,
        &repo.join("target").join("e2e"),
    )?;
    let printing = started.elapsed();
    let report = check(&site, &pdf, &printed)?;
    println!(
        "wrote {} ({} pages, {} words, {} chapters, {} bookmarks, {} diagrams as vector drawings; \
         the page's own window.print() calls neutralised: {}); printed in {:.1?}, checked in {:.1?}",
        pdf.display(),
        report.pages,
        report.words,
        report.chapters,
        report.bookmarks,
        report.diagrams,
        printed.page_print_calls,
        printing,
        started.elapsed() - printing,
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints `site`'s print.html to `pdf` with headless Chromium, once every diagram is drawn.
///
/// `src` is the book's markdown (to name a diagram that failed); the
/// chromedriver log goes to `log_dir`. Blocking; starts its own runtime.
pub fn print(
    site: &Path,
    src: &Path,
    pdf: &Path,
    chromium: &Chromium,
    log_dir: &Path,
) -> Result<Printed> {
    session::with_browser(
        site,
        chromium,
        log_dir,
        Duration::from_secs(600),
        "printing print.html",
        async |b, server| print_with(b, server, site, src, pdf).await,
    )
}

/// How long the print itself may take: about 8 s for today's book on a
/// quiet two-core machine; the limit leaves room for a busy machine and a
/// larger book.
const PRINT_LIMIT: Duration = Duration::from_secs(300);

/// Centimetres to the inches DevTools measures paper in.
const CM: f64 = 1.0 / 2.54;

/// `Page.printToPDF`'s parameters: A4 with 1.5 cm margins, backgrounds
/// printed (code blocks and tables keep their shading), no browser header
/// or footer, and an outline (bookmarks) made from the headings, which
/// needs a tagged PDF.
fn print_params() -> Json {
    json!({
        "paperWidth": 21.0 * CM,
        "paperHeight": 29.7 * CM,
        "marginTop": 1.5 * CM,
        "marginBottom": 1.5 * CM,
        "marginLeft": 1.5 * CM,
        "marginRight": 1.5 * CM,
        "printBackground": true,
        "displayHeaderFooter": false,
        "generateTaggedPDF": true,
        "generateDocumentOutline": true,
    })
}

const LABELS_JS: &str = r#"
const visible = (e) => {
    if (e.closest('defs, marker')) return false;
    const s = getComputedStyle(e);
    return s.display !== 'none' && s.visibility !== 'hidden'
        && (s.fill !== 'none' || s.stroke !== 'none');
};
return {
    diagrams: [...document.querySelectorAll('pre.mermaid')].map((pre) => {
        const labels = [...pre.querySelectorAll('svg text, svg .nodeLabel, svg .edgeLabel, svg foreignObject')]
            .map(e => e.textContent.replace(/\s+/g, ' ').trim())
            .filter(t => t.length >= 2);
        const shapes = [...pre.querySelectorAll('svg rect, svg path, svg line, svg circle, svg ellipse, svg polygon, svg polyline')]
            .filter(visible).length;
        return { labels: [...new Set(labels)], shapes };
    }),
    words: (document.querySelector('main').innerText.match(/\S+/g) || []).length,
};
"#;

async fn print_with(
    b: &Browser,
    server: &StaticServer,
    site: &Path,
    src: &Path,
    pdf: &Path,
) -> Result<Printed> {
    b.emulate_color_scheme("light").await?;
    let url = server.base().join("print.html")?;
    b.goto(url.as_str()).await?;
    b.js("localStorage.clear();", vec![]).await?;
    b.goto(url.as_str()).await?;
    // print.html prints itself on load; printing it again while that job
    // runs fails ("Page is already being printed"). The session replaced
    // window.print before the page's scripts ran; refuse to print if not.
    if !b.print_is_neutralised().await? {
        bail!(
            "print.html: window.print is still the browser's own, so the page's \
             automatic print would race this one; the DevTools command \
             Page.addScriptToEvaluateOnNewDocument did not take effect"
        );
    }
    b.wait_js(
        "the diagrams of print.html to render",
        Duration::from_secs(60),
        SETTLED_JS,
        vec![],
    )
    .await?;
    let states: Vec<DiagramState> = serde_json::from_value(b.js(DIAGRAMS_JS, vec![]).await?)?;
    let html = std::fs::read_to_string(site.join("print.html"))?;
    let sources = site::mermaid_sources(&html);
    let mut broken = Vec::new();
    for (i, d) in states.iter().enumerate() {
        if d.error.is_some()
            || d.error_output
            || d.error_text.is_some()
            || !d.svg
            || d.dark != Some(false)
        {
            let source = sources.get(i).map(String::as_str);
            let name = site::name_diagram(site, src, "print.html", i, states.len(), source);
            let text;
            let why = match (&d.error, &d.error_text) {
                (Some(e), _) => e.as_str(),
                (None, Some(t)) => {
                    text = format!("shows mermaid's error text {t}");
                    text.as_str()
                }
                (None, None) if d.svg => "is not drawn in the light theme",
                (None, None) => "was not rendered",
            };
            broken.push(format!(
                "{name}: {}",
                why.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    if !broken.is_empty() {
        bail!(
            "print.html: not printing, diagrams failed:\n  - {}",
            broken.join("\n  - ")
        );
    }
    b.wait_js(
        "fonts and images to load",
        Duration::from_secs(30),
        "return document.fonts.ready.then(() => document.fonts.status === 'loaded' \
             && [...document.images].every(i => i.complete));",
        vec![],
    )
    .await?;
    let mut printed: Printed = serde_json::from_value(b.js(LABELS_JS, vec![]).await?)?;
    let errors = console_errors(&b.log("browser").await?, &server.origin());
    if !errors.is_empty() {
        bail!("print.html: console errors:\n  - {}", errors.join("\n  - "));
    }

    // Links to pages and source pages of the site point at the published
    // site in the PDF, so they work wherever the PDF is read.
    let root = src.parent().unwrap_or(src);
    let toml = root.join("book.toml");
    let book_config = mdbook_driver::config::Config::from_disk(&toml)
        .map_err(|e| anyhow!("reading {}: {e:#}", toml.display()))?;
    let published = xtask::book::published_site(&book_config)?;
    b.js(xtask::book::PDF_LINKS_JS, vec![published.into()])
        .await?;
    // Over our own DevTools connection: chromedriver gives a print 10 s.
    let mut devtools = b.devtools().await?;
    let bytes = tokio::time::timeout(PRINT_LIMIT, devtools.print_to_pdf(print_params()))
        .await
        .map_err(|_| anyhow!("printing print.html did not finish within {PRINT_LIMIT:?}"))?
        .context("printing print.html")?;
    let calls = b.js("return window.__sdbPrintCalls || 0;", vec![]).await?;
    printed.page_print_calls = serde_json::from_value(calls)?;
    if let Some(dir) = pdf.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(pdf, &bytes).with_context(|| format!("writing {}", pdf.display()))?;
    Ok(printed)
}

/// Checks the printed PDF against the site it was printed from.
pub fn check(site: &Path, pdf: &Path, printed: &Printed) -> Result<PdfReport> {
    let info = poppler("pdfinfo", &[pdf.as_os_str()])?;
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("pdfinfo printed no page count:\n{info}"))?;
    let text = poppler(
        "pdftotext",
        &[
            "-enc".as_ref(),
            "UTF-8".as_ref(),
            pdf.as_os_str(),
            "-".as_ref(),
        ],
    )?;
    let page_texts: Vec<String> = text.split('\u{c}').map(normalize).collect();
    let all = normalize(&text);
    let words = all.split_whitespace().count();

    let mut problems = Vec::new();

    // Chapters: each title, in order.
    let chapters = site::chapters(site)?;
    let mut found = 0;
    let mut from = 0;
    let mut titles = Vec::new();
    for chapter in &chapters {
        let html = std::fs::read_to_string(site.join(chapter))?;
        let Some(title) = site::first_heading(&html) else {
            problems.push(format!("{chapter} has no <h1> to look for"));
            continue;
        };
        let title = normalize(&title);
        titles.push((title.clone(), chapter.clone()));
        match all[from..].find(&title) {
            Some(at) => {
                from += at + title.len();
                found += 1;
            }
            None if all.contains(&title) => problems.push(format!(
                "chapter title {title:?} ({chapter}) is out of order"
            )),
            None => problems.push(format!("chapter title {title:?} ({chapter}) is missing")),
        }
    }

    // A plausible size: a page per chapter at least (each starts a page),
    // nothing of the text lost, and pages neither empty nor overfull.
    if pages < chapters.len() {
        problems.push(format!(
            "{pages} pages for {} chapters, each of which starts a page",
            chapters.len()
        ));
    }
    if (words as f64) < 0.8 * printed.words as f64 {
        problems.push(format!(
            "the PDF has {words} words of text, the print page {}: text was lost",
            printed.words
        ));
    }
    let per_page = words as f64 / pages.max(1) as f64;
    if !(20.0..=1200.0).contains(&per_page) {
        problems.push(format!(
            "{per_page:.0} words per page over {pages} pages is not a printed book"
        ));
    }

    // A bookmark for every chapter, so a PDF reader can navigate the book.
    let bookmarks = outline(pdf)?;
    for (title, chapter) in &titles {
        if !bookmarks.contains(title) {
            problems.push(format!(
                "chapter title {title:?} ({chapter}) has no bookmark in the PDF's outline"
            ));
        }
    }

    // No mermaid error text anywhere.
    for needle in [
        "Syntax error in text",
        "Parse error on line",
        "Unsupported markdown",
    ] {
        if all.contains(&normalize(needle)) {
            problems.push(format!("the PDF shows mermaid's error text {needle:?}"));
        }
    }

    // Each diagram: its labels are text (so it is vector, not a bitmap),
    // and the page they are on draws at least half as many paths as the
    // diagrams placed there have shapes (Chromium prints each SVG shape as
    // a PDF path; a bitmap or an empty box would draw none).
    let squeezed: Vec<String> = page_texts.iter().map(|t| squeeze(t)).collect();
    let mut on_page: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, d) in printed.diagrams.iter().enumerate() {
        let name = format!(
            "diagram {} of {} in print.html",
            i + 1,
            printed.diagrams.len()
        );
        if d.labels.is_empty() {
            problems.push(format!("{name} has no text labels to look for"));
            continue;
        }
        let missing: Vec<&String> = d
            .labels
            .iter()
            .filter(|l| !squeezed.iter().any(|p| p.contains(&squeeze(l))))
            .collect();
        if missing.len() * 2 > d.labels.len() {
            problems.push(format!(
                "{name}: labels {missing:?} are not text in the PDF (drawn as a bitmap, or missing)"
            ));
            continue;
        }
        let page = squeezed
            .iter()
            .enumerate()
            .max_by_key(|(_, p)| d.labels.iter().filter(|l| p.contains(&squeeze(l))).count())
            .map_or(1, |(n, _)| n + 1);
        on_page.entry(page).or_default().push(i);
    }
    let mut vector = 0;
    for (page, diagrams) in on_page {
        let shapes: usize = diagrams.iter().map(|&i| printed.diagrams[i].shapes).sum();
        let paths = drawn_paths(pdf, page)?;
        if paths * 2 < shapes {
            let numbers: Vec<String> = diagrams.iter().map(|i| (i + 1).to_string()).collect();
            problems.push(format!(
                "page {page}: diagrams {} have {shapes} shapes in the browser but the page draws {paths} paths",
                numbers.join(", ")
            ));
            continue;
        }
        vector += diagrams.len();
    }

    if !problems.is_empty() {
        bail!(
            "{} has {} problem(s):\n  - {}",
            pdf.display(),
            problems.len(),
            problems.join("\n  - ")
        );
    }
    Ok(PdfReport {
        pages,
        words,
        chapters: found,
        bookmarks: bookmarks.len(),
        diagrams: vector,
    })
}

/// Paths drawn on one page (not glyph outlines), from poppler's SVG rendering of it.
fn drawn_paths(pdf: &Path, page: usize) -> Result<usize> {
    let dir = tempfile::tempdir()?;
    let out: PathBuf = dir.path().join("page.svg");
    let n = page.to_string();
    poppler(
        "pdftocairo",
        &[
            "-svg".as_ref(),
            "-f".as_ref(),
            n.as_ref(),
            "-l".as_ref(),
            n.as_ref(),
            pdf.as_os_str(),
            out.as_os_str(),
        ],
    )?;
    let svg = std::fs::read_to_string(&out)?;
    // Glyphs are <path>s inside <defs>, used by reference; drawings are not.
    let body = svg.rsplit_once("</defs>").map_or(svg.as_str(), |(_, b)| b);
    Ok(body.matches("<path").count())
}

fn poppler(tool: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(tool).args(args).output().map_err(|e| {
        anyhow!("running {tool}: {e} (install it with: apt-get install -y poppler-utils)")
    })?;
    if !out.status.success() {
        bail!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The PDF's outline entries (bookmarks), normalised, as `pdftohtml -xml` lists them.
fn outline(pdf: &Path) -> Result<Vec<String>> {
    let xml = poppler(
        "pdftohtml",
        &[
            "-xml".as_ref(),
            "-i".as_ref(),
            "-q".as_ref(),
            "-stdout".as_ref(),
            pdf.as_os_str(),
        ],
    )?;
    Ok(outline_items(&xml))
}

/// The text of each `<item>` of pdftohtml's XML outline.
fn outline_items(xml: &str) -> Vec<String> {
    let item = regex::Regex::new(r"<item\b[^>]*>([^<]*)</item>").expect("a valid pattern");
    item.captures_iter(xml)
        .map(|c| {
            let text = c[1]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            normalize(&text)
        })
        .collect()
}

/// Text as PDF extraction gives it, made comparable: ligatures undone, quotes and spaces unified.
fn normalize(s: &str) -> String {
    let s = s
        .replace('\u{fb00}', "ff")
        .replace('\u{fb01}', "fi")
        .replace('\u{fb02}', "fl")
        .replace('\u{fb03}', "ffi")
        .replace('\u{fb04}', "ffl")
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text without any whitespace, for labels a diagram may wrap differently.
fn squeeze(s: &str) -> String {
    normalize(s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_items_are_unescaped_and_normalised() {
        let xml = r#"<pdf2xml><outline>
<item page="1">Introduction</item>
<outline><item page="3">Reads &amp; writes:   &lt;T&gt;</item></outline>
</outline><page number="1"><text>Introduction</text></page></pdf2xml>"#;
        assert_eq!(
            outline_items(xml),
            [
                "Introduction".to_string(),
                "Reads & writes: <T>".to_string()
            ]
        );
    }
}
