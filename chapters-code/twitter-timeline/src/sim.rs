//! The threshold sweep on a seeded power-law follow graph.
//!
//! The graph: each user follows a number of accounts drawn from a
//! log-normal distribution (most follow a few dozen, some thousands), and
//! picks whom to follow by popularity rank with Zipf weights, so follower
//! counts follow a power law: most users have a few dozen followers, the
//! top accounts a large share of the network. Everyone posts at the same
//! rate and a fixed share of users is inactive (no cached timeline).
//!
//! For a celebrity threshold `T` (authors with at least `T` followers are
//! pulled, everyone else pushed) the sweep counts exactly, over the whole
//! graph:
//!
//! - write amplification: timeline writes per post (active followers of a
//!   pushed author, plus the author's own timeline);
//! - the largest single fan-out, which sets the worst delivery time;
//! - keys touched per read: the reader's timeline plus one per celebrity
//!   followee, and the share of reads that pull at all.
//!
//! Pure fan-out on write is `T` above every follower count; pure fan-out on
//! read touches one key per followee and no timeline.
//!
//! Counts are not costs: a key pulled and a timeline written cost different
//! amounts. [`Costs`] turns the counts into core time per post with the
//! measured price of each (the bench's reads and deliveries).

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ANCHOR: params
/// The shape of a generated graph.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphParams {
    /// Users.
    pub users: u32,
    /// Mean accounts followed per user (of the log-normal, before clamping).
    pub mean_followees: f64,
    /// Spread of the log-normal (sigma of the underlying normal).
    pub sigma: f64,
    /// Most accounts one user follows.
    pub max_followees: u32,
    /// Zipf exponent of popularity: weight of the account of rank r is r^-s.
    pub zipf_s: f64,
    /// Share of users with no cached timeline (inactive).
    pub inactive: f64,
    /// Seed of the generator.
    pub seed: u64,
}

/// The graph the book's sweep runs on.
pub const BOOK_GRAPH: GraphParams = GraphParams {
    users: 100_000,
    mean_followees: 75.0,
    sigma: 1.2,
    max_followees: 5_000,
    zipf_s: 0.9,
    inactive: 0.3,
    seed: 15,
};

/// A small graph of the same shape, for tests.
pub const TEST_GRAPH: GraphParams = GraphParams {
    users: 2_000,
    mean_followees: 30.0,
    sigma: 1.0,
    max_followees: 500,
    zipf_s: 0.9,
    inactive: 0.3,
    seed: 15,
};

/// Timeline reads per post, from the chapter's capacity inputs.
pub const READS_PER_POST: f64 =
    crate::capacity::READS_PER_USER_PER_DAY / crate::capacity::POSTS_PER_USER_PER_DAY;

/// The thresholds the sweep tries (followers).
pub const THRESHOLDS: &[u64] = &[3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000];

/// The threshold the service uses by default: the largest value of the
/// sweep whose fan-out the measured workers deliver within the five-second
/// goal (the delivery table prints that audience beside it).
pub const CHOSEN_THRESHOLD: u64 = 100_000;
// ANCHOR_END: params

/// A follow graph in adjacency lists.
#[derive(Clone, Debug)]
pub struct Graph {
    /// For each user, whom they follow.
    pub followees: Vec<Vec<u32>>,
    /// For each user, how many follow them.
    pub followers: Vec<u32>,
    /// For each user, whether their timeline is cached (they read recently).
    pub active: Vec<bool>,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

// ANCHOR: generate
/// Generates the graph of `p`, the same for the same parameters.
pub fn generate(p: &GraphParams) -> Graph {
    let n = p.users as usize;
    let mut rng = StdRng::seed_from_u64(p.seed);
    // Popularity: a random permutation of users gets Zipf weights by rank.
    let mut by_rank: Vec<u32> = (0..p.users).collect();
    for i in (1..n).rev() {
        by_rank.swap(i, rng.random_range(0..=i));
    }
    let mut cumulative = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += (rank as f64).powf(-p.zipf_s);
        cumulative.push(total);
    }
    let mu = p.mean_followees.ln() - p.sigma * p.sigma / 2.0;
    let mut followees = Vec::with_capacity(n);
    let mut followers = vec![0u32; n];
    for user in 0..p.users {
        let k = (mu + p.sigma * normal(&mut rng)).exp().round();
        let k = (k as u32).clamp(1, p.max_followees.min(p.users - 1)) as usize;
        let mut mine: Vec<u32> = Vec::with_capacity(k);
        let mut attempts = 0;
        while mine.len() < k && attempts < 20 * k {
            attempts += 1;
            let x = rng.random::<f64>() * total;
            let rank = cumulative.partition_point(|c| *c < x).min(n - 1);
            let target = by_rank[rank];
            if target != user && !mine.contains(&target) {
                mine.push(target);
            }
        }
        for f in &mine {
            followers[*f as usize] += 1;
        }
        followees.push(mine);
    }
    let active = (0..n).map(|_| rng.random::<f64>() >= p.inactive).collect();
    Graph {
        followees,
        followers,
        active,
    }
}
// ANCHOR_END: generate

