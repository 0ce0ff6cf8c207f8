//! The chapter's performance tables and plot, computed from its committed results.
//!
//! `cargo xtask bench-report url-shortener` runs `benches/codegen.rs`
//! (criterion group `url_shortener`) and `benches/redirect-load.rs` (the
//! loopback load test, every path interleaved with its ceiling over several
//! rounds), and commits what they measured under
//! `src/url-shortener/generated/results/`. The functions here turn those
//! results into the generated files: the redirect tables and plot, the
//! code-generation table, and `measured.json`, the per-core figure the
//! capacity estimate is computed from. They are pure, so `cargo xtask gen`
//! reproduces the committed tables exactly.

use anyhow::{Context as _, Result};
use bookkit::BenchResult;
use bookkit::criterion::CriterionBench;
use bookkit::plot::{Bar, BarChart, log_bar_chart};
use bookkit::results::{self, find};
use bookkit::table::{
    fmt_count, fmt_ns, fmt_ratio, fmt_spread, fmt_us, markdown_table, measured_header,
};

/// The chapter's slug.
pub const CHAPTER: &str = "url-shortener";
const COMMAND: &str = "cargo xtask bench-report url-shortener";

/// The criterion group of `benches/codegen.rs`.
pub const GROUP: &str = "url_shortener";

/// The fleet-wide target the requirements state (commonly claimed for such services).
const TARGET_REDIRECTS_PER_SEC: f64 = 100_000.0;
/// The latency target of the requirements, p95, in microseconds.
const TARGET_P95_US: f64 = 50_000.0;
/// The load-test path whose per-core figure sizes the fleet: a node whose
/// in-process cache misses, so every redirect costs a Redis round trip.
pub const SIZING_PATH: &str = "redirect_redis";

/// The ceiling of the load test: a constant 302, no lookup.
pub const CEILING: &str = "ceiling_constant_302";

/// Load-test configurations in the order the tables show them, with their labels.
pub const PATHS: &[(&str, &str)] = &[
    (CEILING, "Ceiling: constant 302"),
    ("redirect_local_cache", "In-process cache hit"),
    ("redirect_redis", "Redis hit"),
    ("redirect_postgres", "PostgreSQL lookup"),
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

fn load_results() -> Result<Vec<BenchResult>> {
    let all = results::committed(CHAPTER)?;
    Ok(all
        .into_iter()
        .filter(|r| r.kind == bookkit::ResultKind::Load)
        .collect())
}

fn paths(results: &[BenchResult]) -> Result<Vec<(&BenchResult, &'static str)>> {
    PATHS
        .iter()
        .map(|(name, label)| Ok((find(results, name)?, *label)))
        .collect()
}

/// What the performance files say before the first measurement.
fn not_measured() -> String {
    format!("**Not measured yet:** run `{COMMAND}`.\n")
}

/// `redirects.md`: throughput and ratio to the ceiling, then latency, as two narrow tables.
pub fn redirects_markdown() -> Result<String> {
    let results = load_results()?;
    if results.is_empty() {
        return Ok(not_measured());
    }
    let rows = paths(&results)?;
    let header = measured_header(COMMAND, &rows.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    let ceiling = rows[0].0;
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for (r, label) in &rows {
        let core = r.ops_per_core().context("a result without throughput")?;
        throughput.push(vec![
            (*label).to_string(),
            fmt_count(r.ops_per_sec.unwrap_or(0.0)),
            if r.name == CEILING {
                "1×".to_string()
            } else {
                fmt_spread(r.ratio)
            },
            fmt_count(core),
            // The capacity model's own formula, so this column and the
            // capacity page agree for the sizing path.
            fmt_count(crate::capacity::cores_at_peak(core)? as f64),
        ]);
        latency.push(vec![
            (*label).to_string(),
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            r.extra_f64("store_loads_per_lookup")
                .map_or("—".into(), |v| format!("{v:.2}")),
            r.errors.to_string(),
        ]);
    }
    let rounds = ceiling.rounds_ops_per_sec.len();
    Ok(format!(
        "{header}{}\n{}\n{} keep-alive connections, closed loop; {rounds} rounds of {:.0} s per path, \
         each round measuring the ceiling and every path back to back. The ratio is the median over \
         the rounds of a path's rate divided by the ceiling's rate in the same round, with the lowest \
         and highest in brackets. The load generator and the server share the machine's {} logical \
         CPUs, so per-core figures are conservative. \"Cores at the peak\" is the capacity model's \
         figure (peak load ÷ (per-core rate × target utilisation)) with that path's rate; the Redis-hit \
         row is the one the capacity estimate uses. Target claimed for such services: {} redirects/s \
         fleet-wide with p95 under {}; a p99 under it implies the p95 is.\n",
        markdown_table(
            &[
                "Path",
                "Requests/s",
                "Ratio to ceiling",
                "Per core",
                "Cores at the peak"
            ],
            &throughput,
        ),
        markdown_table(
            &[
                "Path",
                "p50",
                "p99",
                "Database reads per redirect",
                "Errors"
            ],
            &latency,
        ),
        ceiling.concurrency.unwrap_or(0),
        ceiling.duration_s / rounds.max(1) as f64,
        ceiling.cores,
        fmt_count(TARGET_REDIRECTS_PER_SEC),
        fmt_ns(TARGET_P95_US * 1_000.0),
    ))
}

/// `redirects.svg`: p99 per path on a log scale, with the target marked.
pub fn redirects_svg() -> Result<String> {
    let results = load_results()?;
    if results.is_empty() {
        return Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"60\">\
             <text x=\"10\" y=\"36\" font-family=\"sans-serif\" font-size=\"18\">\
             Not measured yet: run {COMMAND}</text></svg>\n"
        ));
    }
    let rows = paths(&results)?;
    let bars = rows
        .iter()
        .map(|(r, label)| Bar {
            label: (*label).to_string(),
            value_ns: r.p99_us.unwrap_or(0.0) * 1_000.0,
            reference_ns: Some(TARGET_P95_US * 1_000.0),
        })
        .collect::<Vec<_>>();
    let caption = rows[0]
        .0
        .machine
        .as_ref()
        .map_or_else(|| "machine not recorded".to_string(), |m| m.one_line());
    log_bar_chart(
        &BarChart {
            title: "p99 redirect latency on loopback",
            value_label: "p99, measured",
            reference_label: "target: p95 under 50 ms",
            caption: &caption,
        },
        &bars,
    )
}

