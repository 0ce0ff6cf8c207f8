//! One client bursting beside steady clients: who gets admitted?
//!
//! The page's fairness table replays one arrival trace through each
//! limiter, with a global limit (one key for everyone) and with a limit per
//! client, and counts each client's admissions. The trace is random but
//! seeded, so the in-process limiters see exactly the same requests.

use std::time::Duration;

use crate::AsyncLimiter;
use crate::clock::ManualClock;

// ANCHOR: scenario
/// Client 0 bursts; clients 1 to `STEADY_CLIENTS` send steadily.
pub const STEADY_CLIENTS: u8 = 9;
/// Requests per second of each steady client.
pub const STEADY_PER_SECOND: u32 = 8;
/// Requests per second of the bursting client.
pub const BURST_PER_SECOND: u32 = 200;
/// Length of the trace.
pub const TRACE: Duration = Duration::from_secs(2);
/// The global limit: requests per second for everyone together, and its burst.
pub const GLOBAL: (u32, u32) = (100, 10);
/// The per-client limit: requests per second for each client, and its burst.
pub const PER_CLIENT: (u32, u32) = (10, 2);
// ANCHOR_END: scenario

/// The sliding window with the same long-run rate and burst as `(rate, burst)`:
/// `burst` requests per `burst / rate` seconds.
pub fn window_for((rate, burst): (u32, u32)) -> (u32, Duration) {
    let window = Duration::from_secs(u64::from(burst)) / rate.max(1);
    (burst, window)
}

/// One request of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When, in nanoseconds from the trace's start.
    pub at_ns: u64,
    /// Who: 0 bursts, the others are steady.
    pub client: u8,
}

/// The scenario's arrivals, in time order: each client's requests arrive
/// at random (a Poisson process at its rate), from a fixed seed, so every
/// limiter sees the same trace and no client is favoured by its phase.
pub fn trace() -> Vec<Arrival> {
    let mut out = Vec::new();
    let end = TRACE.as_secs_f64();
    let mut rng = SplitMix64(0x5eed_f00d);
    let mut add = |client: u8, per_second: u32| {
        let mut at = 0.0f64;
        loop {
            // An exponential gap: -ln(U) / rate, with U in (0, 1].
            let u = 1.0 - rng.next_f64();
            at += -u.ln() / f64::from(per_second.max(1));
            if at >= end {
                break;
            }
            out.push(Arrival {
                at_ns: (at * 1e9) as u64,
                client,
            });
        }
    };
    add(0, BURST_PER_SECOND);
    for client in 1..=STEADY_CLIENTS {
        add(client, STEADY_PER_SECOND);
    }
    out.sort_by_key(|a| (a.at_ns, a.client));
    out
}

/// A small seeded generator (SplitMix64), so the trace needs no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as a fraction in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How time advances during a replay.
pub enum Pace<'a> {
    /// Set this clock to each arrival's time (in-process limiters).
    Manual(&'a ManualClock),
    /// Advance governor's fake clock to each arrival's time.
    Governor(&'a governor::clock::FakeRelativeClock),
    /// Wait in real time until each arrival (Redis, whose clock is its own).
    RealTime,
}

/// Requests and admissions per client (index = client).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shares {
    /// Requests sent, per client.
    pub offered: Vec<u64>,
    /// Requests admitted, per client.
    pub admitted: Vec<u64>,
}

impl Shares {
    /// Admissions of everyone.
    pub fn total_admitted(&self) -> u64 {
        self.admitted.iter().sum()
    }

    /// The bursting client's share of all admissions.
    pub fn burster_share(&self) -> f64 {
        self.admitted[0] as f64 / self.total_admitted().max(1) as f64
    }

    /// The fraction of the steady clients' requests that were admitted.
    pub fn steady_admitted(&self) -> f64 {
        let offered: u64 = self.offered[1..].iter().sum();
        let admitted: u64 = self.admitted[1..].iter().sum();
        admitted as f64 / offered.max(1) as f64
    }
}

/// Replays `trace` through `limiter`, keyed by `key(client)`.
pub async fn replay<K, L: AsyncLimiter<K>>(
    trace: &[Arrival],
    limiter: &L,
    key: impl Fn(u8) -> K,
    pace: Pace<'_>,
) -> Shares {
    let clients = usize::from(STEADY_CLIENTS) + 1;
    let mut shares = Shares {
        offered: vec![0; clients],
        admitted: vec![0; clients],
    };
    let start = tokio::time::Instant::now();
    let mut governor_at = 0u64;
    for a in trace {
        match &pace {
            Pace::Manual(clock) => clock.set(a.at_ns),
            Pace::Governor(clock) => {
                clock.advance(Duration::from_nanos(a.at_ns.saturating_sub(governor_at)));
                governor_at = governor_at.max(a.at_ns);
            }
            Pace::RealTime => tokio::time::sleep_until(start + Duration::from_nanos(a.at_ns)).await,
        }
        let c = usize::from(a.client);
        shares.offered[c] += 1;
        if limiter.check(&key(a.client)).await.is_ok() {
            shares.admitted[c] += 1;
        }
    }
    shares
}
