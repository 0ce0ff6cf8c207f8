//! The HTTP API, tested as a client would: a real server on an ephemeral
//! port, real requests, problem+json errors.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_reservation::clock::{Clock, ManualClock};
use parking_reservation::service::{AppState, serve};
use parking_reservation::store::{MemoryStore, PgStore, ReservationStore};
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Value,
}

impl Server {
    async fn start<S: ReservationStore>(store: Arc<S>, clock: Arc<ManualClock>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state = AppState {
            store,
            clock: clock as Arc<dyn Clock>,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Server {
            addr,
            client,
            stop: Some(stop),
            done,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap_or_else(|e| panic!("{e}"));
        let res = self
            .client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], "").await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, &[], &body.to_string()).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.done).await;
    }
}

fn assert_problem(a: &Answer, status: u16, slug: &str) {
    assert_eq!(a.status.as_u16(), status, "{slug}: {}", a.body);
    assert_eq!(
        a.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(
        a.body["type"],
        format!("{}{slug}", parking_reservation::service::PROBLEM_BASE),
        "{}",
        a.body
    );
    assert_eq!(a.body["status"], status);
    assert!(
        a.body["title"].is_string() && a.body["detail"].is_string(),
        "{}",
        a.body
    );
}

fn reserve_body(start: &str, end: &str) -> Value {
    json!({"kind": "regular", "start": start, "end": end, "plate": "ab 123"})
}

async fn full_stay_over_http<S: ReservationStore>(store: S) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(now0()));
    let server = Server::start(Arc::new(store), Arc::clone(&clock)).await;

    let avail = server
        .get(&format!(
            "/lots/{lot}/availability?start=2026-03-02T09:00:00Z&end=2026-03-02T10:00:00Z"
        ))
        .await;
    assert_eq!(avail.status, StatusCode::OK);
    assert_eq!(
        avail.body["kinds"][0],
        json!({"kind": "regular", "total": 4, "free": 4})
    );

    let made = server
        .post(
            &format!("/lots/{lot}/reservations"),
            &reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        made.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/reservations/{id}").as_str())
    );
    assert_eq!(made.body["state"], "held");
    assert_eq!(made.body["plate"], "AB123");
    assert_eq!(made.body["spot"]["level"], 0);
    assert_eq!(made.body["quote_cents"], 450);

    let avail = server
        .get(&format!(
            "/lots/{lot}/availability?start=2026-03-02T09:30:00Z&end=2026-03-02T09:45:00Z"
        ))
        .await;
    assert_eq!(avail.body["kinds"][0]["free"], 3);

    clock.advance(minutes(5));
    assert_eq!(
        server
            .post(&format!("/reservations/{id}/confirm"), &json!(null))
            .await
            .body["state"],
        "confirmed"
    );
    clock.set(at("2026-03-02T08:50:00Z"));
    assert_eq!(
        server
            .post(&format!("/reservations/{id}/check-in"), &json!(null))
            .await
            .body["state"],
        "checked_in"
    );
    clock.set(at("2026-03-02T10:05:00Z"));
    let out = server
        .post(&format!("/reservations/{id}/check-out"), &json!(null))
        .await;
    assert_eq!(
        (out.body["state"].clone(), out.body["charged_cents"].clone()),
        (json!("checked_out"), json!(563))
    );
    let read = server.get(&format!("/reservations/{id}")).await;
    assert_eq!(read.body, out.body);
    server.stop().await;
}

#[tokio::test]
async fn full_stay_over_http_in_memory() {
    full_stay_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn full_stay_over_http_on_postgres() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    full_stay_over_http(store).await;
}

