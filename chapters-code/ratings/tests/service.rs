//! The HTTP API over the in-memory store: every bad input gets a named
//! problem type and changes nothing; votes from a burst of new accounts
//! are flagged; the per-account limit answers 429.

use std::sync::Arc;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{Request, StatusCode};
use chrono::{TimeDelta, Utc};

use http_body_util::BodyExt;
use ratings::domain::{ProductId, UserId};
use ratings::service::{AppState, PROBLEM_TYPE_BASE, router};
use ratings::store::{MemoryStore, ReviewStore};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn app() -> (Router, Arc<MemoryStore>) {
    let state = AppState::new(MemoryStore::new());
    let store = state.store.clone();
    let now = Utc::now();
    store
        .add_product(ProductId(1), "kitchen")
        .await
        .expect("product");
    for u in 1..=3 {
        store
            .add_user(UserId(u), now - TimeDelta::days(365))
            .await
            .expect("user");
    }
    store
        .record_order(UserId(1), ProductId(1), now)
        .await
        .expect("order");
    store
        .record_order(UserId(2), ProductId(1), now)
        .await
        .expect("order");
    (router(state), store)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    let req = match body {
        Some(b) => req.body(HttpBody::from(b.to_string())),
        None => req.body(HttpBody::empty()),
    }
    .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn problem(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.strip_prefix(PROBLEM_TYPE_BASE))
        .unwrap_or("")
}

// ANCHOR: bad_input
#[tokio::test]
async fn every_bad_submit_gets_a_named_problem_and_changes_nothing() {
    let (app, store) = app().await;
    let long = "x".repeat(5001);
    let cases = [
        (
            json!({"user_id": 1, "rating": 0, "body": "ok"}),
            "invalid-rating",
            400,
        ),
        (
            json!({"user_id": 1, "rating": 6, "body": "ok"}),
            "invalid-rating",
            400,
        ),
        (
            json!({"user_id": 1, "rating": 5, "body": "   "}),
            "invalid-body",
            400,
        ),
        (
            json!({"user_id": 1, "rating": 5, "body": long}),
            "invalid-body",
            400,
        ),
        (
            json!({"user_id": 1, "rating": "five", "body": "ok"}),
            "malformed-request",
            400,
        ),
        (
            json!({"user_id": 3, "rating": 5, "body": "never bought it"}),
            "not-purchased",
            403,
        ),
        (
            json!({"user_id": 99, "rating": 5, "body": "who am I"}),
            "unknown-user",
            404,
        ),
    ];
    for (body, kind, status) in cases {
        let (s, v) = call(&app, "POST", "/products/1/reviews", Some(body.clone())).await;
        assert_eq!((s.as_u16(), problem(&v)), (status, kind), "{body}");
    }
    let (s, v) = call(
        &app,
        "POST",
        "/products/42/reviews",
        Some(json!({"user_id": 1, "rating": 5, "body": "ok"})),
    )
    .await;
    assert_eq!((s.as_u16(), problem(&v)), (404, "unknown-product"));
    // Nothing was stored: no review, an empty aggregate.
    assert_eq!(store.recompute(ProductId(1)).await.expect("agg").count, 0);
    assert!(store.review_of(UserId(1), ProductId(1)).await.is_err());
}
// ANCHOR_END: bad_input

