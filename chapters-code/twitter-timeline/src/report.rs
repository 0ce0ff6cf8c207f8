//! The chapter's measured tables and plot, rendered from the committed
//! results of `benches/timeline.rs` (`cargo xtask bench-report twitter-timeline`).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use bookkit::BenchResult;
use bookkit::results::find;
use bookkit::table::{fmt_spread, fmt_us, markdown_table, measured_header};

use crate::sim::{
    CHOSEN_THRESHOLD, GraphStats, READS_PER_POST, SweepRow, best, sweep_markdown as sweep_table,
};

/// The chapter slug the results are filed under.
pub const CHAPTER: &str = "twitter-timeline";
/// The command that measures everything here.
pub const COMMAND: &str = "cargo xtask bench-report twitter-timeline";
/// Followee counts of the measured pull reads.
pub const PULL_FOLLOWEES: [u32; 3] = [10, 100, 1_000];
/// Follower counts of the delivery runs.
pub const DELIVERY_FOLLOWERS: [u32; 3] = [1_000, 10_000, 50_000];
/// Timeline sizes whose memory is measured.
pub const MEMORY_FILLS: [u32; 3] = [100, 200, 800];
/// Twitter's delivery goal for a post, in seconds ("Timelines at Scale").
pub const DELIVERY_GOAL_S: f64 = 5.0;

fn committed() -> Result<Vec<BenchResult>> {
    bookkit::results::committed(CHAPTER)
}

fn header(results: &[&BenchResult]) -> String {
    measured_header(COMMAND, results)
}

/// The sweep table, the graph it ran on, and the threshold chosen.
pub fn sweep_markdown() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "sweep")?;
    let stats: GraphStats =
        serde_json::from_value(r.extra.get("stats").cloned().context("stats")?)?;
    let mut rows: Vec<SweepRow> =
        serde_json::from_value(r.extra.get("rows").cloned().context("rows")?)?;
    // The weight of reads comes from the current capacity inputs, not the run.
    for row in &mut rows {
        row.work_per_post = row.writes_per_post + READS_PER_POST * row.keys_per_read;
    }
    let params = r.extra.get("params").and_then(|v| v.as_str()).unwrap_or("");
    let mut out = header(&[r]);
    let _ = writeln!(out, "Graph: {params}.\n");
    out.push_str(&crate::sim::stats_markdown(&crate::sim::BOOK_GRAPH, &stats));
    out.push('\n');
    out.push_str(&sweep_table(&rows));
    let least = best(&rows).and_then(|b| b.threshold);
    let _ = write!(
        out,
        "\nWork per post = writes per post + {READS_PER_POST:.1} reads per post x keys per read. \
         Least work among the hybrid rows: threshold {}. The service's default threshold: {CHOSEN_THRESHOLD}.\n",
        least.map_or("none".to_string(), |t| t.to_string())
    );
    Ok(out)
}

/// The sweep as a line chart: writes per post and keys per read against the threshold.
pub fn sweep_svg() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "sweep")?;
    let rows: Vec<SweepRow> =
        serde_json::from_value(r.extra.get("rows").cloned().context("rows")?)?;
    let hybrid: Vec<&SweepRow> = rows.iter().filter(|r| r.threshold.is_some()).collect();
    let series = |name: &str, f: &dyn Fn(&SweepRow) -> f64| bookkit::plot::Series {
        name: name.to_string(),
        points: hybrid
            .iter()
            .map(|r| (r.threshold.unwrap_or(1) as f64, f(r).max(0.01)))
            .collect(),
    };
    let caption = r.machine.as_ref().map(|m| m.one_line()).unwrap_or_default();
    bookkit::plot::line_chart(
        &bookkit::plot::LineChart {
            title: "Hybrid timelines: the celebrity threshold",
            x_desc: "threshold (followers at which an author is pulled)",
            y_desc: "count (log)",
            log_x: true,
            log_y: true,
            caption: &caption,
        },
        &[
            series("timeline writes per post", &|r| r.writes_per_post),
            series("largest fan-out of one post", &|r| r.max_writes as f64),
            series("keys per read (mean)", &|r| r.keys_per_read),
            series("keys per read (p99)", &|r| f64::from(r.p99_keys_per_read)),
        ],
    )
}

/// Bytes per timeline, LIST against ZSET, as Redis reports them.
pub fn memory_markdown() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "memory")?;
    let mut rows = Vec::new();
    for n in MEMORY_FILLS {
        let list = r.extra_f64(&format!("list-{n}")).context("list bytes")?;
        let zset = r.extra_f64(&format!("zset-{n}")).context("zset bytes")?;
        rows.push(vec![
            n.to_string(),
            format!("{list:.0}"),
            format!("{:.1}", list / f64::from(n)),
            format!("{zset:.0}"),
            format!("{:.1}", zset / f64::from(n)),
            format!("{:.1}x", zset / list),
        ]);
    }
    Ok(header(&[r])
        + &markdown_table(
            &[
                "Entries",
                "LIST bytes",
                "per entry",
                "ZSET bytes",
                "per entry",
                "ZSET / LIST",
            ],
            &rows,
        ))
}

