//! All three strategies return exactly what the naive reference returns, on
//! random graphs with posts, follows, unfollows, deletes, blocks, evicted
//! timelines and flushes, paged with random page sizes.
//!
//! Timelines are capped at a handful of entries here, so that trimming and
//! the read's fallback to the store past a trimmed list are exercised; the
//! hybrid's threshold is two followers, so authors cross it mid-run. On
//! the real engines push and the hybrid run twice: reading the readers'
//! follows and blocks from PostgreSQL, and from the context cache in Redis.

mod common;

use common::{Chaos, NoCache, Op, make_users, memory_strategies, ops, replay, wire};
use proptest::prelude::*;
use twitter_timeline::cache::Layout;
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, HomeTimeline, Hybrid, Parts};

const USERS: usize = 6;
const CAP: usize = 5;
const THRESHOLD: u64 = 2;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn check<T: HomeTimeline>(t: T, chaos: &impl Chaos, ops: &[Op]) -> Result<(), TestCaseError> {
    let (app, worker) = wire(t);
    let users = make_users(&app, USERS).await;
    replay(&app, &worker, chaos, &users, ops).await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn push_pull_and_hybrid_equal_the_reference_in_memory(ops in ops(USERS, 80)) {
        rt().block_on(async {
            let (push, pull, hybrid) = memory_strategies(CAP, THRESHOLD);
            let push_cache = push.0.cache.clone();
            check(push, &push_cache, &ops).await?;
            check(pull, &NoCache, &ops).await?;
            let hybrid_cache = hybrid.parts.cache.clone();
            check(hybrid, &hybrid_cache, &ops).await
        })?;
    }
}

proptest! {
    // Real engines: a fresh database and Redis prefix per case, fewer cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn push_pull_and_hybrid_equal_the_reference_on_postgres_and_redis(
        ops in ops(USERS, 50),
        zset in any::<bool>(),
    ) {
        rt().block_on(async {
            let Some((_db, store)) = common::pg(4).await else { return Ok(()) };
            let layout = if zset { Layout::Zset } else { Layout::List };
            let Some((_r1, push_cache)) = common::redis(layout, CAP).await else { return Ok(()) };
            let Some((_r2, hybrid_cache)) = common::redis(layout, CAP).await else { return Ok(()) };
            check(
                FanOutOnWrite(Parts { store: store.clone(), cache: push_cache.clone() }),
                &push_cache,
                &ops,
            )
            .await?;
            check(FanOutOnRead(store.clone()), &NoCache, &ops).await?;
            check(
                Hybrid {
                    parts: Parts { store: store.clone(), cache: hybrid_cache.clone() },
                    threshold: THRESHOLD,
                },
                &hybrid_cache,
                &ops,
            )
            .await?;
            // Again with the readers' contexts cached in Redis (under the
            // timelines' prefix, so a flush loses them too).
            let Some((r3, push_cache)) = common::redis(layout, CAP).await else { return Ok(()) };
            check(
                FanOutOnWrite(Parts { store: common::cached(&store, &r3), cache: push_cache.clone() }),
                &push_cache,
                &ops,
            )
            .await?;
            let Some((r4, hybrid_cache)) = common::redis(layout, CAP).await else { return Ok(()) };
            check(
                Hybrid {
                    parts: Parts { store: common::cached(&store, &r4), cache: hybrid_cache.clone() },
                    threshold: THRESHOLD,
                },
                &hybrid_cache,
                &ops,
            )
            .await
        })?;
    }
}
