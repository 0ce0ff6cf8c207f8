//! What the service does when a dependency is slow or down.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Server, Slow};
use hyper::StatusCode;
use serde_json::json;
use url_shortener::App;
use url_shortener::config::{ClickConfig, Config, RedisConfig};
use url_shortener::domain::{Code, Link, NewLink, TokenHash};
use url_shortener::store::{
    DailyClicks, DayCount, DeleteOutcome, LinkStore, MemoryStore, PgStore, StoreError,
};

/// Redis at a closed port, the in-process cache off so every lookup tries
/// Redis: redirects are served from PostgreSQL, quickly, and the breaker
/// stops the service from trying Redis on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_still_redirects() {
    let Some(b) = common::postgres().await else {
        return;
    };
    let redis = RedisConfig {
        cooldown: Duration::from_secs(60),
        ..RedisConfig::new(&format!(
            "redis://127.0.0.1:{}",
            common::closed_port().await
        ))
    };
    let config = Config {
        local_cache: None,
        redis: Some(redis),
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/no-redis"}))
        .await;
    for _ in 0..20 {
        let started = Instant::now();
        let reply = server.client.get(&format!("/{code}")).await;
        assert_eq!(reply.status, StatusCode::FOUND);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
    let m = server.metrics.snapshot();
    assert_eq!(m.store_loads, 20, "every redirect came from PostgreSQL");
    assert_eq!(m.redis_errors, 1, "one failure opened the breaker; {m:?}");
    server.shutdown().await;
}

// ANCHOR: slow_redis_test
/// A Redis that accepts connections and never answers: each call is cut at
/// the Redis timeout, and after the first the breaker skips Redis entirely.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_redis_is_cut_by_timeout() {
    let (port, _hole) = common::black_hole().await;
    let Some(b) = common::memory().await else {
        return;
    };
    let redis = RedisConfig {
        timeout: Duration::from_millis(50),
        cooldown: Duration::from_secs(60),
        ..RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
    };
    let server = b
        .serve(
            b.store.clone(),
            Config {
                local_cache: None,
                redis: Some(redis),
                ..b.config()
            },
        )
        .await;
    // The create's cache invalidation meets the hung Redis first and opens the breaker.
    let started = Instant::now();
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/slow-redis"}))
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "the timeout was waited once"
    );
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "20 redirects took {:?}",
        started.elapsed()
    );
    assert_eq!(server.metrics.snapshot().redis_errors, 1);
    server.shutdown().await;
}
// ANCHOR_END: slow_redis_test

// ANCHOR: pg_down_test
/// PostgreSQL goes away. Codes in this process's cache keep redirecting;
/// so do codes another node put in Redis; everything that needs the
/// database answers 503 with Retry-After, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_down_cached_codes_still_redirect_and_creates_503() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let config = Config {
        store_timeout: Duration::from_millis(500),
        ..b.config()
    };
    let node_a = b.serve(b.store.clone(), config.clone()).await;
    let (hot, token) = node_a
        .client
        .create_managed(json!({"url": "https://example.com/hot"}))
        .await;
    assert_eq!(
        node_a.client.get(&format!("/{hot}")).await.status,
        StatusCode::FOUND
    ); // now in moka and Redis

    // Node B has never reached its database (nothing listens on its port)
    // and has no in-process cache: all it has is the shared Redis.
    let dead_db = PgStore::connect_lazy(
        &format!(
            "postgres://postgres@127.0.0.1:{}/gone",
            common::closed_port().await
        ),
        4,
    )
    .expect("lazy pool");
    let node_b = Server::start(
        App::postgres(
            dead_db,
            Config {
                local_cache: None,
                ..config
            },
        )
        .expect("app"),
    )
    .await;
    // And node A loses its database too.
    b.store.pool().close().await;

    for node in [&node_a, &node_b] {
        let reply = node.client.get(&format!("/{hot}")).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{:?}", reply.body);
        assert_eq!(reply.header("location"), Some("https://example.com/hot"));

        let started = Instant::now();
        let create = node
            .client
            .create(json!({"url": "https://example.com/new"}))
            .await;
        assert_eq!(
            create.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            create.body
        );
        assert_eq!(create.header("retry-after"), Some("1"));
        assert_eq!(
            create.header("content-type"),
            Some("application/problem+json")
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );

        // An uncached code cannot be answered either way: 503, not a false 404.
        assert_eq!(
            node.client.get("/never-cached").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            node.client
                .delete_with(&format!("/api/links/{hot}"), &token)
                .await
                .status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    node_b.shutdown().await;
    node_a.shutdown().await;
}
// ANCHOR_END: pg_down_test

/// Every store call takes 2 s; the service gives up after 100 ms and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_store_is_cut_by_timeout() {
    let Some(b) = common::memory().await else {
        return;
    };
    let config = Config {
        store_timeout: Duration::from_millis(100),
        ..b.config()
    };
    let server = b
        .serve(Slow::new(b.store.clone(), Duration::from_secs(2)), config)
        .await;
    let started = Instant::now();
    let create = server
        .client
        .create(json!({"url": "https://example.com/", "alias": "patience"}))
        .await;
    let redirect = server.client.get("/patience").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    for reply in [create, redirect] {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.json()["title"], "Store timed out");
    }
    server.shutdown().await;
}

