//! The layer-7 proxy: axum in front, a pooled hyper client behind, the
//! [`pool::Pool`] in between.
//!
//! - [`forward`]: the request path (buffer, pick, send, retry).
//! - [`pool`]: the backend set, outlier ejection, slow start.
//! - [`health`]: active health checks.
//! - [`budget`]: the retry budget.
//! - [`admin`]: the routes that read and replace the set.
//! - [`backends`]: in-process backends for tests and the demo.

pub mod admin;
pub mod backends;
pub mod budget;
pub mod config;
pub mod error;
pub mod forward;
pub mod health;
pub mod pool;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::algo::Algorithm;
use budget::RetryBudget;
use config::{HealthPolicy, RetryPolicy};
use error::SetError;
use pool::Pool;

/// The header whose value is the affinity key of the hashing schemes (the path when absent).
pub const BALANCE_KEY_HEADER: &str = "x-balance-key";

/// The prefix of the admin routes; everything else is proxied.
pub const ADMIN_PATH: &str = "/_lb/backends";

/// Idle connections kept per backend: reused instead of a new TCP handshake per request.
pub const IDLE_CONNECTIONS_PER_BACKEND: usize = 64;

/// How long an idle pooled connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a proxy is built from.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The first backend set: (address, weight).
    pub backends: Vec<(SocketAddr, u32)>,
    /// How a backend is chosen.
    pub algorithm: Algorithm,
    /// Health checks, ejection, slow start.
    pub health: HealthPolicy,
    /// Retries and their budget.
    pub retry: RetryPolicy,
    /// The bearer token of the admin routes; `None` closes them.
    pub admin_token: Option<String>,
    /// Seeds the balancer's random choices (random per proxy by default; fixed in benches).
    pub seed: u64,
}

impl ProxyConfig {
    /// A configuration with the default policies.
    pub fn new(backends: Vec<(SocketAddr, u32)>, algorithm: Algorithm) -> Self {
        Self {
            backends,
            algorithm,
            health: HealthPolicy::default(),
            retry: RetryPolicy::default(),
            admin_token: None,
            // Each proxy of a fleet draws on its own: equal seeds would herd.
            seed: rand::random(),
        }
    }
}

/// What the handlers share.
pub struct Shared {
    /// The backend set and the balancer.
    pub pool: Pool,
    client: Client<HttpConnector, Full<Bytes>>,
    retry: RetryPolicy,
    budget: Mutex<RetryBudget>,
    admin_token: Option<String>,
    admin_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    fn budget(&self) -> MutexGuard<'_, RetryBudget> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy: its router and its health-check task.
pub struct Proxy {
    shared: Arc<Shared>,
    prober: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

impl Proxy {
    /// Builds the proxy and starts its health checks; the first set is
    /// checked like one the admin route receives (reachability aside).
    pub fn start(config: ProxyConfig) -> Result<Self, SetError> {
        let entries = admin::BackendSet {
            backends: config
                .backends
                .iter()
                .map(|(a, w)| admin::BackendEntry {
                    addr: a.to_string(),
                    weight: i64::from(*w),
                })
                .collect(),
        };
        let backends = admin::validate(&entries)?;
        // ANCHOR: client
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_BACKEND)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build_http();
        // ANCHOR_END: client
        let shared = Arc::new(Shared {
            pool: Pool::new(
                &backends,
                config.algorithm.build(config.seed),
                config.health,
            ),
            client,
            budget: Mutex::new(RetryBudget::new(config.retry.ratio, config.retry.reserve)),
            retry: config.retry,
            admin_token: config.admin_token,
            admin_lock: tokio::sync::Mutex::new(()),
        });
        let prober = tokio::spawn(health::run(shared.clone()));
        Ok(Self { shared, prober })
    }

    /// The pool, for tests and the admin route.
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The proxy's routes: the admin routes, and everything else forwarded.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                ADMIN_PATH,
                get(admin::get_backends).put(admin::put_backends),
            )
            .fallback(forward::forward)
            // The proxy enforces its own limit while buffering; this one is the admin JSON's.
            .layer(DefaultBodyLimit::max(config::MAX_BODY_BYTES))
            .with_state(self.shared.clone())
    }
}
