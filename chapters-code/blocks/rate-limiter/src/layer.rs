//! The limit as a tower layer: it runs before the handler and its extractors.
//!
//! An axum handler's `Json` extractor reads the whole body before the
//! handler's first line runs, so a limit checked inside the handler would
//! pay for every refused body. This layer looks only at the request's head
//! (the key comes from headers and the peer address), and answers `429`
//! with `Retry-After` without polling the body or calling the handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::AsyncLimiter;
use crate::quota::Refused;

type KeyFn<K> = Arc<dyn Fn(&Parts) -> K + Send + Sync>;
type RefuseFn = Arc<dyn Fn(Refused) -> Response + Send + Sync>;

// ANCHOR: layer
/// Checks `limiter` for the key of each request before the inner service sees it.
pub struct RateLimitLayer<L, K> {
    limiter: Arc<L>,
    key: KeyFn<K>,
    refuse: RefuseFn,
}

impl<L: AsyncLimiter<K>, K: Send + 'static> RateLimitLayer<L, K> {
    /// Limits each request by `key(head)`; refusals are [`too_many_requests`].
    pub fn new(limiter: Arc<L>, key: impl Fn(&Parts) -> K + Send + Sync + 'static) -> Self {
        Self {
            limiter,
            key: Arc::new(key),
            refuse: Arc::new(too_many_requests),
        }
    }

    /// The same layer, answering refusals with `refuse` (a chapter's own problem type).
    pub fn refusing_with(
        mut self,
        refuse: impl Fn(Refused) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.refuse = Arc::new(refuse);
        self
    }
}

impl<S, L, K, B> Service<Request<B>> for RateLimitService<S, L, K>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    L: AsyncLimiter<K>,
    K: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The key comes from the head only; the body is moved along unread.
        let (head, body) = request.into_parts();
        let key = (self.layer.key)(&head);
        let request = Request::from_parts(head, body);
        // Call the instance that `poll_ready` readied; leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = Arc::clone(&self.layer.limiter);
        let refuse = Arc::clone(&self.layer.refuse);
        Box::pin(async move {
            match limiter.check(&key).await {
                Ok(()) => inner.call(request).await,
                Err(refused) => Ok(refuse(refused)),
            }
        })
    }
}
// ANCHOR_END: layer

impl<L, K> Clone for RateLimitLayer<L, K> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            key: Arc::clone(&self.key),
            refuse: Arc::clone(&self.refuse),
        }
    }
}

impl<S, L, K> Layer<S> for RateLimitLayer<L, K> {
    type Service = RateLimitService<S, L, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a route.
pub struct RateLimitService<S, L, K> {
    inner: S,
    layer: RateLimitLayer<L, K>,
}

impl<S: Clone, L, K> Clone for RateLimitService<S, L, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

/// `429 Too Many Requests` with `Retry-After` and a plain RFC 9457 body.
pub fn too_many_requests(refused: Refused) -> Response {
    let body = r#"{"type":"about:blank","title":"Too Many Requests","status":429}"#;
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (
                header::RETRY_AFTER,
                HeaderValue::from(refused.retry_after_secs()),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            ),
        ],
        body,
    )
        .into_response()
}

// ANCHOR: client_ip
/// The client a request is counted against.
///
/// The TCP peer, unless we run behind our own proxy: then the peer is the
/// proxy and the client is the address the proxy appended, the last entry
/// of `X-Forwarded-For`. Earlier entries come from the client and can be
/// forged, so they are never used; nor is the header at all unless
/// `trust_forwarded_for` says a proxy we run sets it.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> IpAddr {
    let forwarded = || {
        let value = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?
            .to_str()
            .ok()?;
        value.rsplit(',').next()?.trim().parse().ok()
    };
    let from_proxy = if trust_forwarded_for {
        forwarded()
    } else {
        None
    };
    from_proxy
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A key function for [`RateLimitLayer`]: the client's address, by [`client_ip`].
///
/// The peer comes from axum's `ConnectInfo`, so serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn by_client_ip(
    trust_forwarded_for: bool,
) -> impl Fn(&Parts) -> IpAddr + Send + Sync + 'static {
    move |head: &Parts| {
        let peer = head
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        client_ip(&head.headers, peer, trust_forwarded_for)
    }
}
// ANCHOR_END: client_ip

/// A key function for a global limit: every request has the same key.
pub fn everyone(_head: &Parts) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_used_only_when_trusted_and_only_its_last_entry() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7".parse().expect("header"),
        );
        let peer = Some(SocketAddr::from(([10, 0, 0, 9], 4000)));
        assert_eq!(client_ip(&h, peer, true), IpAddr::from([203, 0, 113, 7]));
        assert_eq!(client_ip(&h, peer, false), IpAddr::from([10, 0, 0, 9]));
        h.insert("x-forwarded-for", "garbage".parse().expect("header"));
        assert_eq!(client_ip(&h, peer, true), IpAddr::from([10, 0, 0, 9]));
        assert_eq!(
            client_ip(&HeaderMap::new(), None, true),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
