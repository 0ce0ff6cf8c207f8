//! URL shortener load test: redirects per second on three paths, beside a ceiling.
//!
//! Run by `cargo xtask bench-report url-shortener` (as `cargo bench -p
//! url-shortener --features book --bench redirect-load`, so everything is
//! built with optimisations). Four servers run at once on loopback ports:
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
//! The client loads one server at a time: each round measures the ceiling
//! and every path back to back ([`bookkit::rounds`]), and a path's ratio is
//! taken against the ceiling of the same round, so noise on this shared
//! machine moves one round's ratio, not the median. All three service paths
//! also record the click, so the batcher's upserts run during the
//! measurement, as in production. The load generator and the servers share
//! this machine's cores (the same closed-loop client for every path, so the
//! ratios are fair, and the absolute figures are a lower bound for a server
//! with the machine to itself). Each run is bounded by time and count and
//! targets only 127.0.0.1.

// ANCHOR: load_spec
/// Keep-alive connections, each with one request in flight.
const CONNECTIONS: usize = 32;
/// Rounds, and the measured time of each path in each round.
const PLAN: Plan = Plan {
    rounds: 5,
    round: std::time::Duration::from_secs(2),
};
/// Upper bound on measured requests per path and round.
const MAX_REQUESTS: u64 = 1_000_000;
/// Distinct links the redirects cycle through.
const LINKS: usize = 2_000;
// ANCHOR_END: load_spec

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bookkit::ResultKind;
use bookkit::loadgen::{LoadSpec, constant_server, run_get};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave_all};
use chrono::Utc;
use url_shortener::config::{LocalCacheConfig, RedisConfig};
use url_shortener::metrics::Metrics;
use url_shortener::report::{CEILING, CHAPTER, PATHS};
use url_shortener::store::PgStore;
use url_shortener::{App, Config};

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Some(setup) = rt.block_on(setup())? else {
        return Ok(());
    };
    let before: Vec<_> = setup.metrics.iter().map(|m| m.snapshot()).collect();
    let workloads: Vec<Workload> = PATHS
        .iter()
        .map(|(name, _)| Workload {
            name: (*name).to_string(),
            concurrency: CONNECTIONS as u32,
        })
        .collect();
    // The ceiling is the first workload (`PATHS[0]`).
    let mut results = interleave_all(CHAPTER, ResultKind::Load, &PLAN, &workloads, |i, round| {
        let spec = LoadSpec {
            duration: round,
            ..setup.spec.clone()
        };
        let out = rt.block_on(run_get(setup.addrs[i], Arc::clone(&setup.paths), &spec))?;
        Ok(RoundStats {
            ops: out.ok + out.errors,
            errors: out.errors,
            elapsed: out.elapsed,
            latency_us: out.latency_us,
        })
    })?;
    // What each service did over all its rounds (the servers are idle between their turns).
    for (i, r) in results.iter_mut().enumerate().skip(1) {
        let (b, a) = (&before[i - 1], setup.metrics[i - 1].snapshot());
        let lookups = a.lookups - b.lookups;
        r.extra.insert("lookups".into(), (lookups as f64).into());
        for (key, part) in [
            ("store_loads_per_lookup", a.store_loads - b.store_loads),
            ("redis_hits_per_lookup", a.redis_hits - b.redis_hits),
        ] {
            r.extra.insert(key.into(), ratio(part, lookups).into());
        }
        r.extra.insert(
            "clicks_dropped".into(),
            ((a.clicks_dropped - b.clicks_dropped) as f64).into(),
        );
    }
    for r in &results {
        let path = write_result(r)?;
        println!(
            "{}: {:.0} req/s, ratio {:?}, p99 {:?} us, {} errors -> {}",
            r.name,
            r.ops_per_sec.unwrap_or(0.0),
            r.ratio,
            r.p99_us,
            r.errors,
            path.display()
        );
    }
    drop(setup.stops);
    Ok(())
}

/// The four servers, started and primed, and what the client needs to load them.
struct Setup {
    addrs: Vec<SocketAddr>,
    paths: Arc<Vec<String>>,
    spec: LoadSpec,
    metrics: Vec<Arc<Metrics>>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    _db: testkit::TestDb,
    _redis: testkit::TestRedis,
}

async fn setup() -> Result<Option<Setup>> {
    let Some(db) = testkit::postgres(None).await else {
        return Ok(None);
    };
    let Some(redis) = testkit::redis().await else {
        return Ok(None);
    };
    let store = PgStore::new(db.pool_with(16).await);
    store.migrate().await.context("applying the schema")?;
    let codes = seed(&store).await?;
    let paths = Arc::new(codes.iter().map(|c| format!("/{c}")).collect::<Vec<_>>());
    let spec = LoadSpec {
        connections: CONNECTIONS,
        warmup_per_connection: 50,
        duration: PLAN.round,
        max_requests: MAX_REQUESTS,
        expect_status: 302,
    };

    // The ceiling: same client, same response status, no lookup.
    let (addr, stop, _ceiling) =
        constant_server(302, vec![("location", "https://example.com/")]).await?;
    let mut addrs = vec![addr];
    let mut stops = vec![stop];
    let mut metrics = Vec::new();

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
        debug_assert_eq!(PATHS[addrs.len()].0, name);
        metrics.push(app.metrics());
        let (addr, stop, _served) = start(app).await?;
        addrs.push(addr);
        stops.push(stop);
    }
    debug_assert_eq!(PATHS[0].0, CEILING);
    Ok(Some(Setup {
        addrs,
        paths,
        spec,
        metrics,
        stops,
        _db: db,
        _redis: redis,
    }))
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
