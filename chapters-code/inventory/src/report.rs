//! The chapter's measured tables and plot, rendered from committed results.
//!
//! `benches/ladder.rs` (run by `cargo xtask bench-report inventory`) writes
//! one result per rung and client count; these pure functions turn the
//! committed results (`src/inventory/generated/results/`) into the book's
//! files, so `cargo xtask gen` reproduces them exactly.

use std::fmt::Write as _;

use anyhow::Result;
use bookkit::BenchResult;
use bookkit::plot::{LineChart, Series, line_chart};
use bookkit::table::{fmt_count, fmt_ratio, markdown_table, measured_header};

use crate::ladder::RUNG_IDS;

/// The chapter's slug, under which results are filed.
pub const CHAPTER: &str = "inventory";
/// The command that measures.
pub const COMMAND: &str = "cargo xtask bench-report inventory";
/// Client counts of the ladder.
pub const CLIENTS: [u32; 4] = [1, 8, 32, 64];
/// Units per sell-out.
pub const SELLOUT_UNITS: i64 = 500;
/// The claim commonly made for such systems: stock updates per second...
pub const TARGET_UPDATES_PER_SEC: f64 = 50_000.0;
/// ...with a 95th-percentile latency under this many milliseconds.
pub const TARGET_P95_MS: f64 = 200.0;

/// Where the ladder tables go.
pub const LADDER_PATH: &str = "src/inventory/generated/ladder.md";
/// Where the ladder plot goes.
pub const LADDER_SVG_PATH: &str = "src/inventory/generated/ladder.svg";
/// Where the summary against the claim goes.
pub const PERFORMANCE_PATH: &str = "src/inventory/generated/performance.md";
/// Where the event-lag table goes.
pub const LAG_PATH: &str = "src/inventory/generated/event-lag.md";

/// The result name of a throughput run.
pub fn ladder_result(rung: &str, clients: u32) -> String {
    format!("ladder-{rung}-c{clients}")
}

/// The result name of a sell-out.
pub fn sellout_result(rung: &str, clients: u32) -> String {
    format!("sellout-{rung}-c{clients}")
}

/// The result name of the event-lag run.
pub const LAG_RESULT: &str = "event-lag";

/// The label of a rung in tables.
pub fn label(rung: &str) -> &'static str {
    match rung {
        "naive" => "1. naive read-modify-write",
        "conditional" => "2. conditional `UPDATE`",
        "for-update" => "3. `SELECT … FOR UPDATE`",
        "skip-locked" => "4. row per unit, `SKIP LOCKED`",
        "advisory" => "5. `pg_try_advisory_xact_lock`",
        "buckets" => "6a. buckets, own bucket only",
        "buckets-fallback" => "6b. buckets with fallback",
        "redis" => "7. Redis Lua + ledger row",
        "store" => "this chapter's reserve (hot SKU)",
        "store-spread" => "this chapter's reserve, spread",
        "ceiling" => "ceiling: unguarded `UPDATE`",
        _ => "?",
    }
}

/// Every throughput row in table order: the rungs, the spread run, the ceiling.
fn rows() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = RUNG_IDS
        .iter()
        .copied()
        .filter(|r| *r != "ceiling")
        .collect();
    v.push("store-spread");
    v.push("ceiling");
    v
}

fn find<'a>(results: &'a [BenchResult], name: &str) -> Option<&'a BenchResult> {
    results.iter().find(|r| r.name == name)
}

fn not_measured() -> String {
    format!("Not measured yet: run `{COMMAND}`.\n")
}

fn fmt_ms(us: Option<f64>) -> String {
    match us {
        Some(us) if us < 1_000.0 => format!("{us:.0} µs"),
        Some(us) if us < 100_000.0 => format!("{:.1} ms", us / 1_000.0),
        Some(us) => format!("{:.0} ms", us / 1_000.0),
        None => "n/a".to_string(),
    }
}

