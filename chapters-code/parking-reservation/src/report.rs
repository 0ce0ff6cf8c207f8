//! The chapter's performance tables, rendered from the benchmark's results.
//!
//! `benches/reserve.rs` writes one result per measured configuration (the
//! format of `bookkit::results`); `cargo xtask bench-report
//! parking-reservation` commits them under
//! `src/parking-reservation/generated/results/`, and the generated files of
//! [`crate::book`] are computed from them here: `strategies.md`,
//! `performance.md`, `measured.json` and `capacity.md`. The renderers take
//! the results as JSON values, so their tests need no measuring machinery.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use bookkit::Spread;
use serde::Deserialize;

use crate::strategies::Strategy;

/// The chapter slug the results are filed under.
pub const CHAPTER: &str = "parking-reservation";
/// Where the strategy comparison goes.
pub const STRATEGIES_PATH: &str = "src/parking-reservation/generated/strategies.md";
/// Where the stadium comparison goes.
pub const STADIUM_PATH: &str = "src/parking-reservation/generated/stadium.md";
/// Where the performance table goes.
pub const PERFORMANCE_PATH: &str = "src/parking-reservation/generated/performance.md";
/// The target commonly claimed for such a system: reservations per minute...
pub const TARGET_PER_MINUTE: f64 = 1_000.0;
/// ...with a 95th-percentile latency under this many milliseconds.
pub const TARGET_P95_MS: f64 = 300.0;
/// The client counts of the performance runs.
pub const CLIENTS: [u32; 3] = [1, 8, 32];

/// The result name of a strategy's contention run.
pub fn strategy_result(strategy: Strategy) -> String {
    format!("strategy-{}", strategy.id())
}

/// The result name of the reserve run with `clients` clients.
pub fn reserve_result(clients: u32) -> String {
    format!("reserve-c{clients}")
}

/// The result name of the availability run with `clients` clients.
pub fn availability_result(clients: u32) -> String {
    format!("availability-c{clients}")
}

/// The result name of the reservation-read run with `clients` clients.
pub fn read_result(clients: u32) -> String {
    format!("read-c{clients}")
}

/// The result name of a reserve path's stadium run.
pub fn stadium_result(path: crate::store::ReservePath) -> String {
    format!("stadium-{}", path.id().replace('_', "-"))
}

/// The result name of the ceiling run with `clients` clients.
pub fn ceiling_result(clients: u32) -> String {
    format!("ceiling-insert-c{clients}")
}

/// The fields of a `BenchResult` this report reads.
#[derive(Debug, Deserialize)]
struct Measured {
    name: String,
    /// Per-round ratio to the ceiling (median, min, max), when measured interleaved.
    #[serde(default)]
    ratio: Option<bookkit::Spread>,
    #[serde(default)]
    ops: u64,
    #[serde(default)]
    ops_per_sec: Option<f64>,
    #[serde(default)]
    p50_us: Option<f64>,
    #[serde(default)]
    p99_us: Option<f64>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    rounds_ops_per_sec: Vec<f64>,
    cores: usize,
    #[serde(default)]
    extra: BTreeMap<String, serde_json::Value>,
}