/// Read and post latency beside the raw-LRANGE ceiling, and rebuild cost.
pub fn performance_markdown() -> Result<String> {
    let all = committed()?;
    let ceiling = find(&all, "ceiling-lrange")?;
    let mut names: Vec<(String, String, &str)> = vec![
        (
            "ceiling-lrange".into(),
            "ceiling: one LRANGE of 20 ids, straight through the client".into(),
            "–",
        ),
        (
            "home-push".into(),
            "home timeline, push (script, hydrate, filter)".into(),
            "300K reads/s fleet-wide (Twitter, 2012)",
        ),
        (
            "home-hybrid".into(),
            "home timeline, hybrid (5 of 100 followees pulled)".into(),
            "–",
        ),
    ];
    for k in PULL_FOLLOWEES {
        names.push((
            format!("home-pull-k{k}"),
            format!("home timeline, pull, {k} followees"),
            "–",
        ));
    }
    names.push((
        "post".into(),
        "post (row and fan-out job, one transaction)".into(),
        "6K posts/s fleet-wide (Twitter, 2012)",
    ));
    names.push((
        "rebuild".into(),
        "rebuild a lost timeline (100 followees, 800 entries)".into(),
        "–",
    ));
    let mut used = Vec::new();
    let mut rows = Vec::new();
    for (name, label, target) in &names {
        let r = find(&all, name)?;
        used.push(r);
        rows.push(vec![
            label.clone(),
            r.ops_per_sec.map_or("n/a".into(), |v| format!("{v:.0}")),
            r.ops_per_core().map_or("n/a".into(), |v| format!("{v:.0}")),
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            if r.ceiling.is_some() {
                fmt_spread(r.ratio)
            } else {
                "–".into()
            },
            r.concurrency.map_or("–".into(), |c| c.to_string()),
            target.to_string(),
        ]);
    }
    let _ = ceiling;
    Ok(header(&used)
        + &markdown_table(
            &[
                "Operation",
                "ops/s",
                "ops/s per core",
                "p50",
                "p99",
                "Throughput / ceiling (median, min–max)",
                "Clients",
                "Claimed elsewhere",
            ],
            &rows,
        ))
}

/// Time to deliver one post to all followers, per follower count.
pub fn delivery_markdown() -> Result<String> {
    let all = committed()?;
    let mut used = Vec::new();
    let mut rows = Vec::new();
    for f in DELIVERY_FOLLOWERS {
        let r = find(&all, &format!("deliver-{f}"))?;
        used.push(r);
        let total_ms = r.extra_f64("total_ms").context("total_ms")?;
        rows.push(vec![
            f.to_string(),
            format!("{:.0}", r.extra_f64("p50_ms").unwrap_or(0.0)),
            format!("{:.0}", r.extra_f64("p99_ms").unwrap_or(0.0)),
            format!("{total_ms:.0}"),
            r.ops_per_sec.map_or("n/a".into(), |v| format!("{v:.0}")),
            format!("{:.0}", DELIVERY_GOAL_S * 1_000.0),
        ]);
    }
    let fastest = used
        .iter()
        .filter_map(|r| r.ops_per_sec)
        .fold(0.0_f64, f64::max);
    let reach = (fastest * DELIVERY_GOAL_S).floor();
    let footer = format!(
        "\nAt the best measured rate, one post reaches {reach:.0} followers within the {DELIVERY_GOAL_S:.0} s goal; \
         the service's default celebrity threshold is {CHOSEN_THRESHOLD} followers.\n"
    );
    Ok(header(&used)
        + &markdown_table(
            &[
                "Followers",
                "Delivered by (p50, ms)",
                "Delivered by (p99, ms)",
                "Last follower (ms)",
                "Timelines written per second",
                "Goal (ms, Twitter)",
            ],
            &rows,
        )
        + &footer)
}

/// `measured.json`: the home-timeline (push) read per core.
pub fn measured_json() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "home-push")?;
    let m = capacity::Measured {
        ops_per_core: r.ops_per_core().context("home-push has no throughput")?,
        path: "home-push".into(),
        measured_on: r
            .machine
            .as_ref()
            .map_or("an unrecorded machine".into(), |m| m.one_line()),
    };
    Ok(m.to_json())
}

/// `capacity.md`, from [`measured_json`].
pub fn capacity_markdown() -> Result<String> {
    let all = committed()?;
    let full = format!("list-{}", crate::cache::TIMELINE_CAP);
    let bytes = find(&all, "memory")?
        .extra_f64(&full)
        .with_context(|| format!("memory has no {full}"))?;
    crate::capacity::capacity_markdown(&measured_json()?, bytes as u64)
}
