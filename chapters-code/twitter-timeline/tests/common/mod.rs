//! Shared test support: wiring each strategy over each pair of engines, and
//! the random workloads the equivalence test replays.
#![allow(dead_code)]

use std::time::Duration;

use proptest::prelude::*;
use twitter_timeline::app::{AppError, Timelines};
use twitter_timeline::cache::{Layout, MemoryTimelines, RedisTimelines, TimelineCache};
use twitter_timeline::domain::{Post, UserId};
use twitter_timeline::fanout::FanOutWorker;
use twitter_timeline::reference::Reference;
use twitter_timeline::store::{
    CONTEXT_TTL, CachedContexts, ContextCache, MemoryStore, PgStore, SCHEMA, SocialStore,
    StoreError,
};
use twitter_timeline::timeline::{
    FanOutOnRead, FanOutOnWrite, HomeTimeline, Hybrid, Parts, TimelineError,
};

/// One step of a random workload; user numbers index the case's users.
#[derive(Clone, Debug)]
pub enum Op {
    /// User posts.
    Post(usize),
    /// A follows B.
    Follow(usize, usize),
    /// A unfollows B.
    Unfollow(usize, usize),
    /// A blocks B.
    Block(usize, usize),
    /// Delete the n-th post made so far (mod count), by its author or by someone else.
    Delete(usize, bool),
    /// The user's timeline expires (inactive user).
    Evict(usize),
    /// Every timeline is lost (a Redis flush).
    Flush,
    /// Compare a user's whole timeline, paged by `page`, with the reference.
    Read(usize, usize),
}

/// Workloads over `users` users.
pub fn ops(users: usize, len: usize) -> impl Strategy<Value = Vec<Op>> {
    let u = 0..users;
    let op = prop_oneof![
        6 => u.clone().prop_map(Op::Post),
        5 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Follow(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unfollow(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Block(a, b)),
        1 => (0usize..100, prop::bool::weighted(0.8)).prop_map(|(n, own)| Op::Delete(n, own)),
        1 => u.clone().prop_map(Op::Evict),
        1 => Just(Op::Flush),
        2 => (u, 1usize..5).prop_map(|(a, p)| Op::Read(a, p)),
    ];
    prop::collection::vec(op, 1..len)
}

/// A store error's name, for comparing outcomes.
fn outcome<T>(r: Result<T, AppError>) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(AppError::Timeline(TimelineError::Store(e))) => Err(format!("{e:?}")),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn ref_outcome<T>(r: Result<T, StoreError>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| format!("{e:?}"))
}

/// What a test can do to a strategy's cache.
pub trait Chaos: Send + Sync {
    /// Drops one user's timeline.
    fn evict(&self, user: UserId) -> impl Future<Output = ()> + Send;
    /// Drops every timeline.
    fn flush(&self) -> impl Future<Output = ()> + Send;
}

impl Chaos for MemoryTimelines {
    async fn evict(&self, user: UserId) {
        TimelineCache::evict(self, user).await.expect("evict");
    }
    async fn flush(&self) {
        MemoryTimelines::flush(self);
    }
}

impl Chaos for RedisTimelines {
    async fn evict(&self, user: UserId) {
        TimelineCache::evict(self, user).await.expect("evict");
    }
    async fn flush(&self) {
        self.flush_prefix().await.expect("flush");
    }
}

/// No cache: nothing to break.
pub struct NoCache;

impl Chaos for NoCache {
    async fn evict(&self, _: UserId) {}
    async fn flush(&self) {}
}

/// Reads a user's whole timeline page by page through the use cases.
pub async fn read_all<T: HomeTimeline>(
    app: &Timelines<T>,
    user: UserId,
    page: usize,
) -> Vec<Vec<Post>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = app
            .home(user, cursor.as_deref(), Some(page))
            .await
            .expect("home");
        let next = p.next.clone();
        pages.push(p.posts);
        match next {
            Some(c) => cursor = Some(c),
            None => return pages,
        }
    }
}

fn ref_pages(r: &Reference, user: UserId, page: usize) -> Vec<Vec<Post>> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let p = r.home(user, before, page);
        let full = p.len() == page;
        before = p.last().map(|x| x.id);
        pages.push(p);
        if !full {
            return pages;
        }
    }
}

