//! The invariant on real PostgreSQL with real concurrent clients: of N
//! buyers of S units, exactly min(S, N) succeed, and stock never goes below
//! zero. First through the store's guarded statement, then through a
//! check-then-act writer that only the CHECK constraints hold back.

mod common;

use std::sync::Arc;

use chrono::TimeDelta;
use common::*;
use inventory::domain::fold;
use inventory::store::{InventoryStore, StoreError, check_then_act_reserve, is_check_violation};
use tokio::sync::Barrier;

/// Connections in the pool: every buyer has its own while they race.
const CLIENTS: u32 = 32;
/// Buyers per sale (more than the pool: the rest queue for a connection).
const BUYERS: usize = 40;

/// Runs `BUYERS` concurrent reserves of one unit against `units` in stock;
/// returns (successes, refusals, other errors).
async fn sale(units: i64) -> Option<(usize, usize, usize)> {
    let (db, store) = pg_store(CLIENTS).await?;
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, units).await;
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(BUYERS));
    let mut tasks = Vec::new();
    for _ in 0..BUYERS {
        let (store, start, k) = (Arc::clone(&store), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store
                .reserve(&k, qty(1), TimeDelta::minutes(10), t0())
                .await
        }));
    }
    let (mut ok, mut refused, mut errors) = (0, 0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::OutOfStock { .. }) => refused += 1,
            Err(e) => {
                eprintln!("unexpected: {e}");
                errors += 1;
            }
        }
    }
    let s = store.stock(&k, t0()).await.expect("stock");
    assert!(s.balance.is_valid(), "{:?}", s.balance);
    assert_eq!(
        s.balance.reserved, ok as i64,
        "every success is one reserved unit"
    );
    let folded = fold(&store.movements(&k).await.expect("ledger"));
    assert_eq!(folded.get(&k).copied(), Some(s.balance), "ledger agrees");
    drop(db);
    Some((ok, refused, errors))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_min_of_stock_and_buyers_succeed() {
    // Fewer units than buyers, then more: min(S, N) either way.
    for units in [25, 60] {
        let Some((ok, refused, errors)) = sale(units).await else {
            return;
        };
        let want = (units as usize).min(BUYERS);
        assert_eq!(ok, want, "{units} units, {BUYERS} buyers");
        assert_eq!(refused, BUYERS - want);
        assert_eq!(errors, 0);
    }
}

/// Units in the check-then-act sales.
const CTA_UNITS: i64 = 20;
/// Connections of the check-then-act sales (the database is shared: these
/// two tests need a race at the end of the sale, not 32 connections each).
const CTA_CLIENTS: u32 = 16;

/// What a check-then-act sale ended with.
struct CtaSale {
    /// Buyers told they got a unit.
    ok: usize,
    /// Attempts the database refused with a CHECK violation.
    refused_by_check: usize,
    /// `reserved` and `on_hand` of the position afterwards.
    reserved: i64,
    on_hand: i64,
}

