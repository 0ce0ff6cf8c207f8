//! The book as a reader gets it, inside `cargo test`: the same browser suite
//! as `cargo xtask e2e`, the PDF as `cargo xtask pdf` prints and checks it,
//! and a proof that a broken diagram fails the suite by name.
//!
//! They need Chromium and chromedriver (`apt-get install -y chromium
//! chromium-driver poppler-utils`). Without them each test prints one
//! `SKIPPED: needs Chromium ...` line and passes, unless
//! `SDB_REQUIRE_SERVICES=1`: then it fails, as for any other service.
//!
//! `.ci/run` runs `cargo xtask e2e` and `cargo xtask pdf` as steps of their
//! own and sets `SDB_E2E_VIA_XTASK=1` for `cargo test`, so the suite and the
//! PDF are not done twice; the broken-diagram proof runs either way, as no
//! xtask command does it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xtask::e2e::{self, Chromium, Scope, site};
use xtask::static_server::TEST_PREFIX;

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
    let pdf = site_dir.join(xtask::pdf::PDF_NAME);
    let log_dir = root().join("target").join("e2e");
    let printed = xtask::pdf::print(&site_dir, &root().join("src"), &pdf, &chromium, &log_dir)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = xtask::pdf::check(&site_dir, &pdf, &printed).unwrap_or_else(|e| panic!("{e:#}"));
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
        Scope::Pages,
    )
    .expect_err("a broken diagram must fail the browser suite");
    let message = format!("{err:#}");
    let named = format!("{page}: diagram 1 of {count}");
    assert!(
        message.contains(&named) && message.contains("failed to render"),
        "the failure should name {named:?} and say it failed to render:\n{message}"
    );
}