// ANCHOR: replay
/// Replays `ops` against the strategy and the reference; after every
/// operation the fan-out queue is drained, and each `Read` compares every
/// page of a timeline with the reference's.
pub async fn replay<T: HomeTimeline>(
    app: &Timelines<T>,
    worker: &FanOutWorker<T>,
    chaos: &impl Chaos,
    users: &[UserId],
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut reference = Reference::new();
    for u in users {
        reference.add_user(*u);
    }
    let mut posts: Vec<Post> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Post(a) => {
                let p = app
                    .post(users[a], &format!("post {i}"))
                    .await
                    .expect("post");
                reference.post(p.clone()).expect("reference post");
                posts.push(p);
            }
            Op::Follow(a, b) => prop_assert_eq!(
                outcome(app.follow(users[a], users[b]).await),
                ref_outcome(reference.follow(users[a], users[b])),
                "follow {} {}",
                a,
                b
            ),
            Op::Unfollow(a, b) => prop_assert_eq!(
                outcome(app.unfollow(users[a], users[b]).await),
                ref_outcome(reference.unfollow(users[a], users[b]))
            ),
            Op::Block(a, b) => prop_assert_eq!(
                outcome(app.block(users[a], users[b]).await),
                ref_outcome(reference.block(users[a], users[b]))
            ),
            Op::Delete(n, own) => {
                if posts.is_empty() {
                    continue;
                }
                let p = &posts[n % posts.len()];
                let by = if own {
                    p.author
                } else {
                    users[(n + 1) % users.len()]
                };
                prop_assert_eq!(
                    outcome(app.delete(by, p.id).await),
                    ref_outcome(reference.delete(by, p.id))
                );
            }
            Op::Evict(u) => chaos.evict(users[u]).await,
            Op::Flush => chaos.flush().await,
            Op::Read(u, page) => {
                let got = read_all(app, users[u], page).await;
                prop_assert_eq!(
                    got,
                    ref_pages(&reference, users[u], page),
                    "op {}: read of user {}",
                    i,
                    u
                );
            }
        }
        worker.drain().await.expect("fan-out");
    }
    for u in users {
        let got = read_all(app, *u, 3).await;
        prop_assert_eq!(got, ref_pages(&reference, *u, 3), "final read of {:?}", u);
    }
    Ok(())
}
// ANCHOR_END: replay

/// Creates `n` users with handles unique to this process and case.
pub async fn make_users<T: HomeTimeline>(app: &Timelines<T>, n: usize) -> Vec<UserId> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        out.push(app.create_user(&format!("u{k}")).await.expect("user"));
    }
    out
}

/// Use cases and a worker over a strategy.
pub fn wire<T: HomeTimeline>(t: T) -> (Timelines<T>, FanOutWorker<T>) {
    let app = Timelines::new(t.clone(), 1, b"test").expect("app");
    (app, FanOutWorker::new(t, 3))
}

/// The three strategies over memory engines, timelines capped at `cap`.
pub fn memory_strategies(
    cap: usize,
    threshold: u64,
) -> (
    FanOutOnWrite<MemoryStore, MemoryTimelines>,
    FanOutOnRead<MemoryStore>,
    Hybrid<MemoryStore, MemoryTimelines>,
) {
    let push = FanOutOnWrite(Parts {
        store: MemoryStore::new(),
        cache: MemoryTimelines::with_cap(cap),
    });
    let pull = FanOutOnRead(MemoryStore::new());
    let hybrid = Hybrid {
        parts: Parts {
            store: MemoryStore::new(),
            cache: MemoryTimelines::with_cap(cap),
        },
        threshold,
    };
    (push, pull, hybrid)
}

/// A PostgreSQL database with the schema, and a store on it.
pub async fn pg(pool_size: u32) -> Option<(testkit::TestDb, PgStore)> {
    let db = pg_db().await?;
    let pool = db.pool_with(pool_size).await;
    Some((db, PgStore::new(pool)))
}

/// A fresh PostgreSQL database with the schema; `None` after a SKIPPED line.
pub async fn pg_db() -> Option<testkit::TestDb> {
    let db = testkit::postgres(None).await?;
    db.apply_sql(SCHEMA).await.expect("schema");
    Some(db)
}

/// Redis timelines under a fresh test prefix.
pub async fn redis(layout: Layout, cap: usize) -> Option<(testkit::TestRedis, RedisTimelines)> {
    let r = testkit::redis().await?;
    let t = RedisTimelines::connect(&r.url, &r.prefix, layout, cap, Duration::from_secs(600))
        .await
        .expect("redis timelines");
    Some((r, t))
}

