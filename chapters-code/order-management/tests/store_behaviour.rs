//! One behaviour suite, run on both stores: every test here runs once on
//! the in-memory store and once on PostgreSQL. The PostgreSQL-only tests at
//! the end check what only the database can: one outbox row per event, and
//! an event log that refuses UPDATE and DELETE.

mod common;

use common::*;
use order_management::domain::{Command, CommandError, Refusal, State};
use order_management::store::{MemoryStore, OrderStore, StoreError};
use uuid::Uuid;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&order_management::store::MemoryStore::new()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((_db, store)) = super::common::pg_store().await else { return };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_new_order_is_created_at_version_one,
    a_command_adds_one_version_and_one_event,
    a_stale_version_is_a_conflict_and_changes_nothing,
    an_illegal_transition_changes_nothing,
    a_bad_order_is_refused_and_nothing_is_stored,
    the_same_id_twice_is_refused,
    an_unknown_order_is_not_found,
    a_full_life_folds_back_to_the_row,
);

async fn a_new_order_is_created_at_version_one<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(1);
    let o = ok("create", store.create(id, &two_lines()).await);
    assert_eq!(
        (o.state, o.version, o.total_cents),
        (State::Created, 1, 550)
    );
    assert_eq!(ok("get", store.get(id).await), o);
    assert_eq!(ok("history", store.history(id).await).len(), 1);
}

async fn a_command_adds_one_version_and_one_event<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(2);
    ok("create", store.create(id, &two_lines()).await);
    let o = ok("place", store.apply(id, 1, &Command::Place).await);
    assert_eq!((o.state, o.version), (State::Pending, 2));
    let h = ok("history", store.history(id).await);
    assert_eq!(h.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
}

async fn a_stale_version_is_a_conflict_and_changes_nothing<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(3);
    ok("create", store.create(id, &two_lines()).await);
    ok("place", store.apply(id, 1, &Command::Place).await);
    let before = ok("get", store.get(id).await);
    let err = store
        .apply(id, 1, &Command::Cancel { reason: "x".into() })
        .await;
    assert!(
        matches!(
            err,
            Err(StoreError::VersionConflict {
                expected: 1,
                actual: 2
            })
        ),
        "{err:?}"
    );
    assert_eq!(ok("get", store.get(id).await), before);
    assert_eq!(ok("history", store.history(id).await).len(), 2);
}

async fn an_illegal_transition_changes_nothing<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(4);
    let paid = paid_order(store, id, &two_lines()).await;
    let shipped = ok("ship", store.apply(id, 3, &ship_everything(&paid)).await);
    assert_eq!(shipped.state, State::Shipped);
    // No cancel after shipping.
    let err = store
        .apply(
            id,
            4,
            &Command::Cancel {
                reason: "late".into(),
            },
        )
        .await;
    assert!(
        matches!(refusal(&err), Some(Refusal::Illegal { .. })),
        "{err:?}"
    );
    // Overshipping is malformed in any state.
    let err = store.apply(id, 4, &ship_everything(&paid)).await;
    assert!(
        matches!(
            err,
            Err(StoreError::Command(CommandError::InvalidShipment(_)))
        ),
        "{err:?}"
    );
    assert_eq!(ok("get", store.get(id).await), shipped);
    assert_eq!(ok("history", store.history(id).await).len(), 4);
}

async fn a_bad_order_is_refused_and_nothing_is_stored<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(5);
    let err = store.create(id, &new_order(&[("A", 0, 100)])).await;
    assert!(matches!(err, Err(StoreError::InvalidOrder(_))), "{err:?}");
    assert!(matches!(store.get(id).await, Err(StoreError::NotFound(_))));
}

async fn the_same_id_twice_is_refused<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(6);
    ok("create", store.create(id, &two_lines()).await);
    let err = store.create(id, &new_order(&[("C", 1, 1)])).await;
    assert!(matches!(err, Err(StoreError::AlreadyExists(_))), "{err:?}");
    assert_eq!(ok("get", store.get(id).await).total_cents, 550);
}