// ANCHOR: replay_test
async fn same_idempotency_key_same_body_returns_first_result<S: ReservationStore>(store: S) {
    let store = Arc::new(store);
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(Arc::clone(&store), Arc::new(ManualClock::new(now0()))).await;
    let path = format!("/lots/{lot}/reservations");
    let key = [("idempotency-key", "7f1c-order-1")];
    let body = r#"{"kind":"regular","start":"2026-03-02T09:00:00Z","end":"2026-03-02T10:00:00Z","plate":"AB123"}"#;
    // The same request, written differently: other key order, spaces, a time zone, a lower-case plate.
    let same = r#"{ "plate": "ab 123", "end": "2026-03-02T11:00:00+01:00", "start": "2026-03-02T09:00:00Z", "kind": "regular" }"#;
    let first = server.send(Method::POST, &path, &key, body).await;
    let second = server.send(Method::POST, &path, &key, same).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn same_idempotency_key_same_body_returns_first_result_in_memory() {
    same_idempotency_key_same_body_returns_first_result(MemoryStore::new()).await;
}

#[tokio::test]
async fn same_idempotency_key_same_body_returns_first_result_on_postgres() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    same_idempotency_key_same_body_returns_first_result(store).await;
}
// ANCHOR_END: replay_test

#[tokio::test]
async fn same_idempotency_key_other_body_is_422() {
    let store = Arc::new(MemoryStore::new());
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(Arc::clone(&store), Arc::new(ManualClock::new(now0()))).await;
    let path = format!("/lots/{lot}/reservations");
    let key = [("idempotency-key", "7f1c-order-2")];
    let first = reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").to_string();
    let other = reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:30:00Z").to_string();
    assert_eq!(
        server.send(Method::POST, &path, &key, &first).await.status,
        StatusCode::CREATED
    );
    let before = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = server.send(Method::POST, &path, &key, &other).await;
    assert_problem(&refused, 422, "idempotency-key-reused");
    assert_eq!(store.reservations(lot).await.ok(), Some(before));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_named_problem_and_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(now0()));
    let server = Server::start(Arc::clone(&store), clock).await;
    let path = format!("/lots/{lot}/reservations");
    let ok = |f: &dyn Fn(&mut Value)| {
        let mut b = reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
        f(&mut b);
        b.to_string()
    };
    // (path, headers, body, status, problem type)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            path.clone(),
            vec![],
            ok(&|b| b["kind"] = json!("boat")),
            400,
            "invalid-spot-kind",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["start"] = json!("tomorrow")),
            400,
            "invalid-time-range",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["end"] = json!("2026-03-02T08:45:00Z")),
            400,
            "invalid-time-range",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["start"] = json!("2026-03-02T09:10:00Z")),
            400,
            "invalid-time-range",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["end"] = json!("2026-03-12T09:00:00Z")),
            400,
            "invalid-time-range",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["plate"] = json!("AB_1")),
            400,
            "invalid-plate",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["plate"] = json!("")),
            400,
            "invalid-plate",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| b["start"] = json!("2026-03-02T07:45:00Z")),
            400,
            "not-bookable",
        ),
        (
            path.clone(),
            vec![],
            ok(&|b| {
                b["start"] = json!("2026-09-01T09:00:00Z");
                b["end"] = json!("2026-09-01T10:00:00Z");
            }),
            400,
            "not-bookable",
        ),
        (
            path.clone(),
            vec![],
            "{not json".to_string(),
            400,
            "malformed-request",
        ),
        (
            path.clone(),
            vec![],
            r#"{"kind":"regular"}"#.to_string(),
            400,
            "malformed-request",
        ),
        (
            path.clone(),
            vec![("idempotency-key", "has space")],
            ok(&|_| {}),
            400,
            "invalid-idempotency-key",
        ),
        (
            "/lots/abc/reservations".to_string(),
            vec![],
            ok(&|_| {}),
            400,
            "malformed-request",
        ),
        (
            format!("/lots/{}/reservations", lot + 99),
            vec![("idempotency-key", "k-unknown-lot")],
            ok(&|_| {}),
            404,
            "lot-not-found",
        ),
    ];
    for (path, headers, body, status, slug) in &cases {
        let a = server.send(Method::POST, path, headers, body).await;
        assert_problem(&a, *status, slug);
    }
    assert_problem(
        &server.get("/reservations/not-a-uuid").await,
        400,
        "malformed-request",
    );
    assert_problem(
        &server
            .get(&format!("/reservations/{}", uuid::Uuid::nil()))
            .await,
        404,
        "reservation-not-found",
    );
    assert_problem(
        &server
            .get(&format!(
                "/lots/{lot}/availability?start=2026-03-02T09:00:00Z"
            ))
            .await,
        400,
        "malformed-request",
    );
    // Nothing was stored, and the key used with the unknown lot is still free.
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(0));
    let a = server
        .send(
            Method::POST,
            &path,
            &[("idempotency-key", "k-unknown-lot")],
            &ok(&|_| {}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(a.headers.get("idempotent-replayed").is_none());
    // Transitions: an unknown action, and an illegal one.
    let id = a.body["id"].as_str().unwrap_or_default().to_string();
    assert_problem(
        &server
            .post(&format!("/reservations/{id}/fly"), &json!(null))
            .await,
        404,
        "unknown-action",
    );
    let before = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_problem(
        &server
            .post(&format!("/reservations/{id}/check-out"), &json!(null))
            .await,
        409,
        "illegal-transition",
    );
    assert_eq!(store.reservations(lot).await.ok(), Some(before));
    server.stop().await;
}

// ANCHOR: expiry_test
#[tokio::test]
async fn unconfirmed_holds_expire_over_http() {
    let store = Arc::new(MemoryStore::new());
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(now0()));
    let server = Server::start(Arc::clone(&store), Arc::clone(&clock)).await;
    let path = format!("/lots/{lot}/reservations");
    let body = reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
    let held = server.post(&path, &body).await;
    let id = held.body["id"].as_str().unwrap_or_default().to_string();
    let expires: DateTime<Utc> =
        serde_json::from_value(held.body["hold_expires_at"].clone()).unwrap_or_default();
    assert_eq!(expires, now0() + minutes(10));
    clock.advance(minutes(10));
    // Until the sweeper runs, the lapsed hold still occupies the spot...
    assert_problem(&server.post(&path, &body).await, 409, "no-spot-available");
    // ...after it, the spot is free, and another driver takes it.
    assert_eq!(store.expire_holds(clock.now()).await.ok(), Some(1));
    assert_eq!(
        server.get(&format!("/reservations/{id}")).await.body["state"],
        "expired"
    );
    let other = json!({"kind": "regular", "start": "2026-03-02T09:00:00Z",
                       "end": "2026-03-02T10:00:00Z", "plate": "OTHER1"});
    assert_eq!(server.post(&path, &other).await.status, StatusCode::CREATED);
    // The first driver's payment lands late: the spot is gone.
    clock.advance(minutes(2));
    let confirm = format!("/reservations/{id}/confirm");
    assert_problem(
        &server.post(&confirm, &json!(null)).await,
        409,
        "spot-taken",
    );
    // And once the late-confirm window has passed, the hold is simply expired.
    clock.advance(minutes(13));
    assert_problem(
        &server.post(&confirm, &json!(null)).await,
        409,
        "hold-expired",
    );
    server.stop().await;
}
// ANCHOR_END: expiry_test

