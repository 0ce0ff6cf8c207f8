//! The read-context cache keeps the chapter's promise: with the cache warm,
//! a delete, an unfollow, a block, a follow or a new celebrity mark made
//! through another service instance (its own PostgreSQL pool and Redis
//! connections, the same database and Redis) shows on the next read.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use twitter_timeline::app::Page;
use twitter_timeline::domain::{Handle, Post, PostId, UserId};
use twitter_timeline::store::{
    CachedContexts, Failure, FanOutBatch, FanOutIf, FollowOutcome, Lookup, PgStore, RACE_READERS,
    RACE_TOGGLES, ReadContext, RetryPolicy, SocialStore, StoreError,
};
use twitter_timeline::timeline::{FanOutOnWrite, HomeTimeline, Hybrid};

use common::Instance;

async fn next_read<T: HomeTimeline>(
    a: &Instance<T>,
    reader: twitter_timeline::domain::UserId,
) -> Vec<PostId> {
    ids(&a.app.home(reader, None, None).await.expect("home"))
}

fn ids(p: &Page) -> Vec<PostId> {
    p.posts.iter().map(|x| x.id).collect()
}

/// Reads `reader`'s first page on `a` and checks the context came from the cache.
async fn warm_read<T: HomeTimeline>(
    a: &Instance<T>,
    reader: twitter_timeline::domain::UserId,
) -> Vec<PostId> {
    let (hits, ..) = a.contexts.stats();
    let page = a.app.home(reader, None, None).await.expect("home");
    assert_eq!(
        a.contexts.stats().0,
        hits + 1,
        "served from a warm context cache"
    );
    ids(&page)
}

// ANCHOR: warm_cache
async fn changes_on_b_show_on_a_warm_read<T: HomeTimeline>(a: Instance<T>, b: Instance<T>) {
    let u = common::make_users(&a.app, 5).await;
    let (reader, x, y, z, w) = (u[0], u[1], u[2], u[3], u[4]);
    for f in [x, y, z] {
        a.app.follow(reader, f).await.expect("follow");
    }
    let px = a.app.post(x, "by x").await.expect("post");
    let py = a.app.post(y, "by y").await.expect("post");
    let pz = a.app.post(z, "by z").await.expect("post");
    let pz2 = a.app.post(z, "by z again").await.expect("post");
    let pw = a.app.post(w, "by w").await.expect("post");
    a.app
        .home(reader, None, None)
        .await
        .expect("the first read fills");
    a.worker.drain().await.expect("drain");
    assert_eq!(
        warm_read(&a, reader).await,
        vec![pz2.id, pz.id, py.id, px.id]
    );

    // Each change goes through instance B. A's context cache is warm (the
    // read before was a hit); the very next read on A shows the change.
    b.app.delete(z, pz2.id).await.expect("delete");
    assert_eq!(next_read(&a, reader).await, vec![pz.id, py.id, px.id]);
    assert_eq!(warm_read(&a, reader).await, vec![pz.id, py.id, px.id]);
    b.app.unfollow(reader, y).await.expect("unfollow");
    assert_eq!(next_read(&a, reader).await, vec![pz.id, px.id]);
    assert_eq!(warm_read(&a, reader).await, vec![pz.id, px.id]);
    b.app.block(x, reader).await.expect("block");
    assert_eq!(next_read(&a, reader).await, vec![pz.id]);
    assert_eq!(warm_read(&a, reader).await, vec![pz.id]);
    b.app.follow(reader, w).await.expect("follow");
    assert_eq!(next_read(&a, reader).await, vec![pw.id, pz.id]);
}
// ANCHOR_END: warm_cache

#[tokio::test]
async fn a_warm_context_cache_shows_deletes_unfollows_blocks_and_follows_made_on_another_instance()
{
    let Some(shared) = common::shared().await else {
        return;
    };
    let (a, b) = shared.two_instances(FanOutOnWrite).await;
    changes_on_b_show_on_a_warm_read(a, b).await;
    drop(shared);
    let Some(shared) = common::shared().await else {
        return;
    };
    let hybrid = |parts| Hybrid {
        parts,
        threshold: 1_000,
    };
    let (a, b) = shared.two_instances(hybrid).await;
    changes_on_b_show_on_a_warm_read(a, b).await;
}