/// Summary statistics of a graph.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GraphStats {
    /// Users.
    pub users: usize,
    /// Follow edges.
    pub edges: u64,
    /// Mean followers (equal to mean followees).
    pub mean_followers: f64,
    /// Median followers.
    pub median_followers: u32,
    /// 99th percentile of followers.
    pub p99_followers: u32,
    /// Most followers of any user.
    pub max_followers: u32,
    /// Mean timeline writes per post under pure fan-out on write (active followers + 1).
    pub mean_fan_out: f64,
}

fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

impl Graph {
    /// Followers of each user that have a cached timeline.
    pub fn active_followers(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.followers.len()];
        for (u, fs) in self.followees.iter().enumerate() {
            if self.active[u] {
                for f in fs {
                    out[*f as usize] += 1;
                }
            }
        }
        out
    }

    /// The graph's summary.
    pub fn stats(&self) -> GraphStats {
        let mut sorted = self.followers.clone();
        sorted.sort_unstable();
        let edges: u64 = sorted.iter().map(|f| u64::from(*f)).sum();
        let active = self.active_followers();
        let writes: u64 = active.iter().map(|a| u64::from(*a) + 1).sum();
        GraphStats {
            users: sorted.len(),
            edges,
            mean_followers: edges as f64 / sorted.len().max(1) as f64,
            median_followers: quantile(&sorted, 0.5),
            p99_followers: quantile(&sorted, 0.99),
            max_followers: sorted.last().copied().unwrap_or(0),
            mean_fan_out: writes as f64 / sorted.len().max(1) as f64,
        }
    }
}

/// One row of the sweep.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepRow {
    /// "push", "pull" or "hybrid".
    pub strategy: String,
    /// The threshold (None for push and pull).
    pub threshold: Option<u64>,
    /// Share of users marked celebrities.
    pub celebrities: f64,
    /// Mean timeline writes per post.
    pub writes_per_post: f64,
    /// The largest fan-out of one post.
    pub max_writes: u64,
    /// Mean keys touched per timeline read.
    pub keys_per_read: f64,
    /// 99th percentile of keys touched per read.
    pub p99_keys_per_read: u32,
    /// Share of reads that pull at least one author's posts.
    #[serde(default)]
    pub pulling_reads: f64,
}

// ANCHOR: sweep
/// The sweep: push, pull, and the hybrid at each of `thresholds`.
pub fn sweep(g: &Graph, thresholds: &[u64]) -> Vec<SweepRow> {
    let n = g.followers.len();
    let active_followers = g.active_followers();
    let readers: Vec<usize> = (0..n).filter(|u| g.active[*u]).collect();
    let row =
        |strategy: &str, threshold: Option<u64>, pulled: &dyn Fn(usize) -> bool, cached: bool| {
            // Writes: each pushed author's post goes to its active followers and itself.
            let mut writes = 0u64;
            let mut max_writes = 0u64;
            let mut celebrities = 0usize;
            for (u, af) in active_followers.iter().enumerate() {
                if pulled(u) {
                    celebrities += 1;
                } else {
                    let w = u64::from(*af) + 1;
                    writes += w;
                    max_writes = max_writes.max(w);
                }
            }
            // Reads: the reader's timeline key, plus one key per pulled followee (and self).
            let mut keys: Vec<u32> = readers
                .iter()
                .map(|r| {
                    let pulled_followees = g.followees[*r]
                        .iter()
                        .filter(|f| pulled(**f as usize))
                        .count() as u32;
                    u32::from(cached) + pulled_followees + u32::from(pulled(*r))
                })
                .collect();
            let pulling = readers
                .iter()
                .zip(&keys)
                .filter(|(_, k)| **k > u32::from(cached))
                .count();
            keys.sort_unstable();
            let keys_per_read =
                keys.iter().map(|k| f64::from(*k)).sum::<f64>() / keys.len().max(1) as f64;
            let writes_per_post = writes as f64 / n.max(1) as f64;
            SweepRow {
                strategy: strategy.to_string(),
                threshold,
                celebrities: celebrities as f64 / n.max(1) as f64,
                writes_per_post,
                max_writes,
                keys_per_read,
                p99_keys_per_read: quantile(&keys, 0.99),
                pulling_reads: pulling as f64 / readers.len().max(1) as f64,
            }
        };
    let mut rows = vec![row("push", None, &|_| false, true)];
    for t in thresholds {
        let t = *t;
        rows.push(row(
            "hybrid",
            Some(t),
            &|u| u64::from(g.followers[u]) >= t,
            true,
        ));
    }
    rows.push(row("pull", None, &|_| true, false));
    rows
}
// ANCHOR_END: sweep

