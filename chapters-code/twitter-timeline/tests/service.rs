//! The HTTP API: routes, status codes, problem documents, and bad input
//! that gets a named error and changes nothing.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use twitter_timeline::app::Timelines;
use twitter_timeline::cache::MemoryTimelines;
use twitter_timeline::domain::UserId;
use twitter_timeline::service::{USER_HEADER, router, router_with};
use twitter_timeline::store::MemoryStore;
use twitter_timeline::timeline::{FanOutOnRead, FanOutOnWrite, Parts};

fn app() -> Router {
    let (push, _, _) = common::memory_strategies(800, 1_000);
    router(Timelines::new(push, 1, b"k").expect("app"))
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    user: Option<i64>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(u) = user {
        req = req.header(USER_HEADER, u.to_string());
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let problem = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_client_error() || status.is_server_error() {
        assert!(problem, "errors are problem+json: {status} {value}");
    }
    (status, value)
}

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.split('#').nth(1))
        .unwrap_or("")
}

async fn user(app: &Router, handle: &str) -> i64 {
    let (s, v) = call(
        app,
        "POST",
        "/api/users",
        None,
        Some(json!({ "handle": handle })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    v["id"].as_i64().expect("id")
}

async fn timeline(app: &Router, u: i64) -> Vec<String> {
    let (s, v) = call(app, "GET", "/api/timeline", Some(u), None).await;
    assert_eq!(s, StatusCode::OK);
    v["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| p["body"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn the_happy_path_posts_follows_and_pages_with_a_cursor() {
    let app = app();
    let (a, b) = (user(&app, "ada").await, user(&app, "bob").await);
    assert_eq!(
        call(&app, "PUT", &format!("/api/follows/{a}"), Some(b), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for i in 0..3 {
        let (s, v) = call(
            &app,
            "POST",
            "/api/posts",
            Some(a),
            Some(json!({ "body": format!("p{i}") })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert!(
            v["id"].is_string(),
            "ids are strings: JavaScript numbers lose 64-bit ids"
        );
    }
    // The in-memory wiring of the router has no worker: reads rebuild from the store.
    let (s, v) = call(&app, "GET", "/api/timeline?limit=2", Some(b), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["posts"].as_array().map(Vec::len), Some(2));
    let cursor = v["next"].as_str().expect("a next cursor").to_string();
    let (s, v) = call(
        &app,
        "GET",
        &format!("/api/timeline?limit=2&cursor={cursor}"),
        Some(b),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["posts"][0]["body"], "p0");
    assert!(v["next"].is_null());
}

/// Method, path, acting user, body, expected status, expected problem type.
type Case = (
    &'static str,
    String,
    Option<i64>,
    Option<Value>,
    StatusCode,
    &'static str,
);

// ANCHOR: bad_input
#[tokio::test]
async fn bad_input_gets_a_named_error_and_changes_nothing() {
    // The store itself is compared, read through fan-out on read: a cached
    // list that no worker updates would not show a post that slipped in.
    let store = MemoryStore::new();
    let push = FanOutOnWrite(Parts {
        store: store.clone(),
        cache: MemoryTimelines::default(),
    });
    let app = router(Timelines::new(push, 1, b"k").expect("app"));
    let truth = Timelines::new(FanOutOnRead(store), 1, b"k").expect("truth");
    let (a, b) = (user(&app, "ada").await, user(&app, "bob").await);
    call(&app, "PUT", &format!("/api/follows/{a}"), Some(b), None).await;
    call(
        &app,
        "POST",
        "/api/posts",
        Some(a),
        Some(json!({ "body": "kept" })),
    )
    .await;
    let before = timeline(&app, b).await;
    let stored = |u: i64| {
        let truth = truth.clone();
        async move {
            let mut all = Vec::new();
            for reader in [UserId(u), UserId(a)] {
                all.push(truth.home(reader, None, Some(100)).await.expect("store"));
            }
            all
        }
    };
    let stored_before = stored(b).await;

    let long = "x".repeat(281);
    // Over the 4 KiB body limit: refused before the post rules see it.
    let huge = "x".repeat(5 * 1024);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": huge })),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": "" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-post",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": "  " })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-post",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": long })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-post",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": "bell\u{7}" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-post",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": "gpj.\u{202E}exe" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-post",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(a),
            Some(json!({ "body": "x", "extra": 1 })),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "POST",
            "/api/posts".into(),
            None,
            Some(json!({ "body": "who?" })),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "POST",
            "/api/posts".into(),
            Some(999),
            Some(json!({ "body": "ghost" })),
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            "GET",
            "/api/timeline?cursor=12345.deadbeefdeadbeef".into(),
            Some(b),
            None,
            StatusCode::BAD_REQUEST,
            "invalid-cursor",
        ),
        (
            "GET",
            "/api/timeline?cursor=not-a-cursor".into(),
            Some(b),
            None,
            StatusCode::BAD_REQUEST,
            "invalid-cursor",
        ),
        (
            "GET",
            "/api/timeline?limit=0".into(),
            Some(b),
            None,
            StatusCode::BAD_REQUEST,
            "invalid-limit",
        ),
        (
            "GET",
            "/api/timeline?limit=101".into(),
            Some(b),
            None,
            StatusCode::BAD_REQUEST,
            "invalid-limit",
        ),
        (
            "PUT",
            format!("/api/follows/{a}"),
            Some(a),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "self-action",
        ),
        (
            "PUT",
            "/api/follows/0".into(),
            Some(a),
            None,
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "PUT",
            "/api/follows/999".into(),
            Some(a),
            None,
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            "DELETE",
            "/api/posts/abc".into(),
            Some(a),
            None,
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "DELETE",
            "/api/posts/12345".into(),
            Some(a),
            None,
            StatusCode::NOT_FOUND,
            "post-not-found",
        ),
        (
            "POST",
            "/api/users".into(),
            None,
            Some(json!({ "handle": "Ada!" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-handle",
        ),
        (
            "POST",
            "/api/users".into(),
            None,
            Some(json!({ "handle": "ada" })),
            StatusCode::CONFLICT,
            "handle-taken",
        ),
    ];
    for (method, uri, who, body, status, name) in cases {
        let (s, v) = call(&app, method, &uri, who, body.clone()).await;
        assert_eq!(
            (s, kind(&v)),
            (status, name),
            "{method} {uri} {body:?}: {v}"
        );
    }
    assert_eq!(timeline(&app, b).await, before, "nothing changed");
    assert_eq!(
        stored(b).await,
        stored_before,
        "nothing changed in the store"
    );
}
// ANCHOR_END: bad_input

// ANCHOR: authorization
#[tokio::test]
async fn only_the_author_deletes_and_a_block_stops_follows() {
    let app = app();
    let (a, b) = (user(&app, "ada").await, user(&app, "bob").await);
    call(&app, "PUT", &format!("/api/follows/{a}"), Some(b), None).await;
    let (_, post) = call(
        &app,
        "POST",
        "/api/posts",
        Some(a),
        Some(json!({ "body": "mine" })),
    )
    .await;
    let id = post["id"].as_str().expect("id");
    let (s, v) = call(&app, "DELETE", &format!("/api/posts/{id}"), Some(b), None).await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "not-author"));
    assert_eq!(timeline(&app, b).await, vec!["mine"]);

    assert_eq!(
        call(&app, "PUT", &format!("/api/blocks/{b}"), Some(a), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(
        timeline(&app, b).await.is_empty(),
        "the block ended the follow"
    );
    let (s, v) = call(&app, "PUT", &format!("/api/follows/{a}"), Some(b), None).await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "blocked"));

    let (s, _) = call(&app, "DELETE", &format!("/api/posts/{id}"), Some(a), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(timeline(&app, a).await.is_empty());
}
// ANCHOR_END: authorization

// ANCHOR: untrusted_header
/// Deployed without a gateway that strips a client's copy of `X-User-Id`,
/// the header would let anyone act as anyone; configured not to trust it,
/// the service refuses every request that carries it and changes nothing.
/// Seen failing before `router_with` refused it: the post was created (201).
#[tokio::test]
async fn a_service_configured_not_to_trust_x_user_id_refuses_it() {
    let (push, _, _) = common::memory_strategies(800, 1_000);
    let app = Timelines::new(push, 1, b"k").expect("app");
    let trusted = router_with(app.clone(), true);
    let untrusted = router_with(app, false);
    let a = user(&trusted, "ada").await;
    let post = Some(json!({ "body": "as ada?" }));
    let (status, problem) = call(&untrusted, "POST", "/api/posts", Some(a), post).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&problem), "unauthenticated");
    let (status, _) = call(&untrusted, "GET", "/api/timeline", Some(a), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(timeline(&trusted, a).await.is_empty(), "nothing was posted");
}
// ANCHOR_END: untrusted_header