/// `codegen.md`: the code-generation benchmarks; missing ones are listed, not invented.
pub fn codegen_markdown() -> Result<String> {
    let committed = results::committed(CHAPTER)?;
    let criterion: Vec<&BenchResult> = committed
        .iter()
        .filter(|r| r.kind == bookkit::ResultKind::Criterion)
        .collect();
    let benches = CriterionBench::from_results(&committed);
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
            fmt_count(1e9 / ns),
            twin.map_or("—".into(), |t| fmt_ratio(ns / t)),
        ]);
    }
    if criterion.is_empty() {
        return Ok(not_measured());
    }
    let mut out = measured_header(COMMAND, &criterion);
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
        out.push_str(&format!("\nNot measured: {}.\n", missing.join(", ")));
    }
    Ok(out)
}

/// Where the per-core figure is committed.
const MEASURED_PATH: &str = "src/url-shortener/generated/measured.json";

/// The per-core figure of [`SIZING_PATH`], for the capacity estimate.
///
/// Before results are committed in the current format, it is the figure
/// already committed in `measured.json`, which names its machine and commit.
pub fn measured() -> Result<capacity::Measured> {
    let results = load_results()?;
    if results.is_empty() {
        let committed = bookkit::repo_file(MEASURED_PATH)?;
        return Ok(capacity::Measured::from_json(&committed)?);
    }
    let sizing = find(&results, SIZING_PATH)?;
    Ok(capacity::Measured {
        ops_per_core: sizing.ops_per_core().context("no throughput")?,
        path: format!("the {SIZING_PATH} path of the load test"),
        measured_on: sizing
            .machine
            .as_ref()
            .map_or_else(|| "an unrecorded machine".to_string(), |m| m.one_line()),
    })
}

/// `measured.json`: [`measured`] as committed beside the tables.
pub fn measured_json() -> Result<String> {
    Ok(measured()?.to_json())
}

/// `capacity.md`: the estimate computed from [`measured`].
pub fn capacity_markdown() -> Result<String> {
    crate::capacity::capacity_markdown(&measured_json()?)
}

