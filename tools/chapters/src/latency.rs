//! The appendix "Latency numbers, measured": `tools/latency-appendix/benches/latency.rs` beside the
//! classic "Latency numbers every programmer should know".
//!
//! Writes `src/appendix/generated/latency.md` (a table) and
//! `src/appendix/generated/latency.svg` (a bar chart on a log scale). The
//! classic figures are data here, each with the page it is quoted from.

use std::fmt::Write as _;

use anyhow::Result;
use bookkit::criterion::CriterionBench;
use bookkit::plot::{Bar, BarChart, log_bar_chart};
use bookkit::table::{fmt_ns, fmt_ns_round, fmt_ratio, markdown_table, measured_header};
use bookkit::{Chapter, GeneratedFile, Report, results};

/// The appendix's slug: its folder under `src/`.
pub const SLUG: &str = "appendix";
const COMMAND: &str = "cargo xtask bench-report latency";

/// The criterion group of `tools/latency-appendix/benches/latency.rs`.
pub const GROUP: &str = "latency";
/// The generated table, relative to the repository root.
pub const TABLE_PATH: &str = "src/appendix/generated/latency.md";
/// The generated plot, relative to the repository root.
pub const PLOT_PATH: &str = "src/appendix/generated/latency.svg";

/// Peter Norvig, "Teach Yourself Programming in Ten Years", the timing table.
pub const NORVIG_URL: &str = "https://norvig.com/21-days.html#answers";
/// Jonas Bonér's gist of Jeff Dean's "Latency numbers every programmer should know".
pub const DEAN_GIST_URL: &str = "https://gist.github.com/jboner/2841832";

/// One published figure from the classic list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classic {
    /// The operation, as the list names it.
    pub operation: &'static str,
    /// The figure, nanoseconds.
    pub ns: f64,
    /// Where it is published.
    pub source: &'static str,
}

/// "L2 cache reference": 7 ns.
pub const L2_CACHE_REFERENCE: Classic = Classic {
    operation: "L2 cache reference",
    ns: 7.0,
    source: NORVIG_URL,
};
/// "Main memory reference": 100 ns.
pub const MAIN_MEMORY_REFERENCE: Classic = Classic {
    operation: "Main memory reference",
    ns: 100.0,
    source: NORVIG_URL,
};
/// "Compress 1K bytes with Zippy": 3 µs (the list's only CPU-bound work on 1 KiB).
pub const COMPRESS_1K_ZIPPY: Classic = Classic {
    operation: "Compress 1K bytes with Zippy",
    ns: 3_000.0,
    source: DEAN_GIST_URL,
};
/// "Read 4K randomly from SSD": 150 µs.
pub const READ_4K_RANDOM_SSD: Classic = Classic {
    operation: "Read 4K randomly from SSD",
    ns: 150_000.0,
    source: DEAN_GIST_URL,
};
/// "Round trip within same datacenter": 500 µs.
pub const DATACENTER_ROUND_TRIP: Classic = Classic {
    operation: "Round trip within same datacenter",
    ns: 500_000.0,
    source: DEAN_GIST_URL,
};

/// One row of the table: a benchmark of `tools/latency-appendix/benches/latency.rs` and the classic figure it is set against.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The benchmark id in the `latency` group.
    pub id: &'static str,
    /// What one iteration does, for the table.
    pub operation: &'static str,
    /// The classic figure it is compared to; `None` when the list has none.
    pub classic: Option<Classic>,
    /// The service the benchmark needs, if any (named when it was not measured).
    pub needs: Option<&'static str>,
}

/// The rows, in the order of the table (fastest expected first).
pub const ROWS: &[Row] = &[
    Row {
        id: "hashmap_hit_1k",
        operation: "`HashMap<u64, u64>` hit, 1K random keys (in cache)",
        classic: Some(L2_CACHE_REFERENCE),
        needs: None,
    },
    Row {
        id: "hashmap_hit_10m",
        operation: "`HashMap<u64, u64>` hit, 10M random keys (misses the caches)",
        classic: Some(MAIN_MEMORY_REFERENCE),
        needs: None,
    },
    Row {
        id: "random_read_1gib",
        operation: "Random 8-byte read from a 1 GiB buffer",
        classic: Some(MAIN_MEMORY_REFERENCE),
        needs: None,
    },
    Row {
        id: "sha256_1kib",
        operation: "SHA-256 of 1 KiB (`sha2`)",
        classic: None,
        needs: None,
    },
    Row {
        id: "json_parse_1kib",
        operation: "Parse 1 KiB of JSON into `serde_json::Value`",
        classic: None,
        needs: None,
    },
    Row {
        id: "redis_ping",
        operation: "Redis `PING` round trip, loopback",
        classic: Some(DATACENTER_ROUND_TRIP),
        needs: Some("Redis"),
    },
    Row {
        id: "postgres_select_1",
        operation: "PostgreSQL `SELECT 1` round trip, loopback",
        classic: Some(DATACENTER_ROUND_TRIP),
        needs: Some("PostgreSQL"),
    },
    Row {
        id: "fsync_4kib",
        operation: "Write 4 KiB + `fdatasync` (`File::sync_data`)",
        classic: Some(READ_4K_RANDOM_SSD),
        needs: None,
    },
];

