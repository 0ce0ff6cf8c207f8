//! The ledger property: for any history of operations, folding the
//! append-only movements from zero gives exactly the stored balances, the
//! balances obey the rules, and a refused operation changes nothing (a
//! refused reserve may expire holds that had already lapsed, which a
//! reader already counted as available).
//! Run on the in-memory store (many cases) and on PostgreSQL (fewer).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use inventory::domain::{StockKey, fold};
use inventory::store::{InventoryStore, MemoryStore};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Receive(usize, i64),
    Reserve(usize, i64, i64),
    Commit(usize),
    Ship(usize),
    Release(usize),
    Expire(usize),
    /// A count, posted with the on-hand figure read just before, or (when
    /// the flag is set) one unit off it, as if the shelf changed meanwhile.
    Adjust(usize, i64, bool),
    Sweep,
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 1..20i64).prop_map(|(k, q)| Op::Receive(k, q)),
        (0..2usize, 1..8i64, 1..120i64).prop_map(|(k, q, ttl)| Op::Reserve(k, q, ttl)),
        (0..40usize).prop_map(Op::Commit),
        (0..40usize).prop_map(Op::Ship),
        (0..40usize).prop_map(Op::Release),
        (0..40usize).prop_map(Op::Expire),
        (0..2usize, 0..30i64, prop::bool::weighted(0.2)).prop_map(|(k, c, s)| Op::Adjust(k, c, s)),
        Just(Op::Sweep),
        (1..90i64).prop_map(Op::Wait),
    ]
}

/// Runs `ops` on `store` over two positions and checks the property after each step.
async fn check_history<S: InventoryStore>(store: &S, keys: &[StockKey; 2], ops: &[Op]) {
    for k in keys {
        stocked(store, k, 0).await;
    }
    let mut now: DateTime<Utc> = t0();
    let mut ids: Vec<Uuid> = Vec::new();
    let pick = |ids: &[Uuid], i: usize| ids.get(i % ids.len().max(1)).copied();
    for op in ops {
        // What a reader sees: lapsed holds count as available (a refused
        // reserve may reclaim them lazily, which changes `reserved` but not this).
        let effective = |s: inventory::store::Stock| {
            (
                s.balance.on_hand,
                s.balance.reserved - s.reclaimable,
                s.balance.committed,
            )
        };
        let before = [
            effective(store.stock(&keys[0], now).await.expect("stock")),
            effective(store.stock(&keys[1], now).await.expect("stock")),
        ];
        let refused = match op {
            Op::Receive(k, q) => store
                .receive(uuid::Uuid::new_v4(), &keys[*k], qty(*q), now)
                .await
                .is_err(),
            Op::Reserve(k, q, ttl) => {
                match store
                    .reserve(&keys[*k], qty(*q), TimeDelta::seconds(*ttl), now)
                    .await
                {
                    Ok(r) => {
                        ids.push(r.id);
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::Commit(i) => match pick(&ids, *i) {
                Some(id) => store.commit(id, now).await.is_err(),
                None => true,
            },
            Op::Ship(i) => match pick(&ids, *i) {
                Some(id) => store.ship(id, now).await.is_err(),
                None => true,
            },
            Op::Release(i) => match pick(&ids, *i) {
                Some(id) => store.release(id, now).await.is_err(),
                None => true,
            },
            Op::Expire(i) => match pick(&ids, *i) {
                Some(id) => store.expire(id, now).await.is_err(),
                None => true,
            },
            Op::Adjust(k, c, stale) => {
                let on_hand = store
                    .stock(&keys[*k], now)
                    .await
                    .expect("stock")
                    .balance
                    .on_hand;
                let seen = if *stale { on_hand + 1 } else { on_hand };
                store
                    .adjust(&keys[*k], count(*c), count(seen), now)
                    .await
                    .is_err()
            }
            Op::Sweep => store.expire_due(now, 1_000).await.is_err(),
            Op::Wait(s) => {
                now += TimeDelta::seconds(*s);
                false
            }
        };
        for (i, k) in keys.iter().enumerate() {
            let stored = store.stock(k, now).await.expect("stock");
            let folded = fold(&store.movements(k).await.expect("movements"))
                .get(k)
                .copied()
                .unwrap_or_default();
            assert_eq!(folded, stored.balance, "fold != balance after {op:?}");
            assert!(
                stored.balance.is_valid(),
                "{:?} after {op:?}",
                stored.balance
            );
            if refused {
                assert_eq!(effective(stored), before[i], "refused {op:?} changed {k}");
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn folding_the_ledger_equals_the_balances_in_memory(ops in prop::collection::vec(op(), 1..60)) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            check_history(&store, &[key("A", "W1"), key("B", "W1")], &ops).await;
        });
    }
}

#[test]
fn folding_the_ledger_equals_the_balances_on_postgres() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = runtime();
    let Some((_db, store)) = rt.block_on(pg_store(4)) else {
        return;
    };
    // One database, a fresh pair of SKUs per case.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let keys = [key(&format!("A{n}"), "W1"), key(&format!("B{n}"), "W1")];
        rt.block_on(check_history(&store, &keys, &ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
