//! Least connections, power of two choices and Peak-EWMA: the algorithms that read load.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Balancer, Candidate, up_indices};

/// In-flight requests per unit of weight, plus one so that weight still
/// orders idle backends: the load the least-loaded algorithms compare.
fn weighted_load(c: &Candidate) -> f64 {
    (f64::from(c.in_flight) + 1.0) / c.weight
}

/// The up backend with the least weighted load; ties go round the pool so
/// that an idle pool is not served by its first backend alone.
#[derive(Debug, Default)]
pub struct LeastConnections {
    start: usize,
}

impl Balancer for LeastConnections {
    fn name(&self) -> &'static str {
        "least connections"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let n = backends.len();
        let mut best: Option<usize> = None;
        for step in 0..n {
            let i = (self.start + step) % n;
            if backends[i].up
                && best.is_none_or(|b| weighted_load(&backends[i]) < weighted_load(&backends[b]))
            {
                best = Some(i);
            }
        }
        self.start = (self.start + 1) % n.max(1);
        best
    }
}

/// Two distinct up backends drawn at random (one when only one is up).
fn two_choices(rng: &mut StdRng, backends: &[Candidate]) -> Option<(usize, usize)> {
    let up = up_indices(backends).count();
    match up {
        0 => None,
        1 => up_indices(backends).next().map(|i| (i, i)),
        _ => {
            let a = rng.random_range(0..up);
            // A second draw from the other `up - 1`, so the two always differ.
            let mut b = rng.random_range(0..up - 1);
            if b >= a {
                b += 1;
            }
            let mut it = up_indices(backends);
            let (lo, hi) = (a.min(b), a.max(b));
            let first = it.nth(lo)?;
            let second = it.nth(hi - lo - 1)?;
            Some((first, second))
        }
    }
}

// ANCHOR: p2c
/// The power of two choices: draw two backends at random, send to the less
/// loaded one. The random draw is what keeps many balancers with stale
/// load counts from all choosing the same backend.
#[derive(Debug)]
pub struct PowerOfTwo {
    rng: StdRng,
}

impl Balancer for PowerOfTwo {
    fn name(&self) -> &'static str {
        "P2C"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let (a, b) = two_choices(&mut self.rng, backends)?;
        if weighted_load(&backends[b]) < weighted_load(&backends[a]) {
            Some(b)
        } else {
            Some(a)
        }
    }
}
// ANCHOR_END: p2c

impl PowerOfTwo {
    /// A P2C balancer whose draws are fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

/// P2C on Peak-EWMA's cost (`Candidate::cost`) instead of the request count,
/// as tower's `balance::p2c` over `load::PeakEwma` does.
#[derive(Debug)]
pub struct PeakEwma {
    rng: StdRng,
}

impl PeakEwma {
    /// A Peak-EWMA balancer whose draws are fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Balancer for PeakEwma {
    fn name(&self) -> &'static str {
        "Peak-EWMA"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let (a, b) = two_choices(&mut self.rng, backends)?;
        let cost = |c: &Candidate| c.cost / c.weight;
        if cost(&backends[b]) < cost(&backends[a]) {
            Some(b)
        } else {
            Some(a)
        }
    }
}

// ANCHOR: peak_ewma
/// One backend's latency estimate, Peak-EWMA style (Finagle's, and tower's
/// `load::PeakEwma`): a sample above the estimate replaces it at once (the
/// peak), a sample below pulls it down with weight `1 - e^(-dt/tau)`, and
/// the estimate decays the same way while no sample comes (tower stores
/// that decay each time it reads the estimate; this one computes it on
/// read and stores only samples). Times are
/// durations since an origin the caller chooses, so tests need no clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaEstimate {
    estimate_ns: f64,
    stamp: Duration,
    tau: Duration,
}

impl EwmaEstimate {
    /// A fresh estimate of `initial` (what an unmeasured backend is assumed to take).
    pub fn new(initial: Duration, tau: Duration, now: Duration) -> Self {
        Self {
            estimate_ns: initial.as_nanos() as f64,
            stamp: now,
            tau,
        }
    }

    /// Records one response time `rtt` observed at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let w = self.weight(now);
        // One decay factor, as tower's `RttEstimate::update` applies it.
        self.estimate_ns = if rtt > self.estimate_ns {
            rtt
        } else {
            self.estimate_ns * w + rtt * (1.0 - w)
        };
        self.stamp = self.stamp.max(now);
    }

    /// The estimate at `now`, nanoseconds.
    pub fn estimate(&self, now: Duration) -> f64 {
        // Decay towards zero while idle, so a backend that was slow once is tried again.
        self.estimate_ns * self.weight(now)
    }

    /// The cost P2C compares: the estimate times the requests it would queue behind, plus this one.
    pub fn cost(&self, in_flight: u32, now: Duration) -> f64 {
        self.estimate(now) * (f64::from(in_flight) + 1.0)
    }

    fn weight(&self, now: Duration) -> f64 {
        let dt = now.saturating_sub(self.stamp).as_secs_f64();
        (-dt / self.tau.as_secs_f64().max(f64::MIN_POSITIVE)).exp()
    }
}
// ANCHOR_END: peak_ewma
