//! The HTTP service (axum): routes, wiring, and graceful shutdown.
//!
//! | route | success | errors |
//! |---|---|---|
//! | `POST /api/links` | 201 (200 for an identical existing link) | 400, 409, 413, 422, 429, 503 |
//! | `GET /{code}` | 302 | 404, 410, 429, 503 |
//! | `DELETE /api/links/{code}` (management token) | 204 | 403, 410, 429, 503 |
//! | `GET /api/links/{code}/stats` (management token) | 200 | 403, 410, 429, 503 |
//! | `GET /health` | 200 | |
//!
//! Errors are `application/problem+json` (RFC 9457), built in [`error`].

pub mod error;
mod handlers;
pub mod rate_limit;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use handlers::{CreateBody, LinkView};

use crate::cache::{LinkCache, RedisLayer};
use crate::clicks::{self, ClickBatcher};
use crate::codegen::{CodeGenerator, MemoryAllocator, RangeGenerator};
use crate::config::Config;
use crate::domain::UrlPolicy;
use crate::metrics::Metrics;
use crate::proxy::TrustedProxies;
use crate::scan::MissBudget;
use crate::shortener::{Parts, Shortener};
use crate::store::{LinkStore, MemoryStore, PgStore};
use rate_limit::CreateLimit;

// ANCHOR: constants
/// Ids a node leases from the allocator at a time.
pub const ID_BLOCK_SIZE: u64 = 1_000;

/// A create body is a URL of at most 2 KiB plus a few fields.
const MAX_BODY_BYTES: usize = 16 * 1024;
// ANCHOR_END: constants

/// What every handler receives; cheap to clone.
pub struct AppState<S> {
    shortener: Shortener<S>,
    limiter: Option<CreateLimit>,
    base_url: Arc<str>,
    proxies: TrustedProxies,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            shortener: self.shortener.clone(),
            limiter: self.limiter.clone(),
            base_url: Arc::clone(&self.base_url),
            proxies: self.proxies.clone(),
        }
    }
}

/// A ready-to-serve shortener: use cases, HTTP state and the click batcher.
pub struct App<S> {
    state: AppState<S>,
    batcher: ClickBatcher,
}

impl<S: LinkStore> App<S> {
    // ANCHOR: app_new
    /// Wires a service around `store`, with `ids` proposing codes.
    ///
    /// Spawns the click batcher, so it must run inside a tokio runtime.
    pub fn new(store: S, ids: Arc<dyn CodeGenerator>, config: Config) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        // Targets on our own hosts, and (unless allowed) on loopback and
        // private addresses, are refused at create and in Redis.
        let own_hosts = config
            .base_url
            .host_str()
            .into_iter()
            .chain(config.own_hosts.iter().map(String::as_str));
        let policy = UrlPolicy::refusing(own_hosts);
        let policy = if config.allow_private_targets {
            policy.allowing_private()
        } else {
            policy
        };
        let redis = config
            .redis
            .as_ref()
            .map(|r| RedisLayer::new(r, &policy, metrics.clone()))
            .transpose()
            .context("configuring Redis")?;
        let cache = LinkCache::new(config.local_cache.as_ref(), redis, &policy, metrics.clone());
        let (clicks, batcher) = clicks::spawn(
            store.clone(),
            &config.clicks,
            config.store_timeout,
            metrics.clone(),
        );
        let shortener = Shortener::new(Parts {
            store,
            ids,
            cache,
            clicks,
            policy,
            store_timeout: config.store_timeout,
            max_code_attempts: config.max_code_attempts.max(1),
            misses: config.miss_limit.as_ref().map(MissBudget::new),
            manage_misses: config.miss_limit.as_ref().map(MissBudget::new),
            metrics,
        });
        let state = AppState {
            shortener,
            limiter: config
                .rate_limit
                .as_ref()
                .map(|r| rate_limit::create_limit(r, config.trusted_proxies.clone())),
            base_url: handlers::base_url_string(&config.base_url),
            proxies: config.trusted_proxies.clone(),
        };
        Ok(Self { state, batcher })
    }
    // ANCHOR_END: app_new

    /// The use cases, for callers that bypass HTTP (seeding a benchmark).
    pub fn shortener(&self) -> &Shortener<S> {
        &self.state.shortener
    }

    /// The service's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.shortener.metrics().clone()
    }

    // ANCHOR: router
    /// The routes. Static segments win over `{code}` in axum's router, which
    /// is why aliases may not be `api`, `health` and the other reserved words.
    ///
    /// The create limit is a layer in front of the handler, so a client over
    /// its limit is refused before its body is read: the handler's `Json`
    /// extractor would read the whole body first.
    pub fn router(&self) -> Router {
        let limit = tower::util::option_layer(self.state.limiter.clone());
        Router::new()
            .route(
                "/api/links",
                post(handlers::create_link::<S>)
                    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                    .layer(limit),
            )
            .route("/api/links/{code}", delete(handlers::delete_link::<S>))
            .route("/api/links/{code}/stats", get(handlers::stats::<S>))
            .route("/health", get(handlers::health))
            .route("/{code}", get(handlers::redirect::<S>))
            .layer(TraceLayer::new_for_http())
            .with_state(self.state.clone())
    }
    // ANCHOR_END: router

    // ANCHOR: serve
    /// Serves on `listener` until `shutdown` completes, then shuts down in order:
    /// stop accepting, finish the requests in flight, then flush the clicks
    /// they recorded. Returns when the last click is written.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let Self { state, batcher } = self;
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        // Only now is no handler left that could record a click.
        drop(state);
        batcher.shutdown().await;
        served
    }
    // ANCHOR_END: serve
}

impl App<MemoryStore> {
    /// The demo configuration: an in-memory store and scrambled ids from an in-process counter.
    pub fn in_memory(config: Config) -> anyhow::Result<Self> {
        let ids = RangeGenerator::new(MemoryAllocator::default(), ID_BLOCK_SIZE)
            .scrambled(config.scramble_key);
        Self::new(MemoryStore::new(), Arc::new(ids), config)
    }
}

impl App<PgStore> {
    /// The production configuration: PostgreSQL, with ids leased in blocks
    /// from its `id_blocks` table and scrambled with the configured key. The
    /// schema must be applied.
    pub fn postgres(store: PgStore, config: Config) -> anyhow::Result<Self> {
        let ids = RangeGenerator::new(store.allocator("links"), ID_BLOCK_SIZE)
            .scrambled(config.scramble_key);
        Self::new(store, Arc::new(ids), config)
    }
}
