//! Invariants under real concurrent clients on PostgreSQL and Redis.

mod common;

use std::collections::HashSet;

use twitter_timeline::app::Timelines;
use twitter_timeline::cache::Layout;
use twitter_timeline::fanout::FanOutWorker;
use twitter_timeline::store::SocialStore;
use twitter_timeline::timeline::{FanOutOnWrite, Parts};

// ANCHOR: follow_block_race
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_racing_a_block_never_survives_it() {
    let Some((_db, store)) = common::pg(24).await else {
        return;
    };
    let app = Timelines::new(
        twitter_timeline::timeline::FanOutOnRead(store.clone()),
        1,
        b"k",
    )
    .expect("app");
    let users = common::make_users(&app, 40).await;
    // Twenty pairs; for each, 8 clients race follows one way against a block the other way.
    let mut tasks = Vec::new();
    for pair in users.chunks(2) {
        let (a, b) = (pair[0], pair[1]);
        for k in 0..8 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                if k == 3 {
                    app.block(b, a).await.map(|_| ())
                } else {
                    app.follow(a, b).await.map(|_| ())
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await.expect("task");
    }
    let both: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM follows f JOIN blocks b
           ON (b.blocker, b.blocked) IN ((f.follower, f.followee), (f.followee, f.follower))",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(
        both, 0,
        "a follow committed beside a block of the same pair"
    );
    let counts_agree: bool = sqlx::query_scalar(
        "SELECT bool_and(u.followers = (SELECT count(*) FROM follows WHERE followee = u.id)) FROM users u",
    )
    .fetch_one(store.pool())
    .await
    .expect("counts");
    assert!(counts_agree, "follower counts match the follows");
}
// ANCHOR_END: follow_block_race

// ANCHOR: concurrent_workers
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_deliver_every_post_to_every_follower_once() {
    let Some((_db, store)) = common::pg(16).await else {
        return;
    };
    let Some((r, cache)) = common::redis(Layout::List, 800).await else {
        return;
    };
    let t = FanOutOnWrite(Parts {
        store: store.clone(),
        cache: cache.clone(),
    });
    let app = Timelines::new(t.clone(), 1, b"k").expect("app");
    let users = common::make_users(&app, 121).await;
    let (authors, followers) = users.split_at(4);
    for f in followers {
        for a in authors {
            app.follow(*f, *a).await.expect("follow");
        }
        app.home(*f, None, None).await.expect("home");
    }
    let mut posts = HashSet::new();
    for i in 0..20 {
        posts.insert(
            app.post(authors[i % 4], &format!("p{i}"))
                .await
                .expect("post")
                .id
                .to_string(),
        );
    }
    // Each worker counts the recipients of the batches it delivered: the
    // idempotent insert would hide a batch delivered twice, the count does not.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let w = FanOutWorker::new(t.clone(), 7);
            tokio::spawn(async move {
                let mut recipients = 0;
                while let Some(step) = w.step().await? {
                    recipients += step.audience;
                }
                Ok::<_, twitter_timeline::timeline::TimelineError>(recipients)
            })
        })
        .collect();
    let mut recipients = 0;
    for w in workers {
        recipients += w.await.expect("task").expect("drain");
    }
    assert_eq!(store.pending_fan_out().await.expect("pending"), 0);
    // Every post's audience is its followers and its author, each claimed once.
    assert_eq!(
        recipients,
        posts.len() * (followers.len() + 1),
        "a batch was claimed by two workers"
    );
    let mut conn = r.conn.clone();
    for f in followers {
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(cache.list_key(*f))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .expect("lrange");
        // A timeline rebuilt empty keeps its empty marker, `0`, at the tail
        // until the cap trims it; it is not an entry.
        let ids: Vec<String> = ids.into_iter().filter(|id| id != "0").collect();
        assert_eq!(ids.len(), posts.len(), "follower {f}: {ids:?}");
        assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), posts);
        let mut sorted = ids.clone();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.parse::<u64>().unwrap_or(0)));
        assert_eq!(ids, sorted, "newest first");
    }
}
// ANCHOR_END: concurrent_workers

/// On PostgreSQL the store itself refuses what the routes refuse, and the
/// refusal changes nothing: a post is deleted only by its author (the
/// author is in the DELETE's `WHERE`, not only in the answer), and no
/// follow is made across a block. The route tests run on the in-memory
/// store; this is the same rule on the real one.
#[tokio::test]
async fn on_postgres_only_the_author_deletes_and_a_block_stops_follows() {
    use twitter_timeline::store::StoreError;
    let Some((_db, store)) = common::pg(4).await else {
        return;
    };
    let app = Timelines::new(
        twitter_timeline::timeline::FanOutOnRead(store.clone()),
        1,
        b"k",
    )
    .expect("app");
    let users = common::make_users(&app, 2).await;
    let (author, other) = (users[0], users[1]);
    let post = app.post(author, "mine").await.expect("post");
    assert!(matches!(
        store.delete_post(other, post.id).await,
        Err(StoreError::NotAuthor)
    ));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM posts WHERE id = $1")
        .bind(post.id.as_i64())
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(kept, 1, "a refused delete deleted the post");
    store.block(author, other).await.expect("block");
    assert!(matches!(
        store.follow(other, author, 1_000).await,
        Err(StoreError::Blocked)
    ));
    let follows: i64 = sqlx::query_scalar("SELECT count(*) FROM follows")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(follows, 0, "a follow was made across a block");
}
