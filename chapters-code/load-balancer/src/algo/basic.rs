//! Round robin, smooth weighted round robin and random: no load information.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Balancer, Candidate, up_indices};

/// Each up backend in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Balancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round robin"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let n = backends.len();
        // Scan from the cursor for the next backend that is up.
        let found = (0..n)
            .map(|step| (self.next + step) % n)
            .find(|&i| backends[i].up)?;
        self.next = (found + 1) % n;
        Some(found)
    }
}

// ANCHOR: smooth_wrr
/// nginx's smooth weighted round robin: over any window of `sum(weights)`
/// picks each backend gets its weight's share, spread out rather than in
/// bursts (weights 5, 1, 1 give a a b a c a a, not a a a a a b c).
#[derive(Debug, Default)]
pub struct SmoothWeighted {
    /// The running score of each backend, and the ids they belong to.
    current: Vec<f64>,
    ids: Vec<u64>,
}

impl Balancer for SmoothWeighted {
    fn name(&self) -> &'static str {
        "weighted round robin"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        // A new backend set starts every score from zero.
        if self.ids.len() != backends.len()
            || self.ids.iter().zip(backends).any(|(a, b)| *a != b.id)
        {
            self.ids = backends.iter().map(|c| c.id).collect();
            self.current = vec![0.0; backends.len()];
        }
        let mut total = 0.0;
        let mut best: Option<usize> = None;
        for i in up_indices(backends) {
            let w = backends[i].weight;
            self.current[i] += w;
            total += w;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        self.current[chosen] -= total;
        Some(chosen)
    }
}
// ANCHOR_END: smooth_wrr

/// A uniformly random up backend.
#[derive(Debug)]
pub struct Random {
    rng: StdRng,
}

impl Random {
    /// A random balancer whose choices are fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Balancer for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn pick(&mut self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let up = up_indices(backends).count();
        if up == 0 {
            return None;
        }
        let nth = self.rng.random_range(0..up);
        up_indices(backends).nth(nth)
    }
}
