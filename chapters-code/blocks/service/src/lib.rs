//! Part II block: a demo binary's start-up.
//!
//! Every chapter's binary starts the same way (CONTRIBUTING.md, "Chapter
//! binaries: one convention"): read `ADDR` and `PORT` with the chapter's own
//! default port, install the log subscriber with `RUST_LOG` (default
//! `info`), read the engines' URLs (`DATABASE_URL`, `REDIS_URL`, `NATS_URL`,
//! `AMQP_URL`), bind, serve an axum `Router`, and on SIGINT or SIGTERM stop
//! accepting, let the requests in flight finish, and then run the chapter's
//! own drain (flush clicks, stop a relay). A chapter's `main` is one line:
//! [`main`] with its port and its start-up function.
//!
//! Bad configuration is refused before anything starts, with a message that
//! names the variable and the exit code [`EXIT_CONFIG`], never a panic.
//! The shutdown signal is a future the caller passes in ([`run`],
//! [`Service::new`]), so a test can trigger it; [`os_signal`] is the real one.

#[cfg(feature = "book")]
pub mod book;
mod config;
mod serve;

use std::future::Future;
use std::process::ExitCode;

pub use config::{Config, ConfigError, DEFAULT_ADDR, DEFAULT_LOG, Engines, var_or, var_or_in};
pub use serve::{BindError, Listening, ServeError, Service, Shutdown, os_signal};

// ANCHOR: exit_codes
/// The exit code for a configuration error: `EX_CONFIG` of BSD's
/// `sysexits.h`, which systemd also reads as "configuration error".
pub const EXIT_CONFIG: u8 = 78;

/// The exit code for any other failure (an address in use, an engine unreachable).
pub const EXIT_FAILURE: u8 = 1;

/// The exit code when a second signal cuts the drain short: 128 + SIGINT,
/// what a shell reports for a process stopped by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;
// ANCHOR_END: exit_codes

// ANCHOR: main
/// The whole start-up of a chapter's binary: `fn main() -> ExitCode {
/// block_service::main(PORT, start) }`. Reads the environment, installs the
/// log subscriber, builds the runtime, and hands the [`Service`] to `start`,
/// which wires the chapter, serves, and then drains. Returns the exit code.
pub fn main<F, Fut>(default_port: u16, start: F) -> ExitCode
where
    F: FnOnce(Service) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match Config::from_env(default_port) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(&config.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        let signal = os_signal();
        run(config, signal, |service| {
            // A second signal during the drain means "now": exit without waiting.
            let first = service.shutdown();
            tokio::spawn(async move {
                first.requested().await;
                os_signal().await;
                eprintln!("second signal: exiting without finishing the drain");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
            start(service)
        })
        .await
    })
}

/// [`main`] after the runtime is up, with the shutdown `signal` injected:
/// runs `start` and maps its outcome to an exit code.
pub async fn run<F, Fut>(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
    start: F,
) -> ExitCode
where
    F: FnOnce(Service) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    tracing::info!(addr = %config.addr, engines = ?config.engines, "starting");
    let service = Service::new(config, signal);
    match start(service).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A chapter's own variable that does not parse is bad configuration too.
            match e.downcast_ref::<ConfigError>() {
                Some(_) => ExitCode::from(EXIT_CONFIG),
                None => ExitCode::from(EXIT_FAILURE),
            }
        }
    }
}
// ANCHOR_END: main

// ANCHOR: open_database
/// Opens a chapter's PostgreSQL store: `connect` (to `DATABASE_URL`), then
/// `ensure_schema`, which answers true when it applied `sql/schema.sql` to
/// an empty database. Each failure says which of the two steps failed.
pub async fn open_database<S, E1, E2>(
    connect: impl Future<Output = Result<S, E1>>,
    ensure_schema: impl AsyncFnOnce(&S) -> Result<bool, E2>,
) -> anyhow::Result<S>
where
    E1: Into<anyhow::Error>,
    E2: Into<anyhow::Error>,
{
    use anyhow::Context as _;
    let store = connect
        .await
        .map_err(Into::into)
        .context("connecting to DATABASE_URL")?;
    let applied = ensure_schema(&store)
        .await
        .map_err(Into::into)
        .context("applying sql/schema.sql")?;
    if applied {
        tracing::info!("applied sql/schema.sql to an empty database");
    }
    Ok(store)
}
// ANCHOR_END: open_database

/// Installs the log subscriber with `filter` (already checked to parse).
/// A second call (a test binary that starts several services) changes nothing.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
