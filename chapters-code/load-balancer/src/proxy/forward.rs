//! The request path: buffer the body, pick a backend, send, and retry what
//! may be retried.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;

use super::error::ProxyError;
use super::pool::Outcome;
use super::{BALANCE_KEY_HEADER, Shared, config::MAX_BODY_BYTES};
use crate::hash::hash_bytes;

// ANCHOR: idempotent
/// RFC 9110 section 9.2.2: the methods whose repetition has the effect of
/// one request. Only these are retried after the request may have reached
/// a backend; a POST or PATCH that fails there gets an error instead.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
// ANCHOR_END: idempotent

// ANCHOR: gateway_failure
/// The answers that say the backend itself cannot serve (Envoy's "gateway
/// failures"): they count against its health and are retried when safe.
/// Every other status, a 500 included, passes through as the answer.
pub fn is_gateway_failure(status: axum::http::StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}
// ANCHOR_END: gateway_failure

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// How one attempt failed.
enum Failed {
    /// The connection was refused: the request never left the proxy.
    NotSent,
    /// The attempt failed after the request may have reached the backend.
    MaybeSent,
    /// The attempt timed out.
    TimedOut,
}

// ANCHOR: forward
/// The proxy's one handler: every request that is not an admin route.
pub async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match try_forward(&shared, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn try_forward(shared: &Shared, request: Request) -> Result<Response, ProxyError> {
    let (parts, body) = request.into_parts();
    // Kept whole: a retry must send the same bytes again.
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => ProxyError::BodyTooLarge,
            Err(e) => ProxyError::BadBody(e.to_string()),
        })?
        .to_bytes();
    let idempotent = is_idempotent(&parts.method);
    let key = match parts.headers.get(BALANCE_KEY_HEADER) {
        Some(v) => hash_bytes(v.as_bytes()),
        None => hash_bytes(parts.uri.path().as_bytes()),
    };
    shared.budget().deposit();
    let policy = &shared.retry;
    let mut tried = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let lease = shared.pool.pick(key, &tried).ok_or(ProxyError::NoBackend)?;
        tried.push(lease.backend.id);
        let upstream = build_request(&parts, lease.backend.addr, body.clone())?;
        let sent = tokio::time::timeout(policy.attempt_timeout, shared.client.request(upstream));
        let failed = match sent.await {
            Ok(Ok(response)) if !is_gateway_failure(response.status()) => {
                // A 500 is the application's answer, not the backend's health:
                // counting it would let one bad path eject the whole pool.
                shared.pool.finish(lease, Outcome::Success);
                return Ok(to_client(response));
            }
            Ok(Ok(response)) => {
                shared.pool.finish(lease, Outcome::Failure);
                // The backend says it cannot serve: retried only when idempotent.
                if idempotent && attempt < policy.max_attempts && shared.budget().withdraw() {
                    continue;
                }
                return Ok(to_client(response));
            }
            Ok(Err(e)) if e.is_connect() => Failed::NotSent,
            Ok(Err(_)) => Failed::MaybeSent,
            Err(_elapsed) => Failed::TimedOut,
        };
        shared.pool.finish(lease, Outcome::Failure);
        // A refused connection never carried the request: any method may go elsewhere.
        let may_retry = idempotent || matches!(failed, Failed::NotSent);
        if may_retry && attempt < policy.max_attempts && shared.budget().withdraw() {
            continue;
        }
        return Err(match failed {
            Failed::NotSent => ProxyError::Unreachable(attempt),
            _ if !idempotent => ProxyError::Interrupted(parts.method.to_string()),
            Failed::TimedOut => ProxyError::Timeout,
            Failed::MaybeSent => ProxyError::Unreachable(attempt),
        });
    }
}
// ANCHOR_END: forward

fn build_request(
    parts: &axum::http::request::Parts,
    addr: std::net::SocketAddr,
    body: Bytes,
) -> Result<hyper::Request<Full<Bytes>>, ProxyError> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| ProxyError::Malformed(e.to_string()))?;
    let mut request = hyper::Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    strip_hop_by_hop(request.headers_mut());
    // The client's Host stays: backends that serve several names need it.
    if let Some(host) = parts.headers.get(header::HOST) {
        request.headers_mut().insert(header::HOST, host.clone());
    }
    Ok(request)
}

fn to_client(response: hyper::Response<hyper::body::Incoming>) -> Response {
    let mut response = response.map(Body::new);
    strip_hop_by_hop(response.headers_mut());
    response
}