// ANCHOR: costs
/// Measured prices, in core-microseconds (the machine's logical CPUs
/// divided by the operations a second it sustained, so the database's and
/// Redis's CPU on the same machine is included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Costs {
    /// One timeline written by a fan-out worker.
    pub timeline_write_us: f64,
    /// A push read: the cached timeline, hydrated and filtered.
    pub push_read_us: f64,
    /// A pull read's cost that does not grow with its keys.
    pub pull_fixed_us: f64,
    /// Each author a pull reads.
    pub pull_per_key_us: f64,
    /// What pulling anything adds to a push read, beyond its keys (the hybrid).
    pub hybrid_pull_fixed_us: f64,
}

/// Core time per post made: its fan-out, and its share of the reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostCost {
    /// Fan-out: timeline writes per post x the price of one.
    pub writes_us: f64,
    /// Reads: reads per post x the mean price of a read.
    pub reads_us: f64,
}

impl PostCost {
    /// Writes and reads together.
    pub fn total_us(&self) -> f64 {
        self.writes_us + self.reads_us
    }
}

impl Costs {
    /// Prices from the measured runs: `pulls` are `(keys, µs)` of pull reads
    /// (at least two key counts; the line through the fewest and the most
    /// keys), `hybrid` the `(pulled keys, µs)` of a hybrid read.
    pub fn fit(
        timeline_write_us: f64,
        push_read_us: f64,
        hybrid: (f64, f64),
        pulls: &[(f64, f64)],
    ) -> Option<Costs> {
        let lo = pulls.iter().min_by(|a, b| a.0.total_cmp(&b.0))?;
        let hi = pulls.iter().max_by(|a, b| a.0.total_cmp(&b.0))?;
        if hi.0 <= lo.0 {
            return None;
        }
        let per_key = ((hi.1 - lo.1) / (hi.0 - lo.0)).max(0.0);
        Some(Costs {
            timeline_write_us,
            push_read_us,
            pull_fixed_us: (lo.1 - per_key * lo.0).max(0.0),
            pull_per_key_us: per_key,
            hybrid_pull_fixed_us: (hybrid.1 - push_read_us - per_key * hybrid.0).max(0.0),
        })
    }

    /// The core time per post of a sweep row, with `reads_per_post` reads per post.
    pub fn per_post(&self, row: &SweepRow, reads_per_post: f64) -> PostCost {
        let cached = row.strategy != "pull";
        let read_us = if cached {
            let pulled_keys = row.keys_per_read - 1.0;
            self.push_read_us
                + row.pulling_reads * self.hybrid_pull_fixed_us
                + pulled_keys * self.pull_per_key_us
        } else {
            self.pull_fixed_us + row.keys_per_read * self.pull_per_key_us
        };
        PostCost {
            writes_us: row.writes_per_post * self.timeline_write_us,
            reads_us: reads_per_post * read_us,
        }
    }

    /// Reads per post below which pure pull costs less than pure push.
    pub fn break_even_reads(&self, push: &SweepRow, pull: &SweepRow) -> Option<f64> {
        let push_read = self.per_post(push, 1.0).reads_us;
        let pull_read = self.per_post(pull, 1.0).reads_us;
        (pull_read > push_read)
            .then(|| push.writes_per_post * self.timeline_write_us / (pull_read - push_read))
    }
}
// ANCHOR_END: costs

