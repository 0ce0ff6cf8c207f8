//! The URL shortener's performance report (`cargo xtask bench-report url-shortener`).
//!
//! Reads the criterion group `url_shortener` (`benches/url-shortener.rs`) and
//! the load-test results (`benches/url-shortener-load.rs`), and writes:
//!
//! - `src/url-shortener/generated/redirects.md` and `redirects.svg`: redirects
//!   per second and latency on each path beside the constant-302 ceiling;
//! - `src/url-shortener/generated/codegen.md`: base62 against the `base62`
//!   crate, and the cost of one code from each generation strategy;
//! - `src/url-shortener/generated/measured.json`: the per-core figure the
//!   capacity estimate is computed from, after which the capacity table is
//!   regenerated so the two cannot disagree.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use capacity::units::count;

use super::plot::{Bar, BarChart, log_bar_chart};
use super::{BenchResult, Context, CriterionBench, fmt_ns, fmt_ratio, markdown_table};
use crate::generate;

const CHAPTER: &str = "url-shortener";
const COMMAND: &str = "cargo xtask bench-report url-shortener";
const GROUP: &str = "url_shortener";
const DIR: &str = "src/url-shortener/generated";

/// The fleet-wide target the requirements state (commonly claimed for such services).
const TARGET_REDIRECTS_PER_SEC: f64 = 100_000.0;
/// The latency target of the requirements, p95, in microseconds.
const TARGET_P95_US: f64 = 50_000.0;
/// The load-test path whose per-core figure sizes the fleet: a node whose
/// in-process cache misses, so every redirect costs a Redis round trip.
const SIZING_PATH: &str = "redirect_redis";
/// Results older than this relative to their ceiling come from another run.
const SAME_RUN_SECS: u64 = 15 * 60;

/// Load-test configurations in the order the table shows them, with their labels.
const PATHS: &[(&str, &str)] = &[
    ("ceiling_constant_302", "Ceiling: constant 302, no lookup"),
    (
        "redirect_local_cache",
        "Redirect, in-process cache hit (moka)",
    ),
    ("redirect_redis", "Redirect, Redis hit"),
    ("redirect_postgres", "Redirect, PostgreSQL lookup"),
];

/// Criterion ids of the code-generation table, with their labels.
const CODEGEN: &[(&str, &str)] = &[
    ("base62_encode_ours", "base62 encode, ours"),
    ("base62_encode_crate", "base62 encode, `base62` crate"),
    ("base62_decode_ours", "base62 decode, ours"),
    ("base62_decode_crate", "base62 decode, `base62` crate"),
    ("strategy_counter_memory", "Counter, in-process"),
    ("strategy_random", "Random 7 characters"),
    ("strategy_hash", "Hash truncation (SHA-256)"),
    (
        "strategy_range_memory",
        "Range of 1,000, in-process allocator",
    ),
    (
        "strategy_range_scrambled_memory",
        "Range of 1,000, scrambled",
    ),
    (
        "strategy_counter_postgres",
        "Counter on PostgreSQL (one lease per code)",
    ),
    ("strategy_range_postgres", "Range of 1,000 on PostgreSQL"),
];

/// Writes the chapter's tables, plot and measured input; returns the files written.
pub fn render(ctx: &Context) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let results = ctx.results(CHAPTER)?;
    if results.is_empty() {
        bail!("no load-test results in target/sdb-results/{CHAPTER}: run `{COMMAND}`");
    }
    let ceiling = find(&results, PATHS[0].0)?;
    for r in &results {
        if r.recorded_at_unix_s.abs_diff(ceiling.recorded_at_unix_s) > SAME_RUN_SECS {
            bail!(
                "{} was not measured in the same run as its ceiling; re-run `{COMMAND}`",
                r.name
            );
        }
    }
    let header = ctx.header(COMMAND);
    written.push(ctx.write(
        &format!("{DIR}/redirects.md"),
        &redirect_table(&header, &results)?,
    )?);
    written.push(ctx.write(
        &format!("{DIR}/redirects.svg"),
        &redirect_plot(ctx, &results)?,
    )?);

    let benches = ctx.criterion(GROUP)?;
    written.push(ctx.write(
        &format!("{DIR}/codegen.md"),
        &codegen_table(&header, &benches),
    )?);

    let sizing = find(&results, SIZING_PATH)?;
    let measured = capacity::Measured {
        ops_per_core: per_core(sizing)?,
        path: format!("the {SIZING_PATH} path of the load test"),
        measured_on: ctx.machine.one_line(),
    };
    written.push(ctx.write(&format!("{DIR}/measured.json"), &measured.to_json())?);
    written.extend(regenerate_capacity(&ctx.root)?);
    Ok(written)
}

