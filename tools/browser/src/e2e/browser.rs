//! Headless Chromium driven through chromedriver (WebDriver, via fantoccini).
//!
//! Chromium is found at `/usr/bin/chromium` (Debian's package) or on `PATH`;
//! `SDB_CHROMIUM` and `SDB_CHROMEDRIVER` override the paths. Each [`Browser`]
//! gets its own chromedriver on a free port and a fresh profile directory,
//! so runs never share cookies, local storage or cache.
//!
//! Two chromedriver extensions beyond W3C WebDriver are used, through
//! fantoccini's raw command interface: `se/log` (the browser console and
//! the DevTools network events, switched on by `goog:loggingPrefs`) and
//! `goog/cdp/execute` (DevTools commands, for emulating a dark
//! `prefers-color-scheme` and for replacing `window.print` before a page's
//! scripts run). A command that may take long (the PDF print) goes over a
//! DevTools connection of our own instead ([`Browser::devtools`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value as Json, json};

use super::devtools::DevTools;

/// Environment variable naming the Chromium (or Chrome) binary.
pub const CHROMIUM_VAR: &str = "SDB_CHROMIUM";
/// Environment variable naming the chromedriver binary.
pub const CHROMEDRIVER_VAR: &str = "SDB_CHROMEDRIVER";

/// Where Chromium and its driver live on this machine.
#[derive(Clone, Debug)]
pub struct Chromium {
    /// The browser binary.
    pub browser: PathBuf,
    /// The matching chromedriver.
    pub driver: PathBuf,
}

impl Chromium {
    /// Where Chromium is expected, for "needs Chromium at ..." messages.
    pub const EXPECTED_AT: &'static str = "/usr/bin/chromium";

    /// Finds both binaries, or says what is missing and where it looked.
    pub fn find() -> std::result::Result<Chromium, String> {
        let browser = locate(
            CHROMIUM_VAR,
            "/usr/bin/chromium",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let driver =
            locate(CHROMEDRIVER_VAR, "/usr/bin/chromedriver", &["chromedriver"]).or_else(|why| {
                // GitHub's Ubuntu runners keep chromedriver off PATH.
                std::env::var_os("CHROMEWEBDRIVER")
                    .map(|d| PathBuf::from(d).join("chromedriver"))
                    .filter(|p| p.is_file())
                    .ok_or(why)
            });
        match (browser, driver) {
            (Ok(browser), Ok(driver)) => Ok(Chromium { browser, driver }),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
            (Err(why), _) | (_, Err(why)) => Err(why),
        }
    }
}

/// `$var` if set, else `default` if it exists, else the first of `names` on `PATH`.
fn locate(var: &str, default: &str, names: &[&str]) -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{var}={} does not exist", p.display()))
        };
    }
    if Path::new(default).is_file() {
        return Ok(PathBuf::from(default));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "no {} (looked at {default} and for {} on PATH; set {var})",
        names[0],
        names.join(", ")
    ))
}

/// The command-line flags every headless session starts with.
///
/// No background networking, component updates, sync or QUIC: the browser
/// must make no request of its own, so any request to another host in the
/// network log came from the book.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--force-device-scale-factor=1",
    "--window-size=1280,900",
    "--lang=en-US",
];

/// Run in every new document before its scripts: `window.print()` counts
/// its calls in `window.__sdbPrintCalls` and prints nothing.
pub const NO_PRINT_JS: &str = r#"(() => {
    window.__sdbPrintCalls = 0;
    window.print = function print() { window.__sdbPrintCalls += 1; };
})();"#;

