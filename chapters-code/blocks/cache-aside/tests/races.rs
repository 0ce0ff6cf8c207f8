//! The staleness bound, with two service instances over one PostgreSQL and
//! one Redis: instance A's load is paused between its database read and its
//! fill while instance B changes the row; readers must not see the old
//! value past their bound ([`Race`]).

mod common;

use std::time::Duration;

use block_cache_aside::harness::{FillGate, Race, Reader};
use common::{Instance, World, unconditional, world};

/// Readers watched for this long past the longest bound.
const WATCH: Race = Race {
    watch: Duration::from_millis(400),
    every: Duration::from_millis(10),
};

/// A (paused, with an in-process cache), B (the writer), C (no in-process cache).
async fn three(
    w: &World,
    gate: &FillGate,
    a_fills: fn(common::Setup) -> common::Setup,
) -> [Instance; 3] {
    let a = w
        .instance(a_fills(common::Setup {
            gate: Some(gate.clone()),
            ..w.setup()
        }))
        .await;
    let b = w.instance(w.setup()).await;
    let c = w.instance(w.shared_only()).await;
    [a, b, c]
}

/// The readers: every instance, each with its own bound.
fn readers(instances: &[Instance; 3], k: &'static str) -> Vec<Reader<Option<String>>> {
    [
        "A, in-process cache, loaded the old row",
        "B, the writer",
        "C, Redis only",
    ]
    .iter()
    .zip(instances.iter().cloned())
    .map(|(name, i)| {
        let bound = i.cache.bound().after_invalidation();
        Reader::new(name, bound, move || {
            let i = i.clone();
            async move { i.get(k).await }
        })
    })
    .collect()
}

// ANCHOR: delete_race
/// A reads the live row and pauses; B deletes it (tombstone); A fills.
/// With an unconditional fill, A's `SET` put the row back into Redis for
/// its whole TTL, and C served the deleted row again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_slow_fill_does_not_bring_the_row_back() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let gate = FillGate::new();
    let [a, b, c] = three(&w, &gate, |s| s).await;
    let slow = {
        let a = a.clone();
        async move { a.get("k").await }
    };
    let verdict = WATCH
        .run(
            &gate,
            "k",
            slow,
            b.delete("k"),
            &readers(&[a, b.clone(), c.clone()], "k"),
            |v| v.as_deref() == Some("v1"),
        )
        .await
        .unwrap_or_else(|stale| panic!("{stale}"));
    // A's read began before the delete, so the old row is a correct answer for it.
    assert_eq!(verdict.slow_read.as_deref(), Some("v1"));
    assert_eq!(c.get("k").await, None, "the tombstone answers");
}
// ANCHOR_END: delete_race

/// A reads version 1 and pauses; B writes version 2 and invalidates; A
/// fills. Redis must not hold version 1 after B's invalidation returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_racing_a_slow_fill_never_stores_the_old_version() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let gate = FillGate::new();
    let [a, b, c] = three(&w, &gate, |s| s).await;
    let slow = {
        let a = a.clone();
        async move { a.get("k").await }
    };
    WATCH
        .run(
            &gate,
            "k",
            slow,
            b.update("k", "v2"),
            &readers(&[a.clone(), b.clone(), c.clone()], "k"),
            |v| v.as_deref() == Some("v1"),
        )
        .await
        .unwrap_or_else(|stale| panic!("{stale}"));
    assert_eq!(c.get("k").await.as_deref(), Some("v2"));
    assert_eq!(
        a.metrics.get(block_cache_aside::Event::FillStale),
        1,
        "A's fill was refused"
    );
}

/// A finds no row and pauses; B creates it; A's "not found" must not hide it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_racing_a_slow_negative_fill_does_not_hide_the_new_row() {
    let Some(w) = world().await else { return };
    let gate = FillGate::new();
    let [a, b, c] = three(&w, &gate, |s| s).await;
    let slow = {
        let a = a.clone();
        async move { a.get("new").await }
    };
    let verdict = WATCH
        .run(
            &gate,
            "new",
            slow,
            b.create("new", "v1"),
            &readers(&[a, b.clone(), c], "new"),
            |v| v.is_none(),
        )
        .await
        .unwrap_or_else(|stale| panic!("{stale}"));
    assert_eq!(verdict.slow_read, None);
}

// ANCHOR: lost_version
/// A reads the row and pauses; meanwhile its key's version disappears
/// (evicted under memory pressure, expired, flushed). A missing version
/// cannot tell "never changed" from "changed, then lost", so A's fill must
/// store nothing: a fill is accepted only under its own ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fill_whose_version_vanished_stores_nothing() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let gate = FillGate::new();
    let a = w
        .instance(common::Setup {
            gate: Some(gate.clone()),
            ..w.shared_only()
        })
        .await;
    gate.arm("k");
    let slow = tokio::spawn({
        let a = a.clone();
        async move { a.get("k").await }
    });
    gate.loaded().await;
    let redis = a.cache.redis().expect("redis");
    let mut conn = common::conn(&w);
    let removed: u64 = ::redis::cmd("DEL")
        .arg(redis.version_key(&common::key("k")))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(removed, 1, "the reader's lookup set a version");
    gate.release();
    assert_eq!(slow.await.expect("no panic").as_deref(), Some("v1"));
    let entry: Option<String> = ::redis::cmd("GET")
        .arg(redis.entry_key(&common::key("k")))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(entry, None, "a fill without its version stored the row");
    assert_eq!(a.metrics.get(block_cache_aside::Event::FillStale), 1);
}
// ANCHOR_END: lost_version

// ANCHOR: unconditional
/// The same delete race with a plain `SET` for A's fill: the harness must
/// catch C (Redis only) reading the deleted row after the delete returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unconditional_fill_brings_the_deleted_row_back() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let gate = FillGate::new();
    let [a, b, c] = three(&w, &gate, unconditional).await;
    let slow = {
        let a = a.clone();
        async move { a.get("k").await }
    };
    let stale = WATCH
        .run(
            &gate,
            "k",
            slow,
            b.delete("k"),
            &readers(&[a, b.clone(), c], "k"),
            |v| v.as_deref() == Some("v1"),
        )
        .await
        .expect_err("a plain SET after the delete resurrects the row");
    assert_eq!(stale.reader, "C, Redis only", "{stale}");
}
// ANCHOR_END: unconditional

/// Four readers on two instances read continuously while B changes the
/// row again and again: every read that starts after its instance's bound
/// past a change sees that change or a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_on_two_instances_stay_within_the_bound_under_repeated_writes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let Some(w) = world().await else { return };
    w.seed("k", "0").await;
    let a = w.instance(w.setup()).await;
    let b = w.instance(w.setup()).await;
    let bound = a.cache.bound().after_invalidation();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in [&a, &b, &a, &b] {
        let (i, stop) = (i.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let v: u32 = i
                    .get("k")
                    .await
                    .and_then(|v| v.parse().ok())
                    .expect("a number");
                seen.push((started, v));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        }));
    }
    let mut writes = Vec::new();
    for n in 1..=WRITES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.update("k", &n.to_string()).await;
        writes.push((Instant::now(), n));
    }
    tokio::time::sleep(bound + Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut checked = 0;
    for t in tasks {
        for (started, v) in t.await.expect("no panic") {
            let due = writes
                .iter()
                .filter(|(done, _)| *done + bound < started)
                .map(|(_, n)| *n)
                .max();
            if let Some(due) = due {
                assert!(v >= due, "a read {bound:?} after write {due} saw {v}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} reads were due");
}

/// Writes in the repeated-writes test.
const WRITES: u32 = 8;
