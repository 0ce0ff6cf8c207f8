//! Failure modes on the real engines: a worker killed mid-fan-out, lost
//! timelines rebuilt, a Redis flush mid-run, Redis down, garbage in Redis,
//! deletes, unfollows and blocks effective on the next read, and a poison
//! fan-out job moved to the dead letters (its batch's other followers
//! served at once, its later batches held until the replay).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twitter_timeline::app::Timelines;
use twitter_timeline::cache::{Layout, RedisTimelines, TimelineCache};
use twitter_timeline::domain::{PostId, UserId};
use twitter_timeline::fanout::FanOutWorker;
use twitter_timeline::store::{
    CONTEXT_TTL, CachedContexts, ContextCache, PgStore, RetryPolicy, SocialStore,
};
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, HomeTimeline, Hybrid, Parts};

fn push<S: SocialStore>(store: &S, cache: &RedisTimelines) -> FanOutOnWrite<S, RedisTimelines> {
    FanOutOnWrite(Parts {
        store: store.clone(),
        cache: cache.clone(),
    })
}

fn start_worker(db: &testkit::TestDb, r: &testkit::TestRedis) -> Child {
    Command::new(env!("CARGO_BIN_EXE_twitter-timeline"))
        .env("ROLE", "worker")
        .env("STRATEGY", "push")
        .env("DATABASE_URL", &db.url)
        .env("PG_POOL", "2")
        .env("REDIS_URL", &r.url)
        .env("REDIS_PREFIX", &r.prefix)
        .env("FANOUT_BATCH", "20")
        .env("FANOUT_PAUSE_MS", "40")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the worker binary")
}

/// How many of `users` have `post` in their timeline list, and how many times in total.
async fn copies(
    r: &testkit::TestRedis,
    cache: &RedisTimelines,
    users: &[UserId],
    post: PostId,
) -> (usize, usize) {
    let mut pipe = redis::pipe();
    for u in users {
        pipe.cmd("LPOS")
            .arg(cache.list_key(*u))
            .arg(post.to_string())
            .arg("COUNT")
            .arg(0);
    }
    let mut conn = r.conn.clone();
    let found: Vec<Vec<i64>> = pipe.query_async(&mut conn).await.expect("LPOS");
    (
        found.iter().filter(|f| !f.is_empty()).count(),
        found.iter().map(Vec::len).sum(),
    )
}

async fn committed_progress(store: &PgStore) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT after_user FROM fanout_jobs")
        .fetch_optional(store.pool())
        .await
        .expect("progress")
        .flatten()
}

