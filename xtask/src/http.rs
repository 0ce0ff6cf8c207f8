//! A small blocking HTTP/1.1 file server for `cargo xtask serve`.
//!
//! One thread per connection, one request per connection (`Connection:
//! close`), GET and HEAD only: enough for one reader's browser on localhost,
//! and it needs no async runtime, which is most of what a cold
//! `cargo xtask serve` used to compile. A directory answers with its
//! `index.html` (a redirect adds the missing `/` first, so relative links
//! resolve), a missing file with the site's `404.html` and status 404, and a
//! path that would leave the site (`..`, a backslash, an absolute path) with
//! 400 before the file system is asked.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A response computed by the caller for a path it handles itself.
pub struct Dynamic {
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// Answers a path with [`Dynamic`] content, or `None` to serve a file.
pub type Routes = dyn Fn(&str) -> Option<Dynamic> + Send + Sync;

/// Serves the files under `site` on `listener` until the process ends.
///
/// `routes` is asked first for every path (before files), e.g. for the live
/// reload's version number.
pub fn serve(listener: TcpListener, site: PathBuf, routes: Arc<Routes>) {
    let site = Arc::new(site);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let site = Arc::clone(&site);
        let routes = Arc::clone(&routes);
        std::thread::spawn(move || {
            // A client that hangs up early is not our problem.
            let _ = handle(stream, &site, &*routes);
        });
    }
}

/// Reads one request from `stream` and answers it.
fn handle(mut stream: TcpStream, site: &Path, routes: &Routes) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    let mut header_bytes = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        header_bytes += n;
        if n == 0 || line == "\r\n" || line == "\n" || header_bytes > 64 * 1024 {
            break;
        }
    }
    let response = respond(&request_line, site, routes);
    stream.write_all(&response)?;
    stream.flush()
}

/// The full response (status line, headers, body) to one request line.
pub fn respond(request_line: &str, site: &Path, routes: &Routes) -> Vec<u8> {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return text(400, "Bad Request", "bad request line\n", false);
    };
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return text(405, "Method Not Allowed", "only GET and HEAD\n", false),
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    let Some(path) = percent_decode(path) else {
        return text(400, "Bad Request", "bad percent-encoding\n", head);
    };
    if let Some(d) = routes(&path) {
        return response(200, "OK", d.content_type, &d.body, head, &[]);
    }
    let Some(relative) = inside(&path) else {
        return text(400, "Bad Request", "path outside the site\n", head);
    };
    let file = site.join(&relative);
    if file.is_dir() {
        if !path.ends_with('/') {
            let location = format!("{}/", target.split('?').next().unwrap_or(""));
            return response(
                301,
                "Moved Permanently",
                "text/plain; charset=utf-8",
                b"",
                head,
                &[("Location", &location)],
            );
        }
        return file_or_404(&file.join("index.html"), site, head);
    }
    file_or_404(&file, site, head)
}

