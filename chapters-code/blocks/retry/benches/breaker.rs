//! The breaker's overhead per call: a closed breaker around a no-op call
//! against the bare no-op call, in one criterion group (`retry_breaker`).
//!
//! - `bare_call`: the no-op call alone (the ceiling);
//! - `machine_call`: [`CircuitBreaker`] acquire, the call, record (no lock);
//! - `shared_call`: [`Breaker::guard`], the call, `record` (the mutex and
//!   the monotonic clock read a service pays).

use std::hint::black_box;
use std::time::Duration;

use block_retry::breaker::{Breaker, BreakerConfig, CircuitBreaker, Outcome};
use criterion::{Criterion, criterion_group, criterion_main};

/// The criterion group the report reads.
const GROUP: &str = "retry_breaker";

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 5,
        cool_down: Duration::from_secs(30),
    }
}

#[inline(never)]
fn noop(x: u64) -> Result<u64, ()> {
    Ok(black_box(x))
}

fn breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("bare_call", |b| b.iter(|| noop(black_box(1))));
    let Ok(mut machine) = CircuitBreaker::<Duration>::new(config()) else {
        return;
    };
    let now = Duration::from_secs(1);
    group.bench_function("machine_call", |b| {
        b.iter(|| {
            let Ok(permit) = machine.acquire(black_box(now)) else {
                return None;
            };
            let r = noop(black_box(1));
            machine.record(permit, Outcome::Success, now);
            Some(r)
        })
    });
    let Ok(shared) = Breaker::<std::time::Instant>::new(config()) else {
        return;
    };
    let start = std::time::Instant::now();
    group.bench_function("shared_call", |b| {
        b.iter(|| {
            let Ok(mut guard) = shared.guard(black_box(start)) else {
                return None;
            };
            guard.calling();
            let r = noop(black_box(1));
            guard.record(if r.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            });
            Some(r)
        })
    });
    group.finish();
}

criterion_group!(benches, breaker);
criterion_main!(benches);
