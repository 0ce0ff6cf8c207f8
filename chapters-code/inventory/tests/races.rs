//! Races on PostgreSQL with real concurrent clients: a commit and an
//! expiry of the same hold, both legal by their own clocks; and stock
//! counts racing each other, sales and holds on one row.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use inventory::domain::{State, StockKey, fold};
use inventory::store::{InventoryStore, PgStore, Stock, StoreError};
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
        (s.balance.committed, s.balance.available()),
        (committed, 100 - committed),
        "committed units are sold, expired came back"
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
    assert_eq!(
        (s.balance.on_hand, s.balance.reserved, s.balance.committed),
        (10, 0, 4)
    );
}

/// Review L3: concurrent retries of one ship (and concurrent receipts under
/// one receipt id) move stock once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_ship_and_one_receive_move_stock_once() {
    let Some((_db, store)) = pg_store(16).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 10).await;
    let r = store
        .reserve(&k, qty(4), TimeDelta::minutes(10), t0())
        .await
        .expect("reserve");
    store.commit(r.id, t0()).await.expect("commit");
    let receipt = uuid::Uuid::new_v4();
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, start, k) = (Arc::clone(&store), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if i % 2 == 0 {
                Some(
                    store
                        .ship(r.id, t0())
                        .await
                        .expect("every ship retry succeeds"),
                )
            } else {
                store
                    .receive(receipt, &k, qty(5), t0())
                    .await
                    .expect("every receive retry succeeds");
                None
            }
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        if let Some(o) = t.await.expect("task")
            && !o.replayed
        {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "one ship moved stock; the rest were replays");
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(
        (s.balance.on_hand, s.balance.reserved, s.balance.committed),
        (11, 0, 0),
        "10 - 4 shipped + 5 received once"
    );
}

/// Clients that reserve one unit at a time and keep it: `reserved` climbs
/// under the counts.
const HOLDERS: usize = 4;
/// Clients that reserve one unit and commit it at once: sales that move
/// units to `committed` (not off `on_hand`), racing the counts.
const SELLERS: usize = 4;
/// Clients posting stock counts on the same position.
const COUNTERS: usize = 4;
/// Requests each client sends.
const ROUNDS: usize = 25;

/// What one client of the count race did.
#[derive(Default)]
struct Tally {
    /// Holds taken and kept.
    held: i64,
    /// Units reserved and committed.
    sold: i64,
    /// The counts posted.
    counts: Vec<Counted>,
}

/// One count of the race and its answer.
#[derive(Debug)]
struct Counted {
    /// Its instant: unique, so its movement can be found in the ledger.
    at: DateTime<Utc>,
    /// The units counted.
    counted: i64,
    /// `reserved + committed` as the counter read it just before counting.
    seen: i64,
    /// What the store answered.
    answer: Result<Stock, StoreError>,
}

/// A row of the ledger, as the count race checks it.
#[derive(Debug, sqlx::FromRow)]
struct Moved {
    version: i64,
    kind: String,
    d_on_hand: i64,
    d_reserved: i64,
    d_committed: i64,
    on_hand_after: i64,
    reserved_after: i64,
    committed_after: i64,
    at: DateTime<Utc>,
}

/// One client of the count race: a holder, a seller or a counter by `c`.
async fn count_race_client(store: &PgStore, k: &StockKey, c: usize) -> Tally {
    let mut t = Tally::default();
    for r in 0..ROUNDS {
        if c < HOLDERS + SELLERS {
            let hold = match store.reserve(k, qty(1), TimeDelta::minutes(10), t0()).await {
                Ok(hold) => hold,
                // The counts keep stock scarce: a refusal is a normal answer.
                Err(StoreError::OutOfStock { .. }) => continue,
                Err(e) => panic!("unexpected answer to a reserve: {e:?}"),
            };
            if c < HOLDERS {
                t.held += 1;
            } else {
                let o = store.commit(hold.id, t0()).await.expect("commit");
                assert!(!o.replayed);
                t.sold += 1;
            }
        } else {
            // A count just around what is promised (one below to three
            // above), every fifth a restock so the sales go on; posted with
            // the on-hand figure the counter read first.
            let b = store.stock(k, t0()).await.expect("stock").balance;
            let seen = b.promised();
            let counted = if r % 5 == 4 {
                seen + 40
            } else {
                (seen + ((c + r) % 5) as i64 - 1).max(0)
            };
            let at = t0() + TimeDelta::milliseconds(1 + (c * ROUNDS + r) as i64);
            let answer = store.adjust(k, count(counted), count(b.on_hand), at).await;
            t.counts.push(Counted {
                at,
                counted,
                seen,
                answer,
            });
        }
    }
    t
}

