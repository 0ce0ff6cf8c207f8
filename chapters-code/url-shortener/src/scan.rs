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
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Config, RateLimitConfig};
use crate::shortener::LinkError;

/// Clients tracked at once, over all shards.
pub const MAX_TRACKED: usize = 100_000;

/// Shards of the map, each with its own lock: two cores rarely wait on one.
const SHARDS: usize = 16;

// ANCHOR: miss_budget
/// Per-client budget of lookups that found nothing (a token bucket, on the
/// request's clock so that a simulation can drive it).
///
/// A lookup takes one miss *before* it reads the store, under the lock of
/// the client's shard, and gives it back if it found a link: a check
/// followed later by a charge would let every concurrent request of one
/// client pass the check. A client whose bucket is full is not in the map.
///
/// The map is bounded like the rate-limiter block's: a new client in a
/// full shard first sweeps the buckets that are full again, at most once
/// per refill interval (one miss's worth of time), so a flood of invented
/// addresses costs one sweep of one shard per interval, not one per
/// address; between sweeps, or if none was full, the new client is counted
/// against the shard's overflow bucket, shared with the flood.
pub struct MissBudget {
    per_second: f64,
    burst: f64,
    per_shard: usize,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by the clients that found the shard full.
    overflow: Bucket,
    /// No bucket of this shard can be full before this time.
    next_sweep: DateTime<Utc>,
    /// Sweeps so far (a test counts them).
    sweeps: u64,
}

/// One miss taken from a budget, to give back when the lookup found a link.
#[derive(Clone, Copy, Debug)]
#[must_use = "give it back unless the lookup found nothing"]
pub struct Taken {
    client: IpAddr,
    overflow: bool,
}

impl MissBudget {
    /// `burst` misses at once, then `per_second` (each at least 1).
    pub fn new(config: &RateLimitConfig) -> Self {
        Self::tracking(config, MAX_TRACKED)
    }