fn find<'a>(results: &'a [BenchResult], name: &str) -> Result<&'a BenchResult> {
    results
        .iter()
        .find(|r| r.name == name)
        .with_context(|| format!("no result {name:?} for {CHAPTER}; run `{COMMAND}`"))
}

fn per_core(r: &BenchResult) -> Result<f64> {
    let ops = r
        .ops_per_sec
        .with_context(|| format!("{} has no throughput", r.name))?;
    Ok(ops / r.cores.max(1) as f64)
}

/// The redirect table: throughput, latency, ratio to the ceiling, per core, and the target.
pub fn redirect_table(header: &str, results: &[BenchResult]) -> Result<String> {
    let ceiling = find(results, PATHS[0].0)?;
    let mut rows = Vec::new();
    for (name, label) in PATHS {
        let r = find(results, name)?;
        let ops = r.ops_per_sec.unwrap_or(0.0);
        let core = per_core(r)?;
        rows.push(vec![
            (*label).to_string(),
            count(ops),
            us(r.p50_us),
            us(r.p99_us),
            r.throughput_ratio(ceiling).map_or("—".into(), fmt_ratio),
            count(core),
            count((TARGET_REDIRECTS_PER_SEC / core).ceil()),
            r.extra
                .get("store_loads_per_lookup")
                .and_then(|v| v.as_f64())
                .map_or("—".into(), |v| format!("{v:.2}")),
            r.errors.to_string(),
            // p99 under the target implies p95 under it.
            match r.p99_us {
                Some(p99) if p99 < TARGET_P95_US => "yes (p99 below it)".to_string(),
                Some(_) => "no".to_string(),
                None => "—".to_string(),
            },
        ]);
    }
    let table = markdown_table(
        &[
            "Path",
            "Requests/s",
            "p50",
            "p99",
            "Ratio to ceiling",
            "Requests/s per core",
            "Cores for 100K/s",
            "Database reads per redirect",
            "Errors",
            "p95 under 50 ms?",
        ],
        &rows,
    );
    let c = ceiling.concurrency.unwrap_or(0);
    Ok(format!(
        "{header}{table}\n{c} keep-alive connections, closed loop, {:.0} s per path; load generator \
         and server share the machine's {} logical CPUs, so per-core figures are conservative. \
         Target claimed for such services: 100K redirects/s fleet-wide with p95 under {}.\n",
        ceiling.duration_s,
        ceiling.cores,
        fmt_ns(TARGET_P95_US * 1_000.0),
    ))
}

fn us(v: Option<f64>) -> String {
    v.map_or("—".into(), |us| fmt_ns(us * 1_000.0))
}

fn redirect_plot(ctx: &Context, results: &[BenchResult]) -> Result<String> {
    let mut bars = Vec::new();
    for (name, label) in PATHS {
        let r = find(results, name)?;
        bars.push(Bar {
            label: (*label).to_string(),
            value_ns: r.p99_us.unwrap_or(0.0) * 1_000.0,
            reference_ns: Some(TARGET_P95_US * 1_000.0),
        });
    }
    log_bar_chart(
        &BarChart {
            title: "URL shortener: p99 redirect latency on loopback",
            value_label: "p99 latency, measured",
            reference_label: "target: p95 under 50 ms",
            caption: &ctx.machine.one_line(),
        },
        &bars,
    )
}

/// The code-generation table from the criterion group; missing benches are listed, not invented.
pub fn codegen_table(header: &str, benches: &[CriterionBench]) -> String {
    let median = |id: &str| {
        benches
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.median_ns.point)
    };
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (id, label) in CODEGEN {
        let Some(ns) = median(id) else {
            missing.push(*id);
            continue;
        };
        // Ours against the crate, where a crate twin exists.
        let twin = id
            .strip_suffix("_ours")
            .and_then(|stem| median(&format!("{stem}_crate")));
        rows.push(vec![
            (*label).to_string(),
            fmt_ns(ns),
            count(1e9 / ns),
            twin.map_or("—".into(), |t| fmt_ratio(ns / t)),
        ]);
    }
    let mut out = header.to_string();
    out.push_str(&markdown_table(
        &[
            "Operation",
            "Median",
            "Per second, one core",
            "Ours / crate",
        ],
        &rows,
    ));
    if !missing.is_empty() {
        out.push_str(&format!(
            "\nNot measured in this run: {}.\n",
            missing.join(", ")
        ));
    }
    out
}

/// Rewrites the generated files computed from `measured.json` (the capacity table).
fn regenerate_capacity(root: &Path) -> Result<Vec<PathBuf>> {
    let registry: Vec<_> = generate::registry()
        .into_iter()
        .filter(|g| g.path == "src/url-shortener/generated/capacity.md")
        .collect();
    generate::write_all(root, &registry, None)
}