// ANCHOR: lock_wait_test
/// The same with a real slow dependency: an uncommitted insert of the same
/// code holds a lock that our insert must wait for. The timeout cuts the
/// wait and the client gets 503. But a client-side timeout does not cancel
/// the statement: ours is still queued on the lock in PostgreSQL, and
/// commits as soon as the lock goes, after the client was told 503. The
/// test waits for that commit in the table, then retries the identical
/// create, which gets the existing link (200), not a second insert (201)
/// and not a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_wait_in_postgres_is_cut_by_timeout() {
    let Some(b) = common::postgres().await else {
        return;
    };
    let db = b.db.as_ref().expect("database");
    let mut blocker = db.pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO links (code, target, created_at, token_hash) VALUES ('held', 'https://example.com/theirs', now(), sha256('theirs'))")
        .execute(&mut *blocker)
        .await
        .expect("insert");
    let server = b
        .serve(
            b.store.clone(),
            Config {
                store_timeout: Duration::from_millis(300),
                ..b.config()
            },
        )
        .await;
    let started = Instant::now();
    let reply = server
        .client
        .create(json!({"url": "https://example.com/mine", "alias": "held"}))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["title"], "Store timed out");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    blocker.rollback().await.expect("rollback");
    // The insert the service gave up on commits now, with nobody waiting for it.
    let pool = db.pool.clone();
    let committed = common::eventually(Duration::from_secs(2), || {
        let pool = pool.clone();
        async move {
            let target: Option<String> =
                sqlx::query_scalar("SELECT target FROM links WHERE code = 'held'")
                    .fetch_optional(&pool)
                    .await
                    .expect("select");
            target.as_deref() == Some("https://example.com/mine")
        }
    })
    .await;
    assert!(committed, "the abandoned insert never committed");
    let retry = server
        .client
        .create(json!({"url": "https://example.com/mine", "alias": "held"}))
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    assert_eq!(
        server.client.get("/held").await.header("location"),
        Some("https://example.com/mine")
    );
    server.shutdown().await;
}
// ANCHOR_END: lock_wait_test

/// The click writer is stuck (a store whose writes take 5 s) and the
/// channel holds 8 clicks: redirects stay fast, extra clicks are dropped
/// and counted, never waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_click_channel_drops_clicks_not_redirects() {
    let Some(b) = common::memory().await else {
        return;
    };
    let store = MemoryStore::new();
    let config = Config {
        clicks: ClickConfig {
            capacity: 8,
            flush_every: Duration::from_millis(10),
            max_batch: 1,
            ..ClickConfig::default()
        },
        store_timeout: Duration::from_secs(10),
        ..b.config()
    };
    // Reads are fast (the link is cached after the first); writes are slow.
    let server = b.serve(SlowWrites(store), config).await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/popular"}))
        .await;
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "100 redirects took {:?}",
        started.elapsed()
    );
    let m = server.metrics.snapshot();
    assert!(m.clicks_dropped >= 80, "{m:?}");
    drop(server); // not a graceful stop: the stuck writer would hold it for seconds
}

/// Fast reads, 5-second click writes.
#[derive(Clone)]
struct SlowWrites<S>(S);

impl<S: LinkStore> LinkStore for SlowWrites<S> {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.0.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        self.0.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.0.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.0.add_clicks(batch).await
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.0.daily_clicks(code).await
    }
}

