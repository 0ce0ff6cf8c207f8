//! Decisions per second of the in-process limiters, beside a no-op ceiling.
//!
//! Group `rate-limiter`; `cargo xtask bench-report blocks/rate-limiter`
//! keeps the estimates. Every limiter reads the real clock, as in service:
//!
//! - `noop`: a limiter that admits everything (the ceiling);
//! - `token_bucket_global`, `gcra_governor_global`: one state for everyone;
//! - `token_bucket_keyed`, `gcra_governor_keyed`: a state per key, over
//!   `KEYS` keys in turn (ours in the bounded map, governor's in its
//!   `DashMap`).
//!
//! The quota admits about a million a second, so the loop sees both
//! admissions and refusals, as a limit under attack does.

use std::hint::black_box;
use std::time::Duration;

use block_rate_limiter::{
    GlobalBucket, GovernorGcra, GovernorKeyed, KeyedBuckets, Limiter, NoLimit, Quota,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Keys the keyed limiters cycle through.
const KEYS: u64 = 1_024;

fn limiters(c: &mut Criterion) {
    let quota = Quota::per_second(1_000_000, 1_000).expect("quota");
    let mut group = c.benchmark_group("rate-limiter");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("noop", |b| {
        b.iter(|| black_box(NoLimit.check(black_box(&0u64))))
    });
    let bucket = GlobalBucket::new(quota);
    group.bench_function("token_bucket_global", |b| {
        b.iter(|| black_box(bucket.check(black_box(&0u64))))
    });
    let gcra = GovernorGcra::new(quota);
    group.bench_function("gcra_governor_global", |b| {
        b.iter(|| black_box(gcra.check(black_box(&0u64))))
    });
    let keyed = KeyedBuckets::new(quota, 100_000);
    let mut key = 0u64;
    group.bench_function("token_bucket_keyed", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(keyed.check(black_box(&key)))
        })
    });
    let governor_keyed = GovernorKeyed::new(quota);
    group.bench_function("gcra_governor_keyed", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(governor_keyed.check(black_box(&key)))
        })
    });
    group.finish();
}

criterion_group!(benches, limiters);
criterion_main!(benches);
