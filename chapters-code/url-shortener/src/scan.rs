//! Scanning: clients that try codes until one leads somewhere.
//!
//! Negative caching absorbs repeats of one unknown code, not a scan: each
//! new random guess misses every cache layer and costs the store one read,
//! plus a slot in the in-process cache. [`MissBudget`] is the defence: each
//! client may cause a few store reads that find nothing, refilled slowly;
//! once it has spent them, its requests are answered from the caches only,
//! and a code the caches do not know gets `429` instead of a store read.
//! People who mistype a code spend one miss; a scanner spends them all in a
//! second.
//!
//! [`measure_scan`] runs the real use case (the shortener with its cache,
//! on the in-memory store) against a scan of random codes, with and without
//! the budget, and counts the store reads per request; a test runs it small
//! and the book's table runs it at full size.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Config, RateLimitConfig};
use crate::shortener::LinkError;

/// Clients tracked at once; beyond it, clients whose budget is full again are forgotten.
const MAX_TRACKED: usize = 100_000;

// ANCHOR: miss_budget
/// Per-client budget of lookups that found nothing (a token bucket, on the
/// request's clock so that a simulation can drive it).
pub struct MissBudget {
    per_second: f64,
    burst: f64,
    buckets: RwLock<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

impl MissBudget {
    /// `burst` misses at once, then `per_second` (each at least 1).
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_second: f64::from(config.per_second.max(1)),
            burst: f64::from(config.burst.max(1)),
            buckets: RwLock::new(HashMap::new()),
        }
    }

    /// `Ok` when `client` may cost the store a read now; otherwise how long
    /// until it may. A client that never missed is not even in the map.
    pub fn check(&self, client: IpAddr, now: DateTime<Utc>) -> Result<(), Duration> {
        let buckets = self.buckets.read().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = buckets.get(&client) else {
            return Ok(());
        };
        let tokens = self.refilled(bucket, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    /// Spends one miss of `client`'s budget.
    pub fn charge(&self, client: IpAddr, now: DateTime<Utc>) {
        let mut buckets = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            buckets.retain(|_, b| self.refilled(b, now) < self.burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (self.refilled(bucket, now) - 1.0).max(0.0);
        bucket.at = now;
    }

    fn refilled(&self, bucket: &Bucket, now: DateTime<Utc>) -> f64 {
        // A clock that went backwards refills nothing.
        let elapsed = (now - bucket.at).to_std().unwrap_or_default();
        (bucket.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst)
    }
}
// ANCHOR_END: miss_budget

/// One scenario of [`measure_scan`].
#[derive(Clone, Debug)]
pub struct ScanScenario {
    /// Row label.
    pub label: &'static str,
    /// Whether the miss budget is on.
    pub budget: bool,
    /// Distinct client addresses the requests are spread over, round robin.
    pub clients: u32,
    /// Requests sent.
    pub requests: u32,
    /// True: random codes (a scan); false: codes of existing links.
    pub random: bool,
}

/// What one scenario cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanOutcome {
    /// Requests sent.
    pub requests: u64,
    /// Reads of the store those requests caused.
    pub store_reads: u64,
    /// Requests answered 429 because the client's budget was spent.
    pub refused: u64,
    /// Requests that redirected.
    pub redirected: u64,
}

impl ScanOutcome {
    /// Store reads per request.
    pub fn reads_per_request(&self) -> f64 {
        self.store_reads as f64 / self.requests.max(1) as f64
    }
}

/// Requests per second of the simulated clients (all together).
pub const SCAN_RATE: u32 = 100;

/// Links that exist before the scan, the legitimate targets.
pub const EXISTING_LINKS: u32 = 1_000;

/// The scenarios of the book's table, for `requests` requests each.
pub fn scenarios(requests: u32) -> Vec<ScanScenario> {
    let scan = |label, budget, clients| ScanScenario {
        label,
        budget,
        clients,
        requests,
        random: true,
    };
    vec![
        scan("One client scans, negative caching only", false, 1),
        scan("One client scans, with the miss budget", true, 1),
        scan(
            "The scan spread over many addresses, with the miss budget",
            true,
            requests / 10,
        ),
        ScanScenario {
            label: "Visitors following real links, with the miss budget",
            budget: true,
            clients: 1,
            requests,
            random: false,
        },
    ]
}

/// Runs `scenario` against a fresh shortener (in-memory store, default
/// in-process cache, the default miss budget when on) with a simulated
/// clock: requests arrive at [`SCAN_RATE`] a second. Deterministic: the
/// codes come from a seeded generator.
pub fn measure_scan(scenario: &ScanScenario) -> anyhow::Result<ScanOutcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = Config {
            miss_limit: if scenario.budget {
                Config::default().miss_limit
            } else {
                None
            },
            rate_limit: None,
            ..Config::default()
        };
        let app = crate::App::in_memory(config)?;
        let shortener = app.shortener().clone();
        let start = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let mut existing = Vec::new();
        for i in 0..EXISTING_LINKS {
            let req = shortener
                .validate(&format!("https://example.com/{i}"), None, None, None, start)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            existing.push(shortener.create(req, start).await?.link.code);
        }
        let before = shortener.metrics().snapshot();
        let mut rng = SplitMix(0x5CA9);
        let mut outcome = ScanOutcome {
            requests: u64::from(scenario.requests),
            store_reads: 0,
            refused: 0,
            redirected: 0,
        };
        let step = TimeDelta::microseconds(1_000_000 / i64::from(SCAN_RATE));
        for i in 0..scenario.requests {
            let now = start + step * (i as i32);
            let client = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i % scenario.clients.max(1)));
            let code = if scenario.random {
                random_code(&mut rng)
            } else {
                existing[(rng.next() % existing.len() as u64) as usize].to_string()
            };
            match shortener.resolve_for(Some(client), &code, now).await {
                Ok(_) => outcome.redirected += 1,
                Err(LinkError::TooManyMisses(_)) => outcome.refused += 1,
                Err(LinkError::NotFound) => {}
                Err(e) => anyhow::bail!("unexpected {e}"),
            }
        }
        let after = shortener.metrics().snapshot();
        outcome.store_reads = after.store_loads - before.store_loads;
        drop(app);
        Ok(outcome)
    })
}

