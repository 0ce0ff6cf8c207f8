//! The chapter's performance tables, rendered from the committed results of
//! `benches/checkout.rs` (`cargo xtask bench-report ecommerce`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use bookkit::BenchResult;
use bookkit::table::{fmt_count, fmt_spread, fmt_us, markdown_table};

/// The chapter slug the results are filed under.
pub const CHAPTER: &str = "ecommerce";
/// The command that measures.
pub const COMMAND: &str = "cargo xtask bench-report ecommerce";
/// Where the performance tables go.
pub const PERFORMANCE_PATH: &str = "src/ecommerce/generated/performance.md";
/// Client counts of the checkout runs.
pub const CLIENTS: [u32; 3] = [1, 8, 32];
/// The claim measured against: orders per minute...
pub const TARGET_PER_MINUTE: f64 = 10_000.0;
/// ...with p95 under this many milliseconds.
pub const TARGET_P95_MS: f64 = 500.0;
/// Flash-sale arrivals, as a multiple of the measured capacity.
pub const OVERLOAD_FACTOR: f64 = 5.0;
/// A shopper waits this long for a checkout before it counts as lost.
pub const OVERLOAD_DEADLINE: Duration = Duration::from_secs(1);
/// The run whose per-core throughput sizes the fleet.
pub const SIZING_CLIENTS: u32 = 32;

/// The ceiling's result name.
pub fn ceiling_result(clients: u32) -> String {
    format!("ceiling-insert-c{clients}")
}
/// The keyed checkout's result name.
pub fn checkout_result(clients: u32) -> String {
    format!("checkout-c{clients}")
}
/// The checkout without a key.
pub fn nokey_result(clients: u32) -> String {
    format!("checkout-nokey-c{clients}")
}

fn find<'a>(rs: &'a [BenchResult], name: &str) -> Option<&'a BenchResult> {
    rs.iter().find(|r| r.name == name)
}

fn rate(r: Option<&BenchResult>) -> String {
    r.and_then(|r| r.ops_per_sec)
        .map_or("n/a".into(), fmt_count)
}

fn p(r: Option<&BenchResult>, q: u32) -> String {
    fmt_us(r.and_then(|r| if q == 50 { r.p50_us } else { r.p99_us }))
}

fn extra(r: &BenchResult, k: &str) -> f64 {
    r.extra_f64(k).unwrap_or(0.0)
}

