//! Test support: backends, a server on an ephemeral port, an HTTP client,
//! and store wrappers that count or slow down calls.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use block_cache_aside::harness::FillGate;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url_shortener::App;
use url_shortener::codegen::{BlockAllocator, CodeGenerator, MemoryAllocator, RangeGenerator};
use url_shortener::config::{ClickConfig, Config, RedisConfig};
use url_shortener::domain::{Code, Link, NewLink, TokenHash};
use url_shortener::metrics::Metrics;
use url_shortener::store::{
    DailyClicks, DayCount, DeleteOutcome, LinkStore, MemoryStore, PgStore, StoreError,
};

/// The public host of the service under test; targets on it are refused.
pub const BASE_URL: &str = "http://sho.rt";

/// `sql/schema.sql`.
pub fn schema() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/schema.sql"))
}

/// A store plus whatever keeps its services alive for the test.
pub struct Backend<S> {
    /// The store under test.
    pub store: S,
    /// The id allocator that goes with it (in-process or PostgreSQL).
    pub allocator: Arc<dyn BlockAllocator>,
    /// The Redis layer's configuration, for backends that have Redis.
    pub redis: Option<RedisConfig>,
    /// The test database, for backends on PostgreSQL.
    pub db: Option<testkit::TestDb>,
    _redis_guard: Option<testkit::TestRedis>,
}

impl<S> Backend<S> {
    /// A connection to this backend's Redis, for tests that read or write keys directly.
    pub fn redis_conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        self._redis_guard.as_ref().map(|r| r.conn.clone())
    }

    /// The Redis key the cache uses for `code`.
    pub fn redis_key(&self, code: &str) -> Option<String> {
        self.redis
            .as_ref()
            .map(|r| format!("{}link:{code}", r.key_prefix))
    }
}

/// The in-memory store, no Redis. Always available.
pub async fn memory() -> Option<Backend<MemoryStore>> {
    Some(Backend {
        store: MemoryStore::new(),
        allocator: Arc::new(MemoryAllocator::default()),
        redis: None,
        db: None,
        _redis_guard: None,
    })
}

/// PostgreSQL (a fresh database, pool of 16) with Redis (a fresh key prefix).
/// `None` after a SKIPPED line when either service is absent.
pub async fn postgres_redis() -> Option<Backend<PgStore>> {
    let mut backend = postgres().await?;
    let redis = testkit::redis().await?;
    backend.redis = Some(redis_config(&redis));
    backend._redis_guard = Some(redis);
    Some(backend)
}

/// PostgreSQL alone (a fresh database, pool of 16).
pub async fn postgres() -> Option<Backend<PgStore>> {
    let db = testkit::postgres(Some(schema())).await?;
    let store = PgStore::new(db.pool_with(16).await);
    Some(Backend {
        allocator: Arc::new(store.allocator("links")),
        store,
        redis: None,
        db: Some(db),
        _redis_guard: None,
    })
}

/// Redis settings for the test's own key prefix, with a tight timeout.
pub fn redis_config(redis: &testkit::TestRedis) -> RedisConfig {
    RedisConfig {
        key_prefix: redis.prefix.clone(),
        timeout: Duration::from_millis(200),
        ..RedisConfig::new(&redis.url)
    }
}

impl<S: LinkStore> Backend<S> {
    /// A configuration for tests: our host is `sho.rt`, no rate limit,
    /// fast click flushes, and this backend's Redis if it has one.
    pub fn config(&self) -> Config {
        Config {
            base_url: BASE_URL.parse().expect("valid URL"),
            store_timeout: Duration::from_secs(2),
            redis: self.redis.clone(),
            clicks: ClickConfig {
                flush_every: Duration::from_millis(50),
                ..ClickConfig::default()
            },
            rate_limit: None,
            ..Config::default()
        }
    }

    /// The default strategy: scrambled ids leased in blocks from this backend's allocator.
    pub fn ids(&self) -> Arc<dyn CodeGenerator> {
        Arc::new(RangeGenerator::new(self.allocator.clone(), 100).scrambled(7))
    }

    /// A server over `store` (this backend's store, possibly wrapped).
    pub async fn serve<T: LinkStore>(&self, store: T, config: Config) -> Server<T> {
        self.serve_with(store, self.ids(), config).await
    }

    /// A server over `store` with a chosen code strategy.
    pub async fn serve_with<T: LinkStore>(
        &self,
        store: T,
        ids: Arc<dyn CodeGenerator>,
        config: Config,
    ) -> Server<T> {
        Server::start(App::new(store, ids, config).expect("app")).await
    }
}

/// A running service on an ephemeral port.
pub struct Server<S> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client for it.
    pub client: Client,
    /// Its counters.
    pub metrics: Arc<Metrics>,
    /// Its use cases (and through them, its store).
    pub shortener: url_shortener::shortener::Shortener<S>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl<S: LinkStore> Server<S> {
    /// Binds 127.0.0.1:0 and serves `app` in a task.
    pub async fn start(app: App<S>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = app.metrics();
        let shortener = app.shortener().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            client: Client::new(addr),
            metrics,
            shortener,
            stop,
            task,
        }
    }

    /// Graceful shutdown: returns when the server has stopped and flushed its clicks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server");
    }
}