// ANCHOR: count_vs_sales
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_racing_sales_keep_the_ledger_exact_and_never_undercut_reserved() {
    let Some((db, store)) = pg_store(16).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 40).await;
    let store = Arc::new(store);
    let clients = HOLDERS + SELLERS + COUNTERS;
    let start = Arc::new(Barrier::new(clients));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (store, start, k) = (Arc::clone(&store), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            count_race_client(&store, &k, c).await
        }));
    }
    let (mut held, mut sold, mut counts) = (0, 0, Vec::new());
    for t in tasks {
        let t = t.await.expect("task");
        (held, sold) = (held + t.held, sold + t.sold);
        counts.extend(t.counts);
    }

    let ledger: Vec<Moved> = sqlx::query_as(
        "SELECT version, kind, d_on_hand, d_reserved, d_committed,
                on_hand_after, reserved_after, committed_after, at
           FROM movements ORDER BY version",
    )
    .fetch_all(&db.pool)
    .await
    .expect("ledger");
    // Replaying it in version order gives every row's recorded balance, so
    // no count took its delta from an `on_hand` another writer had already
    // replaced; and no row promises more than is on hand.
    let (mut on_hand, mut reserved, mut committed) = (0, 0, 0);
    for (i, m) in ledger.iter().enumerate() {
        (on_hand, reserved, committed) = (
            on_hand + m.d_on_hand,
            reserved + m.d_reserved,
            committed + m.d_committed,
        );
        assert_eq!(m.version, i as i64 + 1, "one version per movement");
        assert_eq!(
            (on_hand, reserved, committed),
            (m.on_hand_after, m.reserved_after, m.committed_after),
            "{} at version {} does not replay",
            m.kind,
            m.version
        );
        assert!(
            m.reserved_after + m.committed_after <= m.on_hand_after,
            "oversold: {m:?}"
        );
    }

    // Each count either set `on_hand` (its answer is the row it left, and
    // that row's movement records the count) or was refused by a guard, by
    // name, without a movement: below what is promised, or stale because
    // another count changed `on_hand` after this counter read it.
    let (mut refused, mut raced_refusals, mut stale) = (0, 0, 0);
    for c in &counts {
        let mine: Vec<&Moved> = ledger.iter().filter(|m| m.at == c.at).collect();
        match &c.answer {
            Ok(s) => {
                assert_eq!(s.balance.on_hand, c.counted, "the count is what is on hand");
                assert!(s.balance.promised() <= c.counted);
                let row = ledger.iter().find(|m| m.version == s.version);
                assert_eq!(row.map(|m| m.on_hand_after), Some(c.counted), "{s:?}");
                // A count equal to `on_hand` moves nothing; else one movement.
                assert!(mine.len() <= 1 && mine.iter().all(|m| m.version == s.version));
            }
            Err(StoreError::CountBelowReserved {
                counted, reserved, ..
            }) => {
                assert!(*counted == c.counted && *reserved > c.counted, "{c:?}");
                assert!(mine.is_empty(), "a refused count moved stock: {mine:?}");
                refused += 1;
                if c.counted >= c.seen {
                    raced_refusals += 1; // legal when chosen; a hold came in first
                }
            }
            Err(StoreError::CountStale { .. }) => {
                assert!(mine.is_empty(), "a stale count moved stock: {mine:?}");
                stale += 1;
            }
            Err(e) => panic!("unexpected answer to a count: {e:?}"),
        }
    }

    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(s.balance.reserved, held, "every kept hold is reserved");
    assert_eq!(
        s.balance.committed, sold,
        "every sale is committed, not shipped"
    );
    assert!(s.balance.is_valid(), "{:?}", s.balance);
    let folded = fold(&store.movements(&k).await.expect("ledger"));
    assert_eq!(
        folded.get(&k).copied(),
        Some(s.balance),
        "ledger fold = balance"
    );

    // The race was real: sales went through, counts were refused, some of
    // them because holds landed between the counter's read and its count,
    // and the ledger switches between counts and the other writers' rows.
    let kinds: Vec<&str> = ledger.iter().map(|m| m.kind.as_str()).collect();
    let switches = kinds
        .windows(2)
        .filter(|w| (w[0] == "adjust") != (w[1] == "adjust"))
        .count();
    assert!(sold > 0 && held > 0, "sold {sold}, held {held}");
    assert!(
        refused > 0 && raced_refusals > 0 && stale > 0,
        "{refused} counts refused, {raced_refusals} of them raced, {stale} stale"
    );
    assert!(
        switches > 4,
        "counts interleaved with holds and sales: {kinds:?}"
    );
}
// ANCHOR_END: count_vs_sales

/// Positions raced by a lazy reclaim and a release of the same lapsed hold.
const RECLAIM_RACES: usize = 64;

