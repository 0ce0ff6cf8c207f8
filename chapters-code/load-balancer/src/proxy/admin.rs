//! The admin routes: read the pool, replace the backend set at run time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::{ProxyError, SetError};
use super::pool::BackendStatus;

/// The largest weight accepted.
pub const MAX_WEIGHT: i64 = 1_000;
/// The most backends one set may hold.
pub const MAX_BACKENDS: usize = 256;
/// A new backend must accept a TCP connection within this long.
pub const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// One backend as the admin route takes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendEntry {
    /// `ip:port`.
    pub addr: String,
    /// 1 to [`MAX_WEIGHT`]; a signed integer so that a negative one gets a named error.
    pub weight: i64,
}

/// The body of `PUT /_lb/backends`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendSet {
    /// The whole new set.
    pub backends: Vec<BackendEntry>,
}

/// The answer of both admin routes: the pool as it now stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolStatus {
    /// Every backend of the set in force.
    pub backends: Vec<BackendStatusView>,
}

/// One backend's state, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendStatusView {
    /// Where it listens.
    pub addr: String,
    /// Its configured weight.
    pub weight: u32,
    /// False while ejected or failing its health checks.
    pub up: bool,
    /// True while the outlier detector holds it out.
    pub ejected: bool,
    /// Requests in flight to it.
    pub in_flight: u32,
    /// Attempts sent to it since it joined.
    pub sent: u64,
}

impl From<BackendStatus> for BackendStatusView {
    fn from(s: BackendStatus) -> Self {
        Self {
            addr: s.addr.to_string(),
            weight: s.weight,
            up: s.up,
            ejected: s.ejected,
            in_flight: s.in_flight,
            sent: s.sent,
        }
    }
}

fn status(shared: &Shared) -> PoolStatus {
    PoolStatus {
        backends: shared.pool.status().into_iter().map(Into::into).collect(),
    }
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ProxyError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&shared.admin_token, given) {
        (Some(token), Some(given)) if token.as_bytes() == given.as_bytes() => Ok(()),
        // No token configured: the admin routes are closed.
        _ => Err(ProxyError::Unauthorized),
    }
}

/// `GET /_lb/backends`: the pool.
pub async fn get_backends(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<PoolStatus>, ProxyError> {
    authorize(&shared, &headers)?;
    Ok(Json(status(&shared)))
}

// ANCHOR: validate
/// Checks a proposed set's shape: not empty, not too large, each address
/// `ip:port` and listed once, each weight in `1..=MAX_WEIGHT`. Pure; the
/// reachability of new backends is checked after it.
pub fn validate(set: &BackendSet) -> Result<Vec<(SocketAddr, u32)>, SetError> {
    if set.backends.is_empty() {
        return Err(SetError::Empty);
    }
    if set.backends.len() > MAX_BACKENDS {
        return Err(SetError::TooMany(set.backends.len()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(set.backends.len());
    for entry in &set.backends {
        let addr: SocketAddr = entry
            .addr
            .trim()
            .parse()
            .map_err(|_| SetError::InvalidAddress(entry.addr.clone()))?;
        // One endpoint, one spelling: `[::ffff:127.0.0.1]:p` is `127.0.0.1:p`.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let weight = u32::try_from(entry.weight)
            .ok()
            .filter(|w| (1..=MAX_WEIGHT).contains(&i64::from(*w)))
            .ok_or_else(|| SetError::InvalidWeight {
                addr: entry.addr.clone(),
                weight: entry.weight,
            })?;
        if !seen.insert(addr) {
            return Err(SetError::Duplicate(addr.to_string()));
        }
        out.push((addr, weight));
    }
    Ok(out)
}
// ANCHOR_END: validate

// ANCHOR: put_backends
/// `PUT /_lb/backends`: replaces the set, or refuses it with a named error
/// and keeps the set in force. One change at a time, so two changes cannot
/// interleave their checks and their swaps.
pub async fn put_backends(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<BackendSet>, JsonRejection>,
) -> Result<Json<PoolStatus>, ProxyError> {
    authorize(&shared, &headers)?;
    let Json(set) = body.map_err(|e| ProxyError::Malformed(e.body_text()))?;
    let next = validate(&set).map_err(ProxyError::BadSet)?;
    let _one_at_a_time = shared.admin_lock.lock().await;
    let current: HashSet<SocketAddr> = shared.pool.backends().iter().map(|b| b.addr).collect();
    for &(addr, _) in next.iter().filter(|(a, _)| !current.contains(a)) {
        let connected =
            tokio::time::timeout(CONNECT_CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
        if !matches!(connected, Ok(Ok(_))) {
            return Err(ProxyError::BadSet(SetError::Unreachable(addr.to_string())));
        }
    }
    shared.pool.replace(&next);
    tracing::info!(backends = next.len(), "backend set replaced");
    Ok(Json(status(&shared)))
}
// ANCHOR_END: put_backends
