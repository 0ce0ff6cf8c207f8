//! The measured runs behind the chapter's performance table
//! (`benches/checkout.rs`); the tests run the same code on a small configuration.
//!
//! Closed loop: each of `clients` tasks sends one request, waits for the
//! answer and sends the next; only operations that start after the warm-up
//! and end inside the measured window count.
//!
//! - [`checkout_load`]: the real checkout, `Checkout::run` on PostgreSQL
//!   with the fake provider answering at once: phase 1, the charge, phase 2.
//!   With a key, or without one (the idempotency layer's own cost).
//! - [`insert_ceiling`]: one autocommit INSERT of an order row through the
//!   same pool. No checkout can record an order with less work.
//! - [`cart_load`]: add-to-cart against any [`CartStore`] (Redis against PostgreSQL).
//! - [`overload`]: open-loop arrivals at a fixed rate, with or without the
//!   admission bucket, for goodput and p99 under overload.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use block_rate_limiter::Limiter;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::cart::{CartId, CartStore};
use crate::checkout::provider::FakeProvider;
use crate::checkout::{CHECKOUT_ENDPOINT, Checkout, CheckoutRequest};
use crate::domain::{Currency, Money, PricedLine, Quantity, Sku, TAX_RATES, Tag, TaxClass, quote};
use crate::idempotency::{IdempotencyKey, KeyScope};
use crate::store::PgStore;

/// The shape of one closed-loop run.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// Concurrent clients, one operation in flight each.
    pub clients: u32,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Seed of the request mix.
    pub seed: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// Operations that succeeded in the window.
    pub ok: u64,
    /// Operations that failed in the window.
    pub errors: u64,
    /// The measured window, as it really lasted.
    pub elapsed: Duration,
    /// Microseconds per operation, all outcomes.
    pub latency_us: Histogram<u64>,
}