fn extra_i64(r: &BenchResult, key: &str) -> i64 {
    r.extra
        .get(key)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}

/// The ladder: reserves/s (with the ratio to the ceiling), p99, and the sell-outs.
pub fn ladder_markdown() -> Result<String> {
    render_ladder(&bookkit::results::committed(CHAPTER)?)
}

/// [`ladder_markdown`] over given results.
pub fn render_ladder(results: &[BenchResult]) -> Result<String> {
    let used: Vec<&BenchResult> = results
        .iter()
        .filter(|r| r.name.starts_with("ladder-") || r.name.starts_with("sellout-"))
        .collect();
    if used.is_empty() {
        return Ok(measured_header(COMMAND, &[]) + &not_measured());
    }
    let mut out = measured_header(COMMAND, &used);
    let heads: Vec<String> = CLIENTS
        .iter()
        .map(|c| {
            if *c == 1 {
                "1 client".to_string()
            } else {
                format!("{c} clients")
            }
        })
        .collect();
    let mut headers = vec!["Rung"];
    headers.extend(heads.iter().map(String::as_str));

    out.push_str("**Successful reserves per second** (in brackets: the ratio to the ceiling in the same rounds, median)\n\n");
    let mut rows_tp = Vec::new();
    for rung in rows() {
        let mut row = vec![label(rung).to_string()];
        for c in CLIENTS {
            row.push(match find(results, &ladder_result(rung, c)) {
                Some(r) => {
                    let rate = r.ops_per_sec.map_or("n/a".to_string(), fmt_count);
                    match r.ratio {
                        Some(s) => format!("{rate} ({})", fmt_ratio(s.median)),
                        None => rate,
                    }
                }
                None => "not measured".to_string(),
            });
        }
        rows_tp.push(row);
    }
    out.push_str(&markdown_table(&headers, &rows_tp));

    out.push_str("\n**p99 latency of a reserve** (first attempt to answer, retries after \"busy\" included)\n\n");
    let mut rows_p99 = Vec::new();
    for rung in rows() {
        let mut row = vec![label(rung).to_string()];
        for c in CLIENTS {
            row.push(
                find(results, &ladder_result(rung, c))
                    .map_or("not measured".into(), |r| fmt_ms(r.p99_us)),
            );
        }
        rows_p99.push(row);
    }
    out.push_str(&markdown_table(&headers, &rows_p99));

    // The rungs that answer "busy": how many retries each unit cost.
    let mut rows_busy = Vec::new();
    for rung in rows() {
        let runs: Vec<Option<&BenchResult>> = CLIENTS
            .iter()
            .map(|c| find(results, &ladder_result(rung, *c)))
            .collect();
        if !runs.iter().flatten().any(|r| extra_i64(r, "busy") > 0) {
            continue;
        }
        let mut row = vec![label(rung).to_string()];
        for r in runs {
            row.push(match r {
                Some(r) => {
                    let reserved = r.ops.saturating_sub(r.errors).max(1) as f64;
                    format!("{:.1}", extra_i64(r, "busy") as f64 / reserved)
                }
                None => "not measured".to_string(),
            });
        }
        rows_busy.push(row);
    }
    if !rows_busy.is_empty() {
        out.push_str("\n**\"Busy\" answers per successful reserve** (each one a retry by the client; rungs that never answered \"busy\" are left out)\n\n");
        out.push_str(&markdown_table(&headers, &rows_busy));
    }

    let _ = write!(
        out,
        "\n**Sell-out of {SELLOUT_UNITS} units**: every client buys one unit at a time until told \"sold out\". Oversell / undersell (units sold beyond the stock / units left when every client gave up)\n\n"
    );
    let mut rows_so = Vec::new();
    for rung in rows() {
        if rung == "ceiling" || rung == "store-spread" {
            continue;
        }
        let mut row = vec![label(rung).to_string()];
        for c in CLIENTS {
            row.push(match find(results, &sellout_result(rung, c)) {
                Some(r) => {
                    let (o, u) = (extra_i64(r, "oversell"), extra_i64(r, "undersell"));
                    if o > 0 || u > 0 {
                        format!("**{o} / {u}**")
                    } else {
                        format!("{o} / {u}")
                    }
                }
                None => "not measured".to_string(),
            });
        }
        rows_so.push(row);
    }
    out.push_str(&markdown_table(&headers, &rows_so));
    let sold_out: i64 = used
        .iter()
        .filter(|r| r.name.starts_with("ladder-"))
        .map(|r| extra_i64(r, "sold_out"))
        .sum();
    let failed: i64 = used.iter().map(|r| extra_i64(r, "failed")).sum();
    let _ = writeln!(
        out,
        "\nRequests told \"sold out\" during the throughput rounds (the stock is sized so there are none): {sold_out}. Requests that failed with an error in any run: {failed}."
    );
    Ok(out)
}