// ANCHOR: celebrity
#[tokio::test]
async fn an_author_marked_a_celebrity_on_another_instance_is_pulled_on_the_next_read() {
    // A's cache holds the reader's context when B marks the author; the
    // epoch bump makes that entry stale, so the read after it is a miss,
    // and the context it reads from PostgreSQL carries the new mark.
    let Some(shared) = common::shared().await else {
        return;
    };
    let hybrid = |parts| Hybrid {
        parts,
        threshold: 2,
    };
    let (a, b) = shared.two_instances(hybrid).await;
    let u = common::make_users(&a.app, 3).await;
    let (reader, author, other) = (u[0], u[1], u[2]);
    a.app.follow(reader, author).await.expect("follow");
    let before = a.app.post(author, "fanned out").await.expect("post");
    a.worker.drain().await.expect("drain");
    a.app.home(reader, None, None).await.expect("fill");
    assert_eq!(warm_read(&a, reader).await, vec![before.id]);

    // A second follower, on B, makes the author a celebrity: the next post
    // gets no fan-out job, so A's reader sees it only if A now pulls it.
    b.app.follow(other, author).await.expect("follow");
    let after = b.app.post(author, "pulled").await.expect("post");
    assert_eq!(
        b.app
            .timeline()
            .store()
            .pending_fan_out()
            .await
            .expect("pending"),
        0
    );
    let (_, misses, _) = a.contexts.stats();
    let page = a.app.home(reader, None, None).await.expect("home");
    assert_eq!(ids(&page), vec![after.id, before.id]);
    assert_eq!(
        a.contexts.stats().1,
        misses + 1,
        "the bump made A's entry stale"
    );
}
// ANCHOR_END: celebrity

// ANCHOR: fill_race
#[tokio::test]
async fn a_fill_racing_an_unfollow_cannot_bring_the_follow_back() {
    let Some(shared) = common::shared().await else {
        return;
    };
    let (a, b) = shared.two_instances(FanOutOnWrite).await;
    let u = common::make_users(&a.app, 2).await;
    let (reader, author) = (u[0], u[1]);
    a.app
        .home(reader, None, None)
        .await
        .expect("starts the epoch");
    a.app.follow(reader, author).await.expect("follow");
    let p = a.app.post(author, "soon unfollowed").await.expect("post");
    a.worker.drain().await.expect("drain");

    // A's read, step by step, with B's unfollow between its read of
    // PostgreSQL and its fill: the interleaving an unconditional fill loses.
    let store = a.app.timeline().store();
    let Lookup::Miss(ticket) = a.contexts.lookup(reader).await.expect("lookup") else {
        panic!("cold cache");
    };
    let stale = store.inner().read_context(reader).await.expect("read");
    assert_eq!(stale.followees.len(), 1);
    b.app.unfollow(reader, author).await.expect("unfollow");
    assert!(
        !a.contexts.fill(ticket, &stale).await.expect("fill"),
        "refused"
    );
    let page = a.app.home(reader, None, None).await.expect("home");
    assert!(!ids(&page).contains(&p.id), "the unfollow holds");

    // Without a write in between, the same steps fill.
    a.contexts.invalidate(&[reader]).await.expect("invalidate");
    let Lookup::Miss(ticket) = a.contexts.lookup(reader).await.expect("lookup") else {
        panic!("invalidated");
    };
    let fresh = store.inner().read_context(reader).await.expect("read");
    assert!(
        a.contexts.fill(ticket, &fresh).await.expect("fill"),
        "stored"
    );
}
// ANCHOR_END: fill_race

