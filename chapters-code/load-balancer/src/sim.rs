//! The seeded simulations the chapter's tables come from. Each is a pure
//! function of its parameters and seed, fast enough to run inside
//! `cargo test` (the book checks that generated files are current).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::algo::affinity::{Maglev, Ring, jump, rendezvous};
use crate::algo::{Algorithm, Candidate};
use crate::hash::{below, mix2, mix64};

/// A hashing scheme with its one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A ring with this many virtual nodes per backend.
    Ring(usize),
    /// A Maglev table of this many slots.
    Maglev(usize),
    /// Rendezvous hashing.
    Rendezvous,
    /// Jump hash (backends in list order).
    Jump,
}

impl Scheme {
    /// The label the tables print.
    pub fn label(self) -> String {
        match self {
            Scheme::Ring(v) => format!("ring, {v} vnodes"),
            Scheme::Maglev(m) => format!("Maglev, M = {m}"),
            Scheme::Rendezvous => "rendezvous".to_string(),
            Scheme::Jump => "jump hash".to_string(),
        }
    }

    /// The id each key maps to over `ids`.
    fn assign(self, ids: &[u64], keys: u64) -> Vec<u64> {
        let index: Box<dyn Fn(u64) -> Option<usize>> = match self {
            Scheme::Ring(v) => {
                let ring = Ring::new(ids, v);
                Box::new(move |k| ring.lookup(k))
            }
            Scheme::Maglev(m) => {
                let table = Maglev::new(ids, m);
                Box::new(move |k| table.lookup(k))
            }
            Scheme::Rendezvous => Box::new(|k| rendezvous(ids, k, |_| true)),
            Scheme::Jump => Box::new(|k| jump(k, ids.len())),
        };
        (0..keys)
            .map(|k| index(mix2(k, 0x5eed)).map_or(u64::MAX, |i| ids[i]))
            .collect()
    }