/// One headless Chromium session with its own chromedriver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: tokio::process::Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session; the driver's log goes to `log_dir`.
    pub async fn launch(chromium: &Chromium, log_dir: &Path) -> Result<Browser> {
        std::fs::create_dir_all(log_dir)?;
        let profile = tempfile::Builder::new()
            .prefix("sdb-chromium-")
            .tempdir()
            .context("creating a Chromium profile directory")?;
        let port = free_port()?;
        let driver = tokio::process::Command::new(&chromium.driver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log_dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromium.driver.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on 127.0.0.1:{port} within 30s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium.browser,
                "args": args,
                "perfLoggingPrefs": { "enableNetwork": true, "enablePage": false },
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let Json::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(Capabilities::from(caps))
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let mut driver = driver;
                let _ = driver.kill().await;
                kill_leftovers(profile.path()).await;
                return Err(anyhow!(
                    "opening a session of {} through {}: {e}",
                    chromium.browser.display(),
                    chromium.driver.display()
                ));
            }
        };
        let browser = Browser {
            client,
            driver,
            profile,
        };
        // Debian's Chromium opens its start page in the first tab; let that
        // fail and drop its traces, so the first page checked owns its logs.
        let settled = async {
            browser.goto("about:blank").await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            browser.log("browser").await?;
            browser.log("performance").await
        }
        .await;
        let settled = match settled {
            Ok(_) => browser.neutralise_print().await,
            Err(e) => Err(e),
        };
        match settled {
            Ok(()) => Ok(browser),
            Err(e) => {
                browser.quit().await;
                Err(e)
            }
        }
    }

    /// Replaces `window.print` with a function that only counts its calls,
    /// in every document this session opens, before the page's own scripts run.
    ///
    /// mdBook's `print.html` calls `window.print()` itself, 100 ms after it
    /// loads. Headless Chromium has no dialog to show, but it does start a
    /// print job, and a WebDriver Print issued while that job runs fails
    /// with "Page is already being printed" (Debian's Chromium
    /// 156.0.8078.108 did so in most runs). Which one wins is timing, so
    /// the page's call is made
    /// harmless instead: DevTools' `Page.addScriptToEvaluateOnNewDocument`
    /// runs [`NO_PRINT_JS`] in each new document ahead of any page script,
    /// and `print.html` captures the replacement when it reads
    /// `window.print`. [`Browser::print_is_neutralised`] says whether it took.
    async fn neutralise_print(&self) -> Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": NO_PRINT_JS }),
        )
        .await
        .map(drop)
        .context("replacing window.print before page scripts run")
    }

    /// True when the current page's `window.print` is the counting
    /// replacement, not the browser's own.
    pub async fn print_is_neutralised(&self) -> Result<bool> {
        let v = self
            .js(
                "return typeof window.__sdbPrintCalls === 'number' \
                 && !/\\[native code\\]/.test(String(window.print));",
                vec![],
            )
            .await?;
        Ok(v == json!(true))
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    ///
    /// When chromedriver could not end the session (a hung or crashed
    /// browser), the Chromium processes it started outlive it; they are
    /// found by this session's own profile directory and killed by pid.
    pub async fn quit(mut self) {
        let close = self.client.clone().close();
        let _ = tokio::time::timeout(Duration::from_secs(20), close).await;
        let _ = self.driver.kill().await;
        kill_leftovers(self.profile.path()).await;
    }

    /// Navigates and waits for the `load` event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Json>) -> Result<Json> {
        self.client
            .execute(script, args)
            .await
            .map_err(|e| anyhow!("running script: {e}\n{}", first_line(script)))
    }

    /// Runs `script` until it returns a truthy value, which is returned; an error after `timeout`.
    pub async fn wait_js(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        args: Vec<Json>,
    ) -> Result<Json> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone()).await?;
            if truthy(&value) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what} (last value: {value})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Drains the browser's log of one kind (`"browser"` or `"performance"`).
    pub async fn log(&self, kind: &'static str) -> Result<Vec<LogEntry>> {
        let value = self
            .client
            .issue_cmd(GoogCommand::Log(kind))
            .await
            .map_err(|e| anyhow!("reading the {kind} log: {e}"))?;
        serde_json::from_value(value).with_context(|| format!("parsing the {kind} log"))
    }

    /// Sends a Chrome DevTools Protocol command to the current page.
    pub async fn cdp(&self, cmd: &'static str, params: Json) -> Result<Json> {
        self.client
            .issue_cmd(GoogCommand::Cdp(cmd, params))
            .await
            .map_err(|e| anyhow!("DevTools {cmd}: {e}"))
    }

    /// A DevTools connection of our own to the current page, bypassing
    /// chromedriver's fixed 10 s limit on each command (see [`DevTools`]).
    pub async fn devtools(&self) -> Result<DevTools> {
        let debugger = self
            .client
            .capabilities()
            .and_then(|caps| caps.get("goog:chromeOptions"))
            .and_then(|options| options.get("debuggerAddress"))
            .and_then(Json::as_str)
            .context(
                "chromedriver reported no goog:chromeOptions.debuggerAddress for this session",
            )?
            .to_string();
        let info = self.cdp("Target.getTargetInfo", json!({})).await?;
        let target = info
            .pointer("/targetInfo/targetId")
            .and_then(Json::as_str)
            .context("Target.getTargetInfo named no target")?;
        DevTools::connect(&debugger, target).await
    }

    /// Makes `prefers-color-scheme` report `dark` or `light`, as an OS setting would.
    pub async fn emulate_color_scheme(&self, scheme: &str) -> Result<()> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        self.client
            .screenshot()
            .await
            .map_err(|e| anyhow!("taking a screenshot: {e}"))
    }
}

/// One line of a chromedriver log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// The console text, or for the performance log a DevTools event as JSON.
    pub message: String,
}

/// chromedriver's non-standard endpoints.
#[derive(Debug)]
enum GoogCommand {
    Log(&'static str),
    Cdp(&'static str, Json),
}

impl WebDriverCompatibleCommand for GoogCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        match self {
            GoogCommand::Log(_) => base_url.join(&format!("session/{session}/se/log")),
            GoogCommand::Cdp(..) => base_url.join(&format!("session/{session}/goog/cdp/execute")),
        }
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        let body = match self {
            GoogCommand::Log(kind) => json!({ "type": kind }),
            GoogCommand::Cdp(cmd, params) => json!({ "cmd": cmd, "params": params }),
        };
        (Method::POST, Some(body.to_string()))
    }
}

/// Gives the Chromium of `profile` two seconds to exit, then kills what is left, by pid.
async fn kill_leftovers(profile: &Path) {
    for _ in 0..20 {
        if leftover_pids(profile).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pids = leftover_pids(profile);
    if !pids.is_empty() {
        eprintln!("e2e: killing Chromium processes left running: {pids:?}");
        let _ = tokio::process::Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .status()
            .await;
    }
}

/// Processes whose command line names `profile` as their user data
/// directory: the Chromium of one session, and nothing else (Linux; empty
/// where there is no `/proc`).
fn leftover_pids(profile: &Path) -> Vec<u32> {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()))
        })
        .collect()
}

/// JavaScript truthiness of a returned value.
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(_) | Json::Object(_) => true,
    }
}

fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or_default()
}

/// A TCP port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Browser {
    /// Clicks the first element matching a CSS selector.
    pub async fn click(&self, css: &str) -> Result<()> {
        let el = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .map_err(|e| anyhow!("finding {css}: {e}"))?;
        el.click().await.map_err(|e| anyhow!("clicking {css}: {e}"))
    }

    /// Types `text` into the first element matching a CSS selector.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .map_err(|e| anyhow!("finding {css}: {e}"))?;
        el.send_keys(text)
            .await
            .map_err(|e| anyhow!("typing into {css}: {e}"))
    }
}