// ANCHOR: version_lost
#[tokio::test]
async fn a_version_key_lost_between_ticket_and_fill_still_refuses_the_stale_fill() {
    let Some(shared) = common::shared().await else {
        return;
    };
    let (a, b) = shared.two_instances(FanOutOnWrite).await;
    let u = common::make_users(&a.app, 2).await;
    let (reader, author) = (u[0], u[1]);
    a.app
        .home(reader, None, None)
        .await
        .expect("starts the epoch");
    a.app.follow(reader, author).await.expect("follow");

    // A takes its ticket and reads PostgreSQL; then the reader's version key
    // is lost (evicted, or a failover to a replica without it), and B's
    // unfollow starts the version again. Counted from 1, it would come back
    // to the very value A's ticket holds, and A's stale fill would pass.
    let store = a.app.timeline().store();
    let Lookup::Miss(ticket) = a.contexts.lookup(reader).await.expect("lookup") else {
        panic!("the follow invalidated");
    };
    let stale = store.inner().read_context(reader).await.expect("read");
    assert_eq!(stale.followees.len(), 1);
    let mut conn = shared.redis.conn.clone();
    let lost: i64 = redis::cmd("DEL")
        .arg(a.contexts.version_key(reader))
        .query_async(&mut conn)
        .await
        .expect("del");
    assert_eq!(lost, 1, "the follow had set a version");
    b.app.unfollow(reader, author).await.expect("unfollow");
    assert!(
        !a.contexts.fill(ticket, &stale).await.expect("fill"),
        "refused"
    );
    let ctx = store.read_context(reader).await.expect("read");
    assert!(ctx.followees.is_empty(), "the unfollow holds");

    // A ticket taken while the version was missing (it expired VERSION_TTL
    // after the last change): a write starts a version, the version is lost
    // again, and the fill finds none, as it did when it took the ticket.
    b.app.follow(reader, author).await.expect("follow");
    let del = |key: String| {
        let mut conn = shared.redis.conn.clone();
        async move {
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
    };
    del(a.contexts.version_key(reader)).await;
    let Lookup::Miss(ticket) = a.contexts.lookup(reader).await.expect("lookup") else {
        panic!("the follow invalidated");
    };
    let stale = store.inner().read_context(reader).await.expect("read");
    assert_eq!(stale.followees.len(), 1);
    b.app.unfollow(reader, author).await.expect("unfollow");
    del(a.contexts.version_key(reader)).await;
    assert!(
        !a.contexts.fill(ticket, &stale).await.expect("fill"),
        "refused: no version is not the version the ticket saw missing"
    );
    let ctx = store.read_context(reader).await.expect("read");
    assert!(ctx.followees.is_empty(), "the unfollow holds");
    let ctx = store.read_context(reader).await.expect("read");
    assert!(
        ctx.followees.is_empty(),
        "and what the next miss stores is current"
    );
}
// ANCHOR_END: version_lost

/// A store that, after an unfollow commits, reports it and then holds the
/// call until released: the window in which a client that disconnects
/// drops the request between the commit and the invalidation.
#[derive(Clone)]
struct HoldAfterCommit {
    inner: PgStore,
    committed: Arc<Notify>,
    release: Arc<Notify>,
}

impl SocialStore for HoldAfterCommit {
    type Claim = <PgStore as SocialStore>::Claim;

    async fn create_user(&self, handle: &Handle) -> Result<UserId, StoreError> {
        self.inner.create_user(handle).await
    }
    async fn insert_post(&self, post: &Post, fan_out: FanOutIf) -> Result<bool, StoreError> {
        self.inner.insert_post(post, fan_out).await
    }
    async fn delete_post(&self, by: UserId, id: PostId) -> Result<(), StoreError> {
        self.inner.delete_post(by, id).await
    }
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> Result<FollowOutcome, StoreError> {
        self.inner.follow(follower, followee, celebrity_at).await
    }
    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        let removed = self.inner.unfollow(follower, followee).await?;
        self.committed.notify_one();
        self.release.notified().await;
        Ok(removed)
    }
    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), StoreError> {
        self.inner.block(blocker, blocked).await
    }
    async fn read_context(&self, reader: UserId) -> Result<ReadContext, StoreError> {
        self.inner.read_context(reader).await
    }
    async fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        per_author: usize,
    ) -> Result<Vec<Vec<Post>>, StoreError> {
        self.inner.posts_by(authors, before, per_author).await
    }
    async fn hydrate(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        self.inner.hydrate(ids).await
    }
    async fn claim_fan_out(
        &self,
        batch: usize,
    ) -> Result<Option<(Self::Claim, FanOutBatch)>, StoreError> {
        self.inner.claim_fan_out(batch).await
    }
    async fn finish_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
    ) -> Result<(), StoreError> {
        self.inner.finish_batch(claim, batch).await
    }
    async fn fail_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
        error: &str,
        policy: RetryPolicy,
    ) -> Result<Failure, StoreError> {
        self.inner.fail_batch(claim, batch, error, policy).await
    }
    async fn pending_fan_out(&self) -> Result<u64, StoreError> {
        self.inner.pending_fan_out().await
    }
}

