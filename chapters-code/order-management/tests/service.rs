//! The HTTP API as a client sees it: a real server on an ephemeral port,
//! real requests, problem+json errors, and nothing changed by a refusal.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use order_management::saga::Orchestrator;
use order_management::service::{AppState, Checkout, serve};
use order_management::store::{MemoryStore, OrderStore};
use serde_json::{Value, json};

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Server {
    async fn start<S: OrderStore>(store: S, checkout: Checkout) -> Server {
        let listener = ok("bind", tokio::net::TcpListener::bind("127.0.0.1:0").await);
        let addr = ok("addr", listener.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState {
            store: Arc::new(store),
            checkout,
        };
        tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        self.send_with(method, path, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = ok(
            "request",
            req.body(Full::new(Bytes::from(body.unwrap_or("").to_string()))),
        );
        let resp = ok("send", self.client.request(req).await);
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = ok("body", resp.into_body().collect().await).to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn create(&self) -> (String, i64) {
        let body = json!({
            "customer_id": "00000000-0000-0000-0000-00000000002a",
            "lines": [
                {"sku": "A", "quantity": 3, "unit_price_cents": 100},
                {"sku": "B", "quantity": 1, "unit_price_cents": 250}
            ]
        });
        let a = self
            .send(Method::POST, "/orders", Some(&body.to_string()))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let id = a.body["id"].as_str().unwrap_or_default().to_string();
        (id, a.body["version"].as_i64().unwrap_or(0))
    }

    async fn command(&self, id: &str, version: i64, command: Value) -> Answer {
        let body = json!({"expected_version": version, "command": command});
        self.send(
            Method::POST,
            &format!("/orders/{id}/commands"),
            Some(&body.to_string()),
        )
        .await
    }

    async fn order(&self, id: &str) -> Value {
        self.send(Method::GET, &format!("/orders/{id}"), None)
            .await
            .body
    }

    async fn events(&self, id: &str) -> usize {
        let a = self
            .send(Method::GET, &format!("/orders/{id}/events"), None)
            .await;
        a.body["events"].as_array().map_or(0, Vec::len)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A refusal: the status and a problem+json body of the given type.
fn assert_refused(a: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.content_type, "application/problem+json");
    let t = a.body["type"].as_str().unwrap_or_default();
    assert!(t.ends_with(&format!("problems.html#{kind}")), "{t}");
}

#[tokio::test]
async fn an_order_is_created_paid_shipped_and_its_history_read() {
    let s = Server::start(MemoryStore::new(), Checkout::Instant).await;
    let (id, v) = s.create().await;
    assert_eq!(v, 1);
    let a = s.command(&id, 1, json!({"type": "place"})).await;
    assert_eq!(
        (a.status, a.body["state"].as_str()),
        (StatusCode::OK, Some("paid"))
    );
    let a = s
        .command(&id, 3, json!({"type": "ship", "lines": [{"line": 1, "quantity": 3}, {"line": 2, "quantity": 1}]}))
        .await;
    assert_eq!(
        (a.status, a.body["state"].as_str()),
        (StatusCode::OK, Some("shipped"))
    );
    assert_eq!(s.events(&id).await, 4);
}

// ANCHOR: refusals
#[tokio::test]
async fn every_refusal_is_a_problem_and_changes_nothing() {
    let s = Server::start(MemoryStore::new(), Checkout::Instant).await;
    let (id, _) = s.create().await;
    s.command(&id, 1, json!({"type": "place"})).await;
    let before = s.order(&id).await;
    let cases = [
        // A stale version.
        (
            json!({"expected_version": 1, "command": {"type": "cancel", "reason": "x"}}),
            StatusCode::CONFLICT,
            "stale-version",
        ),
        // An illegal transition: a paid order is not delivered.
        (
            json!({"expected_version": 3, "command": {"type": "deliver"}}),
            StatusCode::CONFLICT,
            "illegal-transition",
        ),
        // Refund before anything was refunded-able.
        (
            json!({"expected_version": 3, "command": {"type": "refund"}}),
            StatusCode::CONFLICT,
            "illegal-transition",
        ),
        // Malformed: unknown command, missing field, unknown field, wrong type.
        (
            json!({"expected_version": 3, "command": {"type": "teleport"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed-request",
        ),
        (
            json!({"command": {"type": "deliver"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed-request",
        ),
        (
            json!({"expected_version": 3, "command": {"type": "deliver"}, "force": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed-request",
        ),
        (
            json!({"expected_version": "3", "command": {"type": "deliver"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed-request",
        ),
        // A shipment of more than is left.
        (
            json!({"expected_version": 3, "command": {"type": "ship", "lines": [{"line": 1, "quantity": 9}]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-command",
        ),
        // A saga-only command.
        (
            json!({"expected_version": 3, "command": {"type": "approve", "amount_cents": 550}}),
            StatusCode::FORBIDDEN,
            "saga-only-command",
        ),
    ];
    for (body, status, kind) in cases {
        let a = s
            .send(
                Method::POST,
                &format!("/orders/{id}/commands"),
                Some(&body.to_string()),
            )
            .await;
        assert_refused(&a, status, kind);
        assert_eq!(s.order(&id).await, before, "{body} changed the order");
        assert_eq!(s.events(&id).await, 3);
    }
    let a = s
        .send(
            Method::POST,
            &format!("/orders/{id}/commands"),
            Some("{not json"),
        )
        .await;
    assert_refused(&a, StatusCode::UNPROCESSABLE_ENTITY, "malformed-request");
    // A stale version says which version to read.
    let a = s.command(&id, 2, json!({"type": "deliver"})).await;
    assert_eq!(a.body["current_version"], json!(3));
}
// ANCHOR_END: refusals

#[tokio::test]
async fn bad_orders_and_unknown_ids_are_refused() {
    let s = Server::start(MemoryStore::new(), Checkout::Instant).await;
    let bad = json!({"customer_id": "00000000-0000-0000-0000-00000000002a", "lines": []});
    let a = s
        .send(Method::POST, "/orders", Some(&bad.to_string()))
        .await;
    assert_refused(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid-order");
    for path in [
        "/orders/not-a-uuid",
        "/orders/00000000-0000-0000-0000-000000000001",
    ] {
        let a = s.send(Method::GET, path, None).await;
        assert_refused(&a, StatusCode::NOT_FOUND, "order-not-found");
    }
}

/// On PostgreSQL, `place` starts the saga: 202 with the order pending (and
/// locked against a cancel), then paid once the saga finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_place_runs_the_saga_and_locks_the_order_meanwhile() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    ok(
        "stock",
        db.apply_sql("INSERT INTO stock VALUES ('A', 10, 0), ('B', 10, 0)")
            .await,
    );
    let mut orchestrator = Orchestrator::new(db.pool.clone());
    // Slow the payment step so the lock is visible.
    orchestrator
        .faults
        .hang_before
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(order_management::saga::Step::AuthorizePayment, 1);
    orchestrator.config.step_timeout = Duration::from_millis(300);
    let s = Server::start(store, Checkout::Saga(Arc::new(orchestrator))).await;
    let (id, _) = s.create().await;
    let a = s.command(&id, 1, json!({"type": "place"})).await;
    assert_eq!(
        (a.status, a.body["state"].as_str()),
        (StatusCode::ACCEPTED, Some("pending"))
    );
    let a = s
        .command(&id, 2, json!({"type": "cancel", "reason": "x"}))
        .await;
    assert_refused(&a, StatusCode::CONFLICT, "order-locked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.order(&id).await["state"] != json!("paid") {
        assert!(Instant::now() < deadline, "the saga did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ANCHOR: idempotency_key
/// A client that lost the answer to `POST /orders` retries with the same
/// `Idempotency-Key`: it gets the first answer (the same order) and no
/// second order exists. The key with another body is refused; a malformed
/// key is refused before anything is written. On both stores.
async fn a_retried_create_with_its_key_creates_one_order<S: OrderStore>(store: S) -> Server {
    let s = Server::start(store, Checkout::Instant).await;
    let body = json!({
        "customer_id": "00000000-0000-0000-0000-00000000002a",
        "lines": [{"sku": "A", "quantity": 3, "unit_price_cents": 100}]
    })
    .to_string();
    let key = [("idempotency-key", "order-7f3a")];
    let first = s
        .send_with(Method::POST, "/orders", Some(&body), &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = s
        .send_with(Method::POST, "/orders", Some(&body), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(
        again.body["id"], first.body["id"],
        "a second order was created"
    );
    let other = body.replace("\"quantity\":3", "\"quantity\":4");
    let reused = s
        .send_with(Method::POST, "/orders", Some(&other), &key)
        .await;
    assert_refused(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    let bad = s
        .send_with(
            Method::POST,
            "/orders",
            Some(&body),
            &[("idempotency-key", "")],
        )
        .await;
    assert_refused(&bad, StatusCode::UNPROCESSABLE_ENTITY, "malformed-request");
    s
}

#[tokio::test]
async fn a_retried_create_with_its_key_creates_one_order_in_memory() {
    a_retried_create_with_its_key_creates_one_order(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_with_its_key_creates_one_order_on_postgres() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    a_retried_create_with_its_key_creates_one_order(store).await;
    let orders: i64 = ok(
        "orders",
        sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&db.pool)
            .await,
    );
    assert_eq!(orders, 1);
}
// ANCHOR_END: idempotency_key

/// The limit of the key's scope, shown rather than fixed: the scope is the
/// body's `customer_id`, which nothing authenticates. Someone who names
/// customer B and takes B's guessable key first makes B's own create with
/// that key a `422`; someone who sends B's key and body gets B's order id.
/// Keys must be unguessable until the scope comes from an authenticated
/// principal.
#[tokio::test]
async fn a_key_is_scoped_by_an_unauthenticated_customer_id() {
    let s = Server::start(MemoryStore::new(), Checkout::Instant).await;
    let customer_b = "00000000-0000-0000-0000-0000000000b0";
    let order = |quantity: u32| {
        json!({
            "customer_id": customer_b,
            "lines": [{"sku": "A", "quantity": quantity, "unit_price_cents": 100}]
        })
        .to_string()
    };
    let key = [("idempotency-key", "cart-b")];
    // Someone else, naming B, takes the key first.
    let squatted = s
        .send_with(Method::POST, "/orders", Some(&order(9)), &key)
        .await;
    assert_eq!(squatted.status, StatusCode::CREATED, "{}", squatted.body);
    // B's own create with that key is refused.
    let real = s
        .send_with(Method::POST, "/orders", Some(&order(1)), &key)
        .await;
    assert_refused(
        &real,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    // Whoever knows the key and body gets the order id back.
    let replayed = s
        .send_with(Method::POST, "/orders", Some(&order(9)), &key)
        .await;
    assert_eq!(replayed.body["id"], squatted.body["id"]);
}