// ANCHOR: reclaim_vs_release
/// Finding 3 of issue 28: a reserve that needs a lapsed hold's units
/// reclaims it while the checkout that owned it releases it (or pays just in
/// time). The units come back either way, so every reserve must succeed;
/// before the fix, the reserve that lost the race answered
/// `already-released` or `out-of-stock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lazy_reclaim_racing_a_release_or_commit_still_reserves() {
    let Some((_db, store)) = pg_store(32).await else {
        return;
    };
    let store = Arc::new(store);
    let mut holds = Vec::new();
    for i in 0..RECLAIM_RACES {
        let k = key(&format!("S-{i}"), "AMS-1");
        stocked(&*store, &k, 2).await;
        let r = store
            .reserve(&k, qty(1), TimeDelta::seconds(1), t0())
            .await
            .expect("reserve");
        // The other unit is sold, so the reserve needs the lapsed hold's.
        let sold = store
            .reserve(&k, qty(1), TimeDelta::minutes(10), t0())
            .await
            .expect("reserve");
        store.commit(sold.id, t0()).await.expect("commit");
        holds.push((k, r));
    }
    let later = r_expiry(&holds) + TimeDelta::seconds(1);
    let start = Arc::new(Barrier::new(2 * RECLAIM_RACES));
    let mut tasks = Vec::new();
    for (i, (k, r)) in holds.into_iter().enumerate() {
        let (s, b, id) = (Arc::clone(&store), Arc::clone(&start), r.id);
        // Half the owners release; half pay by a clock still inside the hold.
        let pay_at = r.expires_at - TimeDelta::milliseconds(1);
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            let res = if i % 2 == 0 {
                s.release(id, later).await
            } else {
                s.commit(id, pay_at).await
            };
            // The loser of the owner's race is refused by state; never an error else.
            match res {
                Ok(_) | Err(StoreError::Transition(_)) => Ok(()),
                Err(e) => Err(format!("owner: {e}")),
            }
        }));
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            match s.reserve(&k, qty(1), TimeDelta::minutes(10), later).await {
                Ok(_) => Ok(()),
                // A commit that won leaves no unit: that refusal is right.
                Err(StoreError::OutOfStock { .. }) if i % 2 == 1 => {
                    let st = s.stock(&k, later).await.map_err(|e| e.to_string())?;
                    if st.balance.committed == 2 {
                        Ok(())
                    } else {
                        Err(format!("reserve: out of stock with {st:?}"))
                    }
                }
                Err(e) => Err(format!("reserve {k}: {e}")),
            }
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            errors.push(e);
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} reserves failed although the units were back: {:?}",
        errors.len(),
        RECLAIM_RACES,
        errors.iter().take(3).collect::<Vec<_>>()
    );
}
// ANCHOR_END: reclaim_vs_release

fn r_expiry(holds: &[(StockKey, inventory::domain::Reservation)]) -> DateTime<Utc> {
    holds
        .iter()
        .map(|(_, r)| r.expires_at)
        .max()
        .unwrap_or_else(t0)
}

/// Sweepers running at once, while owners commit and release the same
/// lapsed holds: every hold ends exactly once, no sweeper fails, and the
/// ledger folds to the balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweepers_and_owners_end_each_hold_once() {
    let Some((_db, store)) = pg_store(16).await else {
        return;
    };
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, 200).await;
    let mut holds = Vec::new();
    for _ in 0..150 {
        holds.push(
            store
                .reserve(&k, qty(1), TimeDelta::seconds(1), t0())
                .await
                .expect("reserve"),
        );
    }
    let later = t0() + TimeDelta::seconds(2);
    let just_in_time = t0() + TimeDelta::milliseconds(999);
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(4 + holds.len() / 3));
    let mut sweepers = Vec::new();
    for _ in 0..4 {
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        sweepers.push(tokio::spawn(async move {
            b.wait().await;
            let mut n = 0;
            loop {
                let swept = s
                    .expire_due(later, 20)
                    .await
                    .expect("a sweeper never fails");
                if swept == 0 {
                    return n;
                }
                n += swept;
            }
        }));
    }
    let mut owners = Vec::new();
    for (i, r) in holds.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let (s, b, id) = (Arc::clone(&store), Arc::clone(&start), r.id);
        owners.push(tokio::spawn(async move {
            b.wait().await;
            let res = if i % 2 == 0 {
                s.commit(id, just_in_time).await
            } else {
                s.release(id, later).await
            };
            match res {
                Ok(o) if !o.replayed => 1,
                Ok(_) | Err(StoreError::Transition(_)) => 0,
                Err(e) => panic!("owner: {e}"),
            }
        }));
    }
    let mut swept = 0;
    for t in sweepers {
        swept += t.await.expect("sweeper");
    }
    let mut owned = 0;
    for t in owners {
        owned += t.await.expect("owner");
    }
    assert_eq!(swept + owned, holds.len() as u64, "each hold ended once");
    assert!(swept > 0 && owned > 0, "swept {swept}, owned {owned}");
    let s = store.stock(&k, later).await.expect("stock");
    assert_eq!(s.balance.reserved, 0);
    let folded = fold(&store.movements(&k).await.expect("ledger"));
    assert_eq!(folded.get(&k).copied(), Some(s.balance));
}