/// An empty latency histogram (1 µs to 1 hour, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Runs `op(client, rng)` in a closed loop per `spec`; `op` returns true on success.
pub async fn closed_loop<F, Fut>(spec: LoadSpec, op: F) -> LoadRun
where
    F: Fn(u32, StdRng) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (bool, StdRng)> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now() + spec.warmup;
    let end = start + spec.measure;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(histogram()));
    let mut tasks = Vec::new();
    for client in 0..spec.clients {
        let (op, ok, errors, hist) = (
            Arc::clone(&op),
            Arc::clone(&ok),
            Arc::clone(&errors),
            Arc::clone(&hist),
        );
        let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_mul(1_000_003) + u64::from(client));
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let (success, back) = op(client, rng).await;
                rng = back;
                let t1 = Instant::now();
                if t0 >= start && t1 <= end {
                    let _ = local.record((t1 - t0).as_micros().max(1) as u64);
                    if success {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let _ = hist.lock().await.add(&local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let latency_us = hist.lock().await.clone();
    LoadRun {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: spec.measure,
        latency_us,
    }
}

/// Products in the measured catalog.
pub const PERF_PRODUCTS: u32 = 1_000;

/// The unit price of measured product `i`, in euro cents.
pub fn perf_price(i: u32) -> i64 {
    500 + i64::from(i)
}

fn perf_sku(i: u32) -> Sku {
    Sku::parse(&format!("P-{i:05}")).unwrap_or_else(|_| unreachable!("a valid SKU"))
}

// ANCHOR: perf_catalog
/// Creates [`PERF_PRODUCTS`] products with stock that will not run out.
pub async fn seed_perf_catalog(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (sku, name, description, price_minor, currency, tax_class, stock)
         SELECT 'P-' || lpad(i::text, 5, '0'), 'Product ' || i,
                'A product for the measured runs, number ' || i, 500 + i, 'EUR', 'standard', 1000000000
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(PERF_PRODUCTS as i32)
    .execute(pool)
    .await?;
    Ok(())
}
// ANCHOR_END: perf_catalog

/// A random order of 1 to 3 distinct products, with its total priced as the client would.
pub fn random_order(rng: &mut StdRng) -> CheckoutRequest {
    let n = rng.random_range(1..=3);
    let mut picked: Vec<u32> = Vec::new();
    while picked.len() < n {
        let i = rng.random_range(0..PERF_PRODUCTS);
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    let mut lines: Vec<(Sku, Quantity)> = picked
        .iter()
        .map(|i| {
            (
                perf_sku(*i),
                Quantity::new(rng.random_range(1..=3)).unwrap_or_else(|_| unreachable!()),
            )
        })
        .collect();
    lines.sort();
    let priced: Vec<PricedLine> = lines
        .iter()
        .map(|(s, q)| {
            let i: u32 = s.as_str()[2..].parse().unwrap_or(0);
            PricedLine {
                sku: s.clone(),
                unit: Money::new(perf_price(i), Currency::Eur).unwrap_or_else(|_| unreachable!()),
                quantity: *q,
                tax_class: TaxClass::Standard,
            }
        })
        .collect();
    let total = quote(&priced, None, &TAX_RATES)
        .map(|q| q.total_minor)
        .unwrap_or(0);
    CheckoutRequest {
        lines,
        currency: Currency::Eur,
        expected_total_minor: total,
        promotion: None,
        payment_method: "tok_visa".into(),
    }
}

// ANCHOR: checkout_load
/// Checkouts in a closed loop: each a new order with a new key (or no key).
pub async fn checkout_load(
    checkout: Checkout<PgStore, FakeProvider>,
    keyed: bool,
    spec: LoadSpec,
) -> LoadRun {
    closed_loop(spec, move |client, mut rng| {
        let checkout = checkout.clone();
        async move {
            let request = random_order(&mut rng);
            let account = format!("load-{client}");
            let key = uuid::Uuid::new_v4().to_string();
            let scope = keyed.then(|| KeyScope {
                account: account.clone(),
                endpoint: CHECKOUT_ENDPOINT,
                key: IdempotencyKey::parse(key.as_bytes()).unwrap_or_else(|_| unreachable!()),
            });
            let answer = checkout
                .run(&account, scope.as_ref(), &request, chrono::Utc::now())
                .await;
            (matches!(answer, Ok(a) if a.response.status == 201), rng)
        }
    })
    .await
}
// ANCHOR_END: checkout_load

/// One plain INSERT of an order row per operation: the ceiling.
pub async fn insert_ceiling(pool: PgPool, spec: LoadSpec) -> LoadRun {
    closed_loop(spec, move |_, rng| {
        let pool = pool.clone();
        async move {
            let done = sqlx::query(
                "INSERT INTO orders (id, account_id, status, currency, total_minor, quote, created_at, updated_at)
                 VALUES ($1, 'ceiling', 'pending_payment', 'EUR', 1000, '{}'::jsonb, now(), now())",
            )
            .bind(uuid::Uuid::new_v4())
            .execute(&pool)
            .await;
            (done.is_ok(), rng)
        }
    })
    .await
}

/// Add-to-cart in a closed loop over 10,000 carts.
pub async fn cart_load<C: CartStore>(carts: Arc<C>, spec: LoadSpec) -> LoadRun {
    closed_loop(spec, move |_, mut rng| {
        let carts = Arc::clone(&carts);
        async move {
            let cart = CartId::parse(&format!("g-load-{}", rng.random_range(0..10_000)))
                .unwrap_or_else(|_| unreachable!());
            let sku = perf_sku(rng.random_range(0..PERF_PRODUCTS));
            let q = Quantity::new(1).unwrap_or_else(|_| unreachable!());
            (carts.add(&cart, Tag::random(), &sku, q).await.is_ok(), rng)
        }
    })
    .await
}

/// What an open-loop overload run measured.
#[derive(Debug, Clone)]
pub struct OverloadRun {
    /// Requests sent.
    pub offered: u64,
    /// Refused at once by the admission bucket.
    pub rejected: u64,
    /// Checkouts that completed with 201.
    pub completed: u64,
    /// Completed within the client's deadline.
    pub good: u64,
    /// The sending window.
    pub elapsed: Duration,
    /// Latency of every admitted request (completed or failed), microseconds.
    pub admitted_us: Histogram<u64>,
}

// ANCHOR: overload
/// Sends checkouts at `rate` per second for `duration`, each through the
/// admission bucket if any; a checkout is *good* when it completes within
/// `deadline` (the shopper is still waiting). Nothing is cancelled: a late
/// answer still costs the server its work, as it does in production.
pub async fn overload(
    checkout: Checkout<PgStore, FakeProvider>,
    admission: Option<Arc<crate::service::Admission>>,
    rate: f64,
    duration: Duration,
    deadline: Duration,
    seed: u64,
) -> OverloadRun {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tasks = Vec::new();
    let mut offered = 0u64;
    let mut rejected = 0u64;
    loop {
        let due = started + interval.mul_f64(offered as f64);
        if due >= started + duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        offered += 1;
        if let Some(limiter) = &admission
            && limiter.check(&()).is_err()
        {
            rejected += 1;
            continue;
        }
        let request = random_order(&mut rng);
        let checkout = checkout.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let key = uuid::Uuid::new_v4().to_string();
            let scope = KeyScope {
                account: "flash".into(),
                endpoint: CHECKOUT_ENDPOINT,
                key: IdempotencyKey::parse(key.as_bytes()).unwrap_or_else(|_| unreachable!()),
            };
            let ok = matches!(
                checkout.run("flash", Some(&scope), &request, chrono::Utc::now()).await,
                Ok(a) if a.response.status == 201
            );
            (ok, t0.elapsed())
        }));
    }
    let elapsed = started.elapsed();
    let mut admitted_us = histogram();
    let (mut completed, mut good) = (0, 0);
    for t in tasks {
        if let Ok((ok, took)) = t.await {
            let _ = admitted_us.record(took.as_micros().max(1) as u64);
            if ok {
                completed += 1;
                if took <= deadline {
                    good += 1;
                }
            }
        }
    }
    OverloadRun {
        offered,
        rejected,
        completed,
        good,
        elapsed,
        admitted_us,
    }
}
// ANCHOR_END: overload
