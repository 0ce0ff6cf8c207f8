//! Per-client rate limiting of link creation, on the rate-limiter block.
//!
//! Creation is the abuse target (spam, phishing campaigns, filling the code
//! space), and it is 1% of traffic, so `POST /api/links` is limited here.
//! Redirects are limited only by the miss budget of `crate::scan`, which
//! counts lookups that find nothing. Each client IP has a token bucket:
//! `burst` creates at once, then `per_second` sustained, in a map of at most
//! [`MAX_CLIENTS`] buckets. The block's layer runs before the handler, so a
//! client over its limit is refused before its body is read. The mechanism
//! (the bucket, the bounded map, the layer, the client key) is the block's;
//! this file is the chapter's configuration of it, with the chapter's own
//! client key (`crate::proxy`: the block's trusts one proxy hop or none).

use std::net::IpAddr;

use axum::response::IntoResponse;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use block_rate_limiter::{KeyedBuckets, Quota, RateLimitLayer};

use super::error::ApiError;
use crate::config::RateLimitConfig;
use crate::proxy::TrustedProxies;

// ANCHOR: rate_limit
/// Clients tracked at once; past it, clients whose bucket is full again are
/// forgotten, and new ones share an overflow bucket (see the block).
pub const MAX_CLIENTS: usize = 100_000;

/// The create limit: a bucket per client address, as a layer.
pub type CreateLimit = RateLimitLayer<KeyedBuckets<IpAddr>, IpAddr>;

/// The create limit of `config`, keyed on the client as `proxies` report
/// it (the TCP peer unless the peer is one of them).
pub fn create_limit(config: &RateLimitConfig, proxies: TrustedProxies) -> CreateLimit {
    // Zero in the configuration means "as little as possible", never "no limit".
    let quota = Quota::per_second(config.per_second.max(1), config.burst.max(1))
        .unwrap_or_else(|_| unreachable!("a rate and a burst of at least 1 are valid"));
    let buckets = KeyedBuckets::new(quota, MAX_CLIENTS);
    RateLimitLayer::new(buckets.into(), move |head| {
        let peer = head
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        proxies.client(&head.headers, peer)
    })
    .refusing_with(|refused| ApiError::RateLimited(refused.retry_after).into_response())
}
// ANCHOR_END: rate_limit
