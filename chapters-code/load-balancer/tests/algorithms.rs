//! The algorithms' properties, on generated pools (no network, no clock).

use std::collections::HashMap;
use std::time::Duration;

use load_balancer::algo::affinity::{
    MAGLEV_DEFAULT_SIZE, Maglev, Ring, RingBalancer, jump, rendezvous,
};
use load_balancer::algo::basic::{RoundRobin, SmoothWeighted};
use load_balancer::algo::load::{EwmaEstimate, LeastConnections, PowerOfTwo};
use load_balancer::algo::{Algorithm, Balancer, Candidate};
use load_balancer::sim::pool_ids;
use proptest::prelude::*;

fn pool(states: &[(bool, u32, u32)]) -> Vec<Candidate> {
    pool_ids(states.len())
        .into_iter()
        .zip(states)
        .map(|(id, &(up, in_flight, weight))| Candidate {
            id,
            weight: f64::from(weight),
            in_flight,
            cost: f64::from(in_flight + 1) * 1000.0,
            up,
        })
        .collect()
}

fn states() -> impl Strategy<Value = Vec<(bool, u32, u32)>> {
    prop::collection::vec((any::<bool>(), 0u32..20, 1u32..10), 0..12)
}

proptest! {
    /// No algorithm ever picks a backend that is down, and each finds one when any is up.
    #[test]
    fn no_algorithm_picks_a_down_backend(states in states(), keys in prop::collection::vec(any::<u64>(), 1..20)) {
        let backends = pool(&states);
        let any_up = backends.iter().any(|c| c.up);
        for algorithm in Algorithm::ALL {
            let mut b = algorithm.build(7);
            for &key in &keys {
                match b.pick(&backends, key) {
                    Some(i) => prop_assert!(backends[i].up, "{algorithm} picked down backend {i}"),
                    None => prop_assert!(!any_up, "{algorithm} found nothing in a pool with an up backend"),
                }
            }
        }
    }

    /// Round robin: n picks over n up backends visit each exactly once.
    #[test]
    fn round_robin_visits_each_up_backend_once_per_round(states in states()) {
        let backends = pool(&states);
        let up: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].up).collect();
        let mut rr = RoundRobin::default();
        let mut seen: Vec<usize> = (0..up.len()).filter_map(|_| rr.pick(&backends, 0)).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, up);
    }

    /// Smooth weighted round robin: over sum(weights) picks each backend gets exactly its weight.
    #[test]
    fn smooth_wrr_gives_each_backend_its_weight_per_cycle(weights in prop::collection::vec(1u32..8, 1..8)) {
        let states: Vec<_> = weights.iter().map(|&w| (true, 0, w)).collect();
        let backends = pool(&states);
        let mut wrr = SmoothWeighted::default();
        let total: u32 = weights.iter().sum();
        for _cycle in 0..3 {
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                let i = wrr.pick(&backends, 0).expect("all up");
                counts[i] += 1;
            }
            prop_assert_eq!(&counts, &weights);
        }
    }

    /// Least connections picks a backend of minimal weighted load.
    #[test]
    fn least_connections_picks_a_minimum(states in states()) {
        let backends = pool(&states);
        let load = |c: &Candidate| (f64::from(c.in_flight) + 1.0) / c.weight;
        let min = backends.iter().filter(|c| c.up).map(load).fold(f64::INFINITY, f64::min);
        if let Some(i) = LeastConnections::default().pick(&backends, 0) {
            prop_assert_eq!(load(&backends[i]), min);
        }
    }

    /// P2C never sends to the single most loaded backend when two or more are up
    /// (Envoy documents the same for its least-request balancer).
    #[test]
    fn p2c_never_picks_the_unique_most_loaded(states in states(), seed in any::<u64>()) {
        let backends = pool(&states);
        let load = |c: &Candidate| (f64::from(c.in_flight) + 1.0) / c.weight;
        let up: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].up).collect();
        prop_assume!(up.len() >= 2);
        let max = up.iter().map(|&i| load(&backends[i])).fold(0.0, f64::max);
        prop_assume!(up.iter().filter(|&&i| load(&backends[i]) == max).count() == 1);
        let mut p2c = PowerOfTwo::seeded(seed);
        for _ in 0..50 {
            let i = p2c.pick(&backends, 0).expect("two up");
            prop_assert!(load(&backends[i]) < max);
        }
    }

    /// Ring and rendezvous: taking one backend down moves only the keys it held.
    #[test]
    fn a_down_backend_moves_only_its_own_keys(n in 2usize..10, down in 0usize..10, keys in prop::collection::vec(any::<u64>(), 1..200)) {
        let down = down % n;
        let all = pool(&vec![(true, 0, 1); n]);
        let mut less = all.clone();
        less[down].up = false;
        for algorithm in [Algorithm::RingHash, Algorithm::Rendezvous] {
            let mut b = algorithm.build(0);
            for &key in &keys {
                let before = b.pick(&all, key).expect("all up");
                let after = b.pick(&less, key).expect("one up");
                if before != down {
                    prop_assert_eq!(before, after, "{} moved a key it did not have to", algorithm);
                }
            }
        }
    }

    /// Jump hash: growing the pool by one moves keys only into the new bucket.
    #[test]
    fn jump_moves_keys_only_to_the_new_bucket(n in 1usize..200, key in any::<u64>()) {
        let before = jump(key, n).expect("n > 0");
        let after = jump(key, n + 1).expect("n > 0");
        prop_assert!(after == before || after == n);
        prop_assert!(before < n);
    }

    /// Maglev: every slot is filled, and the backends' slot counts differ by at most one.
    #[test]
    fn maglev_shares_differ_by_at_most_one_slot(n in 1usize..20) {
        let table = Maglev::new(&pool_ids(n), 1_009);
        let counts = table.slots_per_backend(n);
        prop_assert_eq!(counts.iter().sum::<usize>(), 1_009);
        let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
        prop_assert!(max.zip(min).is_some_and(|(hi, lo)| hi - lo <= 1), "{counts:?}");
    }

    /// Peak-EWMA: a sample above the estimate replaces it at once; below, it only pulls it down part way.
    #[test]
    fn peak_ewma_takes_peaks_at_once_and_decays_slowly(initial in 1u64..1_000, sample in 1u64..1_000, gap_ms in 0u64..100) {
        let tau = Duration::from_millis(100);
        let t0 = Duration::from_secs(1);
        let mut e = EwmaEstimate::new(Duration::from_millis(initial), tau, t0);
        let now = t0 + Duration::from_millis(gap_ms);
        let stored = e.estimate(t0);
        e.observe(Duration::from_millis(sample), now);
        let s = Duration::from_millis(sample).as_nanos() as f64;
        if s > stored {
            prop_assert_eq!(e.estimate(now), s);
        } else {
            prop_assert!(e.estimate(now) <= stored && e.estimate(now) >= s);
        }
    }
}