// ANCHOR: down_test
#[tokio::test]
async fn database_down_is_503_with_retry_after() {
    // Nothing listens on port 1: every query fails to connect.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(
        Arc::new(PgStore::new(pool)),
        Arc::new(ManualClock::new(now0())),
    )
    .await;
    let a = server
        .post(
            "/lots/1/reservations",
            &reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
        )
        .await;
    assert_problem(&a, 503, "unavailable");
    assert_eq!(
        a.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // The cause stays in the log; the client sees no internals.
    assert!(
        !a.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1")
    );
    server.stop().await;
}
// ANCHOR_END: down_test

// ANCHOR: sqlstate_tests
/// A statement stopped by `statement_timeout` (SQLSTATE 57014) is a slow
/// database, not a missing one: 503 `database-timeout`, and nothing changed.
#[tokio::test]
async fn statement_timeout_is_503_database_timeout() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(
        lot,
        parking_reservation::domain::SpotKind::Regular,
        slots(8, 4),
        "SLOW1",
    );
    let held = store
        .reserve(&req, None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    // Someone holds the reservation's row lock; the confirm's locking read waits...
    let mut blocker = db.pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("SELECT id FROM reservations WHERE id = $1 FOR UPDATE")
        .bind(held.id)
        .fetch_one(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // ...until a service whose statements may last 200 ms gives up.
    let url = format!("{}?options=-c%20statement_timeout%3D200ms", db.url);
    let slow = PgStore::connect(&url, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(Arc::new(slow), Arc::new(ManualClock::new(now0()))).await;
    let a = server
        .post(&format!("/reservations/{}/confirm", held.id), &json!({}))
        .await;
    assert_problem(&a, 503, "database-timeout");
    assert_eq!(
        a.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    blocker.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get(held.id).await.ok(), Some(held));
    server.stop().await;
}

/// After a failover, a pool can still hold connections to the old primary,
/// now a read-only standby: its writes fail with SQLSTATE 25006. That is a
/// 503 to retry, not a 500.
#[tokio::test]
async fn read_only_database_is_503_unavailable() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.apply_sql(&format!(
        r#"ALTER DATABASE "{}" SET default_transaction_read_only = on"#,
        db.name()
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // New connections are read-only, like a standby's.
    let standby = PgStore::new(db.pool_with(2).await);
    let server = Server::start(Arc::new(standby), Arc::new(ManualClock::new(now0()))).await;
    let a = server
        .post(
            &format!("/lots/{lot}/reservations"),
            &reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
        )
        .await;
    assert_problem(&a, 503, "unavailable");
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(0));
    server.stop().await;
}
// ANCHOR_END: sqlstate_tests

// ANCHOR: failover_test
/// The server side of the connection dies in the middle of a real reserve:
/// after the reservation row was inserted and before `COMMIT` (a trigger
/// terminates its own backend, as a shutting-down primary does, SQLSTATE
/// 57P01). The client gets 503 with `Retry-After`; nothing of the
/// transaction survives, neither the reservation nor the key; and the
/// client's retry with the same key reserves once.
#[tokio::test]
async fn failover_mid_reserve_is_503_and_the_retry_reserves_once() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.apply_sql(
        "CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
         CREATE TRIGGER failover AFTER INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION die();",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let server = Server::start(Arc::clone(&store), Arc::new(ManualClock::new(now0()))).await;
    let path = format!("/lots/{lot}/reservations");
    let key = [("idempotency-key", "failover-1")];
    let body = reserve_body("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").to_string();
    let lost = server.send(Method::POST, &path, &key, &body).await;
    assert_problem(&lost, 503, "unavailable");
    assert_eq!(
        lost.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Nothing was left behind...
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(0));
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys, 0);
    // ...so, the new primary up, the retry with the same key runs for real, once.
    db.apply_sql("DROP TRIGGER failover ON reservations")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let retry = server.send(Method::POST, &path, &key, &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    let again = server.send(Method::POST, &path, &key, &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, retry.body);
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
    server.stop().await;
}
// ANCHOR_END: failover_test

// ANCHOR: walk_in_test
/// A driver at the gate gets a spot that no reservation needs, parked at
/// once; when every spot is reserved for part of the stay, the walk-in is
/// turned away, although the reserved cars have not arrived yet.
#[tokio::test]
async fn walk_ins_never_take_reserved_capacity() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let store = Arc::new(store);
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Now is 08:07; a reservation holds spot 1 from 09:00.
    let clock = Arc::new(ManualClock::new(now0() + minutes(7)));
    let server = Server::start(Arc::clone(&store), Arc::clone(&clock)).await;
    let reserved = server
        .post(
            &format!("/lots/{lot}/reservations"),
            &reserve_body("2026-03-02T09:00:00Z", "2026-03-02T12:00:00Z"),
        )
        .await;
    assert_eq!(reserved.status, StatusCode::CREATED);
    let walk_in = |plate: &str, end: &str| json!({"kind": "regular", "plate": plate, "end": end});
    let first = server
        .post(
            &format!("/lots/{lot}/walk-ins"),
            &walk_in("WALK1", "2026-03-02T11:00:00Z"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["state"], "checked_in");
    assert_eq!(first.body["start"], "2026-03-02T08:00:00Z");
    assert_ne!(first.body["spot"], reserved.body["spot"]);
    // The other spot is free until 09:00 only: a walk-in to 10:00 is refused...
    let second = server
        .post(
            &format!("/lots/{lot}/walk-ins"),
            &walk_in("WALK2", "2026-03-02T10:00:00Z"),
        )
        .await;
    assert_problem(&second, 409, "no-spot-available");
    // ...and one who leaves by 09:00 is let in.
    let short = server
        .post(
            &format!("/lots/{lot}/walk-ins"),
            &walk_in("WALK3", "2026-03-02T09:00:00Z"),
        )
        .await;
    assert_eq!(short.status, StatusCode::CREATED, "{}", short.body);
    let id = first.body["id"].as_str().unwrap_or_default();
    let history = server.get(&format!("/reservations/{id}/history")).await;
    let events: Vec<&str> = history.body.as_array().map_or(Vec::new(), |h| {
        h.iter().filter_map(|t| t["event"].as_str()).collect()
    });
    assert_eq!(events, vec!["reserve", "confirm", "check_in"]);
    server.stop().await;
}
// ANCHOR_END: walk_in_test

/// A walk-in sent twice with one `Idempotency-Key` parks one car: the
/// retry gets the first answer, marked as a replay; a bad key is a 400.
#[tokio::test]
async fn a_walk_in_retried_with_its_key_parks_once_over_http() {
    let store = Arc::new(MemoryStore::new());
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(now0() + minutes(7)));
    let server = Server::start(Arc::clone(&store), clock).await;
    let path = format!("/lots/{lot}/walk-ins");
    let body = json!({"kind": "regular", "plate": "WALK1", "end": "2026-03-02T11:00:00Z"});
    let body = body.to_string();
    let key = [("idempotency-key", "gate-4/0807-WALK1")];
    let first = server.send(Method::POST, &path, &key, &body).await;
    let second = server.send(Method::POST, &path, &key, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(second.body, first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let bad = server
        .send(Method::POST, &path, &[("idempotency-key", "a b")], &body)
        .await;
    assert_problem(&bad, 400, "invalid-idempotency-key");
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
    server.stop().await;
}

/// A walk-in sent twice without a key parks one car: the plate is checked
/// in already, so the retry is `409 already-parked`, and its detail names
/// no reservation (a plate is public; an id authorises).
#[tokio::test]
async fn a_walk_in_retried_without_a_key_parks_once_over_http() {
    let store = Arc::new(MemoryStore::new());
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(now0() + minutes(7)));
    let server = Server::start(Arc::clone(&store), clock).await;
    let path = format!("/lots/{lot}/walk-ins");
    let body = json!({"kind": "regular", "plate": "WALK5", "end": "2026-03-02T11:00:00Z"});
    let first = server.post(&path, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = server.post(&path, &body).await;
    assert_problem(&second, 409, "already-parked");
    let id = first.body["id"].as_str().unwrap_or("no id");
    assert!(!second.body.to_string().contains(id), "{}", second.body);
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
    server.stop().await;
}

/// `GET /lots/near`: found nearest first; a bad place or radius is a 400.
#[tokio::test]
async fn lots_near_over_http() {
    use parking_reservation::domain::Location;
    let store = Arc::new(MemoryStore::new());
    let layout = parking_reservation::store::LotLayout {
        location: Location::new(48.8456, 2.3743).ok(),
        ..lot_of(1)
    };
    let lot = store
        .create_lot(&layout)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(Arc::clone(&store), Arc::new(ManualClock::new(now0()))).await;
    let found = server
        .get("/lots/near?latitude=48.8443&longitude=2.3743&radius_m=1000")
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body[0]["lot_id"], lot);
    for bad in [
        "/lots/near?latitude=95&longitude=2.3743&radius_m=1000",
        "/lots/near?latitude=48.8&longitude=2.3&radius_m=0",
        "/lots/near?latitude=48.8&longitude=2.3&radius_m=900000",
    ] {
        assert_problem(&server.get(bad).await, 400, "invalid-location");
    }
    assert_problem(
        &server
            .get("/lots/near?latitude=north&longitude=2.3&radius_m=10")
            .await,
        400,
        "malformed-request",
    );
    server.stop().await;
}
