//! AWS's "Exponential Backoff and Jitter" study, reproduced: N clients
//! update one row with optimistic concurrency, each retrying with this
//! block's [`Backoff`], in virtual time with a seeded random source.
//!
//! The model is the one of the post's published simulator: each client
//! reads the row's version, then writes with that version; the write
//! succeeds only if no other write landed in between, so every attempt
//! conflicts with every other attempt whose read-write window overlaps
//! it. Each message crosses a network whose delay is normal around
//! [`Model::net_mean`] (the absolute value, as in the post). A client that
//! loses sleeps its backoff, then reads again; it stops after its one
//! successful write. "Calls" counts writes (the work the row's server
//! does); "completion" is when the last client has its answer.
//!
//! Everything is integer or basic floating-point arithmetic (no `ln`, no
//! `cos`), so the same seed gives the same table on every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::backoff::{Backoff, BackoffError, Jitter, Rng};

/// How clients wait between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Retry at once.
    NoBackoff,
    /// Capped exponential backoff, no jitter.
    Exponential,
    /// Capped exponential with [`Jitter::Equal`].
    EqualJitter,
    /// Capped exponential with [`Jitter::Full`].
    FullJitter,
    /// [`Jitter::Decorrelated`].
    Decorrelated,
}

/// The strategies, in the order of the table.
pub const STRATEGIES: [Strategy; 5] = [
    Strategy::NoBackoff,
    Strategy::Exponential,
    Strategy::EqualJitter,
    Strategy::FullJitter,
    Strategy::Decorrelated,
];

impl Strategy {
    /// The name in tables and legends.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoBackoff => "no backoff",
            Self::Exponential => "exponential, no jitter",
            Self::EqualJitter => "equal jitter",
            Self::FullJitter => "full jitter",
            Self::Decorrelated => "decorrelated jitter",
        }
    }

    fn jitter(self) -> Option<Jitter> {
        match self {
            Self::NoBackoff => None,
            Self::Exponential => Some(Jitter::None),
            Self::EqualJitter => Some(Jitter::Equal),
            Self::FullJitter => Some(Jitter::Full),
            Self::Decorrelated => Some(Jitter::Decorrelated),
        }
    }
}

// ANCHOR: model
/// The simulated network and backoff, as in the post's simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// Backoff base.
    pub base: Duration,
    /// Backoff cap.
    pub cap: Duration,
    /// Mean one-way network delay.
    pub net_mean: Duration,
    /// Its standard deviation.
    pub net_sd: Duration,
}

/// The post's numbers: base 5 ms, cap 2 s, network 10 ms ± 2 ms.
pub const AWS_MODEL: Model = Model {
    base: Duration::from_millis(5),
    cap: Duration::from_millis(2_000),
    net_mean: Duration::from_millis(10),
    net_sd: Duration::from_millis(2),
};
// ANCHOR_END: model

/// What one simulated contention ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Writes the row's server handled, successful or not.
    pub calls: u64,
    /// When the last client had its successful answer.
    pub completion: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A client's read reaches the server.
    Read,
    /// The version read reaches the client.
    ReadReply(u64),
    /// A client's write, made with the version it read, reaches the server.
    Write(u64),
    /// The write's answer reaches the client.
    WriteReply(bool),
}

/// One network delay: `|N(mean, sd)|`, the normal drawn as the sum of
/// twelve uniforms (Irwin-Hall), which needs no transcendental function.
fn net_delay(model: &Model, rng: &mut Rng) -> Duration {
    let z: f64 = (0..12).map(|_| rng.unit()).sum::<f64>() - 6.0;
    let ns = model.net_mean.as_nanos() as f64 + model.net_sd.as_nanos() as f64 * z;
    Duration::from_nanos(ns.abs() as u64)
}

// ANCHOR: simulate
/// `clients` clients each write the row once, retrying with `strategy`.
pub fn simulate(
    model: &Model,
    strategy: Strategy,
    clients: u32,
    seed: u64,
) -> Result<Run, BackoffError> {
    let backoff = match strategy.jitter() {
        Some(j) => Some(Backoff::new(model.base, model.cap, j)?),
        None => None,
    };
    let mut rng = Rng::seeded(seed);
    // (time, sequence, client, event): the sequence breaks ties in order
    // of scheduling, so a run is a function of the seed.
    let mut queue = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |q: &mut BinaryHeap<_>, at: Duration, client: usize, e: Event| {
        seq += 1;
        q.push(Reverse((at, seq, client, e)));
    };
    let n = clients as usize;
    let mut failures = vec![0u32; n];
    let mut prev = vec![model.base; n];
    for c in 0..n {
        let at = net_delay(model, &mut rng);
        push(&mut queue, at, c, Event::Read);
    }
    let (mut version, mut calls, mut now) = (0u64, 0u64, Duration::ZERO);
    while let Some(Reverse((at, _, c, event))) = queue.pop() {
        now = at;
        let hop = net_delay(model, &mut rng);
        match event {
            Event::Read => push(&mut queue, now + hop, c, Event::ReadReply(version)),
            Event::ReadReply(v) => push(&mut queue, now + hop, c, Event::Write(v)),
            Event::Write(v) => {
                calls += 1;
                let won = v == version;
                if won {
                    version += 1;
                }
                push(&mut queue, now + hop, c, Event::WriteReply(won));
            }
            Event::WriteReply(true) => {}
            Event::WriteReply(false) => {
                let sleep = backoff.map_or(Duration::ZERO, |b| {
                    let d = b.delay(failures[c], prev[c], &mut rng);
                    prev[c] = d;
                    d
                });
                failures[c] += 1;
                push(&mut queue, now + hop + sleep, c, Event::Read);
            }
        }
    }
    Ok(Run {
        calls,
        completion: now,
    })
}
// ANCHOR_END: simulate

/// The mean of `runs` simulations with seeds derived from `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mean {
    /// Mean writes per contention.
    pub calls: f64,
    /// Mean completion time, milliseconds.
    pub completion_ms: f64,
}

/// Averages `runs` contentions of `clients` clients under `strategy`.
pub fn mean(
    model: &Model,
    strategy: Strategy,
    clients: u32,
    runs: u32,
    seed: u64,
) -> Result<Mean, BackoffError> {
    let (mut calls, mut ms) = (0.0, 0.0);
    for r in 0..runs {
        let run = simulate(
            model,
            strategy,
            clients,
            seed ^ (u64::from(clients) << 32) ^ u64::from(r),
        )?;
        calls += run.calls as f64;
        ms += run.completion.as_nanos() as f64 / 1e6;
    }
    let runs = f64::from(runs.max(1));
    Ok(Mean {
        calls: calls / runs,
        completion_ms: ms / runs,
    })
}