async fn an_unknown_order_is_not_found<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(7);
    assert!(matches!(store.get(id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.history(id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.apply(id, 1, &Command::Place).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_full_life_folds_back_to_the_row<S: OrderStore>(store: &S) {
    let id = Uuid::from_u128(8);
    let paid = paid_order(store, id, &two_lines()).await;
    let part = Command::Ship {
        lines: vec![order_management::domain::ShipLine {
            line: 1,
            quantity: 2,
        }],
    };
    let o = ok("ship part", store.apply(id, 3, &part).await);
    assert_eq!(o.state, State::PartiallyShipped);
    let o = ok("ship rest", store.apply(id, 4, &ship_everything(&o)).await);
    let o = ok(
        "deliver",
        store.apply(id, o.version, &Command::Deliver).await,
    );
    let o = ok("return", store.apply(id, o.version, &Command::Return).await);
    let o = ok("refund", store.apply(id, o.version, &Command::Refund).await);
    assert_eq!(
        (o.state, o.refunded_cents),
        (State::Refunded, paid.paid_cents)
    );
    let events: Vec<_> = ok("history", store.history(id).await)
        .into_iter()
        .map(|r| r.event)
        .collect();
    let folded = ok("fold", order_management::domain::Order::fold(id, &events));
    assert_eq!(folded, ok("get", store.get(id).await));
}

#[tokio::test]
async fn memory_and_postgres_are_the_same_type_of_store() {
    // A compile-time check that both adapters implement the trait.
    fn is_store<S: OrderStore>() {}
    is_store::<MemoryStore>();
    is_store::<order_management::store::PgStore>();
}

// ANCHOR: one_outbox_row
/// Every committed change has exactly one outbox row; a refused one has none.
#[tokio::test]
async fn every_committed_event_has_exactly_one_outbox_row() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let id = Uuid::from_u128(9);
    let paid = paid_order(&store, id, &two_lines()).await;
    // Refused three ways: stale, illegal, malformed.
    let _ = store.apply(id, 1, &Command::Deliver).await;
    let _ = store.apply(id, 3, &Command::Deliver).await;
    let _ = store.apply(id, 3, &Command::Ship { lines: vec![] }).await;
    ok("ship", store.apply(id, 3, &ship_everything(&paid)).await);
    assert_eq!(count_rows(&db.pool, "order_events", id).await, 4);
    assert_eq!(count_rows(&db.pool, "outbox", id).await, 4);
    let versions: Vec<i64> = ok(
        "versions",
        sqlx::query_scalar(
            "SELECT aggregate_version FROM outbox WHERE aggregate_id = $1::text ORDER BY id",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await,
    );
    assert_eq!(versions, [1, 2, 3, 4]);
}
// ANCHOR_END: one_outbox_row

#[tokio::test]
async fn the_event_log_refuses_update_and_delete() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let id = Uuid::from_u128(10);
    ok("create", store.create(id, &two_lines()).await);
    for sql in [
        "UPDATE order_events SET kind = 'rewritten'",
        "DELETE FROM order_events",
        "TRUNCATE order_events CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&db.pool).await;
        assert!(err.is_err(), "{sql} was allowed");
    }
    assert_eq!(count_rows(&db.pool, "order_events", id).await, 1);
}

#[tokio::test]
async fn the_schema_names_the_same_states_as_the_table() {
    let schema = std::fs::read_to_string(schema_path()).unwrap_or_default();
    let start = schema.find("state IN (").unwrap_or(0);
    let clause = &schema[start..start + schema[start..].find("))").unwrap_or(0)];
    for s in State::ALL {
        assert!(clause.contains(&format!("'{s}'")), "schema lacks {s}");
    }
    assert_eq!(clause.matches('\'').count(), State::ALL.len() * 2);
}

/// `one_live_saga_per_order` is what holds if anything but the checkout's
/// versioned write starts a saga (a recovery path, an operator's script): a
/// second running or compensating saga of one order is refused, while a
/// finished one stays beside a new live one. The checkout race test cannot
/// see the index, because the order's version check refuses the second
/// checkout first.
#[tokio::test]
async fn the_schema_refuses_a_second_live_saga_for_one_order() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let id = Uuid::from_u128(11);
    ok("create", store.create(id, &two_lines()).await);
    let saga = |status: &'static str| {
        sqlx::query("INSERT INTO sagas (id, order_id, status, step) VALUES ($1, $2, $3, 0)")
            .bind(Uuid::new_v4())
            .bind(id)
            .bind(status)
    };
    ok(
        "a finished saga",
        saga("compensated").execute(&db.pool).await,
    );
    ok("the live saga", saga("running").execute(&db.pool).await);
    for status in ["running", "compensating"] {
        let err = saga(status)
            .execute(&db.pool)
            .await
            .expect_err("a second live saga");
        let constraint = err
            .as_database_error()
            .and_then(|d| d.constraint().map(str::to_owned));
        assert_eq!(
            constraint.as_deref(),
            Some("one_live_saga_per_order"),
            "{status}"
        );
    }
}
