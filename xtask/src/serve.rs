//! `cargo xtask serve`: the book with live reload, built in-process.
//!
//! Nothing is installed: the book is built with the same mdbook-driver and
//! mdbook-mermaid library versions the book checks use
//! ([`crate::book::build_html`], which also writes the source pages). A
//! watcher polls the files the book is made from every half second; after a
//! change it rebuilds into a staging directory, swaps it in, and bumps a
//! version number. Every served page carries a small script that polls that
//! number and reloads the page when it changes.
//!
//! Polling, not OS notifications: a few thousand `stat` calls a second cost
//! nothing, work the same on every platform, and need no extra crate. The
//! files are served by the small blocking server of [`crate::http`], so the
//! reader's first command compiles no async runtime.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::http::{Dynamic, Routes};

/// Where the served copy of the book is built.
fn site_dir(root: &Path) -> PathBuf {
    root.join("target").join("xtask-serve").join("site")
}

/// The path the reload script polls.
const VERSION_PATH: &str = "/__sdb_version";

/// Polls [`VERSION_PATH`] once a second and reloads the page when the version changes.
const RELOAD_SCRIPT: &str = r#"<script>
(function () {
  var seen = null;
  function poll() {
    fetch("/__sdb_version", { cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (v) {
        if (seen === null) { seen = v; } else if (v !== seen) { location.reload(); return; }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>
"#;

/// What the book is made from: a change under any of these rebuilds it.
const WATCHED: &[&str] = &[
    "src",
    "chapters-code",
    "benches",
    "book.toml",
    "theme-extra",
    "mermaid-init.js",
];

/// Options of `cargo xtask serve`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on.
    pub hostname: String,
    /// Port to listen on.
    pub port: u16,
    /// Open the book in the default browser.
    pub open: bool,
}

/// Builds the book, serves it, and rebuilds on every change until interrupted.
pub fn run(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let site = site_dir(root);
    if let Err(e) = build(root, &site) {
        // Keep serving: the next change that makes the book build reloads the page.
        eprintln!("build failed; fix it and the page reloads: {e:#}");
        std::fs::create_dir_all(&site).with_context(|| format!("creating {}", site.display()))?;
        let page = format!(
            "<!DOCTYPE html><html><body><h1>The book does not build</h1><pre>{}</pre>{RELOAD_SCRIPT}</body></html>",
            format!("{e:#}").replace('&', "&amp;").replace('<', "&lt;")
        );
        std::fs::write(site.join("index.html"), &page)?;
        std::fs::write(site.join("404.html"), &page)?;
    }
    let version = Arc::new(AtomicU64::new(1));
    let addr = format!("{}:{}", options.hostname, options.port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("binding {addr}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    println!(
        "serving the book at {url} (first page ready {:.1} s after start); Ctrl-C stops",
        started.elapsed().as_secs_f64()
    );
    if options.open {
        open_browser(&url);
    }
    {
        let root = root.to_path_buf();
        let version = Arc::clone(&version);
        std::thread::spawn(move || watch(&root, &version));
    }
    let routes: Arc<Routes> = Arc::new(move |path: &str| {
        (path == VERSION_PATH).then(|| Dynamic {
            content_type: "text/plain; charset=utf-8",
            body: version.load(Ordering::SeqCst).to_string().into_bytes(),
        })
    });
    // Runs until Ctrl-C ends the process: there is nothing to save on the way out.
    crate::http::serve(listener, site, routes);
    Ok(())
}

/// Rebuilds after every change under [`WATCHED`]; a failed build is printed and the old site kept.
fn watch(root: &Path, version: &AtomicU64) {
    let mut last = fingerprint(root);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = fingerprint(root);
        if now == last {
            continue;
        }
        last = now;
        let t = Instant::now();
        match build(root, &site_dir(root)) {
            Ok(()) => {
                version.fetch_add(1, Ordering::SeqCst);
                println!("rebuilt in {:.1} s", t.elapsed().as_secs_f64());
            }
            Err(e) => eprintln!("build failed, still serving the last good one: {e:#}"),
        }
    }
}

/// Builds into a staging directory, adds the reload script, then swaps it in.
fn build(root: &Path, site: &Path) -> Result<()> {
    let staging = site.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    crate::book::build_html(root, &staging, true)?;
    inject_reload_script(&staging)?;
    let old = site.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if site.exists() {
        std::fs::rename(site, &old).with_context(|| format!("moving {}", site.display()))?;
    }
    std::fs::rename(&staging, site).with_context(|| format!("moving in {}", site.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Adds [`RELOAD_SCRIPT`] before `</body>` of every HTML file under `dir`.
fn inject_reload_script(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let html =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(at) = html.rfind("</body>") {
            let mut out = String::with_capacity(html.len() + RELOAD_SCRIPT.len());
            out.push_str(&html[..at]);
            out.push_str(RELOAD_SCRIPT);
            out.push_str(&html[at..]);
            std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The newest modification time and the number of files under [`WATCHED`] (build output skipped).
fn fingerprint(root: &Path) -> (Option<SystemTime>, usize) {
    let mut newest = None;
    let mut count = 0;
    for top in WATCHED {
        let walker = walkdir::WalkDir::new(root.join(top))
            .into_iter()
            .filter_entry(|e| e.file_name() != "target" && e.file_name() != ".git");
        for entry in walker.flatten() {
            count += 1;
            if let Some(m) = entry.metadata().ok().and_then(|m| m.modified().ok()) {
                newest = newest.max(Some(m));
            }
        }
    }
    (newest, count)
}

/// Asks the desktop to open `url`; failing that, the URL printed above is enough.
fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        if std::process::Command::new(opener).arg(url).spawn().is_ok() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_script_goes_before_the_closing_body() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let page = dir.path().join("a.html");
        std::fs::write(&page, "<html><body><p>x</p></body></html>")?;
        std::fs::write(dir.path().join("b.css"), "body{}")?;
        inject_reload_script(dir.path())?;
        let html = std::fs::read_to_string(&page)?;
        assert!(html.contains("__sdb_version"));
        assert!(html.find("__sdb_version") < html.find("</body>"));
        assert_eq!(std::fs::read_to_string(dir.path().join("b.css"))?, "body{}");
        Ok(())
    }

    #[test]
    fn a_change_moves_the_fingerprint() -> Result<()> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("src"))?;
        let before = fingerprint(root.path());
        std::fs::write(root.path().join("src/new.md"), "# New")?;
        assert_ne!(fingerprint(root.path()), before);
        Ok(())
    }
}
