//! Measuring the rungs: a closed-loop throughput run and a sell-out.
//!
//! Closed loop: each of `clients` tasks sends one request, waits for the
//! answer, sends the next. A request that is told [`Attempt::Busy`] is
//! retried at once, and its latency runs from the first attempt to the
//! final answer: what a customer would wait. Only requests started in the
//! measured window count.
//!
//! A sell-out puts `units` in stock and lets every client buy until it is
//! told "sold out". Oversell is units handed out beyond the stock; undersell
//! is units the storage still holds when every client has given up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Attempt, Rung};

/// The shape of one throughput run.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// Concurrent clients, one request in flight each.
    pub clients: u32,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Units in stock at the start (enough not to sell out in the run).
    pub units: i64,
}

/// What one throughput run measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// The rung's id.
    pub rung: &'static str,
    /// Concurrent clients.
    pub clients: u32,
    /// Requests that got a unit.
    pub reserved: u64,
    /// Requests told "sold out" (should be zero: the stock is sized for the run).
    pub sold_out: u64,
    /// Attempts told "busy" and retried.
    pub busy: u64,
    /// Requests that failed with an error.
    pub errors: u64,
    /// The measured window as it really lasted.
    pub elapsed: Duration,
    /// Microseconds per request, first attempt to answer.
    pub latency_us: Histogram<u64>,
}

impl Throughput {
    /// Units reserved per second.
    pub fn reserved_per_sec(&self) -> f64 {
        self.reserved as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// A latency quantile in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64
    }
}

/// What one sell-out found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellOut {
    /// Units in stock at the start.
    pub units: i64,
    /// Requests that were told they got a unit.
    pub reserved: i64,
    /// What the rung's storage holds after every client gave up.
    pub remaining: i64,
    /// Requests that failed with an error.
    pub errors: u64,
}

impl SellOut {
    /// Units handed out beyond the stock.
    pub fn oversell(&self) -> i64 {
        (self.reserved - self.units).max(0)
    }

    /// Units left unsold although every client was told "sold out".
    pub fn undersell(&self) -> i64 {
        self.remaining.max(0)
    }
}

/// A histogram from 1 µs to 60 s at 3 significant digits.
pub fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

// ANCHOR: throughput
/// Runs `rung` closed-loop with `spec.clients` clients.
pub async fn throughput(rung: Arc<dyn Rung>, spec: LoadSpec) -> anyhow::Result<Throughput> {
    rung.setup(spec.units).await?;
    let began = Instant::now();
    let window_start = began + spec.warmup;
    let window_end = window_start + spec.measure;
    let mut tasks = Vec::new();
    for c in 0..spec.clients {
        let rung = Arc::clone(&rung);
        tasks.push(tokio::spawn(async move {
            let (mut reserved, mut sold_out, mut busy, mut errors) = (0u64, 0u64, 0u64, 0u64);
            let mut hist = empty_histogram();
            loop {
                let sent = Instant::now();
                if sent >= window_end {
                    break;
                }
                let mut tries = 0u64;
                let answer = loop {
                    match rung.reserve(c).await {
                        Ok(Attempt::Busy) if Instant::now() < window_end => {
                            tries += 1;
                            tokio::task::yield_now().await;
                        }
                        other => break other,
                    }
                };
                if sent < window_start {
                    continue;
                }
                busy += tries;
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = hist.record(us.clamp(1, 60_000_000));
                match answer {
                    Ok(Attempt::Reserved) => reserved += 1,
                    Ok(Attempt::SoldOut) => sold_out += 1,
                    Ok(Attempt::Busy) => busy += 1,
                    Err(_) => errors += 1,
                }
            }
            (reserved, sold_out, busy, errors, hist)
        }));
    }
    let mut total = Throughput {
        rung: rung.id(),
        clients: spec.clients,
        reserved: 0,
        sold_out: 0,
        busy: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: empty_histogram(),
    };
    for t in tasks {
        let (r, s, b, e, h) = t.await?;
        total.reserved += r;
        total.sold_out += s;
        total.busy += b;
        total.errors += e;
        total.latency_us.add(&h)?;
    }
    // Requests sent in the window may end after it: the window lasts until the last returned.
    total.elapsed = Instant::now().saturating_duration_since(window_start);
    Ok(total)
}
// ANCHOR_END: throughput

// ANCHOR: sell_out
/// Puts `units` in stock and lets `clients` buy one at a time until each is told "sold out".
pub async fn sell_out(rung: Arc<dyn Rung>, clients: u32, units: i64) -> anyhow::Result<SellOut> {
    rung.setup(units).await?;
    // A rung that never says "sold out" would loop forever; this bounds it.
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let rung = Arc::clone(&rung);
        tasks.push(tokio::spawn(async move {
            let (mut reserved, mut errors) = (0i64, 0u64);
            while Instant::now() < give_up {
                match rung.reserve(c).await {
                    Ok(Attempt::Reserved) => reserved += 1,
                    Ok(Attempt::Busy) => tokio::task::yield_now().await,
                    Ok(Attempt::SoldOut) => break,
                    Err(_) => errors += 1,
                }
            }
            (reserved, errors)
        }));
    }
    let (mut reserved, mut errors) = (0, 0);
    for t in tasks {
        let (r, e) = t.await?;
        reserved += r;
        errors += e;
    }
    Ok(SellOut {
        units,
        reserved,
        remaining: rung.remaining().await?,
        errors,
    })
}
// ANCHOR_END: sell_out