#[tokio::test]
async fn submit_edit_read_and_a_second_submit_is_already_reviewed() {
    let (app, _) = app().await;
    let (s, v) = call(
        &app,
        "POST",
        "/products/1/reviews",
        Some(json!({"user_id": 1, "rating": 5, "body": "Sturdy lid, the hinge holds."})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "published");
    let (s, v) = call(
        &app,
        "POST",
        "/products/1/reviews",
        Some(json!({"user_id": 1, "rating": 4, "body": "again"})),
    )
    .await;
    assert_eq!((s.as_u16(), problem(&v)), (409, "already-reviewed"));
    let (s, _) = call(
        &app,
        "PUT",
        "/products/1/reviews/1",
        Some(json!({"rating": 2, "body": "The hinge broke."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &app,
        "PUT",
        "/products/1/reviews/1",
        Some(json!({"rating": 9, "body": "x"})),
    )
    .await;
    assert_eq!((s.as_u16(), problem(&v)), (400, "invalid-rating"));
    let (_, v) = call(&app, "GET", "/products/1/rating", None).await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["stars"], json!([0, 1, 0, 0, 0]));
    let (s, v) = call(&app, "GET", "/products/1/reviews?limit=0", None).await;
    assert_eq!((s.as_u16(), problem(&v)), (400, "malformed-request"));
    let (_, v) = call(&app, "GET", "/products/1/reviews?limit=1", None).await;
    assert_eq!(v["reviews"][0]["rating"], 2);
    let (s, v) = call(&app, "DELETE", "/products/1/reviews/1", None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("deleted")));
    let (s, v) = call(&app, "DELETE", "/products/1/reviews/1", None).await;
    assert_eq!((s.as_u16(), problem(&v)), (404, "review-not-found"));
    let (_, v) = call(&app, "GET", "/products/1/rating", None).await;
    assert_eq!(v["count"], 0);
}

#[tokio::test]
async fn moderation_refuses_authors_events_and_empty_reasons_and_audits_the_rest() {
    let (app, _) = app().await;
    let (_, r) = call(
        &app,
        "POST",
        "/products/1/reviews",
        Some(json!({"user_id": 1, "rating": 5, "body": "Fine kettle."})),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    let uri = format!("/reviews/{id}/moderation");
    for body in [
        json!({"event": "delete", "actor": "moderator:ann", "reason": "x"}),
        json!({"event": "remove", "actor": "", "reason": "x"}),
        json!({"event": "remove", "actor": "moderator:ann", "reason": " "}),
    ] {
        let (s, v) = call(&app, "POST", &uri, Some(body.clone())).await;
        assert_eq!(
            (s.as_u16(), problem(&v)),
            (400, "invalid-moderation"),
            "{body}"
        );
    }
    let (s, _) = call(
        &app,
        "POST",
        &uri,
        Some(json!({"event": "remove", "actor": "moderator:ann", "reason": "advert"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &app,
        "POST",
        &uri,
        Some(json!({"event": "approve", "actor": "moderator:ann", "reason": "undo"})),
    )
    .await;
    assert_eq!((s.as_u16(), problem(&v)), (409, "illegal-transition"));
    let (s, _) = call(
        &app,
        "POST",
        "/products/1/reviews/1/appeal",
        Some(json!({"reason": "it is a real review"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&app, "GET", &format!("/reviews/{id}/audit"), None).await;
    let trail: Vec<(&str, &str)> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("pending", "published"),
            ("published", "removed"),
            ("removed", "appealed")
        ]
    );
}

// ANCHOR: vote_burst
#[tokio::test]
async fn a_burst_of_votes_from_new_accounts_is_flagged_and_old_accounts_are_not() {
    let (app, store) = app().await;
    let (_, r) = call(
        &app,
        "POST",
        "/products/1/reviews",
        Some(json!({"user_id": 1, "rating": 5, "body": "Good pan."})),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    let uri = format!("/reviews/{id}/votes");
    // Two established voters: not suspicious.
    let (s, v) = call(&app, "POST", &uri, Some(json!({"voter_id": 2}))).await;
    assert_eq!(
        (s, v["suspicious"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let (_, v) = call(&app, "POST", &uri, Some(json!({"voter_id": 3}))).await;
    assert_eq!(v["suspicious"], false);
    // Five accounts created an hour ago vote within a minute.
    let mut last = Value::Null;
    for u in 100..105 {
        store
            .add_user(UserId(u), Utc::now() - TimeDelta::hours(1))
            .await
            .expect("user");
        last = call(&app, "POST", &uri, Some(json!({"voter_id": u})))
            .await
            .1;
    }
    assert_eq!(
        (last["helpful"].as_i64(), last["suspicious"].as_bool()),
        (Some(7), Some(true))
    );
    let (s, v) = call(&app, "POST", &uri, Some(json!({"voter_id": 2}))).await;
    assert_eq!((s.as_u16(), problem(&v)), (409, "already-voted"));
    let (s, v) = call(&app, "POST", &uri, Some(json!({"voter_id": 1}))).await;
    assert_eq!((s.as_u16(), problem(&v)), (403, "own-review"));
}
// ANCHOR_END: vote_burst

#[tokio::test]
async fn a_new_account_writing_fast_is_limited_then_held() {
    let (app, store) = app().await;
    store
        .add_user(UserId(7), Utc::now() - TimeDelta::hours(2))
        .await
        .expect("user");
    for p in 10..15 {
        store
            .add_product(ProductId(p), "kitchen")
            .await
            .expect("product");
        store
            .record_order(UserId(7), ProductId(p), Utc::now())
            .await
            .expect("order");
    }
    let texts = [
        "The lid seals well and the handle stays cool.",
        "Blade dulled after a month of daily bread.",
        "Strap buckle came loose on the second hike.",
        "Filter clogs weekly; replacement parts are cheap.",
        "Charger runs hot but works.",
    ];
    let mut states = Vec::new();
    for (i, p) in (10..15).enumerate() {
        let (s, v) = call(
            &app,
            "POST",
            &format!("/products/{p}/reviews"),
            Some(json!({"user_id": 7, "rating": 4, "body": texts[i]})),
        )
        .await;
        states.push((
            s.as_u16(),
            v["state"].as_str().unwrap_or(problem(&v)).to_owned(),
        ));
    }
    let got: Vec<(u16, &str)> = states.iter().map(|(s, t)| (*s, t.as_str())).collect();
    // Reviews 1-2 publish; the third of the day from a new account is held;
    // past the burst of three, the limit refuses with 429.
    assert_eq!(
        got,
        [
            (201, "published"),
            (201, "published"),
            (201, "pending"),
            (429, "too-many-reviews"),
            (429, "too-many-reviews")
        ]
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let (app, _) = app().await;
    let (s, v) = call(&app, "GET", "/nowhere", None).await;
    assert_eq!((s.as_u16(), problem(&v)), (404, "no-such-route"));
    let (s, v) = call(&app, "PATCH", "/products/1/reviews", None).await;
    assert_eq!((s.as_u16(), problem(&v)), (405, "method-not-allowed"));
    let (s, v) = call(&app, "GET", "/products/abc/rating", None).await;
    assert_eq!((s.as_u16(), problem(&v)), (400, "malformed-request"));
}
