//! The book as a reader gets it, inside `cargo test`: the same browser suite
//! as `cargo xtask e2e`, the PDF as `cargo xtask pdf` prints and checks it,
//! and proofs that a broken diagram, a table wider than the column and a
//! plot with tiny text fail the suite by name.
//!
//! They need Chromium and chromedriver (`apt-get install -y chromium
//! chromium-driver poppler-utils`). Without them each test prints one
//! `SKIPPED: needs Chromium ...` line and passes, unless
//! `SDB_REQUIRE_SERVICES=1`: then it fails, as for any other service.
//!
//! `.ci/run` runs `cargo xtask e2e` and `cargo xtask pdf` as steps of their
//! own and sets `SDB_E2E_VIA_XTASK=1` for `cargo test`, so the suite and the
//! PDF are not done twice; the proofs run either way, as no xtask command
//! does them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use browser::e2e::{self, Chromium, Scope, site};
use browser::static_server::TEST_PREFIX;

/// One Chromium at a time: the machines running `cargo test` have few cores.
static BROWSER: Mutex<()> = Mutex::new(());

/// Set by `.ci/run`, which runs the same code as `cargo xtask e2e` / `pdf`.
const VIA_XTASK_VAR: &str = "SDB_E2E_VIA_XTASK";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium and chromedriver, or `None` after the loud skip line.
fn chromium() -> Option<Chromium> {
    match Chromium::find() {
        Ok(c) => Some(c),
        Err(why) => {
            testkit::unavailable(
                "Chromium",
                Chromium::EXPECTED_AT,
                &why,
                testkit::services_required(),
            );
            None
        }
    }
}

fn via_xtask(what: &str) -> bool {
    let deferred = std::env::var(VIA_XTASK_VAR).is_ok_and(|v| v == "1");
    if deferred {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "DEFERRED: {what} runs as `cargo xtask {what}` ({VIA_XTASK_VAR}=1)"
        );
    }
    deferred
}

#[test]
fn every_page_works_in_a_real_browser() {
    if via_xtask("e2e") {
        return;
    }
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let out = root().join("target").join("e2e");
    match e2e::run(&root(), &out, &chromium, Scope::All) {
        Ok(report) => eprint!("{report}"),
        Err(e) => panic!("{e:#}"),
    }
}

#[test]
fn the_book_prints_to_a_pdf_with_every_chapter_and_vector_diagrams() {
    if via_xtask("pdf") {
        return;
    }
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().expect("temp dir");
    let site_dir = tmp.path().join("book");
    site::build(&root(), &site_dir, None).expect("building the book");
    let pdf = site_dir.join(browser::pdf::PDF_NAME);
    let log_dir = root().join("target").join("e2e");
    let printed = browser::pdf::print(&site_dir, &root().join("src"), &pdf, &chromium, &log_dir)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = browser::pdf::check(&site_dir, &pdf, &printed).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.pages >= report.chapters, "{report:?}");
    eprintln!("{report:?}");
}

/// The page with the most diagrams, or the first chapter with one injected.
fn break_a_diagram(site_dir: &Path) -> (String, usize) {
    const BROKEN: &str = "flowchart LR\n    A[[[ --&gt; ((";
    let pages = site::html_pages(site_dir).expect("pages");
    let chapters: Vec<&String> = pages
        .iter()
        .filter(|p| {
            !matches!(
                p.as_str(),
                "index.html" | "print.html" | "404.html" | "toc.html"
            )
        })
        .collect();
    let counted = chapters.iter().map(|p| {
        let html = std::fs::read_to_string(site_dir.join(p)).expect("page");
        (p.to_string(), site::mermaid_sources(&html).len())
    });
    let (page, count) = counted
        .max_by_key(|(_, n)| *n)
        .expect("the book has a chapter");
    let path = site_dir.join(&page);
    let html = std::fs::read_to_string(&path).expect("page");
    let html = if count > 0 {
        let start = html.find("<pre class=\"mermaid\">").expect("a diagram") + 21;
        let end = start + html[start..].find("</pre>").expect("end of the diagram");
        format!("{}{BROKEN}{}", &html[..start], &html[end..])
    } else {
        html.replacen(
            "<main>",
            &format!("<main>\n<pre class=\"mermaid\">{BROKEN}</pre>\n"),
            1,
        )
    };
    std::fs::write(&path, html).expect("writing the page");
    (page, count.max(1))
}

