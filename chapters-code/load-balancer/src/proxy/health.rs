//! Active health checks: a probe of every backend every `probe_interval`.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::task::JoinSet;

use super::Shared;

/// The path every backend answers health checks on.
pub const HEALTH_PATH: &str = "/health";

// ANCHOR: prober
/// Probes every backend of the current set, forever; the caller aborts it.
/// A probe fails on a refused connection, a status other than 2xx, or no
/// answer within `probe_timeout`.
pub async fn run(shared: Arc<Shared>) {
    let policy = shared.pool.policy().clone();
    let mut tick = tokio::time::interval(policy.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut probes = JoinSet::new();
        for backend in shared.pool.backends().iter().cloned() {
            let shared = shared.clone();
            let timeout = policy.probe_timeout;
            probes.spawn(async move {
                let uri = format!("http://{}{HEALTH_PATH}", backend.addr);
                let ok = match hyper::Request::get(uri).body(Full::<Bytes>::default()) {
                    Ok(request) => matches!(
                        tokio::time::timeout(timeout, shared.client.request(request)).await,
                        Ok(Ok(response)) if response.status().is_success()
                    ),
                    Err(_) => false,
                };
                shared.pool.probed(&backend, ok);
            });
        }
        while probes.join_next().await.is_some() {}
    }
}
// ANCHOR_END: prober
