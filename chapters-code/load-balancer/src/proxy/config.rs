//! The proxy's knobs, each with the default the chapter's text quotes.

use std::time::Duration;

// ANCHOR: policy_defaults
/// Failed requests in a row that eject a backend (Envoy's `consecutive_5xx` default is 5;
/// we eject sooner because the pools here are small).
pub const EJECT_AFTER: u32 = 3;
/// How long a first ejection lasts; the n-th lasts n times as long, up to [`MAX_EJECTION_FACTOR`].
pub const BASE_EJECTION: Duration = Duration::from_secs(30);
/// The cap on the ejection multiplier.
pub const MAX_EJECTION_FACTOR: u32 = 10;
/// Ejection never leaves less than this share of the pool up, percent.
pub const MIN_UP_PERCENT: u32 = 50;
/// Time between two active health checks of a backend.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// A health check that takes longer has failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Failed health checks in a row that take a backend out.
pub const UNHEALTHY_AFTER: u32 = 2;
/// Passed health checks in a row that bring it back.
pub const HEALTHY_AFTER: u32 = 2;
/// How long a backend back in service takes to reach its full weight.
pub const SLOW_START: Duration = Duration::from_secs(30);
/// The share of its weight a backend starts slow start with.
pub const SLOW_START_FLOOR: f64 = 0.1;
// ANCHOR_END: policy_defaults

// ANCHOR: retry_defaults
/// Attempts per request at most, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// Retries may add this share of the requests on top (Finagle's default budget is 20%).
pub const RETRY_RATIO: f64 = 0.2;
/// Retries always allowed before the ratio applies, so a quiet proxy can still retry.
pub const RETRY_RESERVE: f64 = 10.0;
/// One attempt at a backend that takes longer has failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body the proxy buffers (it must keep it to retry).
pub const MAX_BODY_BYTES: usize = 1 << 20;
// ANCHOR_END: retry_defaults

/// Health checks, outlier ejection and slow start.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Failed requests in a row that eject a backend.
    pub eject_after: u32,
    /// The first ejection's length.
    pub base_ejection: Duration,
    /// The cap on the ejection multiplier.
    pub max_ejection_factor: u32,
    /// Ejection never leaves less than this share of the pool up, percent.
    pub min_up_percent: u32,
    /// Time between two health checks of a backend.
    pub probe_interval: Duration,
    /// A probe slower than this has failed.
    pub probe_timeout: Duration,
    /// Failed probes in a row that take a backend out.
    pub unhealthy_after: u32,
    /// Passed probes in a row that bring it back.
    pub healthy_after: u32,
    /// The ramp of a backend back in service.
    pub slow_start: Duration,
    /// The share of its weight a backend starts the ramp with.
    pub slow_start_floor: f64,
    /// Peak-EWMA's decay time.
    pub ewma_tau: Duration,
    /// Peak-EWMA's estimate of a backend never measured.
    pub initial_rtt: Duration,
    /// The latency a failed attempt counts as in Peak-EWMA.
    pub failure_penalty: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            eject_after: EJECT_AFTER,
            base_ejection: BASE_EJECTION,
            max_ejection_factor: MAX_EJECTION_FACTOR,
            min_up_percent: MIN_UP_PERCENT,
            probe_interval: PROBE_INTERVAL,
            probe_timeout: PROBE_TIMEOUT,
            unhealthy_after: UNHEALTHY_AFTER,
            healthy_after: HEALTHY_AFTER,
            slow_start: SLOW_START,
            slow_start_floor: SLOW_START_FLOOR,
            ewma_tau: Duration::from_secs(10),
            initial_rtt: Duration::from_millis(1),
            failure_penalty: Duration::from_secs(1),
        }
    }
}

/// Retries: how many, and how many more than the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request at most, the first included.
    pub max_attempts: u32,
    /// Retries may add this share of the requests.
    pub ratio: f64,
    /// Retries allowed before the ratio applies.
    pub reserve: f64,
    /// One attempt slower than this has failed.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: MAX_ATTEMPTS,
            ratio: RETRY_RATIO,
            reserve: RETRY_RESERVE,
            attempt_timeout: ATTEMPT_TIMEOUT,
        }
    }
}