// ANCHOR: dropped_write
#[tokio::test]
async fn an_unfollow_whose_request_is_dropped_after_the_commit_still_invalidates() {
    let Some(shared) = common::shared().await else {
        return;
    };
    let inner = PgStore::new(shared.db.pool_with(2).await);
    let hold = HoldAfterCommit {
        inner: inner.clone(),
        committed: Arc::default(),
        release: Arc::default(),
    };
    let contexts = common::contexts(&shared.redis);
    let store = CachedContexts::new(hold.clone(), contexts.clone());
    let mut users = Vec::new();
    for h in ["dropper", "dropped"] {
        let handle = Handle::parse(h).expect("handle");
        users.push(store.create_user(&handle).await.expect("user"));
    }
    let (reader, author) = (users[0], users[1]);
    store
        .follow(reader, author, u64::MAX)
        .await
        .expect("follow");
    store.read_context(reader).await.expect("fills");
    assert!(matches!(contexts.lookup(reader).await, Ok(Lookup::Hit(_))));

    // The request is dropped once the unfollow has committed, as axum drops
    // a handler whose client disconnected.
    tokio::select! {
        _ = store.unfollow(reader, author) => panic!("held after the commit"),
        _ = hold.committed.notified() => {}
    }
    assert!(
        inner
            .read_context(reader)
            .await
            .expect("read")
            .followees
            .is_empty()
    );
    hold.release.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while matches!(contexts.lookup(reader).await, Ok(Lookup::Hit(_))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cached context still holds the unfollowed author"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ctx = store.read_context(reader).await.expect("read");
    assert!(ctx.followees.is_empty(), "the next read sees the unfollow");
}
// ANCHOR_END: dropped_write

// ANCHOR: concurrent
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_follows_and_unfollows_never_see_a_removed_follow() {
    let Some(shared) = common::shared().await else {
        return;
    };
    let (a, b) = shared.two_instances(FanOutOnWrite).await;
    let u = common::make_users(&a.app, 2).await;
    let (reader, author) = (u[0], u[1]);
    let p = a.app.post(author, "now you see me").await.expect("post");
    a.app
        .home(reader, None, None)
        .await
        .expect("timeline exists");

    // Readers on A keep missing and filling the reader's context while B
    // toggles the follow; after each toggle returns, a read on A must agree.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..RACE_READERS)
        .map(|_| {
            let (app, stop) = (a.app.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    app.home(reader, None, None).await.expect("home");
                }
            })
        })
        .collect();
    for i in 0..RACE_TOGGLES {
        let following = i % 2 == 0;
        if following {
            b.app.follow(reader, author).await.expect("follow");
        } else {
            b.app.unfollow(reader, author).await.expect("unfollow");
        }
        let page = a.app.home(reader, None, None).await.expect("home");
        assert_eq!(ids(&page).contains(&p.id), following, "toggle {i}");
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.await.expect("reader");
    }
    let (hits, misses, garbage) = a.contexts.stats();
    assert!(
        hits > 0 && misses >= RACE_TOGGLES as u64 && garbage == 0,
        "{hits} {misses} {garbage}"
    );
}
// ANCHOR_END: concurrent

#[tokio::test]
async fn garbage_in_a_cached_context_is_a_miss_and_a_count() {
    let Some(shared) = common::shared().await else {
        return;
    };
    let a = shared.instance(1, FanOutOnWrite).await;
    let u = common::make_users(&a.app, 2).await;
    a.app.follow(u[0], u[1]).await.expect("follow");
    let p = a.app.post(u[1], "real").await.expect("post");
    a.worker.drain().await.expect("drain");
    a.app.home(u[0], None, None).await.expect("fill");
    let mut conn = shared.redis.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(a.contexts.key(u[0]))
        .arg("1|0|not-a-user:0|")
        .query_async(&mut conn)
        .await
        .expect("set");
    let page = a.app.home(u[0], None, None).await.expect("home");
    assert_eq!(ids(&page), vec![p.id]);
    assert_eq!(a.contexts.stats().2, 1, "counted");
}