/// The graph summary as a markdown table.
pub fn stats_markdown(p: &GraphParams, s: &GraphStats) -> String {
    let mut out = String::from("| Graph | Value |\n|---|---:|\n");
    let rows: [(&str, String); 9] = [
        ("Users", s.users.to_string()),
        ("Follow edges", s.edges.to_string()),
        (
            "Mean followers (= mean followees)",
            format!("{:.1}", s.mean_followers),
        ),
        ("Median followers", s.median_followers.to_string()),
        ("99th percentile of followers", s.p99_followers.to_string()),
        ("Most followers", s.max_followers.to_string()),
        (
            "Inactive users (no cached timeline)",
            format!("{:.0}%", p.inactive * 100.0),
        ),
        (
            "Mean timeline writes per post, pure push",
            format!("{:.1}", s.mean_fan_out),
        ),
        ("Seed", p.seed.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out
}

fn strategy_label(r: &SweepRow) -> String {
    match r.threshold {
        Some(t) => format!("{} at {t}", r.strategy),
        None => r.strategy.clone(),
    }
}

/// What the sweep counts: writes and the largest fan-out, and how long the
/// largest takes at `timelines_per_s` (the measured delivery rate).
pub fn writes_markdown(rows: &[SweepRow], timelines_per_s: f64, goal_s: f64) -> String {
    let mut out = String::from(
        "| Strategy | Celebrities | Writes per post | Largest fan-out | Largest delivered in (s) | Within the goal |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let secs = r.max_writes as f64 / timelines_per_s;
        let _ = writeln!(
            out,
            "| {} | {:.2}% | {:.1} | {} | {:.2} | {} |",
            strategy_label(r),
            r.celebrities * 100.0,
            r.writes_per_post,
            r.max_writes,
            secs,
            if secs <= goal_s { "yes" } else { "no" },
        );
    }
    out
}

/// What the sweep costs: keys per read, and core time per post at the measured prices.
pub fn cost_markdown(rows: &[SweepRow], costs: &Costs, reads_per_post: f64) -> String {
    let mut out = String::from(
        "| Strategy | Keys per read (mean / p99) | Reads that pull | Fan-out (core ms per post) | Reads (core ms per post) | Total (core ms per post) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let c = costs.per_post(r, reads_per_post);
        let _ = writeln!(
            out,
            "| {} | {:.2} / {} | {:.1}% | {:.2} | {:.2} | {:.2} |",
            strategy_label(r),
            r.keys_per_read,
            r.p99_keys_per_read,
            r.pulling_reads * 100.0,
            c.writes_us / 1_000.0,
            c.reads_us / 1_000.0,
            c.total_us() / 1_000.0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_graph() {
        let a = generate(&TEST_GRAPH);
        let b = generate(&TEST_GRAPH);
        assert_eq!(a.followees, b.followees);
    }

    #[test]
    fn follower_counts_are_skewed_like_a_power_law() {
        let s = generate(&TEST_GRAPH).stats();
        assert!(s.max_followers as f64 > 10.0 * s.mean_followers, "{s:?}");
        assert!(f64::from(s.median_followers) < s.mean_followers, "{s:?}");
    }

    #[test]
    fn the_sweep_moves_work_from_writes_to_reads_as_the_threshold_falls() {
        let g = generate(&TEST_GRAPH);
        let rows = sweep(&g, THRESHOLDS);
        let push = &rows[0];
        let pull = rows.last().expect("pull row");
        assert_eq!(push.keys_per_read, 1.0);
        assert_eq!(pull.writes_per_post, 0.0);
        // Lower thresholds: fewer writes, more keys per read.
        let hybrid: Vec<&SweepRow> = rows.iter().filter(|r| r.threshold.is_some()).collect();
        for w in hybrid.windows(2) {
            assert!(w[0].writes_per_post <= w[1].writes_per_post);
            assert!(w[0].keys_per_read >= w[1].keys_per_read);
            assert!(w[0].max_writes <= w[1].max_writes);
        }
        // Pure pull reads one key per followee: far more than any hybrid.
        assert!(pull.keys_per_read > 10.0 * push.keys_per_read);
        assert_eq!(push.pulling_reads, 0.0);
        assert_eq!(pull.pulling_reads, 1.0);
        for w in hybrid.windows(2) {
            assert!(w[0].pulling_reads >= w[1].pulling_reads);
        }
    }

    #[test]
    fn the_cost_model_reproduces_the_measured_reads_it_was_fitted_to() {
        let pulls = [(11.0, 600.0), (101.0, 2_400.0), (1_001.0, 20_400.0)];
        let c = Costs::fit(40.0, 800.0, (5.0, 1_200.0), &pulls).expect("fit");
        assert!((c.pull_per_key_us - 20.0).abs() < 1e-9);
        assert!((c.pull_fixed_us - 380.0).abs() < 1e-9);
        assert!((c.hybrid_pull_fixed_us - 300.0).abs() < 1e-9);
        let row = |strategy: &str, keys: f64, pulling: f64, writes: f64| SweepRow {
            strategy: strategy.into(),
            threshold: None,
            celebrities: 0.0,
            writes_per_post: writes,
            max_writes: 0,
            keys_per_read: keys,
            p99_keys_per_read: 0,
            pulling_reads: pulling,
        };
        // One read per post: the read price is the measured read.
        let push = row("push", 1.0, 0.0, 50.0);
        assert_eq!(c.per_post(&push, 1.0).reads_us, 800.0);
        assert_eq!(c.per_post(&push, 1.0).writes_us, 2_000.0);
        assert_eq!(
            c.per_post(&row("pull", 11.0, 1.0, 0.0), 1.0).reads_us,
            600.0
        );
        assert_eq!(
            c.per_post(&row("hybrid", 6.0, 1.0, 40.0), 1.0).reads_us,
            1_200.0
        );
        // Pull at 101 keys costs 1,600 µs a read more than push, and push's
        // fan-out 2,000 µs a post: pull wins below 1.25 reads per post.
        let pull = row("pull", 101.0, 1.0, 0.0);
        assert_eq!(c.break_even_reads(&push, &pull), Some(1.25));
    }
}
