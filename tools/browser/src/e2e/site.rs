//! The built site as files: which pages exist, which diagrams each holds,
//! and which references point at another host. No browser needed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use regex::Regex;
use walkdir::WalkDir;

use xtask::book;

/// Builds the HTML book at `root` into `dest`, with mermaid, for a site served under `site_url`.
///
/// Same in-process build as `cargo xtask build`; `site_url` (an absolute
/// path ending in `/`) overrides `output.html.site-url` from `book.toml`.
/// Every page links relatively and works under any path; only `404.html`,
/// which a host serves at whatever URL was missing, has to know where the
/// book's root is, and mdBook writes it into that page's `<base href>`.
pub fn build(root: &Path, dest: &Path, site_url: Option<&str>) -> Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("clearing {}", dest.display()))?;
    }
    let mut md = book::load(root, dest)?;
    if let Some(site_url) = site_url {
        md.config
            .set("output.html.site-url", site_url)
            .map_err(|e| anyhow!("setting output.html.site-url: {e}"))?;
    }
    md.with_preprocessor(mdbook_mermaid::Mermaid);
    // The same build as `cargo xtask build`, source pages included.
    book::build_loaded(&mut md)?;
    Ok(())
}

/// Every HTML file of the site, as a URL path relative to the root (`method/framework.html`), sorted.
pub fn html_pages(site: &Path) -> Result<Vec<String>> {
    let mut pages = Vec::new();
    for entry in WalkDir::new(site) {
        let entry = entry?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "html") {
            pages.push(url_path(site, entry.path()));
        }
    }
    pages.sort();
    Ok(pages)
}

fn url_path(site: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(site).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The source text of each ```mermaid block in a built page, in page order.
pub fn mermaid_sources(html: &str) -> Vec<String> {
    let re = Regex::new(r#"(?s)<pre class="mermaid">(.*?)</pre>"#).expect("valid regex");
    re.captures_iter(html)
        .map(|c| unescape(&c[1]).trim().to_string())
        .collect()
}

/// Undoes the HTML escaping mdbook-mermaid applies to a diagram's source.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<h1>` inside `<main>`, tags stripped; `None` when there is none.
pub fn first_heading(html: &str) -> Option<String> {
    let main = html.split_once("<main>").map_or(html, |(_, m)| m);
    let re = Regex::new(r"(?s)<h1\b[^>]*>(.*?)</h1>").expect("valid regex");
    let inner = re.captures(main)?.get(1)?.as_str();
    let tags = Regex::new(r"<[^>]*>").expect("valid regex");
    let text = unescape(&tags.replace_all(inner, ""));
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Where diagram `index` (0-based) of `page` was written: `src/<page>.md:<line>` when
/// the markdown file holds exactly as many ```mermaid fences as the page has diagrams.
pub fn diagram_origin(src: &Path, page: &str, index: usize, count: usize) -> Option<String> {
    let md_rel = page.strip_suffix(".html")?.to_string() + ".md";
    let md_path: PathBuf = src.join(&md_rel);
    let text = std::fs::read_to_string(&md_path).ok()?;
    let fences: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.starts_with("```mermaid") || l.starts_with("~~~mermaid")
        })
        .map(|(i, _)| i + 1)
        .collect();
    if fences.len() != count {
        return None;
    }
    let dir = src
        .file_name()
        .map_or("src".into(), |n| n.to_string_lossy());
    Some(format!("{dir}/{md_rel}:{}", fences[index]))
}

/// Names a diagram for a failure message: number, where it was written, first line.
pub fn describe_diagram(
    src: &Path,
    page: &str,
    index: usize,
    count: usize,
    source: Option<&str>,
) -> String {
    let mut s = format!("diagram {} of {count}", index + 1);
    if let Some(origin) = diagram_origin(src, page, index, count) {
        s += &format!(" ({origin})");
    }
    if let Some(first) = source.and_then(|src| src.lines().find(|l| !l.trim().is_empty())) {
        s += &format!(" `{}`", first.trim());
    }
    s
}

