//! How often random (or hashed) codes collide: the birthday bound, computed
//! and checked by simulation.
//!
//! With `N` possible codes and `n` codes drawn uniformly at random:
//!
//! - P(at least one collision) = 1 - exp(-n(n-1) / 2N)  (the birthday bound);
//! - expected colliding inserts = n - N(1 - (1 - 1/N)^n), about n^2 / 2N
//!   while n is much smaller than N: each one is a retry on the create path;
//! - P(the next insert collides) = n / N.
//!
//! The book's tables are generated from these functions by
//! [`collision_table_markdown`] and [`collision_simulation_markdown`].

use std::fmt::Write;

// ANCHOR: birthday
/// P(at least one collision) among `n` uniform draws from `space` values.
pub fn p_any_collision(n: f64, space: f64) -> f64 {
    // 1 - exp(-x) loses every digit when x is tiny (1 - 0.999999999 in
    // floating point); -expm1(-x) keeps them.
    -(-n * (n - 1.0) / (2.0 * space)).exp_m1()
}

/// Expected number of draws, among `n`, that hit an already-drawn value.
pub fn expected_colliding_inserts(n: f64, space: f64) -> f64 {
    // n - N(1 - (1 - 1/N)^n) subtracts two nearly equal numbers when n << N.
    // With t = 1/N and y = n ln(1 - t) it equals N (e^y - 1 - y) + n (1 + ln(1 - t)/t),
    // and each term can be computed without cancellation by a short series.
    let t = 1.0 / space;
    let y = n * (-t).ln_1p();
    let e_minus_1_minus_y = if y.abs() < 1e-2 {
        y * y * (1.0 / 2.0 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y / 120.0)))
    } else {
        y.exp_m1() - y
    };
    let one_plus_ln_over_t = if t < 1e-4 {
        -t * (1.0 / 2.0 + t * (1.0 / 3.0 + t * (1.0 / 4.0 + t / 5.0)))
    } else {
        1.0 + (-t).ln_1p() / t
    };
    space * e_minus_1_minus_y + n * one_plus_ln_over_t
}
// ANCHOR_END: birthday

/// 62^k, the number of k-character base62 codes.
pub fn code_space(chars: u32) -> f64 {
    62f64.powi(chars as i32)
}

/// Link counts in the table: 10^6 to 10^10.
const TABLE_LINKS: [u64; 5] = [
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
];
/// Code lengths in the table.
const TABLE_CHARS: [u32; 3] = [6, 7, 8];

/// The collision tables for the book, with the chapter's own link count
/// over the retention period as the last row.
pub fn collision_table_markdown() -> anyhow::Result<String> {
    let years = crate::capacity::requirements_estimate()?
        .inputs
        .retention_years;
    Ok(collision_table_markdown_with(
        crate::capacity::links_kept()?,
        years,
    ))
}

