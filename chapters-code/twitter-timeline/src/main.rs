//! The demo service: `cargo run -p twitter-timeline`.
//!
//! In memory by default; `DATABASE_URL` switches the store to PostgreSQL
//! and `REDIS_URL` the timelines, and the readers' follows and blocks, to Redis. `STRATEGY` is `push`, `pull` or
//! `hybrid` (the default) with `THRESHOLD` followers. `ROLE=worker` runs
//! only the fan-out worker, `ROLE=api` only the HTTP service; the default
//! runs both in one process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use twitter_timeline::app::Timelines;
use twitter_timeline::cache::{
    Layout, MemoryTimelines, RedisTimelines, TIMELINE_CAP, TimelineCache,
};
use twitter_timeline::fanout::{DEFAULT_BATCH, FanOutWorker};
use twitter_timeline::sim::CHOSEN_THRESHOLD;
use twitter_timeline::store::{
    CONTEXT_TTL, CachedContexts, ContextCache, MemoryStore, PgStore, SocialStore,
};
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, HomeTimeline, Hybrid, Parts};

/// This chapter's default port.
const DEFAULT_PORT: u16 = 8081;
/// Timelines of users who have not read for this long expire.
const TIMELINE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let store_url = std::env::var("DATABASE_URL").ok();
    let redis_url = std::env::var("REDIS_URL").ok();
    match store_url {
        Some(url) => {
            let store = PgStore::connect_lazy(&url, env_or("PG_POOL", 10)?)?;
            store.migrate().await.context("applying the schema")?;
            with_store(store, redis_url).await
        }
        None => with_store(MemoryStore::new(), redis_url).await,
    }
}

async fn with_store<S: SocialStore>(store: S, redis_url: Option<String>) -> anyhow::Result<()> {
    match redis_url {
        Some(url) => {
            let prefix = std::env::var("REDIS_PREFIX").unwrap_or_default();
            let layout = match std::env::var("LAYOUT").as_deref() {
                Ok("zset") => Layout::Zset,
                _ => Layout::List,
            };
            let cache =
                RedisTimelines::connect(&url, &prefix, layout, TIMELINE_CAP, TIMELINE_TTL).await?;
            let contexts = ContextCache::connect(&url, &prefix, CONTEXT_TTL)?;
            with_cache(CachedContexts::new(store, contexts), cache).await
        }
        None => with_cache(store, MemoryTimelines::default()).await,
    }
}

async fn with_cache<S: SocialStore, C: TimelineCache>(store: S, cache: C) -> anyhow::Result<()> {
    let parts = Parts { store, cache };
    match std::env::var("STRATEGY").as_deref() {
        Ok("push") => run(FanOutOnWrite(parts)).await,
        Ok("pull") => run(FanOutOnRead(parts.store)).await,
        Ok("hybrid") | Err(_) => {
            let threshold = env_or("THRESHOLD", CHOSEN_THRESHOLD)?;
            run(Hybrid { parts, threshold }).await
        }
        Ok(other) => anyhow::bail!("STRATEGY={other:?}: expected push, pull or hybrid"),
    }
}

async fn run<T: HomeTimeline>(timeline: T) -> anyhow::Result<()> {
    let role = std::env::var("ROLE").unwrap_or_else(|_| "all".into());
    let worker = FanOutWorker::new(timeline.clone(), env_or("FANOUT_BATCH", DEFAULT_BATCH)?)
        .with_pause(Duration::from_millis(env_or("FANOUT_PAUSE_MS", 0)?));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if role == "worker" {
        tracing::info!(strategy = %timeline.name(), "fan-out worker started");
        worker.run(Duration::from_millis(50), shutdown).await;
        return Ok(());
    }
    if role == "all" {
        tokio::spawn(worker.run(Duration::from_millis(50), std::future::pending()));
    }
    let node: u16 = env_or("NODE_ID", 0)?;
    let secret = std::env::var("CURSOR_SECRET").unwrap_or_else(|_| "demo".into());
    let app = Timelines::new(timeline.clone(), node, secret.as_bytes())?;
    let addr: std::net::IpAddr = env_or("ADDR", std::net::IpAddr::from([127, 0, 0, 1]))?;
    let port: u16 = env_or("PORT", DEFAULT_PORT)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(addr, port)).await?;
    tracing::info!(strategy = %timeline.name(), addr = %listener.local_addr()?, "serving");
    axum::serve(listener, twitter_timeline::service::router(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
