//! A static file server for the built book, as a host serves it.
//!
//! The browser tests and the PDF printer load the book over HTTP, not from
//! `file://`: search loads its index with a script tag, `fetch` is refused
//! for files, and a site that only works at `/` is a site that breaks on
//! GitHub Pages. So the book is served under a sub-path (by default
//! `/sub/path/`), on `127.0.0.1` with a port the OS picks, and a missing file
//! answers with the book's own `404.html` and status 404, as a host does.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_http::services::{ServeDir, ServeFile};

/// The sub-path the tests serve the book under: deep enough to catch a
/// link or asset that assumes the site root.
pub const TEST_PREFIX: &str = "/sub/path/";

/// A running server; stops when dropped.
pub struct StaticServer {
    base: url::Url,
    stop: Option<oneshot::Sender<()>>,
}

impl StaticServer {
    /// Serves `dir` at `http://127.0.0.1:<port><prefix>`; `prefix` starts and ends with `/`.
    ///
    /// Must be called inside a tokio runtime; the server runs as a task on it.
    pub async fn start(dir: &Path, prefix: &str) -> Result<Self> {
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            bail!("prefix {prefix:?} must start and end with '/'");
        }
        if !dir.join("index.html").is_file() {
            bail!("{} holds no built book (no index.html)", dir.display());
        }
        let files = ServeDir::new(dir)
            .append_index_html_on_directories(true)
            .not_found_service(ServeFile::new(dir.join("404.html")));
        let app = if prefix == "/" {
            Router::new().fallback_service(files)
        } else {
            Router::new().nest_service(prefix.trim_end_matches('/'), files)
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                eprintln!("static server on {addr} failed: {e}");
            }
        });
        let base = url::Url::parse(&format!("http://{addr}{prefix}"))?;
        Ok(Self {
            base,
            stop: Some(stop),
        })
    }

    /// The URL of the book's root, ending in `/`.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// `host:port` the server listens on: the only origin the book may talk to.
    pub fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
