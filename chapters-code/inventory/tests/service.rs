//! The HTTP API as a client sees it: every route, and every bad input
//! answered with a named problem type that changes nothing.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use inventory::service::{
    AppState, Availability, Clock, PROBLEM_TYPE_BASE, ReservationBody, router,
};
use inventory::store::{InventoryStore, MemoryStore};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixed;

impl Clock for Fixed {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        common::t0()
    }
}

async fn app_with<S: InventoryStore>(store: S) -> Router {
    let app = router(AppState::new(store, Arc::new(Fixed)));
    for (uri, body) in [
        ("/skus/SHOE-42", Value::Null),
        ("/warehouses/AMS-1", Value::Null),
        (
            "/stock/SHOE-42/AMS-1/receive",
            json!({"id": "5a1e0000-0000-4000-8000-000000000001", "qty": 5}),
        ),
    ] {
        let method = if body.is_null() { "PUT" } else { "POST" };
        let (status, _) = call(&app, method, uri, body).await;
        assert!(status.is_success(), "{uri}: {status}");
    }
    app
}

async fn call(app: &Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let problem = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        assert!(problem, "{uri}: an error is problem+json");
    }
    (status, v)
}

/// A fresh reservation id, as a client makes one.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn availability(app: &Router) -> Availability {
    let (s, v) = call(app, "GET", "/stock/SHOE-42/AMS-1", Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    serde_json::from_value(v).expect("availability")
}

#[tokio::test]
async fn reserve_commit_release_over_http() {
    let app = app_with(MemoryStore::new()).await;
    let (s, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let r: ReservationBody = serde_json::from_value(v).expect("reservation");
    assert_eq!((r.state.as_str(), r.qty), ("held", 2));
    assert_eq!(availability(&app).await.available, 3);
    let uri = format!("/reservations/{}/commit", r.id);
    let (s, v) = call(&app, "POST", &uri, Value::Null).await;
    assert_eq!(
        (s, v["state"].as_str(), v["replayed"].as_bool()),
        (StatusCode::OK, Some("committed"), Some(false))
    );
    let (s, v) = call(&app, "POST", &uri, Value::Null).await;
    assert_eq!(
        (s, v["replayed"].as_bool()),
        (StatusCode::OK, Some(true)),
        "commit is idempotent"
    );
    let a = availability(&app).await;
    // Sold, not shipped: still on hand, no longer available.
    assert_eq!(
        (a.on_hand, a.reserved, a.committed, a.available),
        (5, 0, 2, 3)
    );

    let (_, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 1, "ttl_seconds": 60}),
    )
    .await;
    let id = v["id"].as_str().expect("id").to_string();
    let (s, v) = call(
        &app,
        "POST",
        &format!("/reservations/{id}/release"),
        Value::Null,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("released")));
    let (s, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/adjust",
        json!({"counted": 2, "seen_on_hand": 5}),
    )
    .await;
    assert_eq!(
        (s, v["on_hand"].as_i64(), v["available"].as_i64()),
        (StatusCode::OK, Some(2), Some(0))
    );
    let (s, v) = call(&app, "GET", &format!("/reservations/{id}"), Value::Null).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("released")));
}