/// Seven random base62 characters: a scanner's guess.
fn random_code(rng: &mut SplitMix) -> String {
    crate::codegen::encode_padded(rng.next() % crate::codegen::CODE_SPACE, 7)
}

/// SplitMix64: a small seeded generator, so the measurement is the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> MissBudget {
        MissBudget::new(&RateLimitConfig {
            per_second: 1,
            burst: 3,
        })
    }

    #[test]
    fn a_client_spends_its_burst_then_waits_for_the_refill() {
        let b = budget();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = DateTime::from_timestamp(0, 0).expect("time");
        for _ in 0..3 {
            assert_eq!(b.check(ip, t0), Ok(()));
            b.charge(ip, t0);
        }
        let wait = b.check(ip, t0).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(
            b.check(IpAddr::from([10, 0, 0, 2]), t0),
            Ok(()),
            "others unaffected"
        );
        assert_eq!(b.check(ip, t0 + TimeDelta::seconds(1)), Ok(()), "refilled");
    }

    // ANCHOR: scan_test
    /// The measurement of the book's table, small: one client scanning
    /// random codes costs the store one read per request without the budget,
    /// and at most its burst plus the refill with it; legitimate visitors
    /// are never refused.
    #[test]
    fn the_miss_budget_cuts_a_scans_store_reads() {
        let requests = 400;
        let [without, with, spread, visitors] =
            <[ScanScenario; 4]>::try_from(scenarios(requests)).expect("four scenarios");
        let without = measure_scan(&without).expect("run");
        assert_eq!(without.store_reads, u64::from(requests), "{without:?}");
        assert_eq!(without.refused, 0);
        let with = measure_scan(&with).expect("run");
        let limit = Config::default().miss_limit.expect("on by default");
        let scan_seconds = u64::from(requests / SCAN_RATE);
        let allowed = u64::from(limit.burst) + scan_seconds * u64::from(limit.per_second) + 1;
        assert!(with.store_reads <= allowed, "{with:?}, allowed {allowed}");
        assert_eq!(with.refused, u64::from(requests) - with.store_reads);
        // Spread over enough addresses, no client exhausts its budget: the
        // limit of a per-client defence, which the book states.
        let spread = measure_scan(&spread).expect("run");
        assert_eq!(spread.store_reads, u64::from(requests), "{spread:?}");
        let visitors = measure_scan(&visitors).expect("run");
        assert_eq!(
            (visitors.refused, visitors.redirected),
            (0, u64::from(requests))
        );
    }
    // ANCHOR_END: scan_test
}
