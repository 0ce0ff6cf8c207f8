//! The backend set: per-backend counters, health, ejection and slow start,
//! and the pick that turns them into [`Candidate`]s for the [`Balancer`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::algo::load::EwmaEstimate;
use crate::algo::{Balancer, Candidate};
use crate::hash::hash_bytes;

use super::config::HealthPolicy;

// ANCHOR: bound
/// The most requests a backend that fails every request receives before
/// it is ejected, with `clients` requests in flight at a time: its
/// `eject_after` failures, plus the requests other clients had already
/// sent it when the last of them was counted.
pub const fn ejection_bound(eject_after: u32, clients: u32) -> u64 {
    eject_after as u64 + clients as u64 - 1
}
// ANCHOR_END: bound

/// One backend of the pool, shared by the requests in flight to it: a
/// request holds its `Arc` until it ends, so removing the backend from the
/// pool never cuts a request short (that is the drain).
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A hash of the address: what the hashing schemes place.
    pub id: u64,
    weight: AtomicU32,
    in_flight: AtomicU32,
    sent: AtomicU64,
    state: Mutex<Health>,
}

/// What the health checks and the outlier detector know about a backend.
#[derive(Debug, Clone)]
struct Health {
    /// False after `unhealthy_after` failed probes in a row; true again after `healthy_after` good ones.
    probe_up: bool,
    probe_failures: u32,
    probe_successes: u32,
    /// Failed requests in a row (5xx, connection errors, timeouts).
    consecutive_failures: u32,
    /// Ejected by the outlier detector until then.
    ejected_until: Option<Instant>,
    /// Times ejected: each ejection lasts longer.
    ejections: u32,
    /// Back in service since then: its weight ramps up from here (slow start).
    warming_since: Option<Instant>,
    ewma: EwmaEstimate,
}

/// How one attempt at a backend ended, for the outlier detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Success,
    /// A 5xx, a connection error or a timeout.
    Failure,
    /// The attempt ended without a verdict on the backend (the client went away).
    Neither,
}

/// A backend's state as the admin route reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendStatus {
    /// Where it listens.
    pub addr: SocketAddr,
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

impl Backend {
    fn new(
        addr: SocketAddr,
        weight: u32,
        policy: &HealthPolicy,
        origin: Instant,
        warming_since: Option<Instant>,
    ) -> Self {
        let now = Instant::now();
        Self {
            addr,
            id: hash_bytes(addr.to_string().as_bytes()),
            weight: AtomicU32::new(weight),
            in_flight: AtomicU32::new(0),
            sent: AtomicU64::new(0),
            state: Mutex::new(Health {
                probe_up: true,
                probe_failures: 0,
                probe_successes: 0,
                consecutive_failures: 0,
                ejected_until: None,
                ejections: 0,
                warming_since,
                ewma: EwmaEstimate::new(policy.initial_rtt, policy.ewma_tau, now - origin),
            }),
        }
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        // A panic while holding this lock leaves plain counters behind: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attempts sent to this backend so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Requests in flight to this backend.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

// ANCHOR: effective_weight
/// The weight a backend is picked with at `now`: zero while it is out, and
/// during slow start a share of its weight growing linearly from
/// `slow_start_floor` to 1 over `slow_start`, so a backend back from an
/// ejection or a failed health check is not handed a full share cold.
fn effective_weight(h: &Health, weight: u32, policy: &HealthPolicy, now: Instant) -> f64 {
    let out = !h.probe_up || h.ejected_until.is_some_and(|until| now < until);
    if out {
        return 0.0;
    }
    let ramp = match h.warming_since {
        Some(since) if !policy.slow_start.is_zero() => {
            let done = now.saturating_duration_since(since).as_secs_f64()
                / policy.slow_start.as_secs_f64();
            done.clamp(policy.slow_start_floor, 1.0)
        }
        _ => 1.0,
    };
    f64::from(weight) * ramp
}
// ANCHOR_END: effective_weight

/// The backend set and the balancer that picks from it.
pub struct Pool {
    set: RwLock<Arc<Vec<Arc<Backend>>>>,
    balancer: Mutex<Box<dyn Balancer>>,
    policy: HealthPolicy,
    origin: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("backends", &self.backends())
            .finish()
    }
}

/// One attempt's hold on a backend: counts it in flight until dropped.
#[derive(Debug)]
pub struct Lease {
    /// The backend chosen.
    pub backend: Arc<Backend>,
    started: Instant,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A pool of `backends` (address, weight) picked by `balancer`.
    pub fn new(
        backends: &[(SocketAddr, u32)],
        balancer: Box<dyn Balancer>,
        policy: HealthPolicy,
    ) -> Self {
        let origin = Instant::now();
        let set = backends
            .iter()
            .map(|&(addr, w)| Arc::new(Backend::new(addr, w, &policy, origin, None)))
            .collect();
        Self {
            set: RwLock::new(Arc::new(set)),
            balancer: Mutex::new(balancer),
            policy,
            origin,
        }
    }

    /// The health policy in force.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// The current set (a snapshot: a change does not alter it).
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current set's state, for the admin route.
    pub fn status(&self) -> Vec<BackendStatus> {
        let now = Instant::now();
        self.backends()
            .iter()
            .map(|b| {
                let h = b.health();
                let weight = b.weight.load(Ordering::Relaxed);
                BackendStatus {
                    addr: b.addr,
                    weight,
                    up: effective_weight(&h, weight, &self.policy, now) > 0.0,
                    ejected: h.ejected_until.is_some_and(|u| now < u),
                    in_flight: b.in_flight(),
                    sent: b.sent(),
                }
            })
            .collect()
    }