// ANCHOR: redis_garbage_test
/// Values in Redis are parsed with the rules of input, our own host and
/// private addresses included: anything else (a foreign writer, a bug, a
/// half-finished migration) is a miss, counted, and
/// the redirect goes where PostgreSQL says, never to the garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_in_redis_is_a_miss_not_a_redirect() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let config = Config {
        local_cache: None,
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    server
        .client
        .create_code(json!({"url": "https://example.com/real", "alias": "real"}))
        .await;
    let mut redis = b.redis_conn().expect("redis");
    let garbage = [
        "L - javascript:alert(1)",
        "L - data:text/html,hi",
        "L - not a url",
        "L - HTTPS://EXAMPLE.COM/not-normalised",
        "L 12x https://example.com/",
        "Q",
        // Well-formed, but no create could have stored it: a loop back to us.
        "L - http://sho.rt/loop",
        "L - http://localhost:8080/loop",
    ];
    for (code, target) in [("real", Some("https://example.com/real")), ("unreal", None)] {
        let key = b.redis_key(code).expect("redis");
        for value in garbage {
            let _: () = ::redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .query_async(&mut redis)
                .await
                .expect("SET");
            let reply = server.client.get(&format!("/{code}")).await;
            match target {
                Some(t) => {
                    assert_eq!(reply.status, StatusCode::FOUND, "{value}");
                    assert_eq!(reply.header("location"), Some(t), "{value}");
                }
                None => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{value}"),
            }
        }
    }
    let m = server.metrics.snapshot();
    assert_eq!(m.redis_garbage, 2 * garbage.len() as u64, "{m:?}");
    // The fill replaced the garbage with what PostgreSQL holds.
    let key = b.redis_key("real").expect("redis");
    let now: String = ::redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(now, "L - https://example.com/real");
    server.shutdown().await;
}
// ANCHOR_END: redis_garbage_test

/// A client over its create limit is refused before the service reads its
/// body: a request whose body never arrives still gets its 429 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_client_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(b) = common::memory().await else {
        return;
    };
    let config = Config {
        rate_limit: Some(url_shortener::config::RateLimitConfig {
            per_second: 1,
            burst: 1,
        }),
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    server
        .client
        .create_code(json!({"url": "https://example.com/first"}))
        .await;
    // The head promises a body that never comes.
    let mut socket = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    socket
        .write_all(
            b"POST /api/links HTTP/1.1\r\nhost: sho.rt\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut head)).await;
    let n = read
        .expect("no answer while the body was pending: the body was read before the limit")
        .expect("read");
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    server.shutdown().await;
}

// ANCHOR: hung_db_test
/// A database that accepts connections and never answers (a hung server, a
/// network partition that drops packets): nothing is refused, everything
/// waits. The store timeout is what turns the wait into a fast 503; the
/// process stays healthy for the load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_database_is_cut_by_the_store_timeout() {
    let (port, _hole) = common::black_hole().await;
    let hung = PgStore::connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/hung"), 4)
        .expect("lazy pool");
    let Some(b) = common::memory().await else {
        return;
    };
    let config = Config {
        store_timeout: Duration::from_millis(300),
        ..b.config()
    };
    let server = Server::start(App::postgres(hung, config).expect("app")).await;
    let started = Instant::now();
    let create = server
        .client
        .create(json!({"url": "https://example.com/", "alias": "waiting"}))
        .await;
    let redirect = server.client.get("/never-cached").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    for reply in [create, redirect] {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.json()["title"], "Store timed out");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    assert_eq!(server.client.get("/health").await.status, StatusCode::OK);
    server.shutdown().await;
}
// ANCHOR_END: hung_db_test

/// A hung Redis with a short cooldown: after each cooldown the breaker lets
/// calls through again, one of them waits out the Redis timeout and opens
/// it again. The cost is about one timeout per cooldown, not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_redis_costs_one_timeout_per_cooldown() {
    let (port, _hole) = common::black_hole().await;
    let Some(b) = common::memory().await else {
        return;
    };
    let cooldown = Duration::from_millis(300);
    let redis = RedisConfig {
        timeout: Duration::from_millis(50),
        cooldown,
        ..RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
    };
    let config = Config {
        local_cache: None,
        redis: Some(redis),
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/slow-redis"}))
        .await;
    let started = Instant::now();
    let mut served = 0u64;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1_500) {
        let one = Instant::now();
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
        slowest = slowest.max(one.elapsed());
        served += 1;
    }
    let errors = server.metrics.snapshot().redis_errors;
    // 1.5 s of cooldowns of 300 ms (plus the create's): a handful of probes.
    let probes = 1 + started.elapsed().as_millis() as u64 / cooldown.as_millis() as u64;
    assert!(
        (2..=probes + 1).contains(&errors),
        "{errors} Redis errors for {served} redirects"
    );
    assert!(served > 10 * errors, "{served} redirects, {errors} errors");
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    server.shutdown().await;
}
