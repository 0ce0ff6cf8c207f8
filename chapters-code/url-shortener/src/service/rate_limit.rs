//! Per-client rate limiting of link creation.
//!
//! Creation is the abuse target (spam, phishing campaigns, filling the code
//! space), and it is 1% of traffic, so `POST /api/links` is limited here.
//! Redirects are limited only by the miss budget of `crate::scan`, which
//! counts lookups that find nothing. Each client IP has a token bucket
//! (GCRA, via `governor`): `burst` creates at once, then `per_second`
//! sustained. It runs as a layer, before the body is read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;

/// Every this many checks, forget clients whose bucket is full again.
const CLEANUP_EVERY: u64 = 4096;

// ANCHOR: rate_limit
/// Token buckets keyed by client IP.
pub struct CreateLimiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl CreateLimiter {
    /// Buckets with the given rate and burst (each at least 1).
    pub fn new(config: &RateLimitConfig) -> Self {
        let rate = NonZeroU32::new(config.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            buckets: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes a token for `client`, or says how long until one is available.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        // The map grows with every client seen; prune it now and then
        // instead of running a housekeeping task.
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.buckets.retain_recent();
        }
        self.buckets
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.buckets.clock().now()))
    }
}

/// The client a request is counted against.
///
/// The TCP peer, unless we run behind our own proxy: then the peer is the
/// proxy and the client is the address the proxy appended, the last entry
/// of `X-Forwarded-For`. Earlier entries come from the client and can be
/// forged, so they are never used.
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
// ANCHOR_END: rate_limit

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_wait() {
        let limiter = CreateLimiter::new(&RateLimitConfig {
            per_second: 1,
            burst: 3,
        });
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for _ in 0..3 {
            assert_eq!(limiter.check(a), Ok(()));
        }
        let wait = limiter.check(a).expect_err("bucket empty");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(limiter.check(b), Ok(()), "other clients are not affected");
    }

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
    }
}
