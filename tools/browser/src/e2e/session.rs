//! One browser session over the served book: the setup the browser suite
//! (`cargo xtask e2e`) and the PDF printer (`cargo xtask pdf`) share.
//!
//! It builds a small tokio runtime, serves the built site under
//! [`TEST_PREFIX`], launches headless Chromium (which neutralises
//! `window.print`, see [`Browser::launch`]), runs the caller's steps under a
//! time limit, and quits the browser whatever happened, so a failing or hung
//! run leaves no Chromium behind.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::browser::{Browser, Chromium};
use crate::static_server::{StaticServer, TEST_PREFIX};

/// Serves `site` (built for [`TEST_PREFIX`]), opens a browser whose
/// chromedriver log goes to `log_dir`, and runs `steps` within `limit`.
///
/// `what` names the steps in the time-out error ("printing print.html did
/// not finish within 600s"). Blocking: starts and ends its own runtime.
pub fn with_browser<T>(
    site: &Path,
    chromium: &Chromium,
    log_dir: &Path,
    limit: Duration,
    what: &str,
    steps: impl AsyncFnOnce(&Browser, &StaticServer) -> Result<T>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = StaticServer::start(site, TEST_PREFIX).await?;
        let browser = Browser::launch(chromium, log_dir).await?;
        let result = tokio::time::timeout(limit, steps(&browser, &server)).await;
        browser.quit().await;
        result.map_err(|_| anyhow!("{what} did not finish within {limit:?}"))?
    })
}