/// `scan.md`: store reads per request under a scan of random codes, with
/// and without the miss budget ([`crate::scan`]). Deterministic: seeded
/// codes and a simulated clock, so `cargo xtask gen` reproduces it.
pub fn scan_markdown() -> Result<String> {
    use crate::scan::{EXISTING_LINKS, SCAN_RATE, measure_scan, scenarios};
    const REQUESTS: u32 = 10_000;
    let mut rows = Vec::new();
    for scenario in scenarios(REQUESTS) {
        let out = measure_scan(&scenario)?;
        rows.push(vec![
            scenario.label.to_string(),
            fmt_count(f64::from(scenario.clients)),
            fmt_count(out.store_reads as f64),
            format!("{:.3}", out.reads_per_request()),
            fmt_count(out.refused as f64),
        ]);
    }
    let budget = crate::Config::default()
        .miss_limit
        .context("the miss budget is on by default")?;
    Ok(format!(
        "{}\n{} requests per scenario at {} a second (simulated clock), against {} existing links; \
         the scan asks for random 7-character codes. Miss budget: {} misses at once per client \
         address, then {} a second. Computed by `cargo xtask gen` (`src/scan.rs`), the same on \
         every run.\n",
        markdown_table(
            &[
                "Scenario",
                "Client addresses",
                "Store reads",
                "Per request",
                "Refused (429)"
            ],
            &rows,
        ),
        fmt_count(f64::from(REQUESTS)),
        SCAN_RATE,
        fmt_count(f64::from(EXISTING_LINKS)),
        budget.burst,
        budget.per_second,
    ) + &bloom_markdown()?)
}

/// The Bloom filter the deep dive weighs against the miss budget: bits per
/// code for a false-positive rate `p` are `-ln p / (ln 2)^2`, times every
/// code of the retention period.
fn bloom_markdown() -> Result<String> {
    let kept = crate::capacity::links_kept()?;
    let rows: Vec<Vec<String>> = [0.1_f64, 0.01, 0.001]
        .iter()
        .map(|p| {
            let bits = -p.ln() / std::f64::consts::LN_2.powi(2);
            vec![
                format!("{}%", p * 100.0),
                format!("{bits:.1}"),
                capacity::units::bytes(kept * bits / 8.0),
            ]
        })
        .collect();
    Ok(format!(
        "\nA Bloom filter of the {} codes of the retention period, for comparison:\n\n{}",
        fmt_count(kept),
        markdown_table(
            &["False positives", "Bits per code", "Size, one copy"],
            &rows
        )
    ))
}

/// `key-numbers.md`: the figures the design rests on, from the capacity
/// model and the collision formulas, for the 45-minute page and the
/// requirements.
pub fn key_numbers_markdown() -> Result<String> {
    use capacity::units;
    let e = crate::capacity::requirements_estimate()?;
    let sized = capacity::Estimate::new(&crate::capacity::inputs(&measured()?))
        .context("the chapter's capacity inputs are invalid")?;
    let redirect = &e.workloads[0];
    let create = &e.workloads[1];
    let kept = crate::capacity::links_kept()?;
    let years = e.inputs.retention_years;
    let space = crate::collisions::code_space(crate::codegen::CODE_LEN as u32);
    let rows = vec![
        vec![
            "Redirects a second, peak".into(),
            units::qps(redirect.qps.peak),
        ],
        vec!["Creates a second, peak".into(), units::qps(create.qps.peak)],
        vec![
            "Redirects a day".into(),
            units::count(redirect.qps.average * capacity::SECONDS_PER_DAY),
        ],
        vec![
            format!("Links created in {years} years"),
            units::count(kept),
        ],
        vec![
            "Share of the 7-character code space they fill".into(),
            format!("{:.2}%", 100.0 * kept / space),
        ],
        vec![
            format!("Storage after {years} years, all copies"),
            units::bytes(e.retained_bytes),
        ],
        vec![
            "Cache memory for the hot set".into(),
            units::bytes(e.cache_bytes),
        ],
        vec![
            "Service cores at the peak, at the measured rate".into(),
            units::count(sized.cores as f64),
        ],
    ];
    Ok(format!(
        "{}\nComputed by `cargo xtask gen` from the [capacity estimate](capacity.md) and \
         the code length.\n",
        markdown_table(&["Quantity", "Value"], &rows)
    ))
}