/// The ladder as a line chart: reserves/s against clients, for the main rungs and the ceiling.
pub fn ladder_svg() -> Result<String> {
    render_ladder_svg(&bookkit::results::committed(CHAPTER)?)
}

/// [`ladder_svg`] over given results.
pub fn render_ladder_svg(results: &[BenchResult]) -> Result<String> {
    let shown = [
        "ceiling",
        "conditional",
        "for-update",
        "skip-locked",
        "advisory",
        "redis",
    ];
    let series: Vec<Series> = shown
        .iter()
        .map(|rung| Series {
            name: label(rung).replace('`', ""),
            points: CLIENTS
                .iter()
                .filter_map(|c| {
                    find(results, &ladder_result(rung, *c))
                        .and_then(|r| r.ops_per_sec)
                        .map(|v| (f64::from(*c), v))
                })
                .collect(),
        })
        .collect();
    let caption = results
        .iter()
        .find(|r| r.name.starts_with("ladder-"))
        .and_then(|r| r.machine.as_ref().map(bookkit::MachineHeader::one_line))
        .unwrap_or_else(|| "not measured yet".to_string());
    line_chart(
        &LineChart {
            title: "One hot SKU: successful reserves per second",
            x_desc: "concurrent clients",
            y_desc: "reserves/s",
            log_x: true,
            log_y: true,
            caption: &caption,
        },
        &series,
    )
}

/// The best (highest reserves/s) run of `rung` over the client counts.
fn best<'a>(results: &'a [BenchResult], rung: &str) -> Option<&'a BenchResult> {
    CLIENTS
        .iter()
        .filter_map(|c| find(results, &ladder_result(rung, *c)))
        .max_by(|a, b| {
            a.ops_per_sec
                .unwrap_or(0.0)
                .total_cmp(&b.ops_per_sec.unwrap_or(0.0))
        })
}

/// The rungs that split one SKU's stock over many rows or move it out of
/// PostgreSQL, so that buyers of that SKU do not queue on one row lock.
pub const SPLIT_RUNGS: [&str; 3] = ["skip-locked", "buckets-fallback", "redis"];

/// The answer to the claim, as numbers.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Best reserves/s of the full reserve path spread over many SKUs.
    pub spread_per_sec: f64,
    /// Cores of the measuring machine.
    pub cores: usize,
    /// Cores the claimed rate needs at the measured rate per core.
    pub cores_for_target: f64,
    /// Best reserves/s of the chapter's reserve on one hot SKU (one row).
    pub hot_row_per_sec: f64,
    /// Best updates/s of the ceiling: the unguarded single-row UPDATE.
    pub ceiling_per_sec: f64,
    /// The fastest rung that splits the SKU and never oversold or undersold in a sell-out.
    pub split_rung: &'static str,
    /// Its best reserves/s.
    pub split_per_sec: f64,
}