// ANCHOR: render
/// All the chapter's performance tables.
pub fn render_performance(rs: &[BenchResult]) -> String {
    if rs.is_empty() {
        return format!("Not measured yet: run `{COMMAND}`.\n");
    }
    let mut out = String::new();
    let cores = rs.first().map_or(1, |r| r.cores.max(1));
    out.push_str("**Checkout against a plain INSERT of an order row** (same pool, same run, interleaved rounds; ratio = median per round (lowest–highest)):\n\n");
    let rows: Vec<Vec<String>> = CLIENTS
        .iter()
        .map(|c| {
            let k = find(rs, &checkout_result(*c));
            let ceil = find(rs, &ceiling_result(*c));
            vec![
                c.to_string(),
                rate(k),
                p(k, 50),
                p(k, 99),
                rate(ceil),
                fmt_spread(k.and_then(|r| r.ratio)),
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &["Clients", "Checkouts/s", "p50", "p99", "INSERTs/s", "Ratio"],
        &rows,
    ));
    out.push_str("\n**The idempotency layer's own cost** (the same checkout without a key: no key row, no lock, no stored response):\n\n");
    let rows: Vec<Vec<String>> = CLIENTS
        .iter()
        .map(|c| {
            let k = find(rs, &checkout_result(*c));
            let n = find(rs, &nokey_result(*c));
            vec![
                c.to_string(),
                p(k, 50),
                p(n, 50),
                p(k, 99),
                p(n, 99),
                rate(n),
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
            "Clients",
            "p50 with key",
            "p50 without",
            "p99 with key",
            "p99 without",
            "Checkouts/s without",
        ],
        &rows,
    ));
    let _ = write!(
        out,
        "\n**Against the claim of {} orders a minute with p95 under {} ms**, per core ({cores} logical CPUs ran PostgreSQL, the service and the clients together):\n\n",
        fmt_count(TARGET_PER_MINUTE),
        TARGET_P95_MS
    );
    let rows: Vec<Vec<String>> = CLIENTS
        .iter()
        .filter_map(|c| find(rs, &checkout_result(*c)).map(|r| (c, r)))
        .map(|(c, r)| {
            let per_min = r.ops_per_sec.unwrap_or(0.0) * 60.0;
            let per_core = per_min / cores as f64;
            vec![
                c.to_string(),
                fmt_count(per_min),
                fmt_count(per_core),
                format!("{:.2}", per_core / TARGET_PER_MINUTE),
                match r.p99_us {
                    Some(us) if us <= TARGET_P95_MS * 1_000.0 => "yes".into(),
                    Some(_) => "no".into(),
                    None => "n/a".into(),
                },
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
            "Clients",
            "Orders/min",
            "Orders/min per core",
            "Per core ÷ claim",
            "p99 under 500 ms",
        ],
        &rows,
    ));
    out.push_str("\n**The catalog read path** (`GET /products/{sku}` over HTTP, L1 hits) against a server that answers a constant 200:\n\n");
    let rows: Vec<Vec<String>> = [
        ("Constant 200", "constant-c16"),
        ("Catalog read", "catalog-read-c16"),
    ]
    .iter()
    .map(|(label, name)| {
        let r = find(rs, name);
        vec![
            label.to_string(),
            rate(r),
            p(r, 50),
            p(r, 99),
            r.and_then(|r| r.ratio)
                .map_or("1 (ceiling)".into(), |s| fmt_spread(Some(s))),
        ]
    })
    .collect();
    out.push_str(&markdown_table(
        &["Path", "Requests/s", "p50", "p99", "Ratio"],
        &rows,
    ));
    out.push_str(
        "\n**Add to cart**, 8 clients, the same observed-remove design in each store:\n\n",
    );
    let rows: Vec<Vec<String>> = [
        ("Redis (Lua script)", "cart-add-redis-c8"),
        ("PostgreSQL (a row per add)", "cart-add-postgres-c8"),
    ]
    .iter()
    .map(|(label, name)| {
        let r = find(rs, name);
        vec![
            label.to_string(),
            rate(r),
            p(r, 50),
            p(r, 99),
            r.and_then(|r| r.ratio)
                .map_or("1".into(), |s| fmt_spread(Some(s))),
        ]
    })
    .collect();
    out.push_str(&markdown_table(
        &["Store", "Adds/s", "p50", "p99", "Ratio to Redis"],
        &rows,
    ));
    if let Some(none) = find(rs, "overload-none") {
        let _ = write!(
            out,
            "\n**Flash sale**: checkouts arriving at {OVERLOAD_FACTOR}x the measured capacity ({} a second against {} measured at 8 clients) for {:.0} s; goodput counts checkouts answered within {} s:\n\n",
            fmt_count(extra(none, "rate_per_s")),
            fmt_count(extra(none, "capacity_per_s")),
            none.duration_s,
            OVERLOAD_DEADLINE.as_secs()
        );
    }
    let rows: Vec<Vec<String>> = [
        ("None", "overload-none"),
        ("Token bucket (governor)", "overload-governor"),
    ]
    .iter()
    .filter_map(|(label, name)| find(rs, name).map(|r| (label, r)))
    .map(|(label, r)| {
        let admitted = if r.name == "overload-governor" {
            format!("{} a second", fmt_count(extra(r, "admit_per_s")))
        } else {
            "all".into()
        };
        vec![
            label.to_string(),
            admitted,
            fmt_count(extra(r, "rejected")),
            r.ops_per_sec.map_or("n/a".into(), fmt_count),
            fmt_us(r.p99_us),
        ]
    })
    .collect();
    if !rows.is_empty() {
        out.push_str(&markdown_table(
            &[
                "Admission",
                "Admitted",
                "Refused (429)",
                "Goodput/s",
                "p99 of admitted",
            ],
            &rows,
        ));
    }
    out
}
// ANCHOR_END: render

/// `performance.md`, from the committed results.
pub fn performance_markdown() -> Result<String> {
    let results = bookkit::results::committed(CHAPTER)?;
    let header = bookkit::table::measured_header(COMMAND, &results.iter().collect::<Vec<_>>());
    Ok(format!("{header}{}", render_performance(&results)))
}

/// The per-core checkout figure that sizes the fleet, as JSON for `capacity`.
pub fn measured_json(rs: &[BenchResult]) -> Result<String> {
    let name = checkout_result(SIZING_CLIENTS);
    let Some(r) = find(rs, &name) else {
        return Ok("{}".into());
    };
    let per_second = r
        .ops_per_sec
        .with_context(|| format!("{name} has no throughput"))?;
    let on = r.machine.as_ref().map_or_else(
        || "an unrecorded machine".to_string(),
        bookkit::MachineHeader::one_line,
    );
    Ok(capacity::Measured {
        ops_per_core: per_second / r.cores.max(1) as f64,
        path: format!("the {name} run of the checkout"),
        measured_on: on,
    }
    .to_json())
}

/// `measured.json`.
pub fn measured_markdown() -> Result<String> {
    measured_json(&bookkit::results::committed(CHAPTER)?)
}

/// `capacity.md`, from [`measured_markdown`].
pub fn capacity_markdown() -> Result<String> {
    let json = measured_markdown()?;
    if json == "{}" {
        return Ok(format!("Not measured yet: run `{COMMAND}`.\n"));
    }
    crate::capacity::capacity_markdown(&json)
}

/// Where the 45-minute page's figures go.
pub const KEY_NUMBERS_PATH: &str = "src/ecommerce/generated/key-numbers.md";

// ANCHOR: key_numbers
/// `key-numbers.md`: the figures the design rests on, from the capacity
/// inputs and the committed measurements.
pub fn key_numbers_markdown() -> Result<String> {
    let results = bookkit::results::committed(CHAPTER)?;
    let json = measured_json(&results)?;
    let mut out = String::from(
        "<!-- Generated by `cargo xtask gen` from chapters-code/ecommerce/src/report.rs; do not edit by hand. -->\n\n",
    );
    if json == "{}" {
        out.push_str(&format!("Not measured yet: run `{COMMAND}`.\n"));
        return Ok(out);
    }
    let measured = capacity::Measured::from_json(&json)?;
    let e = capacity::Estimate::new(&crate::capacity::inputs(&measured))
        .context("the chapter's capacity inputs are invalid")?;
    let checkout = e
        .workloads
        .iter()
        .find(|w| w.name == "checkout")
        .context("a checkout workload")?;
    let ratio = |name: &str| {
        find(&results, name)
            .and_then(|r| r.ratio)
            .map_or("n/a".into(), |s| fmt_spread(Some(s)))
    };
    let rows = vec![
        vec![
            "Checkouts at peak".into(),
            format!(
                "{}/s ({} a minute)",
                fmt_count(checkout.qps.peak),
                fmt_count(checkout.qps.peak * 60.0)
            ),
        ],
        vec![
            "All requests at peak".into(),
            format!(
                "{}/s, {} reads per write",
                fmt_count(e.total_qps.peak),
                fmt_count(e.read_qps.peak / e.write_qps.peak.max(f64::EPSILON))
            ),
        ],
        vec![
            "Checkouts per core, measured".into(),
            format!("{}/s", fmt_count(measured.ops_per_core)),
        ],
        vec![
            "Cores at peak, checkouts alone".into(),
            crate::capacity::checkout_alone_cores(&crate::capacity::inputs(&measured))?
                .1
                .to_string(),
        ],
        vec![
            "Cores at peak (every request sized as a checkout)".into(),
            format!("{} on {} machines", e.cores, e.machines),
        ],
        vec![
            "Orders stored per year (one copy)".into(),
            format!("{:.0} GB", e.stored_bytes_per_year / 1e9),
        ],
        vec![
            "Checkout ÷ plain INSERT, 32 clients".into(),
            ratio(&checkout_result(32)),
        ],
        vec![
            "Catalog read ÷ constant server".into(),
            ratio("catalog-read-c16"),
        ],
    ];
    out.push_str(&markdown_table(&["Figure", "Value"], &rows));
    Ok(out)
}
// ANCHOR_END: key_numbers

#[cfg(test)]
mod tests {
    use super::*;
    use bookkit::ResultKind;

    fn result(name: &str, per_s: f64) -> BenchResult {
        let mut r = BenchResult::new(CHAPTER, name, ResultKind::Load).with_throughput(
            (per_s * 2.0) as u64,
            0,
            Duration::from_secs(2),
        );
        r.cores = 2;
        r.p50_us = Some(1_000.0);
        r.p99_us = Some(5_000.0);
        r
    }

    #[test]
    fn tables_render_and_size_the_fleet_from_the_32_client_run() -> Result<()> {
        assert!(render_performance(&[]).contains("Not measured yet"));
        let rs = vec![
            result("checkout-c32", 600.0),
            result("ceiling-insert-c32", 3_000.0),
        ];
        let md = render_performance(&rs);
        assert!(md.contains("| 32 | 600 |"), "{md}");
        let m = capacity::Measured::from_json(&measured_json(&rs)?)?;
        assert_eq!(m.ops_per_core, 300.0);
        assert_eq!(measured_json(&[])?, "{}");
        Ok(())
    }
}