/// The collision tables for the book, as markdown: the counts of
/// [`TABLE_LINKS`], then `kept`, the links of a retention of `years`.
pub fn collision_table_markdown_with(kept: f64, years: f64) -> String {
    let mut out = String::new();
    let spaces: Vec<String> = TABLE_CHARS
        .iter()
        .map(|&k| format!("62^{k} = {}", group(62u64.pow(k))))
        .collect();
    let _ = writeln!(out, "Code spaces: {}.\n", spaces.join("; "));
    // Each table: a title, and the cell for (links, code space).
    type Cell = fn(f64, f64) -> String;
    let tables: [(&str, Cell); 3] = [
        ("P(at least one collision)", |n, s| {
            prob(p_any_collision(n, s))
        }),
        ("Expected colliding inserts (retries)", |n, s| {
            count(expected_colliding_inserts(n, s))
        }),
        ("P(the next insert collides)", |n, s| prob((n / s).min(1.0))),
    ];
    for (title, cell) in tables {
        let _ = writeln!(out, "**{title}**\n");
        let _ = writeln!(out, "| links | 6 chars | 7 chars | 8 chars |");
        let _ = writeln!(out, "|---:|---:|---:|---:|");
        let rows = TABLE_LINKS.iter().map(|&n| (group(n), n as f64)).chain([(
            format!(
                "**{}** ({years} years of links)",
                group(kept.round() as u64)
            ),
            kept,
        )]);
        for (label, n) in rows {
            let cells: Vec<String> = TABLE_CHARS
                .iter()
                .map(|&k| cell(n, code_space(k)))
                .collect();
            let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    out
}

// ANCHOR: simulation
/// One checkpoint of the simulation: the formulas beside what the draws showed.
#[derive(Clone, Debug)]
pub struct SimulatedRow {
    /// Codes drawn so far.
    pub n: u64,
    /// P(at least one collision) from the formula.
    pub p_formula: f64,
    /// Fraction of trials with at least one collision by `n` draws.
    pub p_simulated: f64,
    /// Expected colliding inserts from the formula.
    pub e_formula: f64,
    /// Mean colliding inserts over the trials.
    pub e_simulated: f64,
}

/// Draws `checkpoints.last()` uniform codes from `space`, `trials` times,
/// recording, at each checkpoint (ascending), whether a collision happened and how many.
pub fn simulate(space: u64, checkpoints: &[u64], trials: u32, seed: u64) -> Vec<SimulatedRow> {
    let mut rng = SplitMix64(seed);
    let last = checkpoints.last().copied().unwrap_or(0);
    // A bitmap of taken codes; 62^4 codes fit in 1.8 MB. Only the bits a
    // trial set are cleared afterwards, so a trial costs O(n), not O(space).
    let mut taken = vec![0u64; space.div_ceil(64) as usize];
    let mut drawn = Vec::with_capacity(last as usize);
    let mut any = vec![0u32; checkpoints.len()];
    let mut colliding = vec![0u64; checkpoints.len()];
    for _ in 0..trials {
        let mut hits = 0u64;
        let mut next_checkpoint = 0;
        for i in 1..=last {
            let code = rng.below(space);
            let (word, bit) = ((code / 64) as usize, 1u64 << (code % 64));
            if taken[word] & bit != 0 {
                hits += 1;
            } else {
                taken[word] |= bit;
                drawn.push(code);
            }
            if checkpoints.get(next_checkpoint) == Some(&i) {
                any[next_checkpoint] += u32::from(hits > 0);
                colliding[next_checkpoint] += hits;
                next_checkpoint += 1;
            }
        }
        for code in drawn.drain(..) {
            taken[(code / 64) as usize] = 0;
        }
    }
    checkpoints
        .iter()
        .enumerate()
        .map(|(i, &n)| SimulatedRow {
            n,
            p_formula: p_any_collision(n as f64, space as f64),
            p_simulated: f64::from(any[i]) / f64::from(trials),
            e_formula: expected_colliding_inserts(n as f64, space as f64),
            e_simulated: colliding[i] as f64 / f64::from(trials),
        })
        .collect()
}
// ANCHOR_END: simulation

/// Parameters of the simulation the book shows: 4-character codes, so
/// collisions are frequent enough to measure in a second.
pub const SIM_CHARS: u32 = 4;
/// Checkpoints of the book's simulation.
pub const SIM_CHECKPOINTS: [u64; 6] = [1_000, 2_000, 3_000, 5_000, 7_500, 10_000];
/// Trials of the book's simulation.
pub const SIM_TRIALS: u32 = 2_000;
/// Seed of the book's simulation: the same numbers on every machine.
pub const SIM_SEED: u64 = 0x5EED_C0DE;

/// The simulation table for the book, as markdown.
pub fn collision_simulation_markdown() -> String {
    let space = 62u64.pow(SIM_CHARS);
    let rows = simulate(space, &SIM_CHECKPOINTS, SIM_TRIALS, SIM_SEED);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{SIM_TRIALS} trials drawing uniform {SIM_CHARS}-character codes (62^{SIM_CHARS} = {} codes), seed {SIM_SEED:#x}.\n",
        group(space)
    );
    let _ = writeln!(
        out,
        "| codes drawn | P(collision), formula | P(collision), simulated | colliding inserts, formula | colliding inserts, simulated |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            group(r.n),
            r.p_formula,
            r.p_simulated,
            r.e_formula,
            r.e_simulated
        );
    }
    out
}

/// SplitMix64: tiny, fast, and fixed forever, unlike a library RNG whose
/// stream may change between versions and silently change the book's table.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)` by multiply-shift; the bias is bound / 2^64, below 1e-12 here.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A probability with enough digits to compare rows.
fn prob(p: f64) -> String {
    match p {
        // Includes 1.0 itself: in floating point 1 - e^-x is exactly 1 for large x.
        p if p >= 0.9995 => "> 0.999".to_string(),
        p if p >= 0.01 => format!("{p:.3}"),
        p => format!("{p:.1e}"),
    }
}

/// An expected count: exact-looking when large, scientific when tiny.
fn count(e: f64) -> String {
    match e {
        e if e >= 1000.0 => group(e.round() as u64),
        e if e >= 1.0 => format!("{e:.1}"),
        e if e >= 0.01 => format!("{e:.2}"),
        e => format!("{e:.1e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_exact_sums_on_a_small_space() {
        // Exact: the i-th draw collides with probability 1 - (1 - 1/N)^(i-1).
        let space: f64 = 1_000.0;
        let (mut e_exact, mut p_none) = (0.0, 1.0);
        for i in 1..=3_000u32 {
            let prior = f64::from(i - 1);
            e_exact += 1.0 - (1.0 - 1.0 / space).powf(prior);
            p_none *= (1.0 - prior / space).max(0.0);
            let n = f64::from(i);
            let err = (expected_colliding_inserts(n, space) - e_exact).abs();
            assert!(err < 1e-8 + 1e-9 * e_exact, "E at {i}: off by {err}");
            // The birthday bound is an approximation; it is close for n << N.
            if i <= 30 {
                assert!(
                    (p_any_collision(n, space) - (1.0 - p_none)).abs() < 0.01,
                    "P at {i}"
                );
            }
        }
    }

    #[test]
    fn tiny_probabilities_keep_their_digits() {
        // x = n(n-1)/2N is 2.3e-9 here, and 1 - e^-x = x - x^2/2 + ... to 1e-18.
        let x = 1e3 * 999.0 / (2.0 * code_space(8));
        let exact = x - x * x / 2.0;
        let p = p_any_collision(1e3, code_space(8));
        assert!((p / exact - 1.0).abs() < 1e-14, "{p} vs {exact}");
        // The textbook form loses about half of its digits at this size.
        let naive = 1.0 - (-x).exp();
        assert!((naive / exact - 1.0).abs() > 1e-10, "{naive} vs {exact}");
        let e = expected_colliding_inserts(1e6, code_space(8));
        let approx = 1e6 * (1e6 - 1.0) / (2.0 * code_space(8));
        assert!((e / approx - 1.0).abs() < 1e-6, "{e} vs {approx}");
    }

    #[test]
    fn the_simulation_agrees_with_the_formulas() {
        let space = 62u64.pow(SIM_CHARS);
        let t = f64::from(SIM_TRIALS);
        for r in simulate(space, &SIM_CHECKPOINTS, SIM_TRIALS, SIM_SEED) {
            // Four standard errors: a binomial proportion, and a count whose
            // variance is close to its mean (nearly Poisson).
            let p_tol = 4.0 * (r.p_formula * (1.0 - r.p_formula) / t).sqrt() + 0.002;
            let e_tol = 4.0 * (r.e_formula / t).sqrt() + 0.002;
            assert!((r.p_simulated - r.p_formula).abs() <= p_tol, "{r:?}");
            assert!((r.e_simulated - r.e_formula).abs() <= e_tol, "{r:?}");
        }
    }

    #[test]
    fn tables_are_well_formed() {
        let t = collision_table_markdown().expect("tables");
        assert_eq!(t.matches("| 10,000,000,000 |").count(), 3);
        assert!(t.contains("62^7 = 3,521,614,606,208"));
        assert_eq!(group(0), "0");
        assert_eq!(group(1_000), "1,000");
    }
}