/// A fresh PostgreSQL store (`pool_size` connections) and Redis list
/// timelines under a fresh prefix; `None` after a SKIPPED line.
pub async fn pg_and_redis(
    pool_size: u32,
) -> Option<(testkit::TestDb, PgStore, testkit::TestRedis, RedisTimelines)> {
    let (db, store) = pg(pool_size).await?;
    let (r, cache) = redis(Layout::List, 800).await?;
    Some((db, store, r, cache))
}

/// One instance's read-context cache: its own connection, under the
/// timelines' prefix (so a flush of the prefix loses contexts too).
pub fn contexts(r: &testkit::TestRedis) -> ContextCache {
    ContextCache::connect(&r.url, &r.prefix, CONTEXT_TTL).expect("context cache")
}

/// `store` with its read contexts cached under `r`'s prefix.
pub fn cached(store: &PgStore, r: &testkit::TestRedis) -> CachedContexts<PgStore> {
    CachedContexts::new(store.clone(), contexts(r))
}

/// One service instance of the read-context tests: its own PostgreSQL
/// pool, its own Redis connections, and a read-context cache of its own.
pub struct Instance<T> {
    /// The use cases.
    pub app: Timelines<T>,
    /// This instance's read-context cache (its hit counts are its own).
    pub contexts: ContextCache,
    /// This instance's fan-out worker.
    pub worker: FanOutWorker<T>,
}

/// What service instances share: a PostgreSQL database with the schema
/// and a Redis prefix.
pub struct Shared {
    /// The database.
    pub db: testkit::TestDb,
    /// The Redis prefix.
    pub redis: testkit::TestRedis,
}

/// A fresh database and Redis prefix for instances to share; `None` after
/// a SKIPPED line.
pub async fn shared() -> Option<Shared> {
    let db = pg_db().await?;
    let redis = testkit::redis().await?;
    Some(Shared { db, redis })
}

impl Shared {
    /// One service instance on the shared engines; `node` is its snowflake
    /// node (unique among the instances on one database).
    pub async fn instance<T: HomeTimeline>(
        &self,
        node: u16,
        make: impl Fn(Parts<CachedContexts<PgStore>, RedisTimelines>) -> T,
    ) -> Instance<T> {
        let store = PgStore::new(self.db.pool_with(2).await);
        let contexts = contexts(&self.redis);
        let cache = RedisTimelines::connect(
            &self.redis.url,
            &self.redis.prefix,
            Layout::List,
            800,
            Duration::from_secs(600),
        )
        .await
        .expect("timelines");
        let t = make(Parts {
            store: CachedContexts::new(store, contexts.clone()),
            cache,
        });
        Instance {
            app: Timelines::new(t.clone(), node, b"k").expect("app"),
            contexts,
            worker: FanOutWorker::new(t, 10),
        }
    }

    /// Two service instances (snowflake nodes 1 and 2) on the shared engines.
    pub async fn two_instances<T: HomeTimeline>(
        &self,
        make: impl Fn(Parts<CachedContexts<PgStore>, RedisTimelines>) -> T,
    ) -> (Instance<T>, Instance<T>) {
        let a = self.instance(1, &make).await;
        let b = self.instance(2, &make).await;
        (a, b)
    }
}

/// Keeps the store type nameable in generic helpers.
pub fn store_of<T: HomeTimeline>(t: &T) -> &T::Store {
    t.store()
}

/// A no-op use of `SocialStore` so the import is used in every test binary.
pub fn _uses(_: &impl SocialStore) {}

/// A store that, once armed for one method, lets that call finish in the
/// store, reports it, and then holds the caller until released: the window
/// between a commit and what the caller does next (a client that
/// disconnects, a rebuild that a follow overtakes).
#[derive(Clone)]
pub struct Hold<S> {
    /// The real store.
    pub inner: S,
    /// The method to hold after, once ("follow", "read_context", ...).
    pub armed: std::sync::Arc<std::sync::Mutex<Option<&'static str>>>,
    /// Notified when the armed call has finished in the store.
    pub reached: std::sync::Arc<tokio::sync::Notify>,
    /// Notify to let the held call return.
    pub release: std::sync::Arc<tokio::sync::Notify>,
    /// The method whose next call fails as unavailable, once.
    pub failing: std::sync::Arc<std::sync::Mutex<Option<&'static str>>>,
    /// While set, what `read_context` answers (a context cache whose
    /// invalidation failed); `fresh_context` still reads the store.
    pub stale: std::sync::Arc<std::sync::Mutex<Option<twitter_timeline::store::ReadContext>>>,
}