    /// The same, tracking at most `max_clients` (at least one per shard).
    pub fn tracking(config: &RateLimitConfig, max_clients: usize) -> Self {
        let per_second = f64::from(config.per_second.max(1));
        let burst = f64::from(config.burst.max(1));
        let full = Bucket {
            tokens: burst,
            at: DateTime::<Utc>::MIN_UTC,
        };
        Self {
            per_second,
            burst,
            per_shard: (max_clients / SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        overflow: full,
                        next_sweep: DateTime::<Utc>::MIN_UTC,
                        sweeps: 0,
                    })
                })
                .collect(),
        }
    }

    /// Takes one miss of `client`'s budget: `Ok` when it may cost the store
    /// a read now; otherwise how long until it may.
    pub fn take(&self, client: IpAddr, now: DateTime<Utc>) -> Result<Taken, Duration> {
        let mut shard = self.shard(client);
        if let Some(bucket) = shard.buckets.get_mut(&client) {
            return self.spend(bucket, now).map(|()| Taken {
                client,
                overflow: false,
            });
        }
        if shard.buckets.len() >= self.per_shard && now >= shard.next_sweep {
            shard.sweeps += 1;
            shard
                .buckets
                .retain(|_, b| self.refilled(b, now) < self.burst);
            // Not before one refill interval, even if the oldest bucket is
            // full sooner: staggered buckets would otherwise cost a sweep
            // per new client.
            let interval = TimeDelta::microseconds((1e6 / self.per_second).ceil() as i64);
            shard.next_sweep = shard
                .buckets
                .values()
                .map(|b| self.full_at(b))
                .min()
                .unwrap_or(now)
                .max(now + interval);
        }
        if shard.buckets.len() < self.per_shard {
            let mut bucket = Bucket {
                tokens: self.burst,
                at: now,
            };
            self.spend(&mut bucket, now)?;
            shard.next_sweep = shard.next_sweep.min(self.full_at(&bucket));
            shard.buckets.insert(client, bucket);
            return Ok(Taken {
                client,
                overflow: false,
            });
        }
        self.spend(&mut shard.overflow, now).map(|()| Taken {
            client,
            overflow: true,
        })
    }

    /// How long until `client` may cost a read, if [`Self::take`] would
    /// refuse it now; changes nothing. A lookup that would be refused is
    /// answered from the caches without starting a load.
    pub fn would_refuse(&self, client: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let shard = self.shard(client);
        let bucket = match shard.buckets.get(&client) {
            Some(bucket) => bucket,
            None if shard.buckets.len() < self.per_shard || now >= shard.next_sweep => {
                return None;
            }
            None => &shard.overflow,
        };
        let mut copy = *bucket;
        self.spend(&mut copy, now).err()
    }

    /// Gives back a miss the lookup did not cause: it found a link, or the
    /// store failed. A bucket full again leaves the map.
    pub fn give_back(&self, taken: Taken, now: DateTime<Utc>) {
        let mut shard = self.shard(taken.client);
        let refund = |bucket: &mut Bucket| {
            bucket.tokens = (self.refilled(bucket, now) + 1.0).min(self.burst);
            bucket.at = now;
            bucket.tokens >= self.burst
        };
        if taken.overflow {
            refund(&mut shard.overflow);
        } else if let Some(bucket) = shard.buckets.get_mut(&taken.client)
            && refund(bucket)
        {
            shard.buckets.remove(&taken.client);
        }
    }

    /// Clients tracked now (at most [`MAX_TRACKED`]).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).buckets.len()).sum()
    }

    /// Sweeps of a full shard so far, over all shards.
    pub fn sweeps(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).sweeps).sum()
    }

    fn shard(&self, client: IpAddr) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(client) as usize % self.shards.len()])
    }

    /// Spends one token of `bucket`, or says how long until one is there.
    fn spend(&self, bucket: &mut Bucket, now: DateTime<Utc>) -> Result<(), Duration> {
        let tokens = self.refilled(bucket, now);
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second));
        }
        bucket.tokens = tokens - 1.0;
        bucket.at = now;
        Ok(())
    }

    fn refilled(&self, bucket: &Bucket, now: DateTime<Utc>) -> f64 {
        // A clock that went backwards refills nothing.
        let elapsed = (now - bucket.at).to_std().unwrap_or_default();
        (bucket.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst)
    }

    /// When `bucket` is full again, if nothing more is spent.
    fn full_at(&self, bucket: &Bucket) -> DateTime<Utc> {
        let wait = ((self.burst - bucket.tokens) / self.per_second).max(0.0);
        bucket.at + TimeDelta::microseconds((wait * 1e6).ceil() as i64)
    }
}
// ANCHOR_END: miss_budget

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

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
            let _spent = b.take(ip, t0).expect("within the burst");
        }
        let wait = b.take(ip, t0).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(1));
        let other = b.take(IpAddr::from([10, 0, 0, 2]), t0);
        assert!(other.is_ok(), "others unaffected");
        let refilled = b.take(ip, t0 + TimeDelta::seconds(1));
        assert!(refilled.is_ok(), "refilled");
    }

    #[test]
    fn a_lookup_that_found_a_link_gives_its_miss_back_and_leaves_the_map() {
        let b = budget();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = DateTime::from_timestamp(0, 0).expect("time");
        for _ in 0..10 {
            let taken = b.take(ip, t0).expect("a visitor is never refused");
            b.give_back(taken, t0);
        }
        assert_eq!(b.tracked(), 0, "a visitor holds no slot");
    }

    // ANCHOR: bounded_sweep_test
    /// Past the limit, a flood of invented addresses neither grows the map
    /// nor makes each new address sweep its shard: one sweep per shard until
    /// a bucket can be full again, and the flood shares the overflow budgets.
    #[test]
    fn a_flood_of_new_clients_past_the_limit_costs_one_sweep_per_shard() {
        let config = RateLimitConfig {
            per_second: 1,
            burst: 3,
        };
        let max = SHARDS * 4;
        let b = MissBudget::tracking(&config, max);
        let t0 = DateTime::from_timestamp(0, 0).expect("time");
        let mut admitted = 0;
        for i in 0..10_000u32 {
            if b.take(IpAddr::from(Ipv4Addr::from(0x0A00_0000 + i)), t0)
                .is_ok()
            {
                admitted += 1;
            }
        }
        assert_eq!(b.tracked(), max);
        assert!(b.sweeps() <= SHARDS as u64, "{} sweeps", b.sweeps());
        // Each shard: its tracked clients' misses, and one overflow burst.
        assert_eq!(admitted, max + SHARDS * 3);
        // Once the buckets are full again, one sweep makes room.
        let later = t0 + TimeDelta::seconds(10);
        let fresh = b.take(IpAddr::from([192, 0, 2, 1]), later);
        assert!(fresh.is_ok());
        assert!(b.tracked() <= max);
    }
    // ANCHOR_END: bounded_sweep_test

    /// New clients arriving one at a time, each after the oldest bucket is
    /// full again, still sweep each shard at most once per refill interval,
    /// not once per client.
    #[test]
    fn staggered_new_clients_sweep_once_per_refill_interval() {
        let config = RateLimitConfig {
            per_second: 1,
            burst: 1,
        };
        let b = MissBudget::tracking(&config, SHARDS * 64);
        let t0 = DateTime::from_timestamp(0, 0).expect("time");
        let clients = 10_000i64;
        let step = TimeDelta::milliseconds(1);
        for i in 0..clients {
            let ip = IpAddr::from(Ipv4Addr::from(0x0A00_0000 + i as u32));
            let _ = b.take(ip, t0 + step * i as i32);
        }
        let elapsed = (step * clients as i32).num_seconds() as u64 + 1;
        let bound = SHARDS as u64 * (elapsed + 1);
        assert!(b.sweeps() <= bound, "{} sweeps, bound {bound}", b.sweeps());
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