/// Computes [`Claim`] from the results, if measured.
pub fn claim(results: &[BenchResult]) -> Option<Claim> {
    let spread = best(results, "store-spread")?;
    let spread_per_sec = spread.ops_per_sec?;
    let cores = spread.cores.max(1);
    let per_core = spread_per_sec / cores as f64;
    let rate = |r: &BenchResult| r.ops_per_sec.unwrap_or(0.0);
    // Only a rung that neither oversold nor undersold in any sell-out counts.
    let exact = |rung: &str| {
        CLIENTS
            .iter()
            .filter_map(|c| find(results, &sellout_result(rung, *c)))
            .all(|r| extra_i64(r, "oversell") == 0 && extra_i64(r, "undersell") == 0)
    };
    let (split_rung, split) = SPLIT_RUNGS
        .iter()
        .filter(|r| exact(r))
        .filter_map(|r| best(results, r).map(|b| (*r, b)))
        .max_by(|a, b| rate(a.1).total_cmp(&rate(b.1)))?;
    Some(Claim {
        spread_per_sec,
        cores,
        cores_for_target: (TARGET_UPDATES_PER_SEC / per_core).ceil(),
        hot_row_per_sec: best(results, "store").map_or(0.0, rate),
        ceiling_per_sec: best(results, "ceiling").map_or(0.0, rate),
        split_rung,
        split_per_sec: rate(split),
    })
}

fn clients_text(n: u32) -> String {
    if n == 1 {
        "1 client".to_string()
    } else {
        format!("{n} clients")
    }
}

/// The summary against the 50K/s claim.
pub fn performance_markdown() -> Result<String> {
    render_performance(&bookkit::results::committed(CHAPTER)?)
}

/// A summary row: what, its best rate, its p99 there, and where it was measured.
fn summary_row(
    what: String,
    r: Option<&BenchResult>,
    place: impl Fn(&BenchResult) -> String,
) -> Vec<String> {
    vec![
        what,
        r.and_then(|r| r.ops_per_sec)
            .map_or("n/a".into(), fmt_count),
        format!("p99 {}", fmt_ms(r.and_then(|r| r.p99_us))),
        r.map_or("n/a".into(), place),
    ]
}

/// [`performance_markdown`] over given results.
pub fn render_performance(results: &[BenchResult]) -> Result<String> {
    let used: Vec<&BenchResult> = results
        .iter()
        .filter(|r| r.name.starts_with("ladder-"))
        .collect();
    let Some(c) = claim(results) else {
        return Ok(measured_header(COMMAND, &used) + &not_measured());
    };
    let mut out = measured_header(COMMAND, &used);
    let at = |r: &BenchResult| clients_text(r.concurrency.unwrap_or(0));
    let rows = vec![
        vec![
            "Claimed for such systems".to_string(),
            fmt_count(TARGET_UPDATES_PER_SEC),
            format!("p95 < {TARGET_P95_MS:.0} ms"),
            "the target".to_string(),
        ],
        summary_row(
            "Reserve, spread over many SKUs".to_string(),
            best(results, "store-spread"),
            |r| {
                format!(
                    "{} cores here ({}/s per core, {})",
                    c.cores,
                    fmt_count(c.spread_per_sec / c.cores as f64),
                    at(r)
                )
            },
        ),
        summary_row(
            "Reserve, one hot SKU (one row)".to_string(),
            best(results, "store"),
            at,
        ),
        summary_row(label("ceiling").to_string(), best(results, "ceiling"), at),
        summary_row(
            format!("Hot SKU split: {}", label(c.split_rung)),
            best(results, c.split_rung),
            at,
        ),
    ];
    out.push_str(&markdown_table(
        &["What", "Updates/s", "Latency", "Where"],
        &rows,
    ));
    let _ = writeln!(
        out,
        "\n**The claim of {} stock updates per second holds on {} cores** of this machine's kind for reserves spread over many SKUs (database and service together, at the rate per core measured above). **On one hot SKU kept in one row, more cores do not help**: a row lock is held until its transaction commits, so the row takes one change at a time; the unguarded single-row `UPDATE` reached at most {} per second here, and this chapter's reserve on one SKU {}. Splitting the SKU's stock over many rows or into Redis removes that bound, at the costs the [deep dive](deep-dive.md#the-ladder) lists; the best split rung here, {}, reached {} per second.",
        fmt_count(TARGET_UPDATES_PER_SEC),
        c.cores_for_target,
        fmt_count(c.ceiling_per_sec),
        fmt_count(c.hot_row_per_sec),
        label(c.split_rung),
        fmt_count(c.split_per_sec),
    );
    Ok(out)
}

