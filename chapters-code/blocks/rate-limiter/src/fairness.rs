//! One client bursting beside steady clients: who gets admitted?
//!
//! The page's fairness table replays one arrival trace through each
//! limiter, with a global limit (one key for everyone) and with a limit per
//! client, and counts each client's admissions. The trace is deterministic:
//! every client sends evenly spaced requests, with a phase of its own.

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

/// One request of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When, in nanoseconds from the trace's start.
    pub at_ns: u64,
    /// Who: 0 bursts, the others are steady.
    pub client: u8,
}

/// The scenario's arrivals, in time order.
pub fn trace() -> Vec<Arrival> {
    let mut out = Vec::new();
    let end = u64::try_from(TRACE.as_nanos()).unwrap_or(u64::MAX);
    let mut add = |client: u8, per_second: u32| {
        let gap = 1_000_000_000 / u64::from(per_second.max(1));
        // A phase per client, so steady clients do not arrive together.
        let mut at = gap * u64::from(client) / u64::from(STEADY_CLIENTS + 1);
        while at < end {
            out.push(Arrival { at_ns: at, client });
            at += gap;
        }
    };
    add(0, BURST_PER_SECOND);
    for client in 1..=STEADY_CLIENTS {
        add(client, STEADY_PER_SECOND);
    }
    out.sort_by_key(|a| (a.at_ns, a.client));
    out
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