impl Measured {
    fn extra_u64(&self, key: &str) -> u64 {
        self.extra
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    /// A count recorded since the bench cuts phases off at their deadline;
    /// "n/a" in results measured before.
    fn extra_count(&self, key: &str) -> String {
        self.extra
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .map_or_else(|| "n/a".to_string(), |n| n.to_string())
    }

    fn extra_i64(&self, key: &str) -> i64 {
        self.extra
            .get(key)
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    }
}

fn parse(results: &[serde_json::Value]) -> Result<BTreeMap<String, Measured>> {
    let mut out = BTreeMap::new();
    for v in results {
        let r: Measured = serde_json::from_value(v.clone()).context("reading a parking result")?;
        out.insert(r.name.clone(), r);
    }
    Ok(out)
}

/// Microseconds as `850 µs`, `12.3 ms` or `1.20 s`.
pub fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 100_000.0 {
        format!("{:.1} ms", us / 1_000.0)
    } else if us < 1_000_000.0 {
        format!("{:.0} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

fn fmt_opt_us(us: Option<f64>) -> String {
    us.map_or_else(|| "n/a".to_string(), fmt_us)
}

fn fmt_rate(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.1}"),
        None => "n/a".to_string(),
    }
}

fn label(s: Strategy) -> (&'static str, &'static str) {
    match s {
        Strategy::Naive => ("Check, then insert", "nothing (READ COMMITTED)"),
        Strategy::ForUpdate => ("`SELECT … FOR UPDATE` on the spot", "a row lock"),
        Strategy::Serializable => ("SERIALIZABLE, retry on 40001", "SSI aborts"),
        Strategy::Exclusion => ("Exclusion constraint", "`EXCLUDE USING gist`"),
        Strategy::ExclusionOnConflict => (
            "Exclusion constraint, `ON CONFLICT DO NOTHING`",
            "`EXCLUDE USING gist`",
        ),
    }
}

// ANCHOR: render_strategies
/// The strategy comparison table.
pub fn render_strategy_table(results: &[serde_json::Value]) -> Result<String> {
    let by_name = parse(results)?;
    let mut out = String::new();
    if let Some(r) = by_name.get(&strategy_result(Strategy::Naive)) {
        let _ = writeln!(
            out,
            "{} concurrent clients, {} booking attempts each, over {} spots; each attempt books \
             a random spot for 1 to {} consecutive 15-minute slots starting in a random one of \
             the first {} slots. Overlapping pairs are counted afterwards with a self-join.{}\n",
            r.extra_u64("clients"),
            r.extra_u64("attempts_per_client"),
            r.extra_u64("spots"),
            r.extra_u64("max_len_slots"),
            r.extra_u64("horizon_slots"),
            deadline_note(r, "A strategy still running"),
        );
    }
    let mut costs = String::from(
        "| Strategy | Retries (40001, 40P01) | Gave up | Cut off | Attempts/s | p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    out.push_str("| Strategy | Enforced by | Attempts | Booked | Refused | Overlapping pairs |\n");
    out.push_str("|---|---|---:|---:|---:|---:|\n");
    for s in Strategy::ALL {
        let (name, by) = label(s);
        match by_name.get(&strategy_result(s)) {
            Some(r) => {
                let pairs = r.extra_i64("overlapping_pairs");
                let pairs = if pairs > 0 {
                    format!("**{pairs}**")
                } else {
                    pairs.to_string()
                };
                let _ = writeln!(
                    out,
                    "| {name} | {by} | {} | {} | {} | {pairs} |",
                    r.ops,
                    r.extra_u64("booked"),
                    r.extra_u64("refused"),
                );
                let _ = writeln!(
                    costs,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    r.extra_u64("retries"),
                    r.extra_u64("gave_up"),
                    r.extra_count("cut_off"),
                    fmt_rate(r.ops_per_sec),
                    fmt_opt_us(r.p50_us),
                    fmt_opt_us(r.p99_us),
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | {by} | not measured | | | |");
                let _ = writeln!(costs, "| {name} | not measured | | | | | |");
            }
        }
    }
    out.push('\n');
    out.push_str(&costs);
    Ok(out)
}
// ANCHOR_END: render_strategies

// ANCHOR: render_stadium
/// The stadium comparison: each reserve path on the hot lot, in one run.
pub fn render_stadium_table(results: &[serde_json::Value]) -> Result<String> {
    use crate::store::ReservePath;
    let by_name = parse(results)?;
    let mut out = String::new();
    if let Some(r) = ReservePath::ALL
        .iter()
        .find_map(|p| by_name.get(&stadium_result(*p)))
    {
        let timeout = r
            .extra
            .get("deadlock_timeout")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unrecorded");
        let _ = writeln!(
            out,
            "{} clients released together ask for the same five evening hours of one lot of {} \
             regular spots until it is full, or for at most {} s; {} rounds per path, the paths \
             in a rotating order, each on a fresh database with `deadlock_timeout` at the \
             server's setting ({timeout}). Reserves/s is the median over the rounds, with the \
             lowest and highest in brackets; \"filled\" counts the rounds that filled the lot \
             in time; \"cut off\" counts the requests still in flight at the deadline, which \
             were abandoned and their transactions ended, over all rounds.\n",
            r.extra_u64("clients"),
            r.extra_u64("spots"),
            r.extra
                .get("deadline_s")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            r.extra_u64("rounds"),
        );
    }
    out.push_str(
        "| Reserve path | Reserves/s | Lost races | Deadlocks (40P01), gave up (409) | Filled | Cut off | Overlapping pairs |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for path in ReservePath::ALL {
        let name = match path {
            ReservePath::Retry => "plain INSERT, retry the transaction",
            ReservePath::OnConflict => "`ON CONFLICT DO NOTHING`, ask again",
            ReservePath::SkipLocked => "skip locked spots, `ON CONFLICT DO NOTHING` (chosen)",
        };
        match by_name.get(&stadium_result(path)) {
            Some(r) => {
                let rate = match Spread::of(&r.rounds_ops_per_sec) {
                    Some(s) => format!(
                        "{} ({}–{})",
                        fmt_rate(Some(s.median)),
                        fmt_rate(Some(s.min)),
                        fmt_rate(Some(s.max))
                    ),
                    None => fmt_rate(r.ops_per_sec),
                };
                let _ = writeln!(
                    out,
                    "| {name} | {rate} | {} | {}, {} | {} of {} | {} | {} |",
                    r.extra_u64("races_lost"),
                    r.extra_u64("deadlocks"),
                    r.extra_u64("gave_up"),
                    r.extra_u64("filled_rounds"),
                    r.extra_u64("rounds"),
                    r.extra_count("cut_off"),
                    r.extra_i64("overlapping_pairs"),
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | not measured | | | | | |");
            }
        }
    }
    Ok(out)
}
// ANCHOR_END: render_stadium

/// The sentence saying how a phase with a deadline ended, or nothing when the result has none.
fn deadline_note(r: &Measured, what: &str) -> String {
    match r
        .extra
        .get("deadline_s")
        .and_then(serde_json::Value::as_f64)
    {
        Some(s) => format!(
            " {what} after {s} s stops there: an attempt in flight then is cut off (abandoned, \
             its transaction ended) and counted as such, not as an attempt."
        ),
        None => String::new(),
    }
}

/// Availability and a read beside a reserve, at the same concurrency and in the same rounds.
pub fn render_other_operations(results: &[serde_json::Value]) -> Result<String> {
    let by_name = parse(results)?;
    let c = SIZING_CLIENTS;
    let reserve = by_name.get(&reserve_result(c)).and_then(|r| r.ops_per_sec);
    let mut out = format!(
        "| Operation, {c} clients | Per second | p50 | p99 | Ratio to plain INSERT | Per second ÷ reserve |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    let mut cheaper = Vec::new();
    let mut dearer = Vec::new();
    for (label, name) in [
        ("reserve", reserve_result(c)),
        ("availability of a lot for a range", availability_result(c)),
        ("read one reservation", read_result(c)),
    ] {
        match by_name.get(&name) {
            Some(r) => {
                let vs_reserve = match (r.ops_per_sec, reserve) {
                    (Some(a), Some(b)) if b > 0.0 => {
                        if name != reserve_result(c) {
                            let side = if a >= b { &mut cheaper } else { &mut dearer };
                            side.push(format!("{label} ({:.1}×)", a / b));
                        }
                        format!("{:.1}×", a / b)
                    }
                    _ => "n/a".to_string(),
                };
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {} | {vs_reserve} |",
                    fmt_rate(r.ops_per_sec),
                    fmt_opt_us(r.p50_us),
                    fmt_opt_us(r.p99_us),
                    bookkit::table::fmt_spread(r.ratio),
                );
            }
            None => {
                let _ = writeln!(out, "| {label} | not measured | | | | |");
            }
        }
    }
    out.push_str(&sizing_note(&cheaper, &dearer));
    Ok(out)
}

/// What the measured reads mean for a capacity model that costs every operation as a reserve.
fn sizing_note(cheaper: &[String], dearer: &[String]) -> String {
    let mut note = String::new();
    if !cheaper.is_empty() {
        note.push_str(&format!(
            "\nFaster than a reserve in this run: {}.",
            cheaper.join(", "),
        ));
    }
    if !dearer.is_empty() {
        note.push_str(&format!(
            "\nSlower than a reserve in this run: {}.",
            dearer.join(", "),
        ));
    }
    if !note.is_empty() {
        note.push_str(
            " The capacity model prices each of these reads at its own rate from this table, \
             not at the reserve's.\n",
        );
    }
    note
}

// ANCHOR: render_performance
/// The performance table: reserve path against the plain-INSERT ceiling, and the target.
pub fn render_performance_table(results: &[serde_json::Value]) -> Result<String> {
    let by_name = parse(results)?;
    let target_per_sec = TARGET_PER_MINUTE / 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Clients | Reservations/s | p50 | p99 | Ratio to plain INSERT | Per core ÷ target ({target_per_sec:.1}/s) |",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    let mut ceilings = String::from(
        "| Clients | Plain INSERT: rows/s | p50 | p99 | Reservations/s per core | p99 within target |\n\
         |---:|---:|---:|---:|---:|---|\n",
    );
    let mut cores = None;
    for c in CLIENTS {
        let (Some(r), Some(ceil)) = (
            by_name.get(&reserve_result(c)),
            by_name.get(&ceiling_result(c)),
        ) else {
            let _ = writeln!(out, "| {c} | not measured | | | | |");
            continue;
        };
        cores = Some(r.cores);
        let ratio = match (r.ratio, r.ops_per_sec, ceil.ops_per_sec) {
            (Some(spread), _, _) => bookkit::table::fmt_spread(Some(spread)),
            (None, Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".to_string(),
        };
        let per_core = r.ops_per_sec.map(|x| x / r.cores.max(1) as f64);
        let vs_target = per_core.map_or_else(
            || "n/a".to_string(),
            |p| format!("{:.0}×", p / target_per_sec),
        );
        let within = match r.p99_us {
            Some(p99) if p99 <= TARGET_P95_MS * 1_000.0 => "yes",
            Some(_) => "no",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {ratio} | {vs_target} |",
            r.concurrency.unwrap_or(c),
            fmt_rate(r.ops_per_sec),
            fmt_opt_us(r.p50_us),
            fmt_opt_us(r.p99_us),
        );
        let _ = writeln!(
            ceilings,
            "| {} | {} | {} | {} | {} | {within} |",
            r.concurrency.unwrap_or(c),
            fmt_rate(ceil.ops_per_sec),
            fmt_opt_us(ceil.p50_us),
            fmt_opt_us(ceil.p99_us),
            fmt_rate(per_core),
        );
    }
    out.push('\n');
    out.push_str(&ceilings);
    let refusals: Vec<String> = CLIENTS
        .iter()
        .filter_map(|c| by_name.get(&reserve_result(*c)))
        .map(|r| {
            format!(
                "{} client(s): {} reserved, {} refused for want of a spot, {} gave up after {} lost \
                 races, {} INSERTs lost a race and were retried, {} cut off unanswered when a \
                 window closed",
                r.concurrency.unwrap_or(0),
                r.ops.saturating_sub(r.extra_u64("no_spot") + r.extra_u64("conflicts") + r.extra_u64("errors")),
                r.extra_u64("no_spot"),
                r.extra_u64("conflicts"),
                crate::store::MAX_ASSIGN_ATTEMPTS,
                r.extra_u64("races_lost"),
                r.extra_count("cut_off"),
            )
        })
        .collect();
    let _ = write!(
        out,
        "\nThe target is {TARGET_PER_MINUTE:.0} reservations a minute ({target_per_sec:.1}/s) \
         with p95 under {TARGET_P95_MS:.0} ms. \"Per core\" divides our throughput by the \
         {} logical CPUs that ran the database and the clients together; the next column states \
         it as a multiple of the whole target. The ratio is reserve / plain INSERT at the same \
         concurrency: the median over rounds that each measured both back to back, with the \
         lowest and highest in brackets. Outcomes in the measured windows (retries include the \
         warm-up): {}.\n",
        cores.map_or_else(|| "n/a".to_string(), |c| c.to_string()),
        if refusals.is_empty() {
            "none".to_string()
        } else {
            refusals.join("; ")
        },
    );
    Ok(out)
}
// ANCHOR_END: render_performance

// ANCHOR: measured_json
/// The reserve run whose per-core figure sizes the fleet: the most clients,
/// where the two cores are saturated and throughput has stopped growing.
pub const SIZING_CLIENTS: u32 = CLIENTS[CLIENTS.len() - 1];

/// The content of [`crate::capacity::MEASURED_PATH`]: reservations per second
/// per core of the reserve run with [`SIZING_CLIENTS`] clients, and where it was measured.
pub fn measured_json(results: &[serde_json::Value], measured_on: &str) -> Result<String> {
    let by_name = parse(results)?;
    let name = reserve_result(SIZING_CLIENTS);
    let run = by_name.get(&name).with_context(|| {
        format!("no result {name:?}; run `cargo xtask bench-report parking-reservation`")
    })?;
    let per_second = run
        .ops_per_sec
        .with_context(|| format!("{name} has no throughput"))?;
    let measured = capacity::Measured {
        ops_per_core: per_second / run.cores.max(1) as f64,
        path: format!("the {name} run of the reserve path"),
        measured_on: measured_on.to_string(),
    };
    Ok(measured.to_json())
}
// ANCHOR_END: measured_json

/// The committed results, read once: as the JSON values the renderers read,
/// the header naming their runs, and the machine that measured the sizing run.
struct Committed {
    values: Vec<serde_json::Value>,
    header: String,
    sizing_machine: Option<String>,
}

fn committed() -> Result<Committed> {
    let results = bookkit::results::committed(CHAPTER)?;
    let header = bookkit::table::measured_header(
        "cargo xtask bench-report parking-reservation",
        &results.iter().collect::<Vec<_>>(),
    );
    let sizing_machine = results
        .iter()
        .find(|r| r.name == reserve_result(SIZING_CLIENTS))
        .and_then(|r| r.machine.as_ref().map(bookkit::MachineHeader::one_line));
    let values = results
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Committed {
        values,
        header,
        sizing_machine,
    })
}

/// `strategies.md`, from the committed results.
pub fn strategies_markdown() -> Result<String> {
    let c = committed()?;
    Ok(format!("{}{}", c.header, render_strategy_table(&c.values)?))
}

/// `performance.md`, from the committed results.
pub fn performance_markdown() -> Result<String> {
    let c = committed()?;
    Ok(format!(
        "{}{}\n{}",
        c.header,
        render_performance_table(&c.values)?,
        render_other_operations(&c.values)?
    ))
}

/// `stadium.md`, from the committed results.
pub fn stadium_markdown() -> Result<String> {
    let c = committed()?;
    Ok(format!("{}{}", c.header, render_stadium_table(&c.values)?))
}

/// `measured.json`, from the committed results.
pub fn measured_markdown() -> Result<String> {
    let c = committed()?;
    if c.values.is_empty() {
        // Not measured under the current result format yet: keep the
        // committed figure (it names the run that measured it).
        return bookkit::repo_file(crate::capacity::MEASURED_PATH);
    }
    let on = c
        .sizing_machine
        .unwrap_or_else(|| "an unrecorded machine".to_string());
    measured_json(&c.values, &on)
}

/// The reads' own throughput per core, from the committed runs with
/// [`SIZING_CLIENTS`] clients that measured them beside the reserve; an
/// operation with no committed run is left to the reserve's rate.
pub fn own_rates() -> Result<crate::capacity::OwnRates> {
    let c = committed()?;
    let by_name = parse(&c.values)?;
    let rate = |name: String| {
        let run = by_name.get(&name)?;
        let per_second = run.ops_per_sec?;
        Some(crate::capacity::OwnRate {
            ops_per_core: per_second / run.cores.max(1) as f64,
            source: format!("the {name} run"),
        })
    };
    Ok(crate::capacity::OwnRates {
        availability: rate(availability_result(SIZING_CLIENTS)),
        read: rate(read_result(SIZING_CLIENTS)),
    })
}

/// `key-numbers.md`, computed from [`measured_markdown`] and [`own_rates`].
pub fn key_numbers_markdown() -> Result<String> {
    crate::capacity::key_numbers_markdown(&measured_markdown()?, &own_rates()?)
}

/// `scaling.md`, computed from [`measured_markdown`] and [`own_rates`].
pub fn scaling_markdown() -> Result<String> {
    crate::capacity::scaling_markdown(&measured_markdown()?, &own_rates()?)
}

/// Where the per-core figures for the framework page go.
pub const PER_CORE_PATH: &str = "src/parking-reservation/generated/per-core.md";

/// The per-core throughputs two chapters measured, for the framework page's
/// advice on what to assume when nothing can be measured.
pub fn per_core_markdown() -> Result<String> {
    let mut out = String::from(
        "<!-- Generated by `cargo xtask gen` from the chapters' measured.json files; do not edit by hand. -->\n\n\
         | Work per operation | Operations per second per core | Measured by |\n|---|---:|---|\n",
    );
    for (work, path) in [
        (
            "a redirect: one Redis GET and an HTTP response",
            "src/url-shortener/generated/measured.json",
        ),
        (
            "a reservation: a PostgreSQL transaction of six statements, with a commit",
            crate::capacity::MEASURED_PATH,
        ),
    ] {
        let m = capacity::Measured::from_json(&bookkit::repo_file(path)?)
            .with_context(|| format!("reading {path}"))?;
        out.push_str(&format!(
            "| {work} | {} | {}, {} |\n",
            capacity::units::count(m.ops_per_core),
            m.path,
            m.measured_on
        ));
    }
    Ok(out)
}

/// `capacity.md`, computed from [`measured_markdown`] and [`own_rates`].
pub fn capacity_markdown() -> Result<String> {
    crate::capacity::capacity_markdown(&measured_markdown()?, &own_rates()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sizing_note_says_which_reads_a_reserve_over_or_under_costs() {
        assert_eq!(sizing_note(&[], &[]), "");
        let note = sizing_note(
            &["read one reservation (20.3×)".into()],
            &["availability (0.7×)".into()],
        );
        assert!(
            note.contains("Faster than a reserve in this run: read one reservation (20.3×)."),
            "{note}"
        );
        assert!(
            note.contains("Slower than a reserve in this run: availability (0.7×)."),
            "{note}"
        );
        assert!(note.contains("at its own rate"), "{note}");
    }

    #[test]
    fn tables_render_from_results_and_name_missing_rows() -> Result<()> {
        let naive = serde_json::json!({
            "name": "strategy-naive", "ops": 1600, "ops_per_sec": 2000.0, "p50_us": 800.0,
            "p99_us": 4000.0, "cores": 2,
            "extra": {"booked": 700, "refused": 900, "overlapping_pairs": 35, "clients": 16,
                      "attempts_per_client": 100, "spots": 4, "max_len_slots": 8,
                      "cut_off": 3, "deadline_s": 8.0}
        });
        let reserve = serde_json::json!({
            "name": "reserve-c8", "ops": 4000, "ops_per_sec": 1000.0, "p50_us": 7000.0,
            "p99_us": 20000.0, "concurrency": 8, "cores": 2, "extra": {"no_spot": 3}
        });
        let ceiling = serde_json::json!({
            "name": "ceiling-insert-c8", "ops": 8000, "ops_per_sec": 4000.0, "p50_us": 1500.0,
            "p99_us": 5000.0, "concurrency": 8, "cores": 2
        });
        let s = render_strategy_table(&[naive])?;
        assert!(
            s.contains(
                "| Check, then insert | nothing (READ COMMITTED) | 1600 | 700 | 900 | **35** |"
            ),
            "{s}"
        );
        assert!(
            s.contains("| Exclusion constraint | `EXCLUDE USING gist` | not measured"),
            "{s}"
        );
        assert!(
            s.contains("| Check, then insert | 0 | 0 | 3 | 2000 | 800 µs | 4.0 ms |"),
            "{s}"
        );
        assert!(
            s.contains("A strategy still running after 8 s stops there"),
            "{s}"
        );
        let p = render_performance_table(&[reserve, ceiling])?;
        assert!(
            p.contains("| 8 | 1000 | 7.0 ms | 20.0 ms | 0.25 | 30× |"),
            "{p}"
        );
        assert!(
            p.contains("| 8 | 4000 | 1.5 ms | 5.0 ms | 500 | yes |"),
            "{p}"
        );
        assert!(p.contains("| 1 | not measured"), "{p}");
        // Measured before the bench counted cut-offs: said, not shown as zero.
        assert!(p.contains("n/a cut off unanswered"), "{p}");
        let stadium = serde_json::json!({
            "name": "stadium-skip-locked", "ops": 1200, "ops_per_sec": 900.0, "cores": 2,
            "rounds_ops_per_sec": [800.0, 1000.0, 900.0],
            "extra": {"races_lost": 40, "deadlocks": 0, "gave_up": 0, "overlapping_pairs": 0,
                      "clients": 32, "spots": 400, "rounds": 3, "deadlock_timeout": "1s",
                      "filled_rounds": 3, "deadline_s": 10.0, "cut_off": 2}
        });
        let t = render_stadium_table(&[stadium])?;
        assert!(
            t.contains("`deadlock_timeout` at the server's setting (1s)"),
            "{t}"
        );
        assert!(
            t.contains("| skip locked spots, `ON CONFLICT DO NOTHING` (chosen) | 900 (800–1000) | 40 | 0, 0 | 3 of 3 | 2 | 0 |"),
            "{t}"
        );
        assert!(
            t.contains("| plain INSERT, retry the transaction | not measured"),
            "{t}"
        );
        Ok(())
    }

    #[test]
    fn the_sizing_run_becomes_the_measured_input() -> Result<()> {
        let reserve = serde_json::json!({
            "name": "reserve-c32", "ops": 6000, "ops_per_sec": 2000.0, "concurrency": 32,
            "cores": 2
        });
        let json = measured_json(&[reserve], "a machine")?;
        let m = capacity::Measured::from_json(&json)?;
        assert_eq!(m.ops_per_core, 1000.0);
        assert_eq!(m.path, "the reserve-c32 run of the reserve path");
        assert!(measured_json(&[], "a machine").is_err());
        Ok(())
    }
}
