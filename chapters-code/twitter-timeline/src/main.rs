//! The demo service: `cargo run -p twitter-timeline`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). In
//! memory by default; `DATABASE_URL` switches the store to PostgreSQL and
//! `REDIS_URL` the timelines, and the readers' follows and blocks, to Redis.
//! `STRATEGY` is `push`, `pull` or `hybrid` (the default) with `THRESHOLD`
//! followers. `ROLE=worker` runs only the fan-out worker (and binds no
//! port), `ROLE=api` only the HTTP service; the default runs both in one
//! process. With `DATABASE_URL`, the API refuses to start without `NODE_ID`
//! and `CURSOR_SECRET` (`config`); `TRUST_USER_HEADER=false` refuses
//! `X-User-Id` when no gateway strips a client's copy.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use block_service::{ConfigError, Service, var_or};
use twitter_timeline::app::Timelines;
use twitter_timeline::cache::{
    Layout, MemoryTimelines, RedisTimelines, TIMELINE_CAP, TIMELINE_TTL, TimelineCache,
};
use twitter_timeline::config::Settings;
use twitter_timeline::fanout::{DEFAULT_BATCH, FanOutWorker};
use twitter_timeline::sim::CHOSEN_THRESHOLD;
use twitter_timeline::store::{
    CONTEXT_TTL, CachedContexts, ContextCache, MemoryStore, PgStore, SocialStore,
};
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, HomeTimeline, Hybrid, Parts};

/// This chapter's default port.
const DEFAULT_PORT: u16 = 8081;
/// How long an idle fan-out worker waits before it looks for work again.
const WORKER_IDLE: Duration = Duration::from_millis(50);
/// How long shutdown waits for follow tasks whose requests have ended.
const FOLLOW_DRAIN: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

/// A variable that must be one of a few words.
fn one_of(name: &str, default: &'static str, allowed: &'static str) -> Result<String, ConfigError> {
    let value: String = var_or(name, default.to_string())?;
    if allowed.split(", ").any(|a| a == value) {
        Ok(value)
    } else {
        Err(ConfigError::Var {
            name: name.to_string(),
            value,
            expected: allowed,
        })
    }
}

async fn start(service: Service) -> anyhow::Result<()> {
    let store_url = service.engines().database_url.clone();
    match store_url {
        Some(url) => {
            let store = PgStore::connect_lazy(&url, var_or("PG_POOL", 10)?)?;
            store.migrate().await.context("applying the schema")?;
            with_store(service, store).await
        }
        None => with_store(service, MemoryStore::new()).await,
    }
}

async fn with_store<S: SocialStore>(service: Service, store: S) -> anyhow::Result<()> {
    match service.engines().redis_url.clone() {
        Some(url) => {
            let prefix: String = var_or("REDIS_PREFIX", String::new())?;
            let layout = match one_of("LAYOUT", "list", "list, zset")?.as_str() {
                "zset" => Layout::Zset,
                _ => Layout::List,
            };
            let cache =
                RedisTimelines::connect(&url, &prefix, layout, TIMELINE_CAP, TIMELINE_TTL).await?;
            let contexts = ContextCache::connect(&url, &prefix, CONTEXT_TTL)?;
            with_cache(service, CachedContexts::new(store, contexts), cache).await
        }
        None => with_cache(service, store, MemoryTimelines::default()).await,
    }
}

async fn with_cache<S: SocialStore, C: TimelineCache>(
    service: Service,
    store: S,
    cache: C,
) -> anyhow::Result<()> {
    let parts = Parts { store, cache };
    match one_of("STRATEGY", "hybrid", "push, pull, hybrid")?.as_str() {
        "push" => run(service, FanOutOnWrite(parts)).await,
        "pull" => run(service, FanOutOnRead(parts.store)).await,
        _ => {
            let threshold = var_or("THRESHOLD", CHOSEN_THRESHOLD)?;
            run(service, Hybrid { parts, threshold }).await
        }
    }
}

async fn run<T: HomeTimeline>(service: Service, timeline: T) -> anyhow::Result<()> {
    let role = one_of("ROLE", "all", "all, api, worker")?;
    let worker = FanOutWorker::new(timeline.clone(), var_or("FANOUT_BATCH", DEFAULT_BATCH)?)
        .with_pause(Duration::from_millis(var_or("FANOUT_PAUSE_MS", 0)?));
    let stop = service.shutdown();
    if role == "worker" {
        tracing::info!(strategy = %timeline.name(), "fan-out worker started");
        worker.run(WORKER_IDLE, stop.requested()).await;
        return Ok(());
    }
    // NODE_ID and CURSOR_SECRET are required with PostgreSQL (`config`),
    // checked before anything starts.
    let settings = Settings::from_env(service.engines().database_url.is_some())?;
    let app = Timelines::new(
        timeline.clone(),
        settings.node,
        settings.cursor_secret.as_bytes(),
    )?;
    // The worker stops with the server, after the batch it is on.
    let worker = (role == "all").then(|| tokio::spawn(worker.run(WORKER_IDLE, stop.requested())));
    tracing::info!(strategy = %timeline.name(), trust_user_header = settings.trust_user_header, "starting");
    service
        .serve(twitter_timeline::service::router_with(
            app.clone(),
            settings.trust_user_header,
        ))
        .await?;
    // Follow tasks outlive their requests: let their backfills finish.
    if !app.drain_follows(FOLLOW_DRAIN).await {
        tracing::error!(
            "follow tasks still running at shutdown: a backfill cut off here leaves its \
             followee's older posts out of a ready timeline until it is rebuilt"
        );
    }
    if let Some(worker) = worker {
        worker.await.context("the fan-out worker")?;
    }
    Ok(())
}