/// The same key goes to the same backend, from a fresh balancer too.
#[test]
fn affinity_schemes_are_deterministic() {
    let backends = pool(&[(true, 0, 1); 7]);
    for algorithm in Algorithm::ALL.into_iter().filter(|a| a.has_affinity()) {
        let (mut a, mut b) = (algorithm.build(1), algorithm.build(2));
        for key in 0..500u64 {
            assert_eq!(
                a.pick(&backends, key),
                b.pick(&backends, key),
                "{algorithm}"
            );
        }
    }
}

/// Nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
#[test]
fn smooth_wrr_interleaves_like_nginx() {
    let backends = pool(&[(true, 0, 5), (true, 0, 1), (true, 0, 1)]);
    let mut wrr = SmoothWeighted::default();
    let seq: Vec<usize> = (0..7).filter_map(|_| wrr.pick(&backends, 0)).collect();
    assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
}

/// A ring balancer reaches the same backend as the pure ring lookup.
#[test]
fn ring_balancer_agrees_with_the_ring() {
    let ids = pool_ids(5);
    let ring = Ring::new(&ids, 40);
    let backends: Vec<Candidate> = ids.iter().copied().map(Candidate::idle).collect();
    let mut b = RingBalancer::new(40);
    for key in 0..1_000u64 {
        assert_eq!(ring.lookup(key), b.pick(&backends, key));
    }
}

/// The default Maglev table splits 65,537 slots over ten backends within one slot.
#[test]
fn default_maglev_table_is_even() {
    let table = Maglev::new(&pool_ids(10), MAGLEV_DEFAULT_SIZE);
    let counts = table.slots_per_backend(10);
    let min = counts.iter().min().copied().unwrap_or(0);
    let max = counts.iter().max().copied().unwrap_or(0);
    assert!(max - min <= 1, "{counts:?}");
}

/// Rendezvous spreads keys over every backend.
#[test]
fn rendezvous_uses_every_backend() {
    let ids = pool_ids(8);
    let mut counts: HashMap<usize, u32> = HashMap::new();
    for key in 0..8_000u64 {
        *counts
            .entry(rendezvous(&ids, key, |_| true).expect("non-empty"))
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 8);
}

/// A lower sample pulls the estimate in with one decay factor, as tower does:
/// new = old * w + sample * (1 - w), with w = e^(-dt/tau).
#[test]
fn peak_ewma_pulls_a_lower_sample_in_with_one_decay() {
    let tau = Duration::from_millis(100);
    let t0 = Duration::from_secs(1);
    let mut e = EwmaEstimate::new(Duration::from_millis(100), tau, t0);
    let now = t0 + tau;
    e.observe(Duration::from_millis(10), now);
    let w = (-1.0f64).exp();
    let expected = 100e6 * w + 10e6 * (1.0 - w);
    assert!(
        (e.estimate(now) - expected).abs() < 1.0,
        "{} != {expected}",
        e.estimate(now)
    );
}