/// References in the site's HTML tags and CSS that make the browser fetch from another host.
///
/// Links a reader clicks (`<a href>`) are fine; a `<script src>`, a
/// stylesheet, an image, a font or an `@import` from another host is not:
/// the site must work offline and tell no third party who reads it.
pub fn external_references(site: &Path) -> Result<Vec<String>> {
    let tag = Regex::new(
        r#"(?is)<(script|link|img|iframe|source|video|audio|embed|object|track|input)\b[^>]*?\b(src|href|data|srcset|poster)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)"#,
    )
    .expect("valid regex");
    let css = Regex::new(r#"(?i)(?:url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')\s]+)"#)
        .expect("valid regex");
    let mut found = Vec::new();
    for entry in WalkDir::new(site) {
        let entry = entry?;
        let path = entry.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let re = match ext {
            "html" => &tag,
            "css" => &css,
            _ => continue,
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for c in re.captures_iter(&text) {
            let url = c.get(c.len() - 1).map_or("", |m| m.as_str());
            found.push(format!("{}: {url}", url_path(site, path)));
        }
    }
    Ok(found)
}

/// For a diagram on a page that gathers others (print.html, index.html):
/// the chapter page holding the same source, as (page, index, count).
/// `None` when `page` is a chapter itself or no chapter holds the source.
pub fn find_diagram(site: &Path, source: &str, page: &str) -> Option<(String, usize, usize)> {
    if page != "print.html" && page != "index.html" {
        return None;
    }
    let pages = html_pages(site).ok()?;
    pages
        .into_iter()
        .filter(|p| !matches!(p.as_str(), "print.html" | "index.html" | "404.html"))
        .find_map(|other| {
            let html = std::fs::read_to_string(site.join(&other)).ok()?;
            let sources = mermaid_sources(&html);
            let i = sources.iter().position(|s| s == source)?;
            Some((other, i, sources.len()))
        })
}

/// Names a diagram for a failure message, following one on print.html or
/// index.html back to the chapter it comes from.
pub fn name_diagram(
    site: &Path,
    src: &Path,
    page: &str,
    index: usize,
    count: usize,
    source: Option<&str>,
) -> String {
    let mut name = describe_diagram(src, page, index, count, source);
    if let Some((from, i, n)) = source.and_then(|s| find_diagram(site, s, page)) {
        name += &format!(
            ", which is {from} {}",
            describe_diagram(src, &from, i, n, None)
        );
    }
    name
}

/// The chapter pages in table-of-contents order, from `toc.html` (the
/// sidebar mdBook writes for readers without JavaScript).
pub fn chapters(site: &Path) -> Result<Vec<String>> {
    let toc = std::fs::read_to_string(site.join("toc.html"))
        .with_context(|| format!("reading {}", site.join("toc.html").display()))?;
    let re = Regex::new(r##"<a href="([^"#?:]+\.html)"##).expect("valid regex");
    let mut out: Vec<String> = Vec::new();
    for c in re.captures_iter(&toc) {
        let page = c[1].to_string();
        if !out.contains(&page) {
            out.push(page);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagram_sources_are_unescaped_in_page_order() {
        let html = "<p>x</p><pre class=\"mermaid\">flowchart LR\n A --&gt; B[&quot;b &amp; c&quot;]\n</pre>\
                    <pre class=\"mermaid\">sequenceDiagram\n</pre>";
        assert_eq!(
            mermaid_sources(html),
            ["flowchart LR\n A --> B[\"b & c\"]", "sequenceDiagram"]
        );
    }

    #[test]
    fn the_first_heading_of_main_loses_its_tags() {
        let html = "<h1>menu</h1><main><h1 id=\"x\"><a class=\"header\" href=\"#x\">Capacity &amp; cost</a></h1><h1>Two</h1></main>";
        assert_eq!(first_heading(html).as_deref(), Some("Capacity & cost"));
    }

    #[test]
    fn only_fetched_references_to_other_hosts_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("page.html"),
            r#"<a href="https://github.com/x">repo</a>
               <link rel="stylesheet" href="css/local.css">
               <script src="https://cdn.example.com/m.js"></script>
               <img alt="" src="//img.example.com/a.png">"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("fonts.css"),
            "@font-face { src: url('fonts/a.woff2'); }\n@import 'https://fonts.googleapis.com/css?family=X';",
        )
        .unwrap();
        let mut found = external_references(dir.path()).unwrap();
        found.sort();
        assert_eq!(
            found,
            [
                "fonts.css: https://fonts.googleapis.com/css?family=X",
                "page.html: //img.example.com/a.png",
                "page.html: https://cdn.example.com/m.js",
            ]
        );
    }

    #[test]
    fn a_diagram_is_traced_to_its_markdown_line() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("method")).unwrap();
        std::fs::write(
            src.join("method/framework.md"),
            "# T\n\n```mermaid\nflowchart LR\n```\n\ntext\n\n```mermaid\nsequenceDiagram\n```\n",
        )
        .unwrap();
        assert_eq!(
            describe_diagram(
                &src,
                "method/framework.html",
                1,
                2,
                Some("\nsequenceDiagram\n  A->>B: x")
            ),
            "diagram 2 of 2 (src/method/framework.md:9) `sequenceDiagram`"
        );
        // A count that does not match (a diagram from an include) gives no line.
        assert_eq!(
            describe_diagram(&src, "method/framework.html", 0, 3, None),
            "diagram 1 of 3"
        );
    }
}