/// The event lag of the read model.
pub fn lag_markdown() -> Result<String> {
    render_lag(&bookkit::results::committed(CHAPTER)?)
}

/// [`lag_markdown`] over given results.
pub fn render_lag(results: &[BenchResult]) -> Result<String> {
    let Some(r) = find(results, LAG_RESULT) else {
        return Ok(measured_header(COMMAND, &[]) + &not_measured());
    };
    let mut out = measured_header(COMMAND, &[r]);
    out.push_str(&markdown_table(
        &["Events", "Relay poll", "Lag p50", "Lag p99", "Lag max"],
        &[vec![
            r.ops.to_string(),
            format!("{} ms", extra_i64(r, "poll_ms")),
            fmt_ms(r.p50_us),
            fmt_ms(r.p99_us),
            fmt_ms(r.extra.get("max_us").and_then(serde_json::Value::as_f64)),
        ]],
    ));
    let _ = writeln!(
        out,
        "\nLag: from the movement's timestamp (written in the reserve's statement) to the moment the read model applied the event; a reserve every {} ms, one relay polling the outbox, one consumer.",
        extra_i64(r, "every_ms")
    );
    Ok(out)
}

/// Where the 45-minute page's key numbers go.
pub const KEY_NUMBERS_PATH: &str = "src/inventory/generated/key-numbers.md";

/// The 45-minute page's key numbers, from the committed results.
pub fn key_numbers_markdown() -> Result<String> {
    render_key_numbers(&bookkit::results::committed(CHAPTER)?)
}

/// [`key_numbers_markdown`] over given results: the reserve's rate per
/// core, the cores the claim needs, and the hot SKU at the fewest and the
/// most clients measured (its rate and p99 against the latency target).
pub fn render_key_numbers(results: &[BenchResult]) -> Result<String> {
    let used: Vec<&BenchResult> = results
        .iter()
        .filter(|r| r.name.starts_with("ladder-"))
        .collect();
    let Some(c) = claim(results) else {
        return Ok(measured_header(COMMAND, &used) + &not_measured());
    };
    let at = |rung: &str, n: u32| results.iter().find(|r| r.name == ladder_result(rung, n));
    let hot = |n: u32| {
        let r = at("store", n);
        vec![
            format!("Reserve on one hot SKU, {}", clients_text(n)),
            r.and_then(|r| r.ops_per_sec)
                .map_or("not measured".into(), |v| format!("{}/s", fmt_count(v))),
            format!(
                "p99 {} (target p95 < {TARGET_P95_MS:.0} ms)",
                fmt_ms(r.and_then(|r| r.p99_us))
            ),
        ]
    };
    let few = CLIENTS.iter().copied().min().unwrap_or(1);
    let many = CLIENTS.iter().copied().max().unwrap_or(1);
    let rows = vec![
        vec![
            "Reserve per core, spread over many SKUs".to_string(),
            format!("{}/s", fmt_count(c.spread_per_sec / c.cores as f64)),
            "the capacity table's rate".to_string(),
        ],
        vec![
            format!(
                "Cores for the claimed {} updates/s",
                fmt_count(TARGET_UPDATES_PER_SEC)
            ),
            format!("{}", c.cores_for_target),
            "at full use, no headroom".to_string(),
        ],
        hot(few),
        hot(many),
        vec![
            label("ceiling").to_string(),
            format!("{}/s", fmt_count(c.ceiling_per_sec)),
            "the most one row takes".to_string(),
        ],
    ];
    let mut out = measured_header(COMMAND, &used);
    out.push_str(&markdown_table(&["Number", "Value", "Note"], &rows));
    Ok(out)
}