/// `path` (absolute, decoded) as a path relative to the site, or `None` if
/// it could name anything outside it.
fn inside(path: &str) -> Option<PathBuf> {
    if !path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The file at `file`, or the site's `404.html` with status 404.
fn file_or_404(file: &Path, site: &Path, head: bool) -> Vec<u8> {
    match std::fs::read(file) {
        Ok(body) if file.is_file() => response(200, "OK", content_type(file), &body, head, &[]),
        _ => match std::fs::read(site.join("404.html")) {
            Ok(body) => response(
                404,
                "Not Found",
                "text/html; charset=utf-8",
                &body,
                head,
                &[],
            ),
            Err(_) => text(404, "Not Found", "not found\n", head),
        },
    }
}

/// The `Content-Type` of a file, by its extension.
pub fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("eot") => "application/vnd.ms-fontobject",
        Some("pdf") => "application/pdf",
        Some("xml") => "application/xml",
        Some("txt" | "md" | "rs" | "toml" | "sql" | "sh" | "yml" | "yaml") => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A plain-text response.
fn text(status: u16, reason: &str, body: &str, head: bool) -> Vec<u8> {
    response(
        status,
        reason,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head,
        &[],
    )
}

/// Status line, headers and (unless `head`) body. `no-cache`: after a
/// rebuild the reload must fetch the new files, not the browser's copies.
fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(d.join("index.html"), "<h1>home</h1>").expect("write");
        std::fs::write(d.join("404.html"), "<h1>lost</h1>").expect("write");
        std::fs::create_dir_all(d.join("ch/a b")).expect("mkdir");
        std::fs::write(d.join("ch/index.html"), "<h1>chapter</h1>").expect("write");
        std::fs::write(d.join("ch/a b/x.css"), "body{}").expect("write");
        std::fs::write(d.join("book.js"), "let x;").expect("write");
        std::fs::write(d.join("search.json"), "{}").expect("write");
        std::fs::write(dir.path().with_extension("secret"), "secret").expect("write");
        dir
    }

    fn no_routes(_: &str) -> Option<Dynamic> {
        None
    }

    fn ask(site: &Path, line: &str) -> (String, String) {
        let raw = respond(line, site, &no_routes);
        let raw = String::from_utf8(raw).expect("utf-8");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        (head.to_string(), body.to_string())
    }

    #[test]
    fn files_are_served_with_their_content_types() {
        let dir = site();
        let (head, body) = ask(dir.path(), "GET /book.js HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Type: text/javascript"), "{head}");
        assert!(head.contains("Content-Length: 6"), "{head}");
        assert_eq!(body, "let x;");
        let (head, _) = ask(dir.path(), "GET /search.json?v=1 HTTP/1.1");
        assert!(head.contains("Content-Type: application/json"), "{head}");
        let (head, body) = ask(dir.path(), "GET /ch/a%20b/x.css HTTP/1.1");
        assert!(head.contains("Content-Type: text/css"), "{head}");
        assert_eq!(body, "body{}");
    }

    #[test]
    fn a_directory_serves_its_index_and_gets_its_slash() {
        let dir = site();
        let (head, body) = ask(dir.path(), "GET / HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, "<h1>home</h1>");
        let (head, body) = ask(dir.path(), "GET /ch/ HTTP/1.1");
        assert!(head.contains("text/html"), "{head}");
        assert_eq!(body, "<h1>chapter</h1>");
        let (head, _) = ask(dir.path(), "GET /ch?x=1 HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 301"), "{head}");
        assert!(
            head.contains("Location: /ch/\r\n") || head.ends_with("Location: /ch/"),
            "{head}"
        );
    }

    #[test]
    fn a_missing_file_is_a_404_with_the_books_page() {
        let dir = site();
        let (head, body) = ask(dir.path(), "GET /nope.html HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert!(head.contains("text/html"), "{head}");
        assert_eq!(body, "<h1>lost</h1>");
    }

    #[test]
    fn paths_out_of_the_site_are_refused() {
        let dir = site();
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        for target in [
            format!("/../{name}.secret"),
            format!("/%2e%2e/{name}.secret"),
            format!("/ch/..%2f..%2f{name}.secret"),
            "/..\\x".to_string(),
            "//etc/passwd".to_string(),
            "/%ff".to_string(),
        ] {
            let (head, body) = ask(dir.path(), &format!("GET {target} HTTP/1.1"));
            assert!(
                head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 404"),
                "{target}: {head}"
            );
            assert!(!body.contains("secret"), "{target}: {body}");
        }
    }

    #[test]
    fn head_has_the_headers_and_no_body_and_other_methods_are_refused() {
        let dir = site();
        let (head, body) = ask(dir.path(), "HEAD /book.js HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Length: 6"), "{head}");
        assert_eq!(body, "");
        let (head, _) = ask(dir.path(), "POST /book.js HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 405"), "{head}");
        let (head, _) = ask(dir.path(), "garbage");
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    }

    #[test]
    fn routes_come_before_files_over_a_real_socket() -> std::io::Result<()> {
        let dir = site();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let site = dir.path().to_path_buf();
        let routes: Arc<Routes> = Arc::new(|p: &str| {
            (p == "/version").then(|| Dynamic {
                content_type: "text/plain; charset=utf-8",
                body: b"7".to_vec(),
            })
        });
        std::thread::spawn(move || serve(listener, site, routes));
        let get = |path: &str| -> std::io::Result<String> {
            let mut s = TcpStream::connect(addr)?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        assert!(get("/version")?.ends_with("\r\n\r\n7"));
        assert!(get("/book.js")?.ends_with("\r\n\r\nlet x;"));
        assert!(get("/missing")?.starts_with("HTTP/1.1 404"));
        Ok(())
    }
}
