//! The chapter's measured tables and plot, rendered from the committed
//! results of `benches/timeline.rs` (`cargo xtask bench-report twitter-timeline`).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use bookkit::BenchResult;
use bookkit::results::find;
use bookkit::table::{fmt_spread, fmt_us, markdown_table, measured_header};

use crate::sim::{
    CHOSEN_THRESHOLD, Costs, GraphStats, READS_PER_POST, SweepRow, cost_markdown, writes_markdown,
};

/// The chapter slug the results are filed under.
pub const CHAPTER: &str = "twitter-timeline";
/// The command that measures everything here.
pub const COMMAND: &str = "cargo xtask bench-report twitter-timeline";
/// Followee counts of the measured pull reads.
pub const PULL_FOLLOWEES: [u32; 3] = [10, 100, 1_000];
/// Followees of the measured push and hybrid readers.
pub const READER_FOLLOWEES: usize = 100;
/// How many of the hybrid reader's followees are celebrities (pulled at read).
pub const HYBRID_PULLED: usize = 5;
/// Follower counts of the delivery runs.
pub const DELIVERY_FOLLOWERS: [u32; 3] = [1_000, 10_000, 50_000];
/// Timeline sizes whose memory is measured.
pub const MEMORY_FILLS: [u32; 3] = [100, 200, 800];
/// The audience of the workers' delivery runs: the default celebrity
/// threshold, the largest audience the hybrid fans out.
pub const DELIVERY_AT_THRESHOLD: u32 = CHOSEN_THRESHOLD as u32;
/// Fan-out workers in the workers' delivery runs.
pub const DELIVERY_WORKERS: [usize; 3] = [1, 2, 4];

/// The result name of the delivery run at the threshold with `workers` workers.
pub fn delivery_workers_name(workers: usize) -> String {
    format!("deliver-{DELIVERY_AT_THRESHOLD}-w{workers}")
}

/// Twitter's delivery goal for a post, in seconds ("Timelines at Scale").
pub const DELIVERY_GOAL_S: f64 = 5.0;
/// The audience of the slow post in "Timelines at Scale" (31M followers, up to 5 minutes).
pub const TWITTER_LARGEST_AUDIENCE: f64 = 31_000_000.0;
/// Mean fan-out assumed by the system-design-primer's Twitter solution.
pub const PRIMER_FAN_OUT: f64 = 5.0;
/// Mean fan-out implied by 30 billion Redis updates a day from 400 million posts.
pub const TWITTER_FAN_OUT: f64 = 75.0;

fn committed() -> Result<Vec<BenchResult>> {
    bookkit::results::committed(CHAPTER)
}

fn header(results: &[&BenchResult]) -> String {
    measured_header(COMMAND, results)
}

fn core_us(r: &BenchResult) -> Result<f64> {
    let per_core = r
        .ops_per_core()
        .with_context(|| format!("{} has no throughput", r.name))?;
    Ok(1e6 / per_core)
}

/// The delivery run with the largest audience: the rate a celebrity's post gets.
fn delivery_rate(all: &[BenchResult]) -> Result<&BenchResult> {
    let largest = DELIVERY_FOLLOWERS
        .iter()
        .max()
        .context("no delivery runs")?;
    find(all, &format!("deliver-{largest}"))
}

/// The measured prices the sweep's counts are weighed with, and the results they came from.
pub fn measured_costs(all: &[BenchResult]) -> Result<(Costs, Vec<&BenchResult>)> {
    let write = delivery_rate(all)?;
    let push = find(all, "home-push")?;
    let hybrid = find(all, "home-hybrid")?;
    let mut used = vec![write, push, hybrid];
    let mut pulls = Vec::new();
    for k in PULL_FOLLOWEES {
        let r = find(all, &format!("home-pull-k{k}"))?;
        // The reader's own posts are one more author to pull.
        pulls.push((f64::from(k) + 1.0, core_us(r)?));
        used.push(r);
    }
    let costs = Costs::fit(
        core_us(write)?,
        core_us(push)?,
        (HYBRID_PULLED as f64, core_us(hybrid)?),
        &pulls,
    )
    .context("too few pull measurements to fit")?;
    Ok((costs, used))
}