/// `BUYERS` concurrent check-then-act writers (read, decide in Rust, add
/// without a guard) sell `CTA_UNITS`, each buying until it reads "sold
/// out", so the end of the sale is raced by every client at once. With
/// `drop_checks`, the three CHECK constraints of `stock` are dropped first.
async fn check_then_act_sale(drop_checks: bool) -> Option<CtaSale> {
    let (db, store) = pg_store(CTA_CLIENTS).await?;
    if drop_checks {
        db.apply_sql(
            "ALTER TABLE stock DROP CONSTRAINT on_hand_not_negative,
                               DROP CONSTRAINT reserved_not_negative,
                               DROP CONSTRAINT never_oversold",
        )
        .await
        .expect("drop the CHECKs");
    }
    let k = key("HOT-1", "AMS-1");
    stocked(&store, &k, CTA_UNITS).await;
    let pool = store.pool().clone();
    let start = Arc::new(Barrier::new(BUYERS));
    let mut tasks = Vec::new();
    for _ in 0..BUYERS {
        let (pool, start, k) = (pool.clone(), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let (mut ok, mut refused_by_check) = (0usize, 0usize);
            loop {
                match check_then_act_reserve(&pool, &k, qty(1)).await {
                    Ok(true) => ok += 1,
                    Ok(false) => return (ok, refused_by_check),
                    Err(e) if is_check_violation(&e) => refused_by_check += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    let (mut ok, mut refused_by_check) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.expect("task");
        ok += o;
        refused_by_check += r;
    }
    let s = store.stock(&k, t0()).await.expect("stock");
    drop(db);
    Some(CtaSale {
        ok,
        refused_by_check,
        reserved: s.balance.reserved,
        on_hand: s.balance.on_hand,
    })
}

// ANCHOR: checks_alone
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checks_alone_stop_a_check_then_act_writer() {
    let Some(sale) = check_then_act_sale(false).await else {
        return;
    };
    // With the CHECKs, the database refuses every UPDATE that would promise
    // more than is on hand: exactly CTA_UNITS succeed, whatever the clients read.
    assert_eq!(
        sale.ok, CTA_UNITS as usize,
        "successes (CHECK refusals: {})",
        sale.refused_by_check
    );
    assert_eq!((sale.reserved, sale.on_hand), (CTA_UNITS, CTA_UNITS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_checks_the_same_writer_oversells() {
    // The same sale with the constraints dropped: the clients really race
    // (so the test above proves the CHECKs, not a lucky schedule).
    let Some(sale) = check_then_act_sale(true).await else {
        return;
    };
    assert!(
        sale.ok > CTA_UNITS as usize && sale.reserved > sale.on_hand,
        "without the CHECKs, more units are promised than exist: {} sold of {CTA_UNITS}, reserved {} > on hand {}",
        sale.ok,
        sale.reserved,
        sale.on_hand
    );
    assert_eq!(sale.refused_by_check, 0);
}
// ANCHOR_END: checks_alone

/// `reserved_not_negative` alone stops a give-back applied twice by a
/// writer without the state guard (a retried script, a bug): `reserved`
/// would go below zero while `reserved + committed <= on_hand` still holds,
/// so no other constraint notices. Dropping it lets the write through.
#[tokio::test]
async fn a_double_give_back_is_refused_by_reserved_not_negative() {
    for drop_it in [false, true] {
        let Some((db, store)) = pg_store(4).await else {
            return;
        };
        let k = key("SHOE-42", "AMS-1");
        stocked(&store, &k, 10).await;
        if drop_it {
            sqlx::query("ALTER TABLE stock DROP CONSTRAINT reserved_not_negative")
                .execute(&db.pool)
                .await
                .expect("drop");
        }
        let res = sqlx::query(
            "UPDATE stock SET reserved = reserved - 1 WHERE sku = 'SHOE-42' AND warehouse = 'AMS-1'",
        )
        .execute(&db.pool)
        .await;
        if drop_it {
            assert!(res.is_ok(), "without the constraint the write goes through");
        } else {
            let e = res.expect_err("refused");
            let constraint = e
                .as_database_error()
                .and_then(|d| d.constraint().map(str::to_owned));
            assert_eq!(constraint.as_deref(), Some("reserved_not_negative"));
        }
    }
}

/// `committed_not_negative` alone stops a shipment applied twice by a writer
/// without the state guard: `on_hand` and `committed` both drop by the
/// shipped units, so `reserved + committed <= on_hand` still holds and no
/// other constraint notices. Dropping it lets the write through.
#[tokio::test]
async fn a_double_ship_is_refused_by_committed_not_negative() {
    for drop_it in [false, true] {
        let Some((db, store)) = pg_store(4).await else {
            return;
        };
        let k = key("SHOE-42", "AMS-1");
        stocked(&store, &k, 10).await;
        if drop_it {
            sqlx::query("ALTER TABLE stock DROP CONSTRAINT committed_not_negative")
                .execute(&db.pool)
                .await
                .expect("drop");
        }
        let res = sqlx::query(
            "UPDATE stock SET on_hand = on_hand - 1, committed = committed - 1
              WHERE sku = 'SHOE-42' AND warehouse = 'AMS-1'",
        )
        .execute(&db.pool)
        .await;
        if drop_it {
            assert!(res.is_ok(), "without the constraint the write goes through");
        } else {
            let e = res.expect_err("refused");
            let constraint = e
                .as_database_error()
                .and_then(|d| d.constraint().map(str::to_owned));
            assert_eq!(constraint.as_deref(), Some("committed_not_negative"));
        }
    }
}