// ANCHOR: bad_input
#[tokio::test]
async fn every_bad_input_is_a_named_problem_and_changes_nothing() {
    let app = app_with(MemoryStore::new()).await;
    let (_, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 1}),
    )
    .await;
    let held = v["id"].as_str().expect("id").to_string();
    let (_, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 1}),
    )
    .await;
    let committed = v["id"].as_str().expect("id").to_string();
    call(
        &app,
        "POST",
        &format!("/reservations/{committed}/commit"),
        Value::Null,
    )
    .await;
    let before = availability(&app).await;

    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 0}),
            400,
            "invalid-quantity",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": -3}),
            400,
            "invalid-quantity",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/receive".into(),
            json!({"id": new_id(), "qty": 0}),
            400,
            "invalid-quantity",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/receive".into(),
            json!({"id": new_id(), "qty": 99_999_999}),
            400,
            "invalid-quantity",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/adjust".into(),
            json!({"counted": -1, "seen_on_hand": 5}),
            400,
            "invalid-quantity",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": "two"}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"qty": 1}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": "not-a-uuid", "qty": 1}),
            400,
            "malformed-request",
        ),
        // Review L3: shipping a hold that was never paid for.
        (
            "POST",
            format!("/reservations/{held}/ship"),
            Value::Null,
            409,
            "not-committed",
        ),
        // A receipt id retried for another quantity; and none at all.
        (
            "POST",
            "/stock/SHOE-42/AMS-1/receive".into(),
            json!({"id": "5a1e0000-0000-4000-8000-000000000001", "qty": 6}),
            409,
            "receipt-id-reused",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/receive".into(),
            json!({"qty": 5}),
            400,
            "malformed-request",
        ),
        // Review M4: ids that are not random v4 (nil, v1 time and MAC, v5
        // from a name) are guessable or shared; refused, never held.
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": "00000000-0000-0000-0000-000000000000", "qty": 1}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "qty": 1}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": "886313e1-3b8a-5372-9b90-0c9aee199e5d", "qty": 1}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": held, "qty": 2}),
            409,
            "reservation-id-reused",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 1, "extra": true}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 1, "ttl_seconds": 0}),
            400,
            "invalid-ttl",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 1, "ttl_seconds": 86_400}),
            400,
            "invalid-ttl",
        ),
        (
            "POST",
            "/stock/shoe/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 1}),
            400,
            "invalid-code",
        ),
        (
            "POST",
            "/stock/NOPE/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 1}),
            404,
            "unknown-sku",
        ),
        (
            "POST",
            "/stock/SHOE-42/NOWHERE/reservations".into(),
            json!({"id": new_id(), "qty": 1}),
            404,
            "unknown-warehouse",
        ),
        (
            "GET",
            "/stock/NOPE/AMS-1".into(),
            Value::Null,
            404,
            "unknown-sku",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/reservations".into(),
            json!({"id": new_id(), "qty": 4}),
            409,
            "out-of-stock",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/adjust".into(),
            json!({"counted": 0, "seen_on_hand": 5}),
            409,
            "count-below-reserved",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/adjust".into(),
            json!({"counted": 9, "seen_on_hand": 4}),
            409,
            "count-stale",
        ),
        (
            "POST",
            "/stock/SHOE-42/AMS-1/adjust".into(),
            json!({"counted": 9}),
            400,
            "malformed-request",
        ),
        (
            "POST",
            "/reservations/not-a-uuid/commit".into(),
            Value::Null,
            400,
            "malformed-request",
        ),
        (
            "POST",
            format!("/reservations/{}/commit", uuid::Uuid::new_v4()),
            Value::Null,
            404,
            "reservation-not-found",
        ),
        (
            "POST",
            format!("/reservations/{committed}/release"),
            Value::Null,
            409,
            "already-committed",
        ),
        (
            "DELETE",
            format!("/reservations/{held}"),
            Value::Null,
            405,
            "method-not-allowed",
        ),
        (
            "GET",
            "/nothing/here".into(),
            Value::Null,
            404,
            "no-such-route",
        ),
    ];
    for (method, uri, body, status, kind) in cases {
        let (s, v) = call(&app, method, &uri, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{method} {uri} {body}: {v}");
        if !kind.is_empty() {
            assert_eq!(
                v["type"],
                format!("{PROBLEM_TYPE_BASE}{kind}"),
                "{uri} {body}"
            );
            assert_eq!(v["status"].as_u64(), Some(u64::from(status)));
        }
        assert_eq!(
            availability(&app).await,
            before,
            "{method} {uri} {body} changed stock"
        );
    }
    let (_, v) = call(&app, "GET", &format!("/reservations/{held}"), Value::Null).await;
    assert_eq!(
        v["state"].as_str(),
        Some("held"),
        "the held reservation is untouched"
    );
}
// ANCHOR_END: bad_input

#[tokio::test]
async fn the_same_routes_work_on_postgres() {
    let Some((_db, store)) = common::pg_store(4).await else {
        return;
    };
    let app = app_with(store).await;
    let (s, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = v["id"].as_str().expect("id").to_string();
    let (s, v) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": new_id(), "qty": 1}),
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["type"].as_str()),
        (
            409,
            Some(format!("{PROBLEM_TYPE_BASE}out-of-stock").as_str())
        )
    );
    let (s, _) = call(
        &app,
        "POST",
        &format!("/reservations/{id}/commit"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &app,
        "POST",
        &format!("/reservations/{id}/release"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["type"].as_str()),
        (
            409,
            Some(format!("{PROBLEM_TYPE_BASE}already-committed").as_str())
        )
    );
    let a = availability(&app).await;
    assert_eq!((a.on_hand, a.committed, a.available), (5, 5, 0));
    let (s, v) = call(
        &app,
        "POST",
        &format!("/reservations/{id}/ship"),
        Value::Null,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("shipped")));
    let a = availability(&app).await;
    assert_eq!(
        (a.on_hand, a.reserved, a.committed, a.available),
        (0, 0, 0, 0)
    );
}