    // ANCHOR: replace
    /// Replaces the set. A backend that stays keeps its state (health,
    /// ejection, counters) with its new weight; one that leaves is only
    /// dropped from the set, so the requests in flight to it finish.
    pub fn replace(&self, backends: &[(SocketAddr, u32)]) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        let next = backends
            .iter()
            .map(
                |&(addr, weight)| match set.iter().find(|b| b.addr == addr) {
                    Some(kept) => {
                        kept.weight.store(weight, Ordering::Relaxed);
                        kept.clone()
                    }
                    // A newcomer starts cold: slow start from now.
                    None => Arc::new(Backend::new(
                        addr,
                        weight,
                        &self.policy,
                        self.origin,
                        Some(Instant::now()),
                    )),
                },
            )
            .collect();
        *set = Arc::new(next);
    }
    // ANCHOR_END: replace

    // ANCHOR: pick
    /// Picks a backend for a request with affinity `key`, never one in
    /// `tried` unless nothing else is up, and counts it in flight.
    pub fn pick(&self, key: u64, tried: &[u64]) -> Option<Lease> {
        let set = self.backends();
        let now = Instant::now();
        let since = now - self.origin;
        let mut candidates: Vec<Candidate> = set
            .iter()
            .map(|b| {
                let h = b.health();
                let weight =
                    effective_weight(&h, b.weight.load(Ordering::Relaxed), &self.policy, now);
                let in_flight = b.in_flight();
                Candidate {
                    id: b.id,
                    weight: weight.max(f64::MIN_POSITIVE),
                    in_flight,
                    cost: h.ewma.cost(in_flight, since),
                    up: weight > 0.0,
                }
            })
            .collect();
        // A retry goes elsewhere when it can.
        let fresh = candidates.iter().any(|c| c.up && !tried.contains(&c.id));
        if fresh {
            for c in candidates.iter_mut().filter(|c| tried.contains(&c.id)) {
                c.up = false;
            }
        }
        let index = self
            .balancer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick(&candidates, key)?;
        let backend = set.get(index)?.clone();
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        backend.sent.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            backend,
            started: now,
        })
    }
    // ANCHOR_END: pick

    // ANCHOR: outlier
    /// Records how an attempt ended. `eject_after` failures in a row eject
    /// the backend for `base_ejection` times the number of its ejections
    /// (capped), unless that would leave less than
    /// `min_up_percent` of the pool up: ejecting everyone helps nobody.
    pub fn finish(&self, lease: Lease, outcome: Outcome) {
        let now = Instant::now();
        let backend = &lease.backend;
        let eject = {
            let mut h = backend.health();
            match outcome {
                Outcome::Success => {
                    h.consecutive_failures = 0;
                    let rtt = now.saturating_duration_since(lease.started);
                    h.ewma.observe(rtt, now - self.origin);
                    false
                }
                Outcome::Failure => {
                    h.consecutive_failures += 1;
                    // A failure costs like a slow answer, so Peak-EWMA moves away too.
                    h.ewma
                        .observe(self.policy.failure_penalty, now - self.origin);
                    h.consecutive_failures >= self.policy.eject_after
                        && h.ejected_until.is_none_or(|u| now >= u)
                }
                Outcome::Neither => false,
            }
        };
        if eject && self.may_eject(backend, now) {
            let mut h = backend.health();
            h.ejections += 1;
            let factor = h.ejections.min(self.policy.max_ejection_factor);
            h.ejected_until = Some(now + self.policy.base_ejection * factor);
            h.consecutive_failures = 0;
            // It comes back through slow start when the ejection ends.
            h.warming_since = h.ejected_until;
            tracing::warn!(addr = %backend.addr, ejections = h.ejections, "backend ejected");
        }
    }
    // ANCHOR_END: outlier

    /// True when ejecting `backend` still leaves `min_up_percent` of the pool up.
    fn may_eject(&self, backend: &Arc<Backend>, now: Instant) -> bool {
        let set = self.backends();
        let up_after = set
            .iter()
            .filter(|b| b.id != backend.id)
            .filter(|b| {
                let h = b.health();
                effective_weight(&h, b.weight.load(Ordering::Relaxed), &self.policy, now) > 0.0
            })
            .count();
        up_after * 100 >= set.len() * self.policy.min_up_percent as usize
    }

    // ANCHOR: probe
    /// Records an active health check's result: `unhealthy_after` failures
    /// in a row take the backend out, `healthy_after` successes in a row
    /// bring it back, through slow start.
    pub fn probed(&self, backend: &Backend, ok: bool) {
        let mut h = backend.health();
        if ok {
            h.probe_failures = 0;
            h.probe_successes += 1;
            if !h.probe_up && h.probe_successes >= self.policy.healthy_after {
                h.probe_up = true;
                h.warming_since = Some(Instant::now());
                tracing::info!(addr = %backend.addr, "backend passed its health checks");
            }
        } else {
            h.probe_successes = 0;
            h.probe_failures += 1;
            if h.probe_up && h.probe_failures >= self.policy.unhealthy_after {
                h.probe_up = false;
                tracing::warn!(addr = %backend.addr, "backend failed its health checks");
            }
        }
    }
    // ANCHOR_END: probe

    /// The effective weight of `backend` now (0 while it is out).
    pub fn effective_weight(&self, backend: &Backend) -> f64 {
        let h = backend.health();
        effective_weight(
            &h,
            backend.weight.load(Ordering::Relaxed),
            &self.policy,
            Instant::now(),
        )
    }
}
