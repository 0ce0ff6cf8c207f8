//! URL shortener micro-benchmarks: base62 and the code-generation strategies.
//!
//! Group `url_shortener`; `cargo xtask bench-report url-shortener` reads the
//! results from `target/criterion/url_shortener/<id>/new/`. The ids are stable:
//!
//! - `base62_encode_ours`, `base62_encode_crate`, `base62_decode_ours`,
//!   `base62_decode_crate`: a 7-digit code (a random id below 62^7) to text
//!   and back, against the [`base62`](https://crates.io/crates/base62) crate.
//! - `strategy_counter_memory`, `strategy_random`, `strategy_hash`,
//!   `strategy_range_memory`, `strategy_range_scrambled_memory`: one
//!   `CodeGenerator::next_code` call, with the counter and ranges backed by
//!   the in-process allocator. This is the CPU cost of each strategy.
//! - `strategy_counter_postgres`, `strategy_range_postgres`: the same with
//!   the ticket server on the local PostgreSQL. The counter leases a block of
//!   one per code (one round trip each); the range generator leases blocks of
//!   1,000, so 999 of 1,000 codes need no coordination. The gap between the
//!   two is the cost of coordinating per request.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use url_shortener::codegen::{
    self, CODE_SPACE, CodeGenerator, CounterGenerator, HashGenerator, MemoryAllocator,
    RandomGenerator, RangeGenerator,
};
use url_shortener::domain::{TargetUrl, UrlPolicy};
use url_shortener::store::PgStore;

/// Ids drawn before timing, so the random number generator is not measured.
const IDS: usize = 1 << 16;
/// Block size of the range generator, as in the service.
const BLOCK: u64 = 1_000;

fn base62(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(62);
    let ids: Vec<u64> = (0..IDS).map(|_| rng.random_range(0..CODE_SPACE)).collect();
    let texts: Vec<String> = ids.iter().map(|&n| codegen::encode(n)).collect();
    let mut group = c.benchmark_group("url_shortener");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let mut i = 0usize;
    group.bench_function("base62_encode_ours", |b| {
        b.iter(|| {
            i = (i + 1) & (IDS - 1);
            codegen::encode(black_box(ids[i]))
        })
    });
    group.bench_function("base62_encode_crate", |b| {
        b.iter(|| {
            i = (i + 1) & (IDS - 1);
            ::base62::encode(black_box(ids[i]))
        })
    });
    group.bench_function("base62_decode_ours", |b| {
        b.iter(|| {
            i = (i + 1) & (IDS - 1);
            codegen::decode(black_box(&texts[i]))
        })
    });
    group.bench_function("base62_decode_crate", |b| {
        b.iter(|| {
            i = (i + 1) & (IDS - 1);
            ::base62::decode(black_box(&texts[i]))
        })
    });
    group.finish();
}

fn strategies(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let target = TargetUrl::parse(
        "https://example.com/some/long/path?q=1",
        &UrlPolicy::default(),
    )
    .expect("a valid URL");
    let mut generators: Vec<(&str, Arc<dyn CodeGenerator>)> = vec![
        (
            "strategy_counter_memory",
            Arc::new(CounterGenerator::new(MemoryAllocator::default())),
        ),
        ("strategy_random", Arc::new(RandomGenerator)),
        ("strategy_hash", Arc::new(HashGenerator)),
        (
            "strategy_range_memory",
            Arc::new(RangeGenerator::new(MemoryAllocator::default(), BLOCK)),
        ),
        (
            "strategy_range_scrambled_memory",
            Arc::new(RangeGenerator::new(MemoryAllocator::default(), BLOCK).scrambled(0x5EED)),
        ),
    ];
    // The ticket server on PostgreSQL; the database lives until the end of this function.
    let db = rt.block_on(testkit::postgres(None));
    if let Some(db) = &db {
        let store = PgStore::new(db.pool.clone());
        rt.block_on(store.migrate()).expect("applying the schema");
        generators.push((
            "strategy_counter_postgres",
            Arc::new(CounterGenerator::new(store.allocator("bench_counter"))),
        ));
        generators.push((
            "strategy_range_postgres",
            Arc::new(RangeGenerator::new(store.allocator("bench_range"), BLOCK)),
        ));
    }

    let mut group = c.benchmark_group("url_shortener");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (id, generator) in &generators {
        group.bench_function(*id, |b| {
            b.to_async(&rt).iter(|| async {
                generator
                    .next_code(black_box(&target), 0)
                    .await
                    .expect("a code")
            })
        });
    }
    group.finish();
    drop(generators);
    drop(db);
}

criterion_group!(benches, base62, strategies);
criterion_main!(benches);