// ANCHOR: stalled_writer
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_holding_the_row_gets_503_not_a_hang() {
    let Some((db, _)) = common::pg_store(4).await else {
        return;
    };
    // The service's own pool, with the statement and acquire timeouts.
    let store = inventory::store::PgStore::connect(&db.url, 4)
        .await
        .expect("connect");
    let app = app_with(store).await;
    let before = availability(&app).await;
    let retried = new_id();
    // Another writer locks the stock row and stalls (a hung batch job, a
    // session left open in psql): every reserve of this SKU would queue behind it.
    let mut stalled = db.pool.begin().await.expect("begin");
    sqlx::query("UPDATE stock SET version = version WHERE sku = 'SHOE-42'")
        .execute(&mut *stalled)
        .await
        .expect("lock the row");
    let began = std::time::Instant::now();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        call(
            &app,
            "POST",
            "/stock/SHOE-42/AMS-1/reservations",
            json!({"id": retried, "qty": 1}),
        ),
    )
    .await;
    let waited = began.elapsed();
    let Ok((s, v)) = answer else {
        panic!("the reserve hung behind the stalled writer for {waited:?}");
    };
    assert_eq!(
        (s.as_u16(), v["type"].as_str()),
        (
            503,
            Some(format!("{PROBLEM_TYPE_BASE}unavailable").as_str())
        ),
        "{v}"
    );
    stalled.rollback().await.expect("rollback");
    // Nothing changed, and once the row is free the same request succeeds.
    assert_eq!(availability(&app).await, before);
    let (s, _) = call(
        &app,
        "POST",
        "/stock/SHOE-42/AMS-1/reservations",
        json!({"id": retried, "qty": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
}
// ANCHOR_END: stalled_writer

// ANCHOR: reserve_retry
/// Finding 2 of issue 28: the answer to a reserve is lost (a timeout, a 503
/// after the commit) and the client retries. The retry carries the same
/// reservation id and gets the same hold: one hold, not two.
async fn a_retried_reserve_holds_once<S: InventoryStore>(store: S) {
    let app = app_with(store).await;
    let body = json!({"id": new_id(), "qty": 2});
    let uri = "/stock/SHOE-42/AMS-1/reservations";
    let (s, first) = call(&app, "POST", uri, body.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, again) = call(&app, "POST", uri, body.clone()).await;
    assert_eq!(
        (s, again["id"].clone(), again["replayed"].as_bool()),
        (StatusCode::OK, first["id"].clone(), Some(true)),
        "the retry answers with the first hold"
    );
    let a = availability(&app).await;
    assert_eq!((a.reserved, a.available), (2, 3), "one hold, not two");
    // Even once the stock is gone, the retry finds its hold.
    let (s, _) = call(&app, "POST", uri, json!({"id": new_id(), "qty": 3})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = call(&app, "POST", uri, body).await;
    assert_eq!((s, v["replayed"].as_bool()), (StatusCode::OK, Some(true)));
}
// ANCHOR_END: reserve_retry

#[tokio::test]
async fn a_retried_reserve_holds_once_in_memory() {
    a_retried_reserve_holds_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_retried_reserve_holds_once_on_postgres() {
    let Some((_db, store)) = common::pg_store(4).await else {
        return;
    };
    a_retried_reserve_holds_once(store).await;
}

/// Retries of one reserve that arrive at the same time (the client gave up
/// on the first and sent again while it was still running) hold once: the
/// reservation's primary key lets one statement through and the others
/// answer with its hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_reserve_hold_once() {
    use inventory::store::StoreError;
    let Some((_db, store)) = common::pg_store(16).await else {
        return;
    };
    let k = common::key("SHOE-42", "AMS-1");
    common::stocked(&store, &k, 10).await;
    let store = Arc::new(store);
    let id = uuid::Uuid::new_v4();
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, start, k) = (Arc::clone(&store), Arc::clone(&start), k.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store
                .reserve_with_id(
                    id,
                    &k,
                    common::qty(3),
                    chrono::TimeDelta::minutes(10),
                    common::t0(),
                )
                .await
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        let o: Result<_, StoreError> = t.await.expect("task");
        let o = o.expect("every retry gets the hold");
        assert_eq!(o.reservation.id, id);
        fresh += usize::from(!o.replayed);
    }
    assert_eq!(fresh, 1, "one statement held the units");
    let s = store.stock(&k, common::t0()).await.expect("stock");
    assert_eq!(s.balance.reserved, 3);
}

/// A body longer than `MAX_BODY_BYTES` is refused before it is parsed, even
/// when it is valid JSON (here, a reserve padded with spaces).
#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_holds_nothing() {
    let app = app_with(MemoryStore::new()).await;
    let body = format!(
        "{{\"id\": \"{}\", \"qty\": 1{}}}",
        new_id(),
        " ".repeat(inventory::service::MAX_BODY_BYTES)
    );
    let req = Request::builder()
        .method("POST")
        .uri("/stock/SHOE-42/AMS-1/reservations")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(
        (status.as_u16(), v["type"].as_str()),
        (
            400,
            Some(format!("{PROBLEM_TYPE_BASE}malformed-request").as_str())
        ),
        "{v}"
    );
    assert_eq!(availability(&app).await.reserved, 0);
}
