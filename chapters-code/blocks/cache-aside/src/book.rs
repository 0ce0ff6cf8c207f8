//! What this block publishes into its Part II page (feature `book`): the
//! cost of the guard, measured by `benches/fill_cost.rs`.

use anyhow::Result;
use bookkit::results::{self, BenchResult};
use bookkit::table::{fmt_count, fmt_spread, fmt_us, markdown_table, measured_header};
use bookkit::{Chapter, GeneratedFile, Report};

/// The block's slug.
pub const CHAPTER: &str = "blocks/cache-aside";
/// Result name: an unconditional `SET` of a value (the fill's ceiling).
pub const SET: &str = "set";
/// Result name: the conditional fill script.
pub const FILL: &str = "fill";
/// Result name: a primary-key read in PostgreSQL (what a hit saves).
pub const DB_READ: &str = "db_read";
/// Result name: a Redis hit (entry and version in one round trip).
pub const HIT: &str = "hit";

const COMMAND: &str = "cargo xtask bench-report blocks/cache-aside";

/// The block's generated files and bench report.
pub fn book() -> Chapter {
    Chapter {
        slug: CHAPTER,
        package: "block-cache-aside",
        generated: vec![GeneratedFile::pure(
            "src/blocks/cache-aside/generated/fill-cost.md",
            fill_cost_markdown,
        )],
        report: Some(Report {
            benches: &["fill_cost"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}

/// `fill-cost.md`: each operation's rate and latency, and its ratio to its reference.
pub fn fill_cost_markdown() -> Result<String> {
    let all = results::committed(CHAPTER)?;
    let find = |name: &str| all.iter().find(|r| r.name == name);
    let rows: Vec<(&str, &BenchResult)> = [
        ("Unconditional `SET` (reference of a fill)", SET),
        ("Conditional fill (the script)", FILL),
        ("PostgreSQL read by key (reference of a hit)", DB_READ),
        ("Redis hit (entry and version, one round trip)", HIT),
    ]
    .into_iter()
    .filter_map(|(label, name)| find(name).map(|r| (label, r)))
    .collect();
    if rows.is_empty() {
        return Ok(format!("**Not measured yet**: run `{COMMAND}`.\n"));
    }
    let header = measured_header(COMMAND, &rows.iter().map(|(_, r)| *r).collect::<Vec<_>>());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, r)| {
            vec![
                (*label).to_string(),
                fmt_count(r.ops_per_sec.unwrap_or(0.0)),
                fmt_us(r.p50_us),
                fmt_us(r.p99_us),
                if r.ratio.is_some() {
                    fmt_spread(r.ratio)
                } else {
                    "1×".to_string()
                },
            ]
        })
        .collect();
    let rounds = rows[0].1.rounds_ops_per_sec.len();
    Ok(format!(
        "{header}{}\nOne client, one call in flight, over loopback; {rounds} rounds per pair, each \
         measuring the reference and the operation back to back. The ratio is the median over the \
         rounds of the operation's rate divided by its reference's rate in the same round, with the \
         lowest and highest in brackets.\n",
        markdown_table(
            &["Operation", "Calls/s", "p50", "p99", "Ratio to reference"],
            &table
        ),
    ))
}