fn sweep_rows(r: &BenchResult) -> Result<Vec<SweepRow>> {
    Ok(serde_json::from_value(
        r.extra.get("rows").cloned().context("rows")?,
    )?)
}

/// The sweep: the graph, what each threshold writes and how long its
/// largest fan-out takes, and what each costs in core time at measured prices.
pub fn sweep_markdown() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "sweep")?;
    let stats: GraphStats =
        serde_json::from_value(r.extra.get("stats").cloned().context("stats")?)?;
    let rows = sweep_rows(r)?;
    if rows
        .iter()
        .any(|x| x.strategy == "pull" && x.pulling_reads == 0.0)
    {
        anyhow::bail!("the committed sweep predates `pulling_reads`: run `{COMMAND}`");
    }
    let (costs, mut used) = measured_costs(&all)?;
    used.insert(0, r);
    let rate = delivery_rate(&all)?
        .ops_per_sec
        .context("delivery has no rate")?;
    let params = r.extra.get("params").and_then(|v| v.as_str()).unwrap_or("");
    let mut out = header(&used);
    let _ = writeln!(out, "Graph: {params}.\n");
    out.push_str(&crate::sim::stats_markdown(&crate::sim::BOOK_GRAPH, &stats));
    let posts_per_day =
        crate::capacity::DAILY_ACTIVE_USERS as f64 * crate::capacity::POSTS_PER_USER_PER_DAY;
    let _ = writeln!(
        out,
        "\nAt {:.0} million posts a day, a mean fan-out of {PRIMER_FAN_OUT:.0} (the primer's assumption) \
         means {:.1} billion timeline writes a day, Twitter's {TWITTER_FAN_OUT:.0} means {:.1} billion, \
         and this graph's {:.1} (its mean counting only active followers) {:.1} billion.\n",
        posts_per_day / 1e6,
        posts_per_day * PRIMER_FAN_OUT / 1e9,
        posts_per_day * TWITTER_FAN_OUT / 1e9,
        stats.mean_fan_out,
        posts_per_day * stats.mean_fan_out / 1e9,
    );
    let _ = writeln!(
        out,
        "**What each strategy writes.** The largest fan-out is delivered at the measured rate of \
         {rate:.0} timelines a second (two workers, the {}-follower run), against the {DELIVERY_GOAL_S:.0} s goal.\n",
        DELIVERY_FOLLOWERS.iter().max().unwrap_or(&0)
    );
    out.push_str(&writes_markdown(&rows, rate, DELIVERY_GOAL_S));
    let _ = writeln!(
        out,
        "\n**What each strategy costs.** Core time per post made, at {READS_PER_POST:.1} reads per post, \
         priced with the measured runs: a timeline write {:.0} µs, a push read {:.0} µs, a pull read \
         {:.0} µs plus {:.1} µs per author pulled, and {:.0} µs more when a push read also pulls (the hybrid).\n",
        costs.timeline_write_us,
        costs.push_read_us,
        costs.pull_fixed_us,
        costs.pull_per_key_us,
        costs.hybrid_pull_fixed_us,
    );
    out.push_str(&cost_markdown(&rows, &costs, READS_PER_POST));
    let push = rows
        .iter()
        .find(|x| x.strategy == "push")
        .context("push row")?;
    let pull = rows
        .iter()
        .find(|x| x.strategy == "pull")
        .context("pull row")?;
    let cost = |x: &SweepRow| costs.per_post(x, READS_PER_POST).total_us();
    let cheapest = rows
        .iter()
        .filter(|x| x.threshold.is_some())
        .filter(|x| x.max_writes as f64 / rate <= DELIVERY_GOAL_S)
        .min_by(|a, b| cost(a).total_cmp(&cost(b)));
    let _ = write!(
        out,
        "\nPure pull costs {:.1}x pure push per post. ",
        cost(pull) / cost(push)
    );
    match costs.break_even_reads(push, pull) {
        Some(n) => {
            let _ = write!(
                out,
                "It would win only if a post were read fewer than {n:.1} times on average (here: {READS_PER_POST:.1}). "
            );
        }
        None => {
            let _ = write!(
                out,
                "At these prices a pull read is no dearer than a push read. "
            );
        }
    }
    if let Some(c) = cheapest {
        let _ = write!(
            out,
            "The cheapest threshold whose largest fan-out meets the goal: {} (a threshold above the largest account, {}, is pure push). ",
            c.threshold.unwrap_or(0),
            stats.max_followers
        );
    }
    let _ = writeln!(
        out,
        "The service's default threshold: {CHOSEN_THRESHOLD}; an audience that size takes {:.1} s at the measured rate.",
        CHOSEN_THRESHOLD as f64 / rate
    );
    Ok(out)
}