/// A minimal HTTP/1.1 client (hyper-util's pooled client).
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    /// A client for a server at `addr` that this test did not start (a child process).
    pub fn at(addr: SocketAddr) -> Self {
        Self::new(addr)
    }

    /// `GET path`'s status, or `None` when nothing answers (not listening yet).
    pub async fn try_get(&self, path: &str) -> Option<StatusCode> {
        let req = Request::builder()
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .ok()?;
        self.inner.request(req).await.ok().map(|r| r.status())
    }

    /// Sends a request with optional extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = self.inner.request(req).await.expect("HTTP request");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// `DELETE path` with `Authorization: Bearer <token>`.
    pub async fn delete_with(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(Method::DELETE, path, &[("authorization", &auth)], None)
            .await
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_with(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, path, &[("authorization", &auth)], None)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string()),
        )
        .await
    }

    /// `POST /api/links` for `url`, returning the reply.
    pub async fn create(&self, body: serde_json::Value) -> Reply {
        self.post_json("/api/links", &body).await
    }

    /// Creates a link to `url` and returns its code; panics unless 201.
    pub async fn create_code(&self, body: serde_json::Value) -> String {
        self.create_managed(body).await.0
    }

    /// Creates a link and returns its code and management token (empty if
    /// the service sent none); panics unless 201.
    pub async fn create_managed(&self, body: serde_json::Value) -> (String, String) {
        let reply = self.create(body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let json = reply.json();
        let code = json["code"].as_str().expect("code").to_string();
        let token = json["management_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (code, token)
    }
}

/// A store wrapper that counts calls and can delay `get`.
#[derive(Clone)]
pub struct Counting<S> {
    inner: S,
    /// Calls of `get`.
    pub gets: Arc<AtomicU64>,
    /// Calls of `insert`.
    pub inserts: Arc<AtomicU64>,
    get_delay: Duration,
}

impl<S: LinkStore> Counting<S> {
    /// Counts calls to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            gets: Arc::default(),
            inserts: Arc::default(),
            get_delay: Duration::ZERO,
        }
    }

    /// Makes every `get` take at least `delay`, so concurrent lookups overlap.
    pub fn with_get_delay(mut self, delay: Duration) -> Self {
        self.get_delay = delay;
        self
    }

    /// Calls of `get` so far.
    pub fn get_count(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Calls of `insert` so far.
    pub fn insert_count(&self) -> u64 {
        self.inserts.load(Ordering::SeqCst)
    }
}

impl<S: LinkStore> LinkStore for Counting<S> {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.get_delay).await;
        self.inner.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        self.inner.add_clicks(batch).await
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.inner.daily_clicks(code).await
    }
}

/// A store wrapper whose every call first sleeps for `delay`: a slow database.
#[derive(Clone)]
pub struct Slow<S> {
    inner: S,
    delay: Duration,
}

impl<S> Slow<S> {
    /// Delays every call to `inner` by `delay`.
    pub fn new(inner: S, delay: Duration) -> Self {
        Self { inner, delay }
    }
}

impl<S: LinkStore> LinkStore for Slow<S> {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.add_clicks(batch).await
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.daily_clicks(code).await
    }
}

/// A store wrapper that stalls one `get` after it has read the store:
/// the slow load of a cache race, under the test's control (the
/// cache-aside block's [`FillGate`]).
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: FillGate,
}

impl<S> Gated<S> {
    /// Wraps `inner`; returns the wrapper and its gate.
    pub fn new(inner: S) -> (Self, FillGate) {
        let gate = FillGate::new();
        (
            Self {
                inner,
                gate: gate.clone(),
            },
            gate,
        )
    }
}

impl<S: LinkStore> LinkStore for Gated<S> {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        let read = self.inner.get(code).await;
        self.gate.pause(code.as_str()).await;
        read
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        self.inner.add_clicks(batch).await
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.inner.daily_clicks(code).await
    }
}

/// A TCP port with nothing listening on it (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A server that accepts connections and never answers: a hung Redis.
/// Connections are held until the returned task is dropped... or the test ends.
pub async fn black_hole() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// Inserts a link straight into `store`, past every cache: a code that no
/// cache layer has seen yet. Returns the code.
pub async fn seed<S: LinkStore>(store: &S, code: &str, url: &str) -> String {
    let link = NewLink {
        code: Code::parse(code).expect("code"),
        target: url_shortener::domain::TargetUrl::parse(url, &Default::default()).expect("url"),
        created_at: Utc::now(),
        expires_at: None,
        token_hash: url_shortener::domain::ManagementToken::generate().hash(),
    };
    store.insert(link).await.expect("seed");
    code.to_string()
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
