//! Measuring a path beside its ceiling, interleaved, over several rounds.
//!
//! On a shared two-core machine one run of a ceiling followed by one run of
//! a path can differ by half from the next such pair, because the noise
//! (another process, a frequency change) lands on one of them. Here every
//! round measures the ceiling and each path back to back, for a short time
//! each, alternating the order from round to round; a path's ratio is taken
//! per round, against the ceiling of the same round, and reported as the
//! median with its minimum and maximum ([`Spread`]). Noise that hits one
//! round moves one ratio, not the median.

use std::time::Duration;

use anyhow::{Result, ensure};
use hdrhistogram::Histogram;

use crate::results::{BenchResult, ResultKind, Spread};

/// How many rounds, and how long each workload runs in each.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds; each measures the ceiling and every path once.
    pub rounds: u32,
    /// Measured time of one workload in one round.
    pub round: Duration,
}

impl Default for Plan {
    /// Five rounds of two seconds, as the book's reports use.
    fn default() -> Self {
        Self {
            rounds: 5,
            round: Duration::from_secs(2),
        }
    }
}

/// What one workload measured in one round.
#[derive(Debug, Clone)]
pub struct RoundStats {
    /// Operations measured (failed ones included).
    pub ops: u64,
    /// Operations that failed or got an unexpected answer.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency of every measured operation, microseconds.
    pub latency_us: Histogram<u64>,
}

impl RoundStats {
    /// Successful operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops.saturating_sub(self.errors) as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// One workload to measure: its result name and concurrency.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The result's name (`[a-z0-9_-]+`).
    pub name: String,
    /// Operations in flight at once.
    pub concurrency: u32,
}

/// [`interleave`] with the ceiling as the first of `workloads`.
pub fn interleave_all(
    chapter: &str,
    kind: ResultKind,
    plan: &Plan,
    workloads: &[Workload],
    run: impl FnMut(usize, Duration) -> Result<RoundStats>,
) -> Result<Vec<BenchResult>> {
    let (ceiling, paths) = workloads
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no workloads to measure"))?;
    interleave(chapter, kind, plan, ceiling, paths, run)
}

/// Measures `ceiling` and `paths` interleaved under `plan`, calling `run(i, duration)`
/// for workload `i` (0 is the ceiling, then the paths in order); returns one result
/// per workload, each path with its per-round ratio to the ceiling.
pub fn interleave(
    chapter: &str,
    kind: ResultKind,
    plan: &Plan,
    ceiling: &Workload,
    paths: &[Workload],
    mut run: impl FnMut(usize, Duration) -> Result<RoundStats>,
) -> Result<Vec<BenchResult>> {
    ensure!(plan.rounds > 0, "a plan needs at least one round");
    let all: Vec<&Workload> = std::iter::once(ceiling).chain(paths).collect();
    let mut per_round: Vec<Vec<RoundStats>> = vec![Vec::new(); all.len()];
    for round in 0..plan.rounds {
        // Alternate the order so no workload always runs right after the same one.
        let mut order: Vec<usize> = (0..all.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            per_round[i].push(run(i, plan.round)?);
        }
    }
    let ceiling_rates: Vec<f64> = per_round[0].iter().map(RoundStats::ops_per_sec).collect();
    let mut out = Vec::new();
    for (i, w) in all.iter().enumerate() {
        let rounds = &per_round[i];
        let mut hist = Histogram::<u64>::new(3)?;
        let (mut ops, mut errors, mut elapsed) = (0, 0, Duration::ZERO);
        for s in rounds {
            hist.add(&s.latency_us)?;
            ops += s.ops;
            errors += s.errors;
            elapsed += s.elapsed;
        }
        let rates: Vec<f64> = rounds.iter().map(RoundStats::ops_per_sec).collect();
        let mut r = BenchResult::new(chapter, &w.name, kind)
            .with_throughput(ops, errors, elapsed)
            .with_latency_us(&hist)
            .with_concurrency(w.concurrency);
        if i > 0 {
            let ratios: Vec<f64> = rates
                .iter()
                .zip(&ceiling_rates)
                .map(|(p, c)| if *c > 0.0 { p / c } else { f64::NAN })
                .collect();
            r = r.with_ceiling(&ceiling.name);
            r.ratio = Spread::of(&ratios);
        }
        r.rounds_ops_per_sec = rates;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ops: u64) -> RoundStats {
        let mut latency_us = Histogram::new(3).expect("histogram");
        latency_us.record(100).expect("record");
        RoundStats {
            ops,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latency_us,
        }
    }

    #[test]
    fn ratios_are_per_round_against_the_same_rounds_ceiling() -> Result<()> {
        // The ceiling halves in round 2 (noise); the path halves with it, so the
        // per-round ratio stays 0.5 although the totals would say otherwise.
        let ceiling_rates = [1000, 500, 1000];
        let mut calls = Vec::new();
        let mut round_of = [0usize; 2];
        let results = interleave(
            "x",
            ResultKind::Load,
            &Plan {
                rounds: 3,
                round: Duration::from_millis(1),
            },
            &Workload {
                name: "ceiling".into(),
                concurrency: 1,
            },
            &[Workload {
                name: "path".into(),
                concurrency: 1,
            }],
            |i, _| {
                calls.push(i);
                let r = round_of[i];
                round_of[i] += 1;
                Ok(stats(ceiling_rates[r] / if i == 0 { 1 } else { 2 }))
            },
        )?;
        assert_eq!(calls, vec![0, 1, 1, 0, 0, 1], "order alternates by round");
        let path = &results[1];
        let ratio = path.ratio.expect("a ratio");
        assert_eq!((ratio.median, ratio.min, ratio.max), (0.5, 0.5, 0.5));
        assert_eq!(path.ceiling.as_deref(), Some("ceiling"));
        assert_eq!(path.rounds_ops_per_sec, vec![500.0, 250.0, 500.0]);
        assert!(results[0].ratio.is_none());
        Ok(())
    }
}