// ANCHOR: worker_crash
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_fan_out_leaves_every_follower_with_the_post_exactly_once() {
    let Some((db, store, r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let t = push(&store, &cache);
    let app = Timelines::new(t.clone(), 1, b"k").expect("app");
    let users = common::make_users(&app, 301).await;
    let (author, followers) = (users[0], &users[1..]);
    for f in followers {
        app.follow(*f, author).await.expect("follow");
        // A read makes the follower's timeline exist, so fan-out writes into it.
        app.home(*f, None, None).await.expect("home");
    }
    let post = app.post(author, "hello, followers").await.expect("post").id;

    // Let a worker process deliver some batches, then kill -9 it between
    // delivering a batch and committing it. Progress is read again after
    // the kill: if the batch committed just before the signal landed, the
    // kill was not mid-batch, and another worker is started and killed.
    // Followers are created in id order, so progress is an index.
    let committed = || async {
        match committed_progress(&store).await {
            Some(after) => followers.iter().filter(|f| f.0 <= after).count(),
            None => 0,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    'kill: loop {
        let mut worker = start_worker(&db, &r);
        let mid_batch = loop {
            if Instant::now() >= deadline {
                break false;
            }
            let (have, _) = copies(&r, &cache, followers, post).await;
            let done = committed().await;
            if have > done && done > 0 && have < followers.len() {
                break true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        worker.kill().expect("kill -9");
        worker.wait().expect("reap");
        assert!(mid_batch, "never killed mid-batch");
        let (have, _) = copies(&r, &cache, followers, post).await;
        if have > committed().await {
            break 'kill;
        }
    }
    let (have, total) = copies(&r, &cache, followers, post).await;
    assert!(
        have > committed().await,
        "after the kill: delivered beyond the committed progress"
    );
    assert!(have < followers.len(), "killed mid-job");
    assert_eq!(have, total, "no duplicates yet");
    assert_eq!(
        store.pending_fan_out().await.expect("pending"),
        1,
        "the job survived the crash"
    );

    // A new worker finishes the job, re-delivering the uncommitted batch.
    let mut worker = start_worker(&db, &r);
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.pending_fan_out().await.expect("pending") > 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted worker did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill().expect("stop");
    worker.wait().expect("reap");
    let (have, total) = copies(&r, &cache, followers, post).await;
    assert_eq!(have, followers.len(), "every follower has the post");
    assert_eq!(total, followers.len(), "exactly once");
    for f in followers.iter().take(5) {
        let page = app.home(*f, None, None).await.expect("home");
        assert_eq!(
            page.posts.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![post]
        );
    }
}
// ANCHOR_END: worker_crash

// ANCHOR: rebuild
#[tokio::test]
async fn an_evicted_timeline_is_rebuilt_from_postgres_with_the_same_posts() {
    let Some((_db, store, _r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let t = push(&store, &cache);
    let (app, worker) = common::wire(t);
    let users = common::make_users(&app, 6).await;
    for a in &users[1..] {
        app.follow(users[0], *a).await.expect("follow");
    }
    app.home(users[0], None, None).await.expect("home");
    for i in 0..40 {
        app.post(users[1 + i % 5], &format!("p{i}"))
            .await
            .expect("post");
    }
    worker.drain().await.expect("drain");
    let before = common::read_all(&app, users[0], 7).await;
    assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 40);

    cache.evict(users[0]).await.expect("evict");
    assert_eq!(cache.window(users[0], None, 1).await.expect("window"), None);
    let after = common::read_all(&app, users[0], 7).await;
    assert_eq!(after, before, "rebuilt from PostgreSQL");
    assert!(
        cache
            .window(users[0], None, 1)
            .await
            .expect("window")
            .is_some(),
        "cached again"
    );
}
// ANCHOR_END: rebuild

// ANCHOR: rebuild_race
/// A read rebuilds an evicted timeline through `Parts::rebuild`; a post is
/// fanned out after the rebuild has read the store and before it writes.
/// The post must be in the rebuilt timeline: the timeline is marked
/// *building* before the read, so the delivery lands in it. Seen failing
/// with `begin_rebuild` moved after the read: the delivery found no
/// timeline and the rebuilt page held only the older post.
#[tokio::test]
async fn a_post_fanned_out_while_a_timeline_is_rebuilt_is_not_lost() {
    let Some((_db, store, _r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let hold = common::Hold::new(store.clone());
    let (app, worker) = common::wire(push(&hold, &cache));
    let users = common::make_users(&app, 2).await;
    app.follow(users[0], users[1]).await.expect("follow");
    let old = app.post(users[1], "before").await.expect("post");
    worker.drain().await.expect("drain");
    cache.evict(users[0]).await.expect("evict");

    // The rebuild's read of the store finishes, then waits.
    hold.arm("posts_by");
    let read = tokio::spawn({
        let (app, reader) = (app.clone(), users[0]);
        async move { app.home(reader, None, None).await }
    });
    hold.reached.notified().await;
    let new = app
        .post(users[1], "during the rebuild")
        .await
        .expect("post");
    worker.drain().await.expect("drain");
    hold.release.notify_one();
    read.await.expect("task").expect("the rebuilding read");

    let page = app.home(users[0], None, None).await.expect("home");
    assert_eq!(
        page.posts.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![new.id, old.id],
        "the post delivered during the rebuild was lost"
    );
}
// ANCHOR_END: rebuild_race

// ANCHOR: flush
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_flush_mid_run_loses_nothing_postgres_holds() {
    let Some((_db, store, _r, cache)) = common::pg_and_redis(8).await else {
        return;
    };
    let t = Hybrid {
        parts: Parts {
            store: store.clone(),
            cache: cache.clone(),
        },
        threshold: 8,
    };
    let (app, worker) = common::wire(t);
    let users = common::make_users(&app, 12).await;
    for (i, a) in users.iter().enumerate() {
        for b in users.iter().skip(i % 3).step_by(2) {
            let _ = app.follow(*a, *b).await;
        }
        app.home(*a, None, None).await.expect("home");
    }
    // Writers and a fan-out worker run while the timelines are flushed.
    let stop = tokio_util_like_stop();
    let w = tokio::spawn(
        worker
            .clone()
            .run(Duration::from_millis(5), stop.clone().wait()),
    );
    let writers: Vec<_> = (0..3)
        .map(|k| {
            let app = app.clone();
            let users = users.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    app.post(users[(k * 5 + i) % users.len()], &format!("w{k} {i}"))
                        .await
                        .expect("post");
                    let _ = app
                        .home(users[i % users.len()], None, None)
                        .await
                        .expect("home");
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let flushed = cache.flush_prefix().await.expect("flush");
    assert!(flushed > 0);
    assert!(
        writers.iter().any(|w| !w.is_finished()),
        "the flush came after the writers finished: not mid-run"
    );
    for wr in writers {
        wr.await.expect("writer");
    }
    stop.fire();
    w.await.expect("worker");
    worker.drain().await.expect("drain");
    // The truth: pull straight from PostgreSQL.
    let truth = Timelines::new(FanOutOnRead(store.clone()), 2, b"k").expect("truth");
    for u in &users {
        let got: Vec<_> = common::read_all(&app, *u, 10).await.concat();
        let want: Vec<_> = common::read_all(&truth, *u, 10).await.concat();
        assert_eq!(got, want, "user {u}");
    }
}
// ANCHOR_END: flush

/// A one-shot stop signal for `FanOutWorker::run`.
#[derive(Clone)]
struct Stop(
    std::sync::Arc<tokio::sync::Notify>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

fn tokio_util_like_stop() -> Stop {
    Stop(Default::default(), Default::default())
}

impl Stop {
    fn fire(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.notify_waiters();
    }
    async fn wait(self) {
        while !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            let n = self.0.notified();
            if self.1.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}

// ANCHOR: removals
async fn removals_take_effect_on_the_next_read<T: HomeTimeline>(t: T) {
    let (app, worker) = common::wire(t);
    let u = common::make_users(&app, 4).await;
    let (reader, a, b, c) = (u[0], u[1], u[2], u[3]);
    for x in [a, b, c] {
        app.follow(reader, x).await.expect("follow");
    }
    app.home(reader, None, None).await.expect("home");
    let pa = app.post(a, "by a").await.expect("post");
    let pb = app.post(b, "by b").await.expect("post");
    let pc = app.post(c, "by c").await.expect("post");
    let pc2 = app.post(c, "by c again").await.expect("post");
    worker.drain().await.expect("drain");
    let ids = |p: &twitter_timeline::app::Page| p.posts.iter().map(|x| x.id).collect::<Vec<_>>();
    let page = app.home(reader, None, None).await.expect("home");
    assert_eq!(ids(&page), vec![pc2.id, pc.id, pb.id, pa.id]);

    // Each removal is visible on the very next read, with no fan-out run in between.
    app.delete(c, pc2.id).await.expect("delete");
    assert_eq!(
        ids(&app.home(reader, None, None).await.expect("home")),
        vec![pc.id, pb.id, pa.id]
    );
    app.unfollow(reader, b).await.expect("unfollow");
    assert_eq!(
        ids(&app.home(reader, None, None).await.expect("home")),
        vec![pc.id, pa.id]
    );
    app.block(a, reader).await.expect("block");
    assert_eq!(
        ids(&app.home(reader, None, None).await.expect("home")),
        vec![pc.id]
    );
    assert!(matches!(
        app.follow(reader, a).await,
        Err(twitter_timeline::app::AppError::Timeline(
            twitter_timeline::timeline::TimelineError::Store(
                twitter_timeline::store::StoreError::Blocked
            )
        ))
    ));
}

#[tokio::test]
async fn deletes_unfollows_and_blocks_take_effect_on_the_next_read() {
    let Some((_db, store)) = common::pg(4).await else {
        return;
    };
    let Some((_r1, c1)) = common::redis(Layout::List, 800).await else {
        return;
    };
    let Some((_r2, c2)) = common::redis(Layout::Zset, 800).await else {
        return;
    };
    removals_take_effect_on_the_next_read(push(&store, &c1)).await;
    removals_take_effect_on_the_next_read(FanOutOnRead(store.clone())).await;
    removals_take_effect_on_the_next_read(Hybrid {
        parts: Parts {
            store: store.clone(),
            cache: c2,
        },
        threshold: 1,
    })
    .await;
}
// ANCHOR_END: removals

// ANCHOR: redis_down
#[tokio::test]
async fn with_redis_down_reads_fall_back_to_postgres_and_fan_out_waits() {
    let Some((_db, store)) = common::pg(4).await else {
        return;
    };
    // Nothing listens on port 1. The service as deployed: the store behind
    // the read-context cache, both on the dead Redis.
    let dead = RedisTimelines::connect(
        "redis://127.0.0.1:1",
        "x:",
        Layout::List,
        800,
        Duration::from_secs(60),
    )
    .await
    .expect("lazy client");
    let contexts = ContextCache::connect("redis://127.0.0.1:1", "x:", CONTEXT_TTL).expect("lazy");
    let cached = CachedContexts::new(store.clone(), contexts.clone());
    let (app, worker) = common::wire(push(&cached, &dead));
    let u = common::make_users(&app, 3).await;
    app.follow(u[0], u[1])
        .await
        .expect("the follow stands; the failed backfill and invalidation are logged");
    app.follow(u[0], u[2]).await.expect("follow");
    app.unfollow(u[0], u[2])
        .await
        .expect("the unfollow stands; the failed invalidation is logged");
    app.block(u[2], u[1]).await.expect("so does a block");
    let p = app
        .post(u[1], "while redis is down")
        .await
        .expect("post is stored");
    app.post(u[2], "unfollowed").await.expect("post is stored");
    assert!(worker.step().await.is_err(), "delivery fails");
    assert_eq!(
        store.pending_fan_out().await.expect("pending"),
        2,
        "and the jobs wait"
    );
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM fanout_jobs")
        .fetch_all(store.pool())
        .await
        .expect("attempts");
    assert_eq!(attempts, [0, 0], "Redis being down is not the job's fault");
    assert!(
        contexts.lookup(u[0]).await.is_err(),
        "the context cache is down too"
    );
    let page = app
        .home(u[0], None, None)
        .await
        .expect("read served from PostgreSQL, context included");
    assert_eq!(
        page.posts.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![p.id]
    );
    assert_eq!(contexts.stats(), (0, 0, 0), "no lookup answered");
}
// ANCHOR_END: redis_down

// ANCHOR: garbage
#[tokio::test]
async fn garbage_in_a_cached_timeline_is_a_miss_not_a_post() {
    let Some((_db, store, r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let (app, worker) = common::wire(push(&store, &cache));
    let u = common::make_users(&app, 2).await;
    app.follow(u[0], u[1]).await.expect("follow");
    app.home(u[0], None, None).await.expect("home");
    let p = app.post(u[1], "real").await.expect("post");
    worker.drain().await.expect("drain");
    let mut conn = r.conn.clone();
    let _: i64 = redis::cmd("LPUSH")
        .arg(cache.list_key(u[0]))
        .arg("not-an-id")
        .query_async(&mut conn)
        .await
        .expect("lpush");
    let page = app.home(u[0], None, None).await.expect("home");
    assert_eq!(
        page.posts.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![p.id]
    );
}
// ANCHOR_END: garbage

// ANCHOR: dead_letter
#[tokio::test]
async fn a_poison_fan_out_job_is_dead_lettered_after_its_attempts_and_the_rest_are_delivered() {
    let Some((_db, store, r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let t = push(&store, &cache);
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Duration::from_millis(50),
    };
    let app = Timelines::new(t.clone(), 1, b"k").expect("app");
    let worker = FanOutWorker::new(t, 10).with_retry(policy);
    let u = common::make_users(&app, 5).await;
    let (poisoner, victim, broken, other, reader) = (u[0], u[1], u[2], u[3], u[4]);
    for (f, a) in [(victim, poisoner), (broken, poisoner), (reader, other)] {
        app.follow(f, a).await.expect("follow");
        app.home(f, None, None).await.expect("timeline exists");
    }
    // One follower's timeline key holds a string: Redis refuses every
    // delivery to it (WRONGTYPE), so the whole batch fails every time.
    let mut conn = r.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(cache.list_key(broken))
        .arg("not a list")
        .query_async(&mut conn)
        .await
        .expect("set");
    let poison = app.post(poisoner, "never delivered").await.expect("post");
    let fine = app.post(other, "delivered anyway").await.expect("post");

    // The poison job is the oldest, so it is claimed first; after its first
    // failure it waits out the backoff, and the job behind it goes through.
    let first = worker.step().await.expect("step").expect("a job");
    assert_eq!(first.failed.map(|f| (f.attempts, f.dead)), Some((1, false)));
    // Each follower's insert runs on its own: the refused key fails the
    // batch, not the other followers' inserts.
    let page = app.home(victim, None, None).await.expect("home");
    assert_eq!(
        page.posts.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![poison.id],
        "the healthy follower has the post after the first failed attempt"
    );
    let second = worker.step().await.expect("step").expect("a job");
    assert_eq!((second.failed, second.delivered), (None, 1));
    let page = app.home(reader, None, None).await.expect("home");
    assert_eq!(
        page.posts.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![fine.id]
    );

    // Retried after each backoff until the third failure moves it aside.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.pending_fan_out().await.expect("pending") > 0 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        worker.drain().await.expect("drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = store.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1, "the poison job is dead-lettered: {dead:?}");
    assert_eq!((dead[0].post, dead[0].attempts), (poison.id, 3));
    assert!(dead[0].error.contains("WRONGTYPE"), "{}", dead[0].error);

    // The operator's replay: fix the key, then put the job back in the
    // queue. The fix here replaces only the value of the wrong type with an
    // empty list (its marker, `0`): the timeline stays cached, empty, so
    // only the replayed delivery can put the post in it. (Deleting the key
    // or evicting the timeline would also fix it, but the rebuild from
    // PostgreSQL would show the post with no replay at all.)
    let _: () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(cache.list_key(broken))
        .ignore()
        .cmd("RPUSH")
        .arg(cache.list_key(broken))
        .arg("0")
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("fix the key");
    let page = app.home(broken, None, None).await.expect("home");
    assert!(
        page.posts.is_empty(),
        "before the replay the fixed timeline lacks the post: {:?}",
        page.posts
    );
    assert!(store.replay_dead(poison.id).await.expect("replay"));
    assert!(!store.replay_dead(poison.id).await.expect("replay"), "once");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM fanout_jobs WHERE post_id = $1")
        .bind(poison.id.as_i64())
        .fetch_one(store.pool())
        .await
        .expect("the replayed job is back in the queue");
    assert_eq!(attempts, 0, "the replay resets the attempts");
    let replayed = worker
        .step()
        .await
        .expect("step")
        .expect("the replayed job");
    assert_eq!(
        (replayed.failed, replayed.delivered, replayed.last),
        (None, 1, true),
        "the replay delivers to the fixed timeline"
    );
    assert_eq!(store.pending_fan_out().await.expect("pending"), 0);
    assert!(store.dead_letters().await.expect("dead letters").is_empty());
    for f in [victim, broken] {
        let page = app.home(f, None, None).await.expect("home");
        assert_eq!(
            page.posts.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![poison.id]
        );
    }
}
// ANCHOR_END: dead_letter

// ANCHOR: poison_later_batches
#[tokio::test]
async fn a_poison_batch_holds_back_the_later_batches_of_its_job_until_the_replay() {
    let Some((_db, store, r, cache)) = common::pg_and_redis(4).await else {
        return;
    };
    let t = push(&store, &cache);
    let app = Timelines::new(t.clone(), 1, b"k").expect("app");
    // Batches of one user, dead-lettered at the first failure.
    let worker = FanOutWorker::new(t, 1).with_retry(RetryPolicy {
        max_attempts: 1,
        backoff: Duration::from_millis(10),
    });
    let u = common::make_users(&app, 3).await;
    let (author, broken, later) = (u[0], u[1], u[2]);
    assert!(
        author < broken && broken < later,
        "audiences go in id order"
    );
    for f in [broken, later] {
        app.follow(f, author).await.expect("follow");
        app.home(f, None, None).await.expect("timeline exists");
    }
    let mut conn = r.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(cache.list_key(broken))
        .arg("not a list")
        .query_async(&mut conn)
        .await
        .expect("set");
    let p = app.post(author, "stops at broken").await.expect("post");
    worker.drain().await.expect("drain");
    assert_eq!(store.dead_letters().await.expect("dead").len(), 1);
    let page = app.home(later, None, None).await.expect("home");
    assert!(
        page.posts.is_empty(),
        "the batch after the poison one waits for the replay: {:?}",
        page.posts
    );

    let _: i64 = redis::cmd("DEL")
        .arg(cache.list_key(broken))
        .query_async(&mut conn)
        .await
        .expect("del");
    assert!(store.replay_dead(p.id).await.expect("replay"));
    worker.drain().await.expect("drain");
    let page = app.home(later, None, None).await.expect("home");
    assert_eq!(
        page.posts.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![p.id]
    );
}
// ANCHOR_END: poison_later_batches