/// The sweep's counts as a line chart against the threshold.
pub fn sweep_svg() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "sweep")?;
    let rows = sweep_rows(r)?;
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
            title: "Hybrid timelines: what the threshold counts",
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

/// The sweep's measured cost per post, fan-out and reads, against the threshold.
pub fn sweep_cost_svg() -> Result<String> {
    let all = committed()?;
    let r = find(&all, "sweep")?;
    let rows = sweep_rows(r)?;
    let (costs, used) = measured_costs(&all)?;
    let hybrid: Vec<&SweepRow> = rows.iter().filter(|r| r.threshold.is_some()).collect();
    let series = |name: &str, f: &dyn Fn(&SweepRow) -> f64| bookkit::plot::Series {
        name: name.to_string(),
        points: hybrid
            .iter()
            .map(|r| (r.threshold.unwrap_or(1) as f64, f(r).max(0.0)))
            .collect(),
    };
    let per_post = |f: fn(&crate::sim::PostCost) -> f64| {
        move |r: &SweepRow| f(&costs.per_post(r, READS_PER_POST)) / 1_000.0
    };
    let pull = rows
        .iter()
        .find(|x| x.strategy == "pull")
        .context("pull row")?;
    let pull_total = costs.per_post(pull, READS_PER_POST).total_us() / 1_000.0;
    let caption = used
        .first()
        .and_then(|r| r.machine.as_ref())
        .map(|m| m.one_line())
        .unwrap_or_default();
    bookkit::plot::line_chart(
        &bookkit::plot::LineChart {
            title: "Hybrid timelines: core time per post, at measured prices",
            x_desc: "threshold (followers at which an author is pulled)",
            y_desc: "core ms per post",
            log_x: true,
            log_y: false,
            caption: &caption,
        },
        &[
            series("fan-out", &per_post(|c| c.writes_us)),
            series("reads", &per_post(|c| c.reads_us)),
            series("total", &per_post(|c| c.total_us())),
            series("pure pull, total", &|_| pull_total),
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

/// One table of measured operations, each beside the ceiling named in its row.
fn operations_table<'a>(
    all: &'a [BenchResult],
    names: &[(String, String, &str)],
) -> Result<(Vec<&'a BenchResult>, String)> {
    let mut used = Vec::new();
    let mut rows = Vec::new();
    for (name, label, target) in names {
        // A result no run has committed yet is a row that says so.
        let Some(r) = all.iter().find(|r| &r.name == name) else {
            rows.push(vec![
                label.clone(),
                "not measured yet".into(),
                String::new(),
                String::new(),
                String::new(),
                target.to_string(),
            ]);
            continue;
        };
        used.push(r);
        let rate = match (r.ops_per_sec, r.ops_per_core()) {
            (Some(t), Some(c)) => format!("{t:.0} ({c:.0})"),
            (Some(t), None) => format!("{t:.0}"),
            _ => "n/a".into(),
        };
        let clients = r.concurrency.map_or(String::new(), |c| {
            format!(", {c} client{}", if c == 1 { "" } else { "s" })
        });
        rows.push(vec![
            format!("{label}{clients}"),
            rate,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            if r.ceiling.is_some() {
                fmt_spread(r.ratio)
            } else {
                "–".into()
            },
            target.to_string(),
        ]);
    }
    let table = markdown_table(
        &[
            "Operation",
            "ops/s (per core)",
            "p50",
            "p99",
            "Throughput / ceiling (median, min–max)",
            "Claimed elsewhere",
        ],
        &rows,
    );
    Ok((used, table))
}

/// Home-timeline reads beside the raw-LRANGE ceiling.
pub fn performance_markdown() -> Result<String> {
    let all = committed()?;
    let mut names: Vec<(String, String, &str)> = vec![
        (
            "ceiling-lrange".into(),
            "ceiling: one LRANGE of 20 ids, straight through the client".into(),
            "–",
        ),
        (
            "home-push".into(),
            format!("push, {READER_FOLLOWEES} followees (script, hydrate, filter)"),
            "300K reads/s fleet-wide (Twitter, 2012)",
        ),
        (
            "home-hybrid".into(),
            format!("hybrid, {HYBRID_PULLED} of {READER_FOLLOWEES} followees pulled"),
            "–",
        ),
    ];
    for k in PULL_FOLLOWEES {
        names.push((
            format!("home-pull-k{k}"),
            format!("pull, {k} followees"),
            "–",
        ));
    }
    let (used, table) = operations_table(&all, &names)?;
    Ok(header(&used) + &table)
}

/// Posts beside a plain INSERT of the row, and a rebuild beside the bare SELECT it makes.
pub fn writes_table_markdown() -> Result<String> {
    let all = committed()?;
    let names: Vec<(String, String, &str)> = vec![
        (
            "ceiling-insert".into(),
            "ceiling: a plain INSERT of the post row, same pool".into(),
            "–",
        ),
        (
            "post".into(),
            "post (row and fan-out job, one statement)".into(),
            "6K posts/s fleet-wide (Twitter, 2012)",
        ),
        (
            "ceiling-rebuild".into(),
            format!(
                "ceiling: the bare pull SELECT of the same rows ({READER_FOLLOWEES} followees and the reader, up to {} each), same pool",
                crate::cache::TIMELINE_CAP
            ),
            "–",
        ),
        (
            "rebuild".into(),
            format!(
                "rebuild a lost timeline: evict, then read a page ({READER_FOLLOWEES} followees, up to {} entries)",
                crate::cache::TIMELINE_CAP
            ),
            "–",
        ),
    ];
    let (used, table) = operations_table(&all, &names)?;
    Ok(header(&used) + &table)
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
    let rate = delivery_rate(&all)?
        .ops_per_sec
        .context("delivery has no rate")?;
    let reach = (rate * DELIVERY_GOAL_S).floor();
    let footer = format!(
        "\nAt the rate of the largest run, one post reaches {reach:.0} followers within the {DELIVERY_GOAL_S:.0} s goal \
         (the service's default celebrity threshold is {CHOSEN_THRESHOLD}), and a post to {:.0} million followers, \
         like the one in Twitter's talk, would take {:.1} minutes.\n",
        TWITTER_LARGEST_AUDIENCE / 1e6,
        TWITTER_LARGEST_AUDIENCE / rate / 60.0,
    );
    let mut by_workers = Vec::new();
    for w in DELIVERY_WORKERS {
        let name = delivery_workers_name(w);
        match all.iter().find(|r| r.name == name) {
            Some(r) => {
                used.push(r);
                by_workers.push(vec![
                    w.to_string(),
                    format!("{:.0}", r.extra_f64("p99_ms").unwrap_or(0.0)),
                    format!("{:.0}", r.extra_f64("total_ms").unwrap_or(0.0)),
                    r.ops_per_sec.map_or("n/a".into(), |v| format!("{v:.0}")),
                ]);
            }
            None => by_workers.push(vec![
                w.to_string(),
                "not measured yet".into(),
                String::new(),
                String::new(),
            ]),
        }
    }
    let workers_table = format!(
        "\nOne post to {DELIVERY_AT_THRESHOLD} followers (the default threshold), by the number of workers:\n\n{}",
        markdown_table(
            &[
                "Workers",
                "Delivered by (p99, ms)",
                "Last follower (ms)",
                "Timelines written per second",
            ],
            &by_workers,
        )
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
        + &footer
        + &workers_table)
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

/// The post's own measured rate per core, from the committed `post` result.
fn post_measured(all: &[BenchResult]) -> Result<capacity::Measured> {
    let r = find(all, "post")?;
    Ok(capacity::Measured {
        ops_per_core: r.ops_per_core().context("post has no throughput")?,
        path: "post".into(),
        measured_on: r
            .machine
            .as_ref()
            .map_or("an unrecorded machine".into(), |m| m.one_line()),
    })
}

/// Bytes of a full timeline in Redis, from the committed memory result.
fn timeline_bytes(all: &[BenchResult]) -> Result<u64> {
    let full = format!("list-{}", crate::cache::TIMELINE_CAP);
    Ok(find(all, "memory")?
        .extra_f64(&full)
        .with_context(|| format!("memory has no {full}"))? as u64)
}

/// `capacity.md`, from [`measured_json`], the post priced at its own rate.
pub fn capacity_markdown() -> Result<String> {
    let all = committed()?;
    let post = post_measured(&all)?;
    crate::capacity::capacity_markdown(&measured_json()?, Some(&post), timeline_bytes(&all)?)
}

// ANCHOR: key_numbers
/// The 45-minute page's key numbers, from the same estimate and results.
pub fn key_numbers_markdown() -> Result<String> {
    use bookkit::table::fmt_count;
    let all = committed()?;
    let home = capacity::Measured::from_json(&measured_json()?)?;
    let post = post_measured(&all)?;
    let e = capacity::Estimate::new(&crate::capacity::inputs(
        &home,
        Some(&post),
        timeline_bytes(&all)?,
    ))
    .context("the chapter's capacity inputs are invalid")?;
    let rows = [
        (
            "Home-timeline reads a second, peak",
            format!("{}/s", fmt_count(e.workloads[0].qps.peak)),
        ),
        (
            "Posts a second, peak",
            format!("{}/s", fmt_count(e.workloads[1].qps.peak)),
        ),
        (
            "Reads per post",
            format!("{:.1}", e.read_qps.average / e.write_qps.average),
        ),
        (
            "A home read (push), measured per core",
            format!("{}/s", fmt_count(home.ops_per_core)),
        ),
        (
            "Redis memory for every active user's timeline",
            format!("{:.2} TB", e.cache_bytes / 1e12),
        ),
        (
            "Service cores at peak, each operation at its own rate",
            fmt_count(e.cores as f64),
        ),
        (
            "Followers at which an author's posts are pulled, not pushed",
            fmt_count(CHOSEN_THRESHOLD as f64),
        ),
    ];
    let mut out = String::from(
        "<!-- Generated by `cargo xtask gen` from chapters-code/twitter-timeline/src/report.rs; do not edit by hand. -->\n\n\
         | Quantity | Value |\n|---|---:|\n",
    );
    for (what, value) in rows {
        let _ = writeln!(out, "| {what} | {value} |");
    }
    out.push_str("\nComputed by `cargo xtask gen` from the [capacity estimate](capacity.md) and the committed results.\n");
    Ok(out)
}
// ANCHOR_END: key_numbers

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_not_committed_yet_is_a_row_that_says_so() -> Result<()> {
        let names = vec![("ceiling-rebuild".to_string(), "ceiling".to_string(), "–")];
        let (used, table) = operations_table(&[], &names)?;
        assert!(used.is_empty());
        assert!(table.contains("| ceiling | not measured yet |"), "{table}");
        Ok(())
    }
}