    /// Each backend's exact share of the key space, where the scheme has a
    /// table to read it from (ring arcs, Maglev slots); `None` otherwise.
    fn exact_shares(self, ids: &[u64]) -> Option<Vec<f64>> {
        match self {
            Scheme::Ring(v) => Some(Ring::new(ids, v).shares(ids.len())),
            Scheme::Maglev(m) => {
                let table = Maglev::new(ids, m);
                Some(
                    table
                        .slots_per_backend(ids.len())
                        .into_iter()
                        .map(|c| c as f64 / m as f64)
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

/// The ids of a pool of `n` backends (hashes of their names), as every simulation uses them.
pub fn pool_ids(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| mix2(i, 0xbac0)).collect()
}

/// One row of the disruption table.
#[derive(Debug, Clone, PartialEq)]
pub struct Disruption {
    /// The scheme and its parameter.
    pub scheme: Scheme,
    /// Share of keys that changed backend when one backend was added.
    pub moved_on_add: f64,
    /// Share of keys that changed backend when one backend was removed.
    pub moved_on_remove: f64,
    /// The most loaded backend's share over the mean share (1.0 is perfect).
    pub max_over_mean: f64,
    /// True when `max_over_mean` is exact (read from the table), false when sampled from the keys.
    pub exact: bool,
}

// ANCHOR: disruption
/// Maps `keys` keys over a pool of `n`, then over the pool with one backend
/// added and with one removed, and counts the keys whose backend changed.
/// Jump hash can only remove the last backend; the others lose one from the middle.
pub fn disruption(scheme: Scheme, n: usize, keys: u64) -> Disruption {
    let ids = pool_ids(n + 1);
    let base = &ids[..n];
    let before = scheme.assign(base, keys);
    let after_add = scheme.assign(&ids, keys);
    let removed: Vec<u64> = match scheme {
        Scheme::Jump => base[..n - 1].to_vec(),
        _ => base
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != n / 2)
            .map(|(_, &id)| id)
            .collect(),
    };
    let after_remove = scheme.assign(&removed, keys);
    let moved =
        |a: &[u64], b: &[u64]| a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / keys as f64;
    let (max_over_mean, exact) = match scheme.exact_shares(base) {
        Some(shares) => (max_over_mean(&shares), true),
        None => {
            let mut counts = vec![0.0; n];
            for id in &before {
                if let Some(i) = base.iter().position(|b| b == id) {
                    counts[i] += 1.0;
                }
            }
            (max_over_mean(&counts), false)
        }
    };
    Disruption {
        scheme,
        moved_on_add: moved(&before, &after_add),
        moved_on_remove: moved(&before, &after_remove),
        max_over_mean,
        exact,
    }
}
// ANCHOR_END: disruption

/// The largest value over the mean (1.0 when all are equal).
pub fn max_over_mean(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let max = values.iter().copied().fold(0.0, f64::max);
    if mean > 0.0 { max / mean } else { 0.0 }
}

/// One row of the balls-into-bins table.
#[derive(Debug, Clone, PartialEq)]
pub struct BallsIntoBins {
    /// Bins, and balls: as many balls as bins.
    pub n: usize,
    /// The fullest bin with one random choice per ball, mean over the trials.
    pub random_max: f64,
    /// The fullest bin with the less loaded of two random choices, mean over the trials.
    pub two_choice_max: f64,
    /// Trials averaged.
    pub trials: u32,
}

// ANCHOR: balls
/// Throws `n` balls into `n` bins, once with one random bin per ball and
/// once with the less loaded of two (the chapter's own `PowerOfTwo` rule,
/// applied to counts), `trials` times each, and keeps the fullest bin.
pub fn balls_into_bins(n: usize, trials: u32, seed: u64) -> BallsIntoBins {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut random_total, mut two_total) = (0u64, 0u64);
    for _ in 0..trials {
        let mut one = vec![0u32; n];
        let mut two = vec![0u32; n];
        for _ in 0..n {
            one[rng.random_range(0..n)] += 1;
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            let pick = if two[b] < two[a] { b } else { a };
            two[pick] += 1;
        }
        random_total += u64::from(one.iter().copied().max().unwrap_or(0));
        two_total += u64::from(two.iter().copied().max().unwrap_or(0));
    }
    BallsIntoBins {
        n,
        random_max: random_total as f64 / f64::from(trials),
        two_choice_max: two_total as f64 / f64::from(trials),
        trials,
    }
}
// ANCHOR_END: balls

/// Mitzenmacher's bound for one random choice: ln n / ln ln n.
pub fn one_choice_bound(n: usize) -> f64 {
    let n = n as f64;
    n.ln() / n.ln().ln()
}

/// Mitzenmacher's bound for the better of two: ln ln n / ln 2 (plus a constant).
pub fn two_choice_bound(n: usize) -> f64 {
    (n as f64).ln().ln() / 2f64.ln()
}

/// Parameters of the stale-information simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaleParams {
    /// Servers, each serving one request at a time in arrival order.
    pub servers: usize,
    /// Arrival rate per server, as a share of its service rate (below 1).
    pub utilisation: f64,
    /// Requests simulated, warm-up included.
    pub requests: u64,
    /// Requests at the start left out of the averages.
    pub warm_up: u64,
}

// ANCHOR: stale
/// Mitzenmacher's bulletin-board model, the one Brooker's write-up
/// simulates: Poisson arrivals, exponential service (mean 1), and every
/// balancer reads the servers' queue lengths from a board refreshed every
/// `period` service times (0: always current). Each arrival is placed by
/// the chapter's own `Balancer` over the board's counts. Returns the mean
/// time a request spends in the system, in mean service times.
pub fn stale_information(algorithm: Algorithm, period: f64, p: StaleParams, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut balancer = algorithm.build(seed ^ 0xb0a2d);
    let n = p.servers;
    let arrival_rate = p.utilisation * n as f64;
    let mut queue = vec![0u32; n];
    // The busy servers, for picking a departure in O(1).
    let mut busy: Vec<usize> = Vec::new();
    let mut slot: Vec<Option<usize>> = vec![None; n];
    let mut board: Vec<Candidate> = pool_ids(n).into_iter().map(Candidate::idle).collect();
    let (mut now, mut next_refresh) = (0.0f64, 0.0f64);
    let (mut arrivals, mut area, mut measured_from) = (0u64, 0.0f64, None::<f64>);
    while arrivals < p.requests {
        let rate = arrival_rate + busy.len() as f64;
        let dt = -(1.0 - rng.random::<f64>()).ln() / rate;
        if measured_from.is_some() {
            area += queue.iter().map(|&q| f64::from(q)).sum::<f64>() * dt;
        }
        now += dt;
        if period == 0.0 || now >= next_refresh {
            for (c, &q) in board.iter_mut().zip(&queue) {
                c.in_flight = q;
            }
            next_refresh = now + period;
        }
        if rng.random::<f64>() * rate < arrival_rate {
            arrivals += 1;
            if arrivals == p.warm_up {
                measured_from = Some(now);
            }
            let i = balancer.pick(&board, arrivals).unwrap_or(0);
            queue[i] += 1;
            if queue[i] == 1 {
                slot[i] = Some(busy.len());
                busy.push(i);
            }
        } else if !busy.is_empty() {
            let i = busy[below(mix64(rng.random()), busy.len())];
            queue[i] -= 1;
            if queue[i] == 0
                && let Some(s) = slot[i].take()
            {
                busy.swap_remove(s);
                if let Some(&moved) = busy.get(s) {
                    slot[moved] = Some(s);
                }
            }
        }
    }
    let elapsed = now - measured_from.unwrap_or(0.0);
    // Little's law: time in system = mean number in system / arrival rate.
    (area / elapsed.max(f64::MIN_POSITIVE)) / arrival_rate
}
// ANCHOR_END: stale
