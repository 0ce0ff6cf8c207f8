//! Races on PostgreSQL with real concurrent clients: a commit and an
//! expiry of the same hold, both legal by their own clocks.

mod common;

use std::sync::Arc;

use chrono::TimeDelta;
use common::*;
use inventory::domain::{State, fold};
use inventory::store::{InventoryStore, StoreError};
use tokio::sync::Barrier;

/// Holds raced at once, each by a commit and an expiry (two clients per hold).
const HOLDS: usize = 32;

// ANCHOR: confirm_vs_expire
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirm_and_expire_race_has_exactly_one_outcome() {
    let Some((_db, store)) = pg_store(32).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 100).await;
    let ttl = TimeDelta::seconds(30);
    let mut holds = Vec::new();
    for _ in 0..HOLDS {
        holds.push(store.reserve(&k, qty(1), ttl, t0()).await.expect("reserve"));
    }
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(HOLDS * 2));
    let mut tasks = Vec::new();
    for (i, r) in holds.iter().enumerate() {
        // The payment's clock says "just in time", the sweeper's says "due":
        // each alone would succeed. The row lock lets only one through.
        let just_in_time = r.expires_at - TimeDelta::milliseconds(1);
        // Every other hold spawns its expiry first, so neither side is favoured.
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for commit in order {
            let (store, start, id, at) =
                (Arc::clone(&store), Arc::clone(&start), r.id, r.expires_at);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let res = if commit {
                    store.commit(id, just_in_time).await
                } else {
                    store.expire(id, at).await
                };
                (id, commit, res)
            }));
        }
    }
    let mut committed = 0;
    let mut winners = std::collections::HashMap::new();
    for t in tasks {
        let (id, commit, res) = t.await.expect("task");
        match res {
            Ok(o) if !o.replayed => {
                *winners.entry(id).or_insert(0) += 1;
                if commit {
                    committed += 1;
                    assert_eq!(o.reservation.state, State::Committed);
                } else {
                    assert_eq!(o.reservation.state, State::Expired);
                }
            }
            // The loser is refused by the state it finds (committed or expired).
            Err(StoreError::Transition(_)) => {}
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    for r in &holds {
        assert_eq!(
            winners.get(&r.id),
            Some(&1),
            "exactly one outcome for {}",
            r.id
        );
    }
    // The race was real: some payments won and some expiries won. (If one
    // side always came first, the guards would never be tested.)
    assert!(
        committed > 0 && committed < HOLDS as i64,
        "both outcomes occur: {committed} of {HOLDS} holds committed"
    );
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(s.balance.reserved, 0, "every hold ended one way");
    assert_eq!(
        s.balance.on_hand,
        100 - committed,
        "committed units left, expired came back"
    );
    let folded = fold(&store.movements(&k).await.expect("ledger"));
    assert_eq!(folded.get(&k).copied(), Some(s.balance));
}
// ANCHOR_END: confirm_vs_expire

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_commit_move_stock_once() {
    let Some((_db, store)) = pg_store(16).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 10).await;
    let r = store
        .reserve(&k, qty(4), TimeDelta::minutes(10), t0())
        .await
        .expect("reserve");
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store.commit(r.id, t0()).await
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        let o = t.await.expect("task").expect("every retry succeeds");
        if !o.replayed {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "one commit moved stock; the rest were replays");
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (6, 0));
}

/// Clients reserving one unit at a time, racing the counters.
const RESERVERS: usize = 8;
/// Clients posting stock counts on the same position.
const COUNTERS: usize = 4;
/// Requests each client sends.
const ROUNDS: usize = 25;

// ANCHOR: adjust_vs_reserve
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_racing_reserves_keep_the_ledger_equal_to_the_balance() {
    let Some((db, store)) = pg_store(16).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 500).await;
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(RESERVERS + COUNTERS));
    let mut tasks = Vec::new();
    for c in 0..RESERVERS + COUNTERS {
        let (store, start, k) = (Arc::clone(&store), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for r in 0..ROUNDS {
                if c < RESERVERS {
                    store
                        .reserve(&k, qty(1), TimeDelta::minutes(10), t0())
                        .await
                        .map(|_| ())?;
                } else {
                    // Counts between 250 and 649: never below what can be
                    // reserved (RESERVERS * ROUNDS), so every request succeeds
                    // and the final numbers are known.
                    let counted = 250 + ((c * 131 + r * 53) % 400) as i64;
                    store.adjust(&k, count(counted), t0()).await.map(|_| ())?;
                }
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("every request succeeds");
    }
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(
        s.balance.reserved,
        (RESERVERS * ROUNDS) as i64,
        "no reserve lost"
    );
    assert!(s.balance.on_hand >= s.balance.reserved);
    let folded = fold(&store.movements(&k).await.expect("ledger"));
    assert_eq!(
        folded.get(&k).copied(),
        Some(s.balance),
        "ledger fold = balance"
    );

    // Stronger: replaying the ledger in version order gives every row's
    // recorded balance, so no count took its delta from a stale on_hand.
    let (stale, kinds): (i64, Vec<String>) = (
        sqlx::query_scalar(
            "SELECT count(*) FROM (
                SELECT on_hand_after, reserved_after,
                       sum(d_on_hand) OVER w AS on_hand, sum(d_reserved) OVER w AS reserved
                  FROM movements WINDOW w AS (ORDER BY version)
             ) AS replay
             WHERE on_hand <> on_hand_after OR reserved <> reserved_after",
        )
        .fetch_one(&db.pool)
        .await
        .expect("replay"),
        sqlx::query_scalar("SELECT kind FROM movements ORDER BY version")
            .fetch_all(&db.pool)
            .await
            .expect("kinds"),
    );
    assert_eq!(stale, 0, "movements whose balance is not the replay's");
    // The last count is what is on hand.
    let last_count: i64 = sqlx::query_scalar(
        "SELECT on_hand_after FROM movements WHERE kind = 'adjust' ORDER BY version DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a count");
    assert_eq!(s.balance.on_hand, last_count);
    // The race was real: counts and reserves interleaved in the ledger.
    let switches = kinds.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > 4, "counts and reserves interleaved: {kinds:?}");
}
// ANCHOR_END: adjust_vs_reserve