#[test]
fn a_broken_diagram_fails_the_suite_naming_page_and_diagram() {
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().expect("temp dir");
    let site_dir = tmp.path().join("site");
    site::build(&root(), &site_dir, Some(TEST_PREFIX)).expect("building the book");
    let (page, count) = break_a_diagram(&site_dir);

    let err = e2e::check_site(
        &site_dir,
        &root().join("src"),
        tmp.path(),
        &chromium,
        Scope::Page(&page),
    )
    .expect_err("a broken diagram must fail the browser suite");
    let message = format!("{err:#}");
    let named = format!("{page}: diagram 1 of {count}");
    assert!(
        message.contains(&named) && message.contains("failed to render"),
        "the failure should name {named:?} and say it failed to render:\n{message}"
    );
}

/// A chapter page holding neither a table nor an image, to add both to.
fn plain_chapter(site_dir: &Path) -> String {
    let pages = site::chapters(site_dir).expect("chapters");
    pages
        .into_iter()
        .find(|p| {
            let html = std::fs::read_to_string(site_dir.join(p)).expect("page");
            html.contains("<main>") && !html.contains("<table") && !html.contains("<img")
        })
        .expect("a chapter without tables and images")
}

#[test]
fn a_table_wider_than_the_column_and_a_plot_with_tiny_text_fail_the_suite_with_their_sizes() {
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().expect("temp dir");
    let site_dir = tmp.path().join("site");
    site::build(&root(), &site_dir, Some(TEST_PREFIX)).expect("building the book");
    let page = plain_chapter(&site_dir);

    // Twelve columns of headers that may not wrap (the book's CSS lets long
    // words in cells break, so a real table narrows), and a 2000 px wide plot with
    // 12 px labels, squeezed into the column.
    let header: String = (1..=12)
        .map(|i| format!("<th style=\"white-space: nowrap\">column_number_{i}</th>"))
        .collect();
    let row: String = (1..=12).map(|i| format!("<td>{i}</td>")).collect();
    let table = format!(
        "<h2 id=\"sdb-wide\">A wide table</h2>\n<div class=\"table-wrapper\"><table>\
         <thead><tr>{header}</tr></thead><tbody><tr>{row}</tr></tbody></table></div>\n"
    );
    let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"2000\" height=\"400\" viewBox=\"0 0 2000 400\">\
               <text x=\"10\" y=\"200\" font-size=\"12\">tiny axis label</text></svg>";
    let dir = Path::new(&page).parent().unwrap_or(Path::new(""));
    std::fs::write(site_dir.join(dir).join("sdb-tiny-plot.svg"), svg).expect("writing the plot");
    let plot = "<p><img src=\"sdb-tiny-plot.svg\" alt=\"a plot drawn too wide\"></p>\n";
    let path = site_dir.join(&page);
    let html = std::fs::read_to_string(&path).expect("page");
    let html = html.replacen("</main>", &format!("{table}{plot}</main>"), 1);
    std::fs::write(&path, html).expect("writing the page");

    let err = e2e::check_site(
        &site_dir,
        &root().join("src"),
        tmp.path(),
        &chromium,
        Scope::Page(&page),
    )
    .expect_err("a table wider than the column must fail the browser suite");
    let message = format!("{err:#}");
    let lines: Vec<&str> = message
        .lines()
        .filter(|l| l.contains(&format!("{page}: ")))
        .collect();
    let table = lines
        .iter()
        .find(|l| l.contains("table 1 of 1 under \"A wide table\" (12 columns: column_number_1"))
        .unwrap_or_else(|| panic!("no failure names the wide table of {page}:\n{message}"));
    assert!(
        table.contains("px wide but the content column is") && table.contains("scrolls sideways"),
        "{table}"
    );
    let plot = lines
        .iter()
        .find(|l| l.contains("plot 1 of 1 (sdb-tiny-plot.svg, under \"A wide table\")"))
        .unwrap_or_else(|| panic!("no failure names the tiny plot of {page}:\n{message}"));
    assert!(
        plot.contains("from 2000 px") && plot.contains("1 of 1 labels render below"),
        "{plot}"
    );
}
