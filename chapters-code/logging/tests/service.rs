//! The HTTP API: every bad input gets its named problem type and changes nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use logging::service::{AppState, MAX_LIMIT, MAX_PUSH_RECORDS, router};
use logging::store::{LogStore, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const NOW: i64 = 1_893_456_000_000;

fn app(dir: &std::path::Path, max_values: usize) -> (axum::Router, AppState) {
    let config = StoreConfig {
        max_label_values: max_values,
        ..StoreConfig::default()
    };
    let (store, _) = LogStore::open(dir, config).expect("open");
    let state = AppState::new(store, Arc::new(|| NOW));
    (router(state.clone()), state)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn push(body: &Value) -> Request<Body> {
    Request::post("/push")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn line(ts: i64, service: &str, msg: &str) -> Value {
    json!({"ts_ms": ts, "labels": {"service": service}, "message": msg})
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn problem_type(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .unwrap_or("")
}

#[tokio::test]
async fn a_pushed_batch_is_found_by_label_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, _) = app(dir.path(), 10);
    let body = json!({"records": [line(NOW - 2, "api", "GET /a 200"), line(NOW - 1, "api", "GET /b 500")]});
    let (s, v) = call(&app, push(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stored"], 2);
    let uri = format!(
        "/query?query={}&start={}&end={}",
        enc("{service=\"api\"} |= \"500\""),
        NOW - 1000,
        NOW
    );
    let (s, v) = call(&app, get(&uri)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["lines"][0]["message"], "GET /b 500");
}

#[tokio::test]
async fn a_field_that_becomes_an_object_or_null_is_kept_not_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, _) = app(dir.path(), 10);
    let body = json!({"records": [
        {"ts_ms": NOW - 3, "labels": {"service": "a"}, "message": "m", "fields": {"err": "x"}},
        {"ts_ms": NOW - 2, "labels": {"service": "a"}, "message": "m", "fields": {"err": {"code": 7}}},
        {"ts_ms": NOW - 1, "labels": {"service": "a"}, "message": "m", "fields": {"err": null}},
    ]});
    let (s, v) = call(&app, push(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stored"], 3);
    let uri = format!(
        "/query?query={}&start={}&end={}",
        enc("{service=\"a\"}"),
        NOW - 10,
        NOW
    );
    let (_, v) = call(&app, get(&uri)).await;
    assert_eq!(
        v["lines"][1]["fields"]["err#json"],
        json!({"code": 7}),
        "{v}"
    );
    let third = v["lines"][2]["fields"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(third.get("err#json"), Some(&Value::Null), "{v}");
}

#[tokio::test]
async fn every_bad_input_gets_its_named_problem_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, state) = app(dir.path(), 1);
    let (s, _) = call(&app, push(&json!({"records": [line(NOW - 1, "a", "x")]}))).await;
    assert_eq!(s, StatusCode::OK);
    let q = |query: &str, start: i64, end: i64, limit: usize| {
        format!(
            "/query?query={}&start={start}&end={end}&limit={limit}",
            enc(query)
        )
    };
    let too_many: Vec<Value> = (0..=MAX_PUSH_RECORDS)
        .map(|_| line(NOW, "a", "x"))
        .collect();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::post("/push")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            push(
                &json!({"records": [{"ts_ms": NOW, "labels": {"Bad-Name": "x"}, "message": "m"}]}),
            ),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            push(&json!({"records": [line(NOW, "a\"} |= \"", "a quote in a label value")]})),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            push(&json!({"records": [line(NOW, "b", "a second service value")]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "label-cardinality-exceeded",
        ),
        (
            push(&json!({"records": [line(NOW - 30 * 24 * 3_600_000, "a", "old")]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "timestamp-out-of-window",
        ),
        (
            push(&json!({ "records": too_many })),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
        ),
        (
            get(&q("{service=", NOW - 1, NOW, 10)),
            StatusCode::BAD_REQUEST,
            "malformed-query",
        ),
        (
            get(&q("{service=\"a\"}", NOW, NOW - 1, 10)),
            StatusCode::BAD_REQUEST,
            "invalid-time-range",
        ),
        (
            get(&q("{service=\"a\"}", NOW - 1, NOW, MAX_LIMIT + 1)),
            StatusCode::BAD_REQUEST,
            "invalid-limit",
        ),
        (
            get("/query?query=x"),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            get(&q("{service=\"a\"}", i64::MIN, i64::MIN + 1000, 10)),
            StatusCode::BAD_REQUEST,
            "invalid-time-range",
        ),
        (get("/nowhere"), StatusCode::NOT_FOUND, "no-such-route"),
        (
            get("/push"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
    ];
    for (req, status, kind) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (s, v) = call(&app, req).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(problem_type(&v), kind, "{what}: {v}");
    }
    let st = state.store.lock().expect("lock").stats();
    assert_eq!(st.lines, 1, "no bad push stored anything");
    assert_eq!(st.refused, 1, "the cardinality refusal is counted");
}
