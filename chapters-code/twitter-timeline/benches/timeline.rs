//! The chapter's measurements (`cargo xtask bench-report twitter-timeline`).
//!
//! 1. The threshold sweep on the 100K-user power-law graph (`sim`).
//! 2. Bytes per timeline in Redis, LIST against ZSET (`MEMORY USAGE`).
//! 3. Home-timeline reads (push, hybrid, pull at 10/100/1,000 followees)
//!    with the readers' follows and blocks cached in Redis, interleaved
//!    with their ceiling, one raw LRANGE of a timeline key,
//!    8 concurrent clients, 5 rounds.
//! 4. Post latency (the row and its fan-out job) beside a plain INSERT,
//!    and the cost of rebuilding a lost timeline beside the bare SELECT of
//!    the same rows through the same pool.
//! 5. Time to deliver one post to 1K, 10K and 50K followers with two
//!    fan-out workers, and to the default threshold's audience with one,
//!    two and four.
//!
//! Without PostgreSQL or Redis it prints a `SKIPPED:` line and writes only
//! the sweep (it fails under `SDB_REQUIRE_SERVICES=1`).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use bookkit::{BenchResult, ResultKind};
use hdrhistogram::Histogram;
use twitter_timeline::app::Timelines;
use twitter_timeline::cache::{Layout, RedisTimelines, TIMELINE_CAP, TimelineCache};
use twitter_timeline::domain::{PostId, UserId};
use twitter_timeline::fanout::FanOutWorker;
use twitter_timeline::report::{
    CHAPTER, DELIVERY_AT_THRESHOLD, DELIVERY_FOLLOWERS, DELIVERY_WORKERS, HYBRID_PULLED,
    MEMORY_FILLS, PULL_FOLLOWEES, READER_FOLLOWEES, delivery_workers_name,
};
use twitter_timeline::sim::{BOOK_GRAPH, THRESHOLDS, generate, sweep};
use twitter_timeline::store::{
    CachedContexts, ContextCache, POSTS_BY_AUTHORS, PgStore, SCHEMA, SocialStore,
};
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, Hybrid, Parts};