/// The per-core figure for the capacity model, from the spread run.
pub fn measured_json() -> Result<String> {
    let results = bookkit::results::committed(CHAPTER)?;
    let Some(c) = claim(&results) else {
        anyhow::bail!("not measured yet: run `{COMMAND}`");
    };
    let on = best(&results, "store-spread")
        .and_then(|r| r.machine.as_ref().map(bookkit::MachineHeader::one_line))
        .unwrap_or_else(|| "an unrecorded machine".to_string());
    Ok(capacity::Measured {
        ops_per_core: c.spread_per_sec / c.cores as f64,
        path: "reserve spread over many SKUs (store-spread)".to_string(),
        measured_on: on,
    }
    .to_json())
}

/// The capacity tables, or a note when nothing is measured yet.
pub fn capacity_markdown() -> Result<String> {
    match measured_json() {
        Ok(json) => crate::capacity::capacity_markdown(&json),
        Err(_) => Ok(not_measured()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bookkit::{ResultKind, Spread};

    fn run(rung: &str, clients: u32, per_sec: f64) -> BenchResult {
        let mut r = BenchResult::new(CHAPTER, &ladder_result(rung, clients), ResultKind::Load);
        r.ops_per_sec = Some(per_sec);
        r.p99_us = Some(2_500.0);
        r.concurrency = Some(clients);
        r.cores = 2;
        if rung != "ceiling" {
            r.ratio = Spread::of(&[per_sec / 10_000.0]);
        }
        r
    }

    #[test]
    fn unmeasured_files_say_so() -> Result<()> {
        assert!(render_ladder(&[])?.contains("Not measured yet"));
        assert!(render_performance(&[])?.contains("Not measured yet"));
        assert!(render_lag(&[])?.contains("Not measured yet"));
        Ok(())
    }

    #[test]
    fn the_claim_is_answered_in_cores_and_hot_sku_rate() -> Result<()> {
        let results = vec![
            run("ceiling", 1, 12_000.0),
            run("ceiling", 8, 10_000.0),
            run("conditional", 8, 6_000.0),
            run("naive", 8, 90_000.0),
            run("buckets", 8, 80_000.0),
            run("store", 8, 4_000.0),
            run("skip-locked", 8, 7_000.0),
            run("redis", 8, 20_000.0),
            run("store-spread", 8, 5_000.0),
            run("store-spread", 32, 4_000.0),
            run("buckets-fallback", 8, 30_000.0),
            BenchResult::new(
                CHAPTER,
                &sellout_result("buckets-fallback", 8),
                ResultKind::Simulation,
            )
            .with_extra("oversell", 0)
            .with_extra("undersell", 3),
        ];
        let c = claim(&results).expect("a claim");
        // 5,000/s on 2 cores is 2,500/s per core: 50,000/s needs 20 cores.
        assert_eq!(c.cores_for_target, 20.0);
        assert_eq!((c.hot_row_per_sec, c.ceiling_per_sec), (4_000.0, 12_000.0));
        // The naive rung oversells and bucket rung 6a undersells: neither is
        // an answer, however fast; nor is a split rung whose sell-out left units.
        assert_eq!((c.split_rung, c.split_per_sec), ("redis", 20_000.0));
        let md = render_performance(&results)?;
        assert!(md.contains("holds on 20 cores"), "{md}");
        assert!(md.contains("| 12,000 | p99 2.5 ms | 1 client |"), "{md}");
        assert!(md.contains("at most 12,000 per second"), "{md}");
        let ladder = render_ladder(&results)?;
        assert!(
            ladder.contains("| 2. conditional `UPDATE` | not measured | 6,000 (0.60×)"),
            "{ladder}"
        );
        Ok(())
    }
}