impl<S> Hold<S> {
    /// `inner`, unarmed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            armed: Default::default(),
            reached: Default::default(),
            release: Default::default(),
            failing: Default::default(),
            stale: Default::default(),
        }
    }

    /// Makes the next call of `method` fail as unavailable, before the store.
    pub fn fail_once(&self, method: &'static str) {
        *self.failing.lock().expect("lock") = Some(method);
    }

    fn fails(&self, method: &'static str) -> Result<(), StoreError> {
        let mut failing = self.failing.lock().expect("lock");
        match (*failing == Some(method)).then(|| failing.take()) {
            Some(_) => Err(StoreError::Unavailable(format!("{method}: armed to fail"))),
            None => Ok(()),
        }
    }

    /// Holds the next call of `method` after it has finished in the store.
    pub fn arm(&self, method: &'static str) {
        *self.armed.lock().expect("lock") = Some(method);
    }

    async fn after(&self, method: &'static str) {
        let hit = {
            let mut armed = self.armed.lock().expect("lock");
            (*armed == Some(method)).then(|| armed.take()).is_some()
        };
        if hit {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

type Claim<S> = <S as SocialStore>::Claim;

impl<S: SocialStore> SocialStore for Hold<S> {
    type Claim = Claim<S>;

    async fn create_user(
        &self,
        handle: &twitter_timeline::domain::Handle,
    ) -> Result<UserId, StoreError> {
        self.inner.create_user(handle).await
    }
    async fn insert_post(
        &self,
        post: &Post,
        fan_out: twitter_timeline::store::FanOutIf,
    ) -> Result<bool, StoreError> {
        self.inner.insert_post(post, fan_out).await
    }
    async fn delete_post(
        &self,
        by: UserId,
        id: twitter_timeline::domain::PostId,
    ) -> Result<(), StoreError> {
        self.inner.delete_post(by, id).await
    }
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> Result<twitter_timeline::store::FollowOutcome, StoreError> {
        let out = self.inner.follow(follower, followee, celebrity_at).await?;
        self.after("follow").await;
        Ok(out)
    }
    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        self.inner.unfollow(follower, followee).await
    }
    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), StoreError> {
        self.inner.block(blocker, blocked).await
    }
    async fn read_context(
        &self,
        reader: UserId,
    ) -> Result<twitter_timeline::store::ReadContext, StoreError> {
        let stale = self.stale.lock().expect("lock").clone();
        let ctx = match stale {
            Some(ctx) => ctx,
            None => self.inner.read_context(reader).await?,
        };
        self.after("read_context").await;
        Ok(ctx)
    }
    async fn fresh_context(
        &self,
        reader: UserId,
    ) -> Result<twitter_timeline::store::ReadContext, StoreError> {
        let ctx = self.inner.fresh_context(reader).await?;
        self.after("fresh_context").await;
        Ok(ctx)
    }
    async fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<twitter_timeline::domain::PostId>,
        per_author: usize,
    ) -> Result<Vec<Vec<Post>>, StoreError> {
        self.fails("posts_by")?;
        let posts = self.inner.posts_by(authors, before, per_author).await?;
        self.after("posts_by").await;
        Ok(posts)
    }
    async fn hydrate(
        &self,
        ids: &[twitter_timeline::domain::PostId],
    ) -> Result<Vec<Post>, StoreError> {
        self.inner.hydrate(ids).await
    }
    async fn claim_fan_out(
        &self,
        batch: usize,
    ) -> Result<Option<(Self::Claim, twitter_timeline::store::FanOutBatch)>, StoreError> {
        self.inner.claim_fan_out(batch).await
    }
    async fn finish_batch(
        &self,
        claim: Self::Claim,
        batch: &twitter_timeline::store::FanOutBatch,
    ) -> Result<(), StoreError> {
        self.inner.finish_batch(claim, batch).await
    }
    async fn fail_batch(
        &self,
        claim: Self::Claim,
        batch: &twitter_timeline::store::FanOutBatch,
        error: &str,
        policy: twitter_timeline::store::RetryPolicy,
    ) -> Result<twitter_timeline::store::Failure, StoreError> {
        self.inner.fail_batch(claim, batch, error, policy).await
    }
    async fn pending_fan_out(&self) -> Result<u64, StoreError> {
        self.inner.pending_fan_out().await
    }
}