/// Patroni's defaults: the leader key lives `ttl` seconds, and a replica
/// notices its expiry within one `loop_wait`; an unplanned failover of the
/// primary takes up to about their sum.
/// <https://patroni.readthedocs.io/en/latest/dynamic_configuration.html>
const PATRONI_TTL_S: f64 = 30.0;
const PATRONI_LOOP_WAIT_S: f64 = 10.0;

/// `availability.md`: the downtime each availability target allows, and how
/// many unplanned PostgreSQL failovers fit in it.
pub fn availability_markdown() -> Result<String> {
    const MONTH_S: f64 = 30.0 * capacity::SECONDS_PER_DAY;
    let failover = PATRONI_TTL_S + PATRONI_LOOP_WAIT_S;
    let rows: Vec<Vec<String>> = [
        ("Redirects", 0.9999_f64),
        ("Creates, deletes and stats", 0.999),
    ]
    .iter()
    .map(|(what, target)| {
        let budget = (1.0 - target) * MONTH_S;
        vec![
            (*what).to_string(),
            format!("{:.2}%", target * 100.0),
            format!("{:.1} min", budget / 60.0),
            format!("{:.0}", (budget / failover).floor()),
        ]
    })
    .collect();
    Ok(format!(
        "{}\nA month of 30 days. A failover is taken as Patroni's default leader TTL plus one \
         loop ({} s + {} s = {} s) of writes refused.\n",
        markdown_table(
            &[
                "Operations",
                "Target",
                "Downtime a month",
                "Failovers that fit"
            ],
            &rows
        ),
        PATRONI_TTL_S,
        PATRONI_LOOP_WAIT_S,
        failover
    ))
}

/// `alphabets.md`: how full the code space gets with the links of the
/// retention period, for the alphabet we use and for print-friendly ones.
pub fn alphabets_markdown() -> Result<String> {
    let kept = crate::capacity::links_kept()?;
    let alphabets: [(&str, f64, &str); 3] = [
        ("base62 (ours)", 62.0, "`0-9 A-Z a-z`; case-sensitive"),
        ("base58", 58.0, "base62 without `0 O I l`"),
        (
            "Crockford base32",
            32.0,
            "no `I L O U`; case-insensitive, `0/O` and `1/I/L` read alike",
        ),
    ];
    let rows: Vec<Vec<String>> = alphabets
        .iter()
        .map(|(name, symbols, note)| {
            let fill = |len: i32| match kept / symbols.powi(len) {
                f if f > 1.0 => "does not fit".to_string(),
                f if f < 1e-4 => format!("{:.1e}%", 100.0 * f),
                f => format!("{:.2}%", 100.0 * f),
            };
            vec![
                (*name).to_string(),
                (*note).to_string(),
                fill(7),
                fill(8),
                fill(9),
            ]
        })
        .collect();
    Ok(format!(
        "{}\nShare of all codes of that length taken by the {} links of the retention period \
         (the chance that a random guess finds a link).\n",
        markdown_table(
            &["Alphabet", "Characters", "7 long", "8 long", "9 long"],
            &rows
        ),
        fmt_count(kept)
    ))
}

/// `scaling.md`: the capacity estimate at one, ten and a hundred times the
/// users, with the measured throughput per core.
pub fn scaling_markdown() -> Result<String> {
    use capacity::units;
    let base = crate::capacity::inputs(&measured()?);
    let mut rows = Vec::new();
    for factor in [1u64, 10, 100] {
        let inputs = capacity::Inputs {
            daily_active_users: base.daily_active_users * factor,
            ..base.clone()
        };
        let e = capacity::Estimate::new(&inputs).context("scaled inputs are invalid")?;
        rows.push(vec![
            format!("{factor}x"),
            units::qps(e.workloads[0].qps.peak),
            units::qps(e.workloads[1].qps.peak),
            units::bytes(e.retained_bytes),
            units::bytes(e.cache_bytes),
            units::count(e.cores as f64),
        ]);
    }
    let storage = format!("Storage, {} years", base.retention_years);
    Ok(format!(
        "{}\nThe capacity estimate with the users multiplied, everything else as stated \
         (`cargo xtask gen`).\n",
        markdown_table(
            &[
                "Load",
                "Redirects/s, peak",
                "Creates/s, peak",
                &storage,
                "Cache",
                "Service cores"
            ],
            &rows
        )
    ))
}