const PLAN: Plan = Plan {
    rounds: 5,
    round: Duration::from_secs(1),
};
const CLIENTS: u32 = 8;
const TTL: Duration = Duration::from_secs(3600);
const AUTHORS: usize = 1_000;

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&rt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twitter-timeline bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TIMELINE_BENCH=quick`: only the reads, posts and rebuilds, one short
/// round each, to check that the bench works (its figures mean nothing).
const QUICK: &str = "TIMELINE_BENCH";

fn run(rt: &tokio::runtime::Runtime) -> Result<()> {
    let quick = std::env::var(QUICK).is_ok_and(|v| v == "quick");
    let plan = if quick {
        Plan {
            rounds: 1,
            round: Duration::from_millis(200),
        }
    } else {
        PLAN
    };
    if !quick {
        measure_sweep()?;
    }
    let Some(db) = rt.block_on(testkit::postgres(None)) else {
        return Ok(());
    };
    let Some(r) = rt.block_on(testkit::redis()) else {
        return Ok(());
    };
    rt.block_on(db.apply_sql(SCHEMA)).context("schema")?;
    let pool = rt.block_on(db.pool_with(16));
    let store = PgStore::new(pool);
    if !quick {
        rt.block_on(measure_memory(&r))?;
    }
    measure_reads(rt, &store, &r, &plan)?;
    if !quick {
        rt.block_on(measure_delivery(&store, &r))?;
    }
    Ok(())
}

fn measure_sweep() -> Result<()> {
    let t = Instant::now();
    let g = generate(&BOOK_GRAPH);
    let rows = sweep(&g, THRESHOLDS);
    let p = &BOOK_GRAPH;
    let params = format!(
        "{} users, log-normal followees (mean {}, sigma {}, at most {}), Zipf popularity s = {}, {:.0}% inactive, seed {}",
        p.users,
        p.mean_followees,
        p.sigma,
        p.max_followees,
        p.zipf_s,
        p.inactive * 100.0,
        p.seed
    );
    let r = BenchResult::new(CHAPTER, "sweep", ResultKind::Simulation)
        .with_throughput(1, 0, t.elapsed())
        .with_extra("params", params)
        .with_extra("stats", serde_json::to_value(g.stats())?)
        .with_extra("rows", serde_json::to_value(rows)?);
    write_result(&r)?;
    Ok(())
}

/// Realistic ids: one post a second, newest last.
fn ids(n: u32) -> Vec<PostId> {
    (0..n)
        .map(|i| PostId::compose(30 * 86_400_000 + u64::from(i) * 1_000, 3, (i % 4096) as u16))
        .collect()
}

async fn measure_memory(r: &testkit::TestRedis) -> Result<()> {
    let mut result = BenchResult::new(CHAPTER, "memory", ResultKind::Load);
    for (layout, name) in [(Layout::List, "list"), (Layout::Zset, "zset")] {
        let cache = RedisTimelines::connect(
            &r.url,
            &format!("{}mem{name}:", r.prefix),
            layout,
            TIMELINE_CAP,
            TTL,
        )
        .await?;
        for n in MEMORY_FILLS {
            let user = UserId(i64::from(n));
            cache.begin_rebuild(user).await?;
            cache.finish_rebuild(user, &ids(n)).await?;
            let bytes = cache.memory_usage(user).await?;
            result = result.with_extra(&format!("{name}-{n}"), bytes);
        }
    }
    write_result(&result)?;
    Ok(())
}

/// Runs `op` from `clients` tasks for `duration`; latency in microseconds.
async fn closed_loop<F, Fut>(clients: u32, duration: Duration, op: F) -> RoundStats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (op, stop, counter) = (op.clone(), stop.clone(), counter.clone());
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let (mut ops, mut errors) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let ok = op(i).await;
                    let _ = h.record(t.elapsed().as_micros() as u64);
                    ops += 1;
                    errors += u64::from(!ok);
                }
                (h, ops, errors)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latency_us = Histogram::<u64>::new(3).expect("histogram");
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        if let Ok((h, o, e)) = t.await {
            let _ = latency_us.add(&h);
            ops += o;
            errors += e;
        }
    }
    RoundStats {
        ops,
        errors,
        elapsed: start.elapsed(),
        latency_us,
    }
}

fn measure_reads(
    rt: &tokio::runtime::Runtime,
    store: &PgStore,
    r: &testkit::TestRedis,
    plan: &Plan,
) -> Result<()> {
    let (cache, hybrid_cache, push_app, hybrid_app, pull_app, reader, hybrid_reader, pull_readers) =
        rt.block_on(async {
            let cache = RedisTimelines::connect(
                &r.url,
                &format!("{}push:", r.prefix),
                Layout::List,
                TIMELINE_CAP,
                TTL,
            )
            .await?;
            let hybrid_cache = RedisTimelines::connect(
                &r.url,
                &format!("{}hyb:", r.prefix),
                Layout::List,
                TIMELINE_CAP,
                TTL,
            )
            .await?;
            // Readers' follows and blocks cached in Redis, as the service runs.
            let contexts = ContextCache::connect(&r.url, &format!("{}rc:", r.prefix), TTL)?;
            let cached = CachedContexts::new(store.clone(), contexts);
            let push = FanOutOnWrite(Parts {
                store: cached.clone(),
                cache: cache.clone(),
            });
            let push_app = Timelines::new(push, 1, b"bench")?;
            let hybrid = Hybrid {
                parts: Parts {
                    store: cached.clone(),
                    cache: hybrid_cache.clone(),
                },
                threshold: u64::MAX,
            };
            let hybrid_app = Timelines::new(hybrid, 2, b"bench")?;
            let pull_app = Timelines::new(FanOutOnRead(cached.clone()), 3, b"bench")?;
            sqlx::query(
                "INSERT INTO users (handle) SELECT 'a' || i FROM generate_series(1, $1) AS i",
            )
            .bind(AUTHORS as i32)
            .execute(store.pool())
            .await?;
            let authors: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM users WHERE handle LIKE 'a%' ORDER BY id")
                    .fetch_all(store.pool())
                    .await?;
            // Ten posts per author, ids a second apart, interleaved.
            sqlx::query(
                "INSERT INTO posts (id, author, body)
                 SELECT ((30 * 86400000::bigint + (k * 1000 + a) * 1000) << 22), a, 'post ' || k
                 FROM unnest($1::bigint[]) AS a, generate_series(1, 10) AS k",
            )
            .bind(&authors)
            .execute(store.pool())
            .await?;
            let reader = push_app.create_user("reader").await?;
            let hybrid_reader = hybrid_app.create_user("hreader").await?;
            for a in authors.iter().take(READER_FOLLOWEES) {
                push_app.follow(reader, UserId(*a)).await?;
                hybrid_app.follow(hybrid_reader, UserId(*a)).await?;
            }
            // Some of the hybrid reader's followees are celebrities: pulled at read.
            sqlx::query("UPDATE users SET celebrity = true WHERE id = ANY($1)")
                .bind(&authors[..HYBRID_PULLED])
                .execute(store.pool())
                .await?;
            let mut pull_readers = Vec::new();
            for k in PULL_FOLLOWEES {
                let u = pull_app.create_user(&format!("pull{k}")).await?;
                for a in authors.iter().take(k as usize) {
                    pull_app.follow(u, UserId(*a)).await?;
                }
                pull_readers.push(u);
            }
            push_app.home(reader, None, None).await?;
            hybrid_app.home(hybrid_reader, None, None).await?;
            anyhow::Ok((
                cache,
                hybrid_cache,
                push_app,
                hybrid_app,
                pull_app,
                reader,
                hybrid_reader,
                pull_readers,
            ))
        })?;
    let _ = hybrid_cache;
    let mut paths = vec![
        Workload {
            name: "home-push".into(),
            concurrency: CLIENTS,
        },
        Workload {
            name: "home-hybrid".into(),
            concurrency: CLIENTS,
        },
    ];
    for k in PULL_FOLLOWEES {
        paths.push(Workload {
            name: format!("home-pull-k{k}"),
            concurrency: CLIENTS,
        });
    }
    let ceiling = Workload {
        name: "ceiling-lrange".into(),
        concurrency: CLIENTS,
    };
    let results = interleave(CHAPTER, ResultKind::Load, plan, &ceiling, &paths, |i, d| {
        Ok(rt.block_on(async {
            match i {
                0 => {
                    let c = cache.clone();
                    closed_loop(CLIENTS, d, move |_| {
                        let c = c.clone();
                        async move { c.raw_range(reader, 20).await.is_ok_and(|n| n == 20) }
                    })
                    .await
                }
                1 => {
                    let a = push_app.clone();
                    closed_loop(CLIENTS, d, move |_| {
                        let a = a.clone();
                        async move {
                            a.home(reader, None, None)
                                .await
                                .is_ok_and(|p| p.posts.len() == 20)
                        }
                    })
                    .await
                }
                2 => {
                    let a = hybrid_app.clone();
                    closed_loop(CLIENTS, d, move |_| {
                        let a = a.clone();
                        async move {
                            a.home(hybrid_reader, None, None)
                                .await
                                .is_ok_and(|p| p.posts.len() == 20)
                        }
                    })
                    .await
                }
                k => {
                    let a = pull_app.clone();
                    let u = pull_readers[k - 3];
                    closed_loop(CLIENTS, d, move |_| {
                        let a = a.clone();
                        async move {
                            a.home(u, None, None)
                                .await
                                .is_ok_and(|p| p.posts.len() == 20)
                        }
                    })
                    .await
                }
            }
        }))
    })?;
    for (i, mut res) in results.into_iter().enumerate() {
        if i == 1 || i == 2 {
            res = res.with_extra("followees", READER_FOLLOWEES);
        } else if i >= 3 {
            res = res.with_extra("followees", PULL_FOLLOWEES[i - 3]);
        }
        write_result(&res)?;
    }

    // Posts: the row and its job, interleaved with a plain INSERT of a post
    // row through the same pool (an author with no followers).
    let author = rt.block_on(push_app.create_user("poster"))?;
    let next_raw = Arc::new(AtomicU64::new(0));
    let results = interleave(
        CHAPTER,
        ResultKind::Load,
        plan,
        &Workload {
            name: "ceiling-insert".into(),
            concurrency: CLIENTS,
        },
        &[Workload {
            name: "post".into(),
            concurrency: CLIENTS,
        }],
        |i, d| {
            Ok(rt.block_on(async {
                if i == 0 {
                    let pool = store.pool().clone();
                    let next = next_raw.clone();
                    closed_loop(CLIENTS, d, move |_| {
                        let pool = pool.clone();
                        // Ids of node 1023, apart from every id the service makes.
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let id =
                            PostId::compose(40 * 86_400_000 + n / 4096, 1023, (n % 4096) as u16);
                        async move {
                            sqlx::query("INSERT INTO posts (id, author, body) VALUES ($1, $2, $3)")
                                .bind(id.as_i64())
                                .bind(author.0)
                                .bind("a post of the ceiling")
                                .execute(&pool)
                                .await
                                .is_ok()
                        }
                    })
                    .await
                } else {
                    let a = push_app.clone();
                    closed_loop(CLIENTS, d, move |i| {
                        let a = a.clone();
                        async move { a.post(author, &format!("post {i}")).await.is_ok() }
                    })
                    .await
                }
            }))
        },
    )?;
    for r in results {
        write_result(&r)?;
    }
    rt.block_on(async {
        sqlx::query("DELETE FROM fanout_jobs")
            .execute(store.pool())
            .await?;

        anyhow::Ok(())
    })?;

    // Rebuilds: evict, then read, one client; beside the bare SELECT of
    // the same rows (the pull query over the reader's followees and the
    // reader, a full timeline's worth) through the same pool.
    let mut pushed: Vec<i64> = rt.block_on(
        sqlx::query_scalar("SELECT followee FROM follows WHERE follower = $1")
            .bind(reader.0)
            .fetch_all(store.pool()),
    )?;
    pushed.push(reader.0);
    let pushed = Arc::new(pushed);
    let results = interleave(
        CHAPTER,
        ResultKind::Load,
        plan,
        &Workload {
            name: "ceiling-rebuild".into(),
            concurrency: 1,
        },
        &[Workload {
            name: "rebuild".into(),
            concurrency: 1,
        }],
        |i, d| {
            Ok(rt.block_on(async {
                if i == 0 {
                    let (pool, pushed) = (store.pool().clone(), pushed.clone());
                    closed_loop(1, d, move |_| {
                        let (pool, pushed) = (pool.clone(), pushed.clone());
                        async move {
                            sqlx::query(POSTS_BY_AUTHORS)
                                .bind(pushed.as_slice())
                                .bind(PostId::MAX.as_i64())
                                .bind(TIMELINE_CAP as i64)
                                .fetch_all(&pool)
                                .await
                                .is_ok_and(|rows| !rows.is_empty())
                        }
                    })
                    .await
                } else {
                    let (a, c) = (push_app.clone(), cache.clone());
                    closed_loop(1, d, move |_| {
                        let (a, c) = (a.clone(), c.clone());
                        async move {
                            c.evict(reader).await.is_ok()
                                && a.home(reader, None, None)
                                    .await
                                    .is_ok_and(|p| p.posts.len() == 20)
                        }
                    })
                    .await
                }
            }))
        },
    )?;
    for r in results {
        write_result(&r.with_extra("followees", READER_FOLLOWEES))?;
    }
    Ok(())
}

/// One delivery run: a post to `followers` followers, drained by `workers`
/// workers. Returns the result, named `name`.
async fn deliver_once(
    store: &PgStore,
    r: &testkit::TestRedis,
    all_followers: &[i64],
    run: usize,
    followers: u32,
    workers: usize,
    name: &str,
) -> Result<BenchResult> {
    let cache = RedisTimelines::connect(
        &r.url,
        &format!("{}dlv{run}:", r.prefix),
        Layout::List,
        TIMELINE_CAP,
        TTL,
    )
    .await?;
    let t = FanOutOnWrite(Parts {
        store: store.clone(),
        cache: cache.clone(),
    });
    let app = Timelines::new(t.clone(), 4, b"bench")?;
    let author = app.create_user(&format!("celeb{run}")).await?;
    let mine: Vec<i64> = all_followers[..followers as usize].to_vec();
    sqlx::query(
        "INSERT INTO follows (follower, followee) SELECT u, $2 FROM unnest($1::bigint[]) AS u",
    )
    .bind(&mine)
    .bind(author.0)
    .execute(store.pool())
    .await?;
    let users: Vec<UserId> = mine.iter().map(|u| UserId(*u)).collect();
    cache.prepare_empty(&users).await?;
    let pool: Vec<FanOutWorker<_>> = (0..workers)
        .map(|_| FanOutWorker::new(t.clone(), twitter_timeline::fanout::DEFAULT_BATCH))
        .collect();
    let start = Instant::now();
    app.post(author, "to everyone").await?;
    let handles: Vec<_> = pool
        .iter()
        .cloned()
        .map(|w| tokio::spawn(async move { w.drain().await }))
        .collect();
    for h in handles {
        h.await??;
    }
    let total = start.elapsed();
    anyhow::ensure!(store.pending_fan_out().await? == 0, "fan-out unfinished");
    let mut hist = Histogram::<u64>::new(3)?;
    for w in &pool {
        hist.add(w.latency())?;
    }
    Ok(BenchResult::new(CHAPTER, name, ResultKind::Load)
        .with_throughput(u64::from(followers) + 1, 0, total)
        .with_concurrency(workers as u32)
        .with_extra("followers", followers)
        .with_extra("workers", workers as u32)
        .with_extra("total_ms", total.as_secs_f64() * 1_000.0)
        .with_extra("p50_ms", hist.value_at_quantile(0.5))
        .with_extra("p99_ms", hist.value_at_quantile(0.99)))
}

async fn measure_delivery(store: &PgStore, r: &testkit::TestRedis) -> Result<()> {
    let max = DELIVERY_FOLLOWERS
        .iter()
        .copied()
        .chain([DELIVERY_AT_THRESHOLD])
        .max()
        .unwrap_or(0);
    sqlx::query("INSERT INTO users (handle) SELECT 'f' || i FROM generate_series(1, $1) AS i")
        .bind(max as i32)
        .execute(store.pool())
        .await?;
    let followers: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE handle LIKE 'f%' ORDER BY id")
            .fetch_all(store.pool())
            .await?;
    for (n, f) in DELIVERY_FOLLOWERS.iter().enumerate() {
        let r = deliver_once(store, r, &followers, n, *f, 2, &format!("deliver-{f}")).await?;
        write_result(&r)?;
    }
    // The default threshold's audience, with one, two and four workers: a
    // post's job is claimed one batch at a time, so more workers should not
    // deliver one post faster (the chapter says so; this measures it).
    for (k, workers) in DELIVERY_WORKERS.iter().enumerate() {
        let name = delivery_workers_name(*workers);
        let run = DELIVERY_FOLLOWERS.len() + k;
        let r = deliver_once(
            store,
            r,
            &followers,
            run,
            DELIVERY_AT_THRESHOLD,
            *workers,
            &name,
        )
        .await?;
        write_result(&r)?;
    }
    Ok(())
}