/// The appendix's entry: the table and plot, computed from the committed
/// results of the root package's `latency` bench.
pub fn book() -> Chapter {
    Chapter {
        slug: SLUG,
        package: "latency-appendix",
        generated: vec![
            GeneratedFile::pure(TABLE_PATH, table_markdown),
            GeneratedFile::pure(PLOT_PATH, plot_svg),
        ],
        report: Some(Report {
            benches: &["latency"],
            criterion_groups: &[GROUP],
            measure: None,
        }),
    }
}

/// The result the bench writes about its surroundings (servers, disk, load).
pub const ENVIRONMENT: &str = "environment";

fn table_markdown() -> Result<String> {
    let committed = results::committed(SLUG)?;
    let (environment, measured): (Vec<_>, Vec<_>) =
        committed.iter().partition(|r| r.name == ENVIRONMENT);
    let header =
        measured_header(COMMAND, &measured) + &environment_line(environment.first().copied());
    Ok(table(&header, &CriterionBench::from_results(&committed)))
}

// ANCHOR: environment_line
/// The second line of the header: the servers the round trips went to, the
/// disk that took the `fdatasync`, and whether other work shared the CPUs
/// while the benchmarks ran (load average above half the CPUs, before or after).
pub fn environment_line(environment: Option<&bookkit::BenchResult>) -> String {
    let Some(e) = environment else {
        return "**Servers and disk** not recorded by this run.\n\n".to_string();
    };
    let text = |key: &str| {
        e.extra
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let cores = e.cores.max(1) as f64;
    let loads: Vec<f64> = ["load_before", "load_after"]
        .iter()
        .filter_map(|k| e.extra_f64(k))
        .collect();
    let load = match loads.as_slice() {
        [before, after] => {
            // The load after includes the bench's own; only the load
            // before it says whether other work shared the machine.
            let busy = *before > 0.5 * cores;
            format!(
                "load average {before:.1} before and {after:.1} after the run on {} CPUs{}",
                e.cores,
                if busy {
                    ": **busy machine**, other work shared the CPUs and the disk"
                } else {
                    ": an otherwise idle machine"
                }
            )
        }
        _ => "load not recorded".to_string(),
    };
    format!(
        "**Servers and disk:** {}, {}; `fdatasync` on {}; {load}.\n\n",
        text("postgres"),
        text("redis"),
        text("disk"),
    )
}
// ANCHOR_END: environment_line

fn plot_svg() -> Result<String> {
    let committed = results::committed(SLUG)?;
    let caption = committed
        .iter()
        .find_map(|r| r.machine.as_ref())
        .map_or_else(
            || "not measured yet".to_string(),
            bookkit::MachineHeader::one_line,
        );
    plot(&caption, &CriterionBench::from_results(&committed))
}

/// The Markdown of the generated table, under `header`.
pub fn table(header: &str, measured: &[CriterionBench]) -> String {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for row in ROWS {
        let m = measured.iter().find(|b| b.id == row.id);
        let classic = match row.classic {
            Some(c) => format!("[{}: {}]({})", c.operation, fmt_ns_round(c.ns), c.source),
            None => "no classic figure".to_string(),
        };
        let Some(m) = m else {
            missing.push(match row.needs {
                Some(service) => format!("`{}` (needs {service})", row.id),
                None => format!("`{}`", row.id),
            });
            rows.push(vec![
                row.operation.to_string(),
                "not measured".to_string(),
                "".to_string(),
                "".to_string(),
                classic,
                "".to_string(),
            ]);
            continue;
        };
        let median = m.median_ns;
        let ratio = row
            .classic
            .map_or_else(|| "—".to_string(), |c| fmt_ratio(median.point / c.ns));
        rows.push(vec![
            row.operation.to_string(),
            format!("**{}**", fmt_ns(median.point)),
            format!("{} – {}", fmt_ns(median.lower), fmt_ns(median.upper)),
            fmt_ns(m.mean_ns.point),
            classic,
            ratio,
        ]);
    }
    let mut out = header.to_string();
    out.push_str(&markdown_table(
        &[
            "Operation",
            "Median",
            "95% CI of median",
            "Mean",
            "Classic figure",
            "Median / classic",
        ],
        &rows,
    ));
    out.push_str(
        "\nMedian and mean of criterion's samples; a sample times a batch of iterations and \
         divides by its size. Bench ids are `latency/<id>` in `tools/latency-appendix/benches/latency.rs`.\n",
    );
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "\nNot measured in this run: {}. Re-run with the service up to fill the row.",
            missing.join(", ")
        );
    }
    out
}

