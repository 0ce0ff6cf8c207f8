//! The answer to a request that ran out of time: the same problem document
//! and `Retry-After` as any other retryable failure, not an empty body.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::class::RETRY_AFTER;
use crate::problem::{NO_STORE, Problem, ProblemResponse, UNAVAILABLE};

// ANCHOR: timeout
/// The response to a request still running after `limit`: a `503`
/// `unavailable` problem of the chapter's `base`, with `Retry-After`.
pub fn timed_out(base: &str, limit: Duration) -> ProblemResponse {
    let (status, slug, title) = UNAVAILABLE;
    let detail = format!(
        "no answer within {} ms; retry in {} s",
        limit.as_millis(),
        crate::retry_after_secs(RETRY_AFTER)
    );
    ProblemResponse {
        status,
        problem: Problem::new(base, slug, title, status.as_u16(), detail),
        retry_after: Some(RETRY_AFTER),
        cache_control: NO_STORE,
    }
}

/// The future a [`timeout`] middleware returns.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A middleware for `axum::middleware::from_fn`: drops the handler after
/// `limit` (its database calls are cancelled with it) and answers [`timed_out`].
pub fn timeout(
    base: &'static str,
    limit: Duration,
) -> impl Fn(Request, Next) -> Answer + Clone + Send + Sync + 'static {
    move |request, next| {
        Box::pin(async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(base, limit).into_response(),
            }
        })
    }
}
// ANCHOR_END: timeout

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_request_past_its_limit_gets_a_problem_503_with_retry_after() {
        let limit = Duration::from_millis(20);
        let app = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(timeout("b#", limit)));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap_or_else(|e| panic!("{e}"));
                app.oneshot(request).await.unwrap_or_else(|e| match e {})
            }
        };
        let response = call("/slow").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            crate::PROBLEM_JSON
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let problem: Problem = serde_json::from_slice(&body).expect("a problem document");
        assert_eq!(
            (problem.kind.as_str(), problem.status),
            ("b#unavailable", 503)
        );

        assert_eq!(call("/fast").await.status(), StatusCode::OK);
    }
}
