//! URL shortener load test: redirects per second on three paths, beside a ceiling.
//!
//! Run by `cargo xtask bench-report url-shortener` (as `cargo bench --bench
//! url-shortener-load`, so everything is built with optimisations). Each
//! configuration writes one result file in the shared format
//! (`target/sdb-results/url-shortener/<name>.json`, see `xtask::bench_report`):
//!
//! - `ceiling_constant_302`: an axum server that answers every request with
//!   the same 302 and does nothing else; the most this machine's HTTP stack
//!   can do with this client;
//! - `redirect_local_cache`: the service with the in-process (moka) cache in
//!   front of PostgreSQL, every code already cached;
//! - `redirect_redis`: the service with Redis in front of PostgreSQL and no
//!   in-process cache, every code already in Redis;
//! - `redirect_postgres`: the service with no cache; every redirect is one
//!   indexed lookup on PostgreSQL.
//!
//! All three service paths also record the click, so the batcher's upserts run
//! during the measurement, as in production. The load generator and the
//! server share this machine's cores (the client is the same closed-loop
//! generator for every path, so the ratios are fair, and the absolute figures
//! are a lower bound for a server with the machine to itself). Each run is
//! bounded by time and count and targets only 127.0.0.1.

// ANCHOR: load_spec
/// Keep-alive connections, each with one request in flight.
const CONNECTIONS: usize = 32;
/// Measured phase of each configuration.
const DURATION: std::time::Duration = std::time::Duration::from_secs(8);
/// Upper bound on measured requests per configuration.
const MAX_REQUESTS: u64 = 2_000_000;
/// Distinct links the redirects cycle through.
const LINKS: usize = 2_000;
// ANCHOR_END: load_spec

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use url_shortener::config::{LocalCacheConfig, RedisConfig};
use url_shortener::store::PgStore;
use url_shortener::{App, Config};
use xtask::bench_report::{BenchResult, ResultKind, write_result};
use xtask::loadgen::{LoadSpec, constant_server, run_get};

const CHAPTER: &str = "url-shortener";
const CEILING: &str = "ceiling_constant_302";

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let Some(db) = testkit::postgres(None).await else {
        return Ok(());
    };
    let Some(redis) = testkit::redis().await else {
        return Ok(());
    };
    let store = PgStore::new(db.pool_with(16).await);
    store.migrate().await.context("applying the schema")?;
    let codes = seed(&store).await?;
    let paths = Arc::new(codes.iter().map(|c| format!("/{c}")).collect::<Vec<_>>());
    let spec = LoadSpec {
        connections: CONNECTIONS,
        warmup_per_connection: 200,
        duration: DURATION,
        max_requests: MAX_REQUESTS,
        expect_status: 302,
    };

    // The ceiling: same client, same response status, no lookup.
    let (addr, stop, handle) =
        constant_server(302, vec![("location", "https://example.com/")]).await?;
    let out = run_get(addr, Arc::clone(&paths), &spec).await?;
    drop(stop);
    let _ = handle.await;
    report(CEILING, None, &out, &spec, &[])?;

    let base = Config {
        rate_limit: None,
        redis: None,
        local_cache: None,
        ..Config::default()
    };
    let configs = [
        (
            "redirect_local_cache",
            Config {
                local_cache: Some(LocalCacheConfig::default()),
                ..base.clone()
            },
        ),
        (
            "redirect_redis",
            Config {
                redis: Some(RedisConfig {
                    key_prefix: redis.key("links:"),
                    ..RedisConfig::new(&redis.url)
                }),
                ..base.clone()
            },
        ),
        ("redirect_postgres", base.clone()),
    ];
    for (name, config) in configs {
        let app = App::postgres(store.clone(), config)?;
        // Fill whichever caches this configuration has, so the run measures hits.
        let now = Utc::now();
        for code in &codes {
            app.shortener()
                .resolve(code, now)
                .await
                .context("priming a code")?;
        }
        let metrics = app.metrics();
        let before = metrics.snapshot();
        let (addr, stop, served) = start(app).await?;
        let out = run_get(addr, Arc::clone(&paths), &spec).await?;
        let after = metrics.snapshot();
        drop(stop);
        served.await.context("server task")??;
        let lookups = after.lookups - before.lookups;
        let extra = [
            ("lookups", lookups as f64),
            (
                "store_loads_per_lookup",
                ratio(after.store_loads - before.store_loads, lookups),
            ),
            (
                "redis_hits_per_lookup",
                ratio(after.redis_hits - before.redis_hits, lookups),
            ),
            (
                "clicks_dropped",
                (after.clicks_dropped - before.clicks_dropped) as f64,
            ),
        ];
        report(name, Some(CEILING), &out, &spec, &extra)?;
    }
    Ok(())
}

/// Inserts [`LINKS`] links through the use case, as clients would create them.
async fn seed(store: &PgStore) -> Result<Vec<String>> {
    let app = App::postgres(
        store.clone(),
        Config {
            rate_limit: None,
            ..Config::default()
        },
    )?;
    let now = Utc::now();
    let mut codes = Vec::with_capacity(LINKS);
    for i in 0..LINKS {
        let url = format!("https://example.com/articles/{i}?utm_source=bench");
        let req = app
            .shortener()
            .validate(&url, None, None, None, now)
            .context("valid URL")?;
        let created = app
            .shortener()
            .create(req, now)
            .await
            .context("creating a link")?;
        codes.push(created.link.code.to_string());
    }
    Ok(codes)
}

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves `app` on an ephemeral loopback port until the sender is dropped.
async fn start<S: url_shortener::store::LinkStore>(
    app: App<S>,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>, Served)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = rx.await;
    };
    Ok((addr, tx, tokio::spawn(app.serve(listener, shutdown))))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn report(
    name: &str,
    ceiling: Option<&str>,
    out: &xtask::loadgen::LoadOutcome,
    spec: &LoadSpec,
    extra: &[(&str, f64)],
) -> Result<()> {
    let mut result = BenchResult::new(CHAPTER, name, ResultKind::Load)
        .with_throughput(out.ok + out.errors, out.errors, out.elapsed)
        .with_latency_us(&out.latency_us)
        .with_concurrency(spec.connections as u32);
    if let Some(c) = ceiling {
        result = result.with_ceiling(c);
    }
    for (k, v) in extra {
        result = result.with_extra(k, *v);
    }
    let path = write_result(&result)?;
    println!(
        "{name}: {:.0} req/s, p50 {} us, p99 {} us, {} errors -> {}",
        out.throughput(),
        out.quantile_us(0.5),
        out.quantile_us(0.99),
        out.errors,
        path.display()
    );
    Ok(())
}