/// The SVG of the bar chart: one bar per measured row, the classic figure as a cross.
pub fn plot(caption: &str, measured: &[CriterionBench]) -> Result<String> {
    let bars: Vec<Bar> = ROWS
        .iter()
        .filter_map(|row| {
            let m = measured.iter().find(|b| b.id == row.id)?;
            Some(Bar {
                label: row.id.to_string(),
                value_ns: m.median_ns.point,
                reference_ns: row.classic.map(|c| c.ns),
            })
        })
        .collect();
    log_bar_chart(
        &BarChart {
            title: "Latency numbers, measured (median per operation)",
            value_label: "measured median",
            reference_label: "classic figure (Dean / Norvig)",
            caption,
        },
        &bars,
    )
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use bookkit::criterion::Interval;

    fn bench(id: &str, ns: f64) -> CriterionBench {
        let i = Interval {
            point: ns,
            lower: ns * 0.9,
            upper: ns * 1.1,
            confidence_level: 0.95,
        };
        CriterionBench {
            group: GROUP.into(),
            id: id.into(),
            mean_ns: i,
            median_ns: i,
            samples: 100,
            iterations: 5050,
            modified: SystemTime::now(),
        }
    }

    #[test]
    fn every_row_is_a_bench_in_benches_latency_rs() {
        let source = include_str!("../../latency-appendix/benches/latency.rs");
        for row in ROWS {
            assert!(
                source.contains(&format!("\"{}\"", row.id)),
                "{} not in benches/latency.rs",
                row.id
            );
        }
    }

    #[test]
    fn every_classic_figure_cites_its_source() {
        for c in ROWS
            .iter()
            .filter_map(|r| r.classic)
            .chain([COMPRESS_1K_ZIPPY])
        {
            assert!(c.source.starts_with("https://"), "{}", c.operation);
            assert!(c.ns > 0.0);
        }
    }

    #[test]
    fn table_shows_ratios_and_missing_rows() {
        let measured = vec![
            bench("hashmap_hit_10m", 200.0),
            bench("sha256_1kib", 2_000.0),
        ];
        let t = table("HEADER\n\n", &measured);
        assert!(t.starts_with("HEADER\n\n| Operation |"));
        assert!(
            t.contains("| **200 ns** | 180 ns – 220 ns | 200 ns | [Main memory reference: 100 ns]")
        );
        assert!(t.contains("| 2.0× |"));
        assert!(t.contains("no classic figure | — |"));
        assert!(t.contains("`redis_ping` (needs Redis)"));
        let rows = t.lines().filter(|l| l.starts_with("| ")).count();
        assert_eq!(rows, ROWS.len() + 1);
    }

    #[test]
    fn the_header_names_servers_disk_and_load() {
        let mut e = bookkit::BenchResult::new(SLUG, ENVIRONMENT, bookkit::ResultKind::Load);
        e.cores = 2;
        let e = e
            .with_extra("postgres", "PostgreSQL 15.20")
            .with_extra("redis", "Redis 7.0.15")
            .with_extra("disk", "ext4 on /dev/vda (virtio_blk, write back cache)")
            .with_extra("load_before", 0.4)
            .with_extra("load_after", 3.2);
        let line = environment_line(Some(&e));
        for part in [
            "PostgreSQL 15.20",
            "Redis 7.0.15",
            "ext4 on /dev/vda",
            "0.4 before and 3.2 after",
            // The load after is the bench's own: the machine was idle.
            "otherwise idle",
        ] {
            assert!(line.contains(part), "{line}");
        }
        let busy = e.with_extra("load_before", 1.5);
        assert!(environment_line(Some(&busy)).contains("**busy machine**"));
        assert!(environment_line(None).contains("not recorded"));
    }

    #[test]
    fn plot_has_a_bar_per_measured_row() -> Result<()> {
        let svg = plot("caption", &[bench("redis_ping", 30_000.0)])?;
        assert!(svg.contains("redis_ping"));
        assert!(!svg.contains("fsync_4kib"));
        Ok(())
    }
}
