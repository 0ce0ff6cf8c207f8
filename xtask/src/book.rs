//! Building the book in-process, with the same library versions the book
//! checks use, so `cargo xtask build` needs no installed binaries.
//!
//! Every build goes through [`build_loaded`]: mdBook renders the pages with
//! the [`Sources`] preprocessor, which turns links to repository files into
//! links to source pages, and then the source pages are written into the
//! site (see [`crate::sources`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use mdbook_driver::MDBook;
use mdbook_driver::config::Config;

use crate::sources::{self, Sources, Written};

/// The key in `book.toml` of the URL where the book is published (ending in `/`).
///
/// It lives in the table of the in-process [`Sources`] preprocessor because
/// mdBook 0.5 refuses unknown top-level tables and unknown keys of
/// `[output.html]`; `[preprocessor.<name>]` tables may hold any key.
pub const SITE_KEY: &str = "preprocessor.sources.site";

/// Loads the book at `root`, set to build into `build_dir`, without the mermaid
/// and sources steps.
///
/// The `[preprocessor.mermaid]` table in `book.toml` names the
/// `mdbook-mermaid` binary, which `mdbook serve` needs. Here the table is
/// removed so the driver does not look for the binary; callers add the
/// library's preprocessor with `with_preprocessor(mdbook_mermaid::Mermaid)`
/// (or leave it out, which the book checks do to prove the omission is seen).
/// `[preprocessor.sources]` is removed likewise: [`build_loaded`] adds it.
pub fn load(root: &Path, build_dir: &Path) -> Result<MDBook> {
    let toml = root.join("book.toml");
    let mut config =
        Config::from_disk(&toml).with_context(|| format!("reading {}", toml.display()))?;
    let mut preprocessors: BTreeMap<String, serde_json::Value> = config
        .preprocessors()
        .context("reading the [preprocessor] table")?;
    preprocessors.remove("mermaid");
    preprocessors.remove(sources::NAME);
    config
        .set("preprocessor", preprocessors)
        .map_err(|e| anyhow!("rewriting [preprocessor]: {e}"))?;
    config.build.build_dir = build_dir.to_path_buf();
    MDBook::load_with_config(root, config)
        .map_err(|e| anyhow!("loading the book at {}: {e:#}", root.display()))
}

/// Builds the HTML book rooted at `root` into `dest`; returns `dest`.
///
/// `mermaid: false` leaves diagrams as code blocks (for tests of the checks).
pub fn build_html(root: &Path, dest: &Path, mermaid: bool) -> Result<PathBuf> {
    let mut book = load(root, dest)?;
    if mermaid {
        book.with_preprocessor(mdbook_mermaid::Mermaid);
    }
    build_loaded(&mut book)?;
    Ok(dest.to_path_buf())
}

/// Builds a book from [`load`] (with whatever preprocessors the caller
/// added) into its build directory, source pages included.
///
/// Adds the [`Sources`] preprocessor, runs mdBook, then writes the source
/// pages of every repository file the pages link to. Fails, naming the page
/// and the link, when a link names a file, line or item that is not there.
pub fn build_loaded(book: &mut mdbook_driver::MDBook) -> Result<Written> {
    let sources = Sources::new();
    book.with_preprocessor(sources.clone());
    book.build()
        .map_err(|e| anyhow!("building the book: {e:#}"))?;
    let site = book.build_dir_for("html");
    sources::write_pages(&site, &book.root, &sources.published())
        .with_context(|| format!("writing the source pages into {}", site.display()))
}

/// The URL where the book is published, from `book.toml` ([`SITE_KEY`]); ends in `/`.
///
/// Problem type URIs of the chapters start with it, and the PDF resolves
/// its relative links (source pages) against it.
pub fn published_site(config: &Config) -> Result<String> {
    let site: String = config
        .get(SITE_KEY)
        .map_err(|e| anyhow!("reading {SITE_KEY}: {e:#}"))?
        .ok_or_else(|| anyhow!("book.toml sets no {SITE_KEY}"))?;
    if !(site.starts_with("https://") || site.starts_with("http://")) || !site.ends_with('/') {
        anyhow::bail!("{SITE_KEY} = {site:?} must be an absolute http(s) URL ending in /");
    }
    Ok(site)
}

/// JavaScript for the PDF: points every relative link of the page (source
/// pages, files of the site) at the published site, so that links in the
/// PDF work wherever it is read. Links within the page (`#...`) stay.
/// Evaluate it in `print.html` before printing, with the site as argument 0.
pub const PDF_LINKS_JS: &str = r#"
const site = arguments[0];
let changed = 0;
for (const a of document.querySelectorAll('a[href]')) {
    const href = a.getAttribute('href');
    if (href === '' || href.startsWith('#') || /^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('/')) {
        continue;
    }
    a.setAttribute('href', new URL(href, site).href);
    changed += 1;
}
return changed;
"#;

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn the_site_setting_lives_where_mdbook_accepts_it() {
        // mdBook 0.5 refuses a table of our own, and an unknown key of
        // [output.html] silently drops the whole HTML configuration ...
        assert!(Config::from_str("[sdb]\nsite = \"https://example.org/\"\n").is_err());
        let html = "[output.html]\ndefault-theme = \"navy\"\nsite = \"https://example.org/\"\n";
        let html = Config::from_str(html).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(html.html_config().is_none());
        // ... but a preprocessor's table may hold any key.
        let config = Config::from_str(
            "[preprocessor.sources]\noptional = true\nsite = \"https://example.org/book/\"\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            published_site(&config).unwrap_or_else(|e| panic!("{e:#}")),
            "https://example.org/book/"
        );
        for bad in ["/book/", "https://example.org/book"] {
            let toml = format!("[preprocessor.sources]\nsite = \"{bad}\"\n");
            let config = Config::from_str(&toml).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(published_site(&config).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_repository_book_names_its_published_site() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config::from_disk(root.join("book.toml")).unwrap_or_else(|e| panic!("{e:#}"));
        let site = published_site(&config).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(site.starts_with("https://"), "{site}");
    }
}
