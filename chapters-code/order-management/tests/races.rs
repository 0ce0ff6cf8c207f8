//! Concurrent writers on real PostgreSQL: two workers who read the same
//! version of a paid order race to ship it and to cancel it.

mod common;

use std::sync::Arc;

use common::*;
use order_management::domain::{Command, Refusal, State};
use order_management::store::{OrderStore, PgStore, StoreError};
use uuid::Uuid;

/// Races per test run (each on its own order).
pub const RACES: u32 = 200;

/// What one racer got.
#[derive(Debug)]
enum Answer {
    Won(State),
    Conflict { expected: i64, actual: i64 },
}

// ANCHOR: race
/// Two tasks, released together by a barrier, apply `ship everything` and
/// `cancel` to the same order at the same expected version.
async fn race(store: &Arc<PgStore>, id: Uuid, version: i64, ship: Command) -> [Answer; 2] {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let commands = [
        ship,
        Command::Cancel {
            reason: "customer".into(),
        },
    ];
    let tasks: Vec<_> = commands
        .into_iter()
        .map(|command| {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                match store.apply(id, version, &command).await {
                    Ok(o) => Answer::Won(o.state),
                    Err(StoreError::VersionConflict { expected, actual }) => {
                        Answer::Conflict { expected, actual }
                    }
                    Err(e) => panic!("a racer got neither a win nor a conflict: {e}"),
                }
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(2);
    for t in tasks {
        answers.push(ok("racer", t.await));
    }
    match <[Answer; 2]>::try_from(answers) {
        Ok(a) => a,
        Err(_) => unreachable!("two racers"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_and_cancelled_race_has_exactly_one_winner() {
    let Some((db, store)) = pg_store_with(4).await else {
        return;
    };
    let store = Arc::new(store);
    let (mut shipped, mut cancelled) = (0, 0);
    for round in 0..RACES {
        let id = Uuid::from_u128(u128::from(round) + 1);
        let paid = paid_order(store.as_ref(), id, &two_lines()).await;
        let answers = race(&store, id, paid.version, ship_everything(&paid)).await;
        // Exactly one winner; the loser saw a conflict naming both versions.
        let winner = match answers {
            [Answer::Won(s), Answer::Conflict { expected, actual }]
            | [Answer::Conflict { expected, actual }, Answer::Won(s)] => {
                assert_eq!((expected, actual), (paid.version, paid.version + 1));
                s
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        match winner {
            State::Shipped => shipped += 1,
            State::Cancelled => cancelled += 1,
            s => panic!("a winner ended in {s}"),
        }
        // The loser wrote nothing: one more event and one more message, the winner's.
        let order = ok("get", store.get(id).await);
        assert_eq!((order.state, order.version), (winner, paid.version + 1));
        let history = ok("history", store.history(id).await);
        assert_eq!(history.len() as i64, paid.version + 1);
        assert_eq!(count_rows(&db.pool, "outbox", id).await, paid.version + 1);
    }
    assert_eq!(shipped + cancelled, RACES);
    eprintln!("{RACES} races: ship won {shipped}, cancel won {cancelled}");
}
// ANCHOR_END: race

/// The loser who re-reads and retries meets the state machine, not a second conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loser_that_retries_gets_the_rule_not_a_second_win() {
    let Some((_db, store)) = pg_store_with(4).await else {
        return;
    };
    let store = Arc::new(store);
    for round in 0..20u128 {
        let id = Uuid::from_u128(round + 1_000);
        let paid = paid_order(store.as_ref(), id, &two_lines()).await;
        let answers = race(&store, id, paid.version, ship_everything(&paid)).await;
        let winner = answers
            .iter()
            .find_map(|a| match a {
                Answer::Won(s) => Some(*s),
                Answer::Conflict { .. } => None,
            })
            .unwrap_or_else(|| panic!("no winner"));
        let now = ok("get", store.get(id).await);
        let retry = match winner {
            // Cancel lost: no cancel after shipping.
            State::Shipped => Command::Cancel {
                reason: "retry".into(),
            },
            // Ship lost: a cancelled order does not ship.
            _ => ship_everything(&paid),
        };
        let err = store.apply(id, now.version, &retry).await;
        assert!(
            matches!(refusal(&err), Some(Refusal::Illegal { .. })),
            "{err:?}"
        );
    }
}
