//! The token bucket's bound, its equivalence with GCRA, and the bounded key map.

use std::time::Duration;

use block_rate_limiter::{
    GlobalBucket, GovernorGcra, KeyedBuckets, Limiter, ManualClock, Quota, Refused,
};
use governor::clock::FakeRelativeClock;
use proptest::prelude::*;

/// A quota and a trace of gaps between requests, in nanoseconds.
fn quota_and_gaps() -> impl Strategy<Value = (Quota, Vec<u64>)> {
    (1_000_000u64..500_000_000, 1u32..20).prop_flat_map(|(period, burst)| {
        let quota = Quota::with_period(Duration::from_nanos(period), burst).expect("valid quota");
        // Gaps from none (a burst) to three periods (a rest).
        (Just(quota), prop::collection::vec(0..3 * period, 1..300))
    })
}

// ANCHOR: bound
proptest! {
    /// For every window [t_i, t_j] of the trace, the requests admitted in it
    /// are at most burst + ⌊(t_j − t_i) / period⌋.
    #[test]
    fn token_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
        (quota, gaps) in quota_and_gaps()
    ) {
        let clock = ManualClock::new();
        let limiter = GlobalBucket::with_clock(quota, clock.clone());
        let mut admitted = Vec::new();
        for gap in gaps {
            clock.advance(Duration::from_nanos(gap));
            if limiter.check(&()).is_ok() {
                admitted.push(clock_now(&clock));
            }
        }
        for i in 0..admitted.len() {
            for j in i..admitted.len() {
                let in_window = (j - i + 1) as u64;
                let bound = u64::from(quota.burst()) + (admitted[j] - admitted[i]) / quota.period_ns();
                prop_assert!(
                    in_window <= bound,
                    "{in_window} admitted in [{}, {}] ns, bound {bound}", admitted[i], admitted[j]
                );
            }
        }
    }
}
// ANCHOR_END: bound

fn clock_now(clock: &ManualClock) -> u64 {
    use block_rate_limiter::Clock;
    clock.now()
}

// ANCHOR: equivalence
proptest! {
    /// Configured with the same quota, our token bucket (credit and time,
    /// 16 bytes) and governor's GCRA (one TAT, 8 bytes) admit and refuse
    /// the same requests, and name the same wait.
    #[test]
    fn gcra_and_token_bucket_make_the_same_decisions(
        (quota, gaps) in quota_and_gaps()
    ) {
        let ours_clock = ManualClock::new();
        let ours = GlobalBucket::with_clock(quota, ours_clock.clone());
        let gcra_clock = FakeRelativeClock::default();
        let gcra = GovernorGcra::with_clock(quota, gcra_clock.clone());
        for (i, gap) in gaps.into_iter().enumerate() {
            ours_clock.advance(Duration::from_nanos(gap));
            gcra_clock.advance(Duration::from_nanos(gap));
            prop_assert_eq!(ours.check(&()), gcra.check(&()), "request {}", i);
        }
    }
}
// ANCHOR_END: equivalence

#[test]
fn a_burst_then_a_wait_then_one_more() {
    let quota = Quota::per_second(1, 3).expect("quota");
    let clock = ManualClock::new();
    let limiter = GlobalBucket::with_clock(quota, clock.clone());
    for _ in 0..3 {
        assert_eq!(limiter.check(&()), Ok(()));
    }
    assert_eq!(
        limiter.check(&()),
        Err(Refused {
            retry_after: Duration::from_secs(1)
        })
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.check(&()), Ok(()));
}

// ANCHOR: bounded
/// A client that invents a new key per request: the map never holds more
/// than its capacity, and the invented keys together are admitted at most
/// as one client per shard (the overflow buckets) beyond the keys stored.
#[test]
fn the_key_map_stays_bounded_under_many_invented_keys() {
    let quota = Quota::per_second(1, 5).expect("quota");
    let clock = ManualClock::new();
    let limiter = KeyedBuckets::with_clock(quota, 1_000, clock.clone());
    let attempts = 50_000u64;
    let mut admitted = 0u64;
    for key in 0..attempts {
        // 50,000 keys in half a second: no bucket is full again in that
        // time (a stored bucket refills one token per second), so no slot
        // of the map is reused.
        clock.advance(Duration::from_micros(10));
        if limiter.check(&key).is_ok() {
            admitted += 1;
        }
        if key % 1_000 == 0 {
            assert!(
                limiter.len() <= limiter.capacity(),
                "{} keys held",
                limiter.len()
            );
        }
    }
    assert!(limiter.capacity() <= 1_000);
    assert_eq!(
        limiter.len(),
        limiter.capacity(),
        "the map filled up, and no further"
    );
    // Each stored key had its first request admitted; beyond them, 16
    // overflow buckets of burst 5, refilled by less than one token in 0.5 s.
    let overflow_bound = 16 * 5;
    assert!(
        admitted <= limiter.capacity() as u64 + overflow_bound,
        "{admitted} admitted"
    );
}
// ANCHOR_END: bounded

#[test]
fn a_known_client_keeps_its_limit_through_a_flood_of_invented_keys() {
    let quota = Quota::per_second(1, 2).expect("quota");
    let clock = ManualClock::new();
    let limiter = KeyedBuckets::with_clock(quota, 64, clock.clone());
    let me = u64::MAX;
    assert!(limiter.check(&me).is_ok());
    assert!(limiter.check(&me).is_ok());
    assert!(limiter.check(&me).is_err(), "my burst is spent");
    for key in 0..10_000u64 {
        let _ = limiter.check(&key);
    }
    assert!(
        limiter.check(&me).is_err(),
        "the flood did not evict my empty bucket (a fresh one would admit)"
    );
}

#[test]
fn full_buckets_are_forgotten_to_make_room_without_changing_a_decision() {
    let quota = Quota::per_second(10, 1).expect("quota");
    let clock = ManualClock::new();
    let limiter = KeyedBuckets::with_clock(quota, 16, clock.clone());
    for key in 0..1_000u64 {
        assert!(limiter.check(&key).is_ok(), "key {key}");
        // A period later the bucket is full again, so it may be forgotten:
        // every new key finds room, and none is refused.
        clock.advance(Duration::from_millis(100));
        assert!(limiter.len() <= limiter.capacity());
    }
}

#[tokio::test]
async fn per_client_limits_protect_steady_clients_from_a_burst() {
    use block_rate_limiter::fairness::{self, Pace};
    let trace = fairness::trace();
    let (rate, burst) = fairness::PER_CLIENT;
    let clock = ManualClock::new();
    let keyed = KeyedBuckets::with_clock(
        Quota::per_second(rate, burst).expect("quota"),
        100,
        clock.clone(),
    );
    let per_client = fairness::replay(&trace, &keyed, |c| c, Pace::Manual(&clock)).await;
    let (rate, burst) = fairness::GLOBAL;
    let clock = ManualClock::new();
    let global = GlobalBucket::with_clock(
        Quota::per_second(rate, burst).expect("quota"),
        clock.clone(),
    );
    let shared = fairness::replay(&trace, &global, |_| (), Pace::Manual(&clock)).await;
    assert!(
        per_client.steady_admitted() > shared.steady_admitted(),
        "per client {:?}, global {:?}",
        per_client,
        shared
    );
    // The global bucket's bound holds over the whole trace.
    let bound = u64::from(burst) + u64::from(rate) * fairness::TRACE.as_secs();
    assert!(shared.total_admitted() <= bound);
}
