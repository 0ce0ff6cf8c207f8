//! What this block publishes into its Part II page (feature `book`): the
//! table of what the layer adds to a write, from the committed results of
//! `benches/overhead.rs`.

use anyhow::Result;
use bookkit::results::BenchResult;
use bookkit::table::{fmt_spread, fmt_us, markdown_table};
use bookkit::{Chapter, GeneratedFile, Report};

/// The block's slug (its page's folder under `src/`).
pub const SLUG: &str = "blocks/idempotency";
/// The command that measures it.
pub const COMMAND: &str = "cargo xtask bench-report blocks/idempotency";
/// The generated table.
pub const OVERHEAD_PATH: &str = "src/blocks/idempotency/generated/overhead.md";
/// Clients writing at once in the measurement (more than one, fewer than the pool).
pub const CLIENTS: u32 = 8;

/// The workloads, ceiling first: (result name, what the table calls it).
pub const WORKLOADS: &[(&str, &str)] = &[
    (
        "write-c8",
        "the write alone (BEGIN, INSERT, COMMIT): the ceiling",
    ),
    (
        "keyed-one-tx-c8",
        "claim, write, finish in one transaction (parking's shape)",
    ),
    (
        "keyed-two-tx-c8",
        "claim committed, then write and finish in a second (ecommerce's shape)",
    ),
    (
        "replay-c8",
        "a retry: the claim finds the answer and replays it",
    ),
];

/// The block's generated files and bench report.
pub fn book() -> Chapter {
    Chapter {
        slug: SLUG,
        package: "block-idempotency",
        generated: vec![GeneratedFile::pure(OVERHEAD_PATH, overhead_markdown)],
        report: Some(Report {
            benches: &["overhead"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}

fn find<'a>(rs: &'a [BenchResult], name: &str) -> Option<&'a BenchResult> {
    rs.iter().find(|r| r.name == name)
}

// ANCHOR: render
/// The overhead table from `results`: each workload's rate, latency, its
/// throughput ratio to the bare write, and the p50 it adds to it.
pub fn render_overhead(rs: &[BenchResult]) -> String {
    let Some(ceiling) = find(rs, WORKLOADS[0].0) else {
        return format!("Not measured yet: run `{COMMAND}`.\n");
    };
    let base_p50 = ceiling.p50_us.unwrap_or(0.0);
    let rows: Vec<Vec<String>> = WORKLOADS
        .iter()
        .filter_map(|(name, what)| {
            let r = find(rs, name)?;
            let added = r.p50_us.map(|p| p - base_p50);
            Some(vec![
                (*what).to_string(),
                format!("{:.0}", r.ops_per_sec.unwrap_or(0.0)),
                fmt_us(r.p50_us),
                fmt_us(r.p99_us),
                if r.ratio.is_some() {
                    fmt_spread(r.ratio)
                } else {
                    "1 (ceiling)".into()
                },
                match added {
                    _ if *name == WORKLOADS[0].0 => "-".into(),
                    Some(a) if a < 0.0 => format!("−{}", fmt_us(Some(-a))),
                    Some(a) => format!("+{}", fmt_us(Some(a))),
                    None => fmt_us(None),
                },
            ])
        })
        .collect();
    let mut out = format!(
        "**{CLIENTS} clients writing at once on PostgreSQL, each write with a fresh key** \
         (interleaved rounds; ratio = throughput over the bare write's in the same round, \
         median (lowest–highest)):\n\n"
    );
    out.push_str(&markdown_table(
        &["Workload", "Writes/s", "p50", "p99", "Ratio", "p50 added"],
        &rows,
    ));
    out
}
// ANCHOR_END: render

/// `overhead.md`, from the committed results.
pub fn overhead_markdown() -> Result<String> {
    let results = bookkit::results::committed(SLUG)?;
    let header = bookkit::table::measured_header(COMMAND, &results.iter().collect::<Vec<_>>());
    Ok(format!("{header}{}", render_overhead(&results)))
}
