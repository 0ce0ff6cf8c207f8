//! The performance page, rendered from the committed results of
//! `cargo xtask bench-report order-management` (`benches/orders.rs`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use bookkit::BenchResult;
use bookkit::table::{fmt_spread, fmt_us, markdown_table};

use crate::relay::Wake;

/// The chapter slug the results are filed under.
pub const CHAPTER: &str = "order-management";
/// The command that measures.
pub const COMMAND: &str = "cargo xtask bench-report order-management";
/// Where the performance tables go.
pub const PERFORMANCE_PATH: &str = "src/order-management/generated/performance.md";
/// Worker counts of the transition runs.
pub const WORKERS: [u32; 3] = [1, 8, 32];
/// The run whose per-core figure sizes the fleet.
pub const SIZING_WORKERS: u32 = 8;
/// The target commonly claimed: orders per minute...
pub const TARGET_ORDERS_PER_MINUTE: f64 = 10_000.0;
/// ...with p95 under this many milliseconds.
pub const TARGET_P95_MS: f64 = 500.0;
/// Alibaba's Singles' Day peak in 2019, orders per second.
pub const ALIBABA_ORDERS_PER_SEC: f64 = 544_000.0;
/// Writes of an order's happy life: created, placed, approved, shipped, delivered.
pub const WRITES_PER_ORDER: f64 = 5.0;
/// The load offered to both relays in the relay-lag runs, transitions per second...
pub const RELAY_RATE: u32 = 200;
/// ...for this many seconds.
pub const RELAY_SECS: u64 = 5;

/// The relays of the relay-lag runs: the result's name and how the relay
/// wakes. The bench runs these and the table labels them from the same
/// values ([`wake_label`]).
pub const RELAY_WAKES: [(&str, Wake); 2] = [
    ("relay-lag-poll", Wake::Poll(Duration::from_millis(10))),
    ("relay-lag-notify", Wake::Notify(Duration::from_secs(1))),
];

/// The extra of a relay-lag result that records the relay's interval (its
/// poll period or its NOTIFY fallback), in microseconds, so a later change
/// of [`RELAY_WAKES`] does not relabel an older measurement.
pub const WAKE_INTERVAL_US: &str = "wake_interval_us";

/// The poll period or the NOTIFY fallback of `wake`, in microseconds.
pub fn wake_interval_us(wake: Wake) -> u64 {
    let (Wake::Poll(d) | Wake::Notify(d)) = wake;
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How the relay of `run` woke: as the run recorded it, else as configured
/// (results from before the interval was recorded).
fn recorded_wake(configured: Wake, run: Option<&BenchResult>) -> Wake {
    let Some(us) = run
        .and_then(|r| r.extra.get(WAKE_INTERVAL_US))
        .and_then(serde_json::Value::as_u64)
    else {
        return configured;
    };
    let d = Duration::from_micros(us);
    match configured {
        Wake::Poll(_) => Wake::Poll(d),
        Wake::Notify(_) => Wake::Notify(d),
    }
}

/// The table's label of a relay that wakes by `wake`.
pub fn wake_label(wake: Wake) -> String {
    match wake {
        Wake::Poll(every) => format!("Polling every {}, `SKIP LOCKED`", interval(every)),
        Wake::Notify(fallback) => format!("LISTEN/NOTIFY, {} fallback", interval(fallback)),
    }
}

/// `1 s`, `10 ms`, `250 µs`: the largest unit that keeps it whole.
fn interval(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 1_000_000 && us.is_multiple_of(1_000_000) {
        format!("{} s", us / 1_000_000)
    } else if us >= 1_000 && us.is_multiple_of(1_000) {
        format!("{} ms", us / 1_000)
    } else {
        format!("{us} µs")
    }
}

/// Result names.
pub fn transition_result(workers: u32) -> String {
    format!("transition-c{workers}")
}
/// Result names.
pub fn ceiling_result(workers: u32) -> String {
    format!("ceiling-update-c{workers}")
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(
        || "n/a".into(),
        |r| {
            if r >= 100.0 {
                format!("{r:.0}")
            } else {
                format!("{r:.1}")
            }
        },
    )
}

fn by_name<'a>(results: &'a [BenchResult], name: &str) -> Option<&'a BenchResult> {
    results.iter().find(|r| r.name == name)
}

// ANCHOR: render
/// The performance tables from `results`.
pub fn render(results: &[BenchResult]) -> Result<String> {
    let mut out = String::new();
    let mut rows = Vec::new();
    let mut ceilings = Vec::new();
    for w in WORKERS {
        let (Some(t), Some(c)) = (
            by_name(results, &transition_result(w)),
            by_name(results, &ceiling_result(w)),
        ) else {
            rows.push(vec![
                w.to_string(),
                "not measured".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            continue;
        };
        rows.push(vec![
            w.to_string(),
            rate(t.ops_per_sec),
            fmt_us(t.p50_us),
            fmt_us(t.p99_us),
            fmt_spread(t.ratio),
            rate(t.ops_per_core()),
        ]);
        ceilings.push(vec![
            w.to_string(),
            rate(c.ops_per_sec),
            fmt_us(c.p50_us),
            fmt_us(c.p99_us),
        ]);
    }
    out.push_str("**Transitions** (`PgStore::apply`: load, guarded UPDATE, event, outbox row, one transaction), each worker on its own order:\n\n");
    out.push_str(&markdown_table(
        &[
            "Workers",
            "Transitions/s",
            "p50",
            "p99",
            "Ratio to plain UPDATE",
            "Per core",
        ],
        &rows,
    ));
    out.push_str("\n**Ceiling**: a plain single-row `UPDATE orders SET updated_at = now() WHERE id = $1`, same pool, same workers, rounds interleaved with the runs above:\n\n");
    out.push_str(&markdown_table(
        &["Workers", "UPDATEs/s", "p50", "p99"],
        &ceilings,
    ));

    // Against the claims.
    if let Some(t) = by_name(results, &transition_result(SIZING_WORKERS)) {
        let per_core = t.ops_per_core().context("no throughput")?;
        let orders_per_core = per_core / WRITES_PER_ORDER;
        let target = TARGET_ORDERS_PER_MINUTE / 60.0;
        let claims = vec![
            vec![
                "10,000 orders/min, p95 < 500 ms".to_string(),
                rate(Some(target)),
                format!("{:.1}", target / orders_per_core),
                match t.p99_us {
                    Some(p99) if p99 <= TARGET_P95_MS * 1_000.0 => "yes (p99)".into(),
                    Some(_) => "no".into(),
                    None => "n/a".into(),
                },
            ],
            vec![
                "Alibaba, Singles' Day 2019 peak".to_string(),
                rate(Some(ALIBABA_ORDERS_PER_SEC)),
                format!("{:.0}", ALIBABA_ORDERS_PER_SEC / orders_per_core),
                "n/a".into(),
            ],
        ];
        let _ = write!(
            out,
            "\n**Against the claims.** An order's happy life is {WRITES_PER_ORDER:.0} writes; at the {SIZING_WORKERS}-worker rate that is {} orders/s per core:\n\n",
            rate(Some(orders_per_core))
        );
        out.push_str(&markdown_table(
            &["Claim", "Orders/s", "Cores at our rate", "Latency within"],
            &claims,
        ));
    }

    // Only runs that recorded their offered load are comparable (older ones
    // paced a closed-loop producer that fell behind differently per relay).
    let relay_runs: Vec<Option<&BenchResult>> = RELAY_WAKES
        .iter()
        .map(|(name, _)| by_name(results, name).filter(|r| r.extra_f64("offered_rate").is_some()))
        .collect();
    let mut relay = Vec::new();
    for ((_, wake), run) in RELAY_WAKES.iter().zip(&relay_runs) {
        let label = wake_label(recorded_wake(*wake, *run));
        match run {
            Some(r) => relay.push(vec![
                label,
                rate(r.extra_f64("committed_rate")),
                r.ops.to_string(),
                fmt_us(r.extra_f64("lag_p50_us")),
                fmt_us(r.extra_f64("lag_p99_us")),
            ]),
            None => relay.push(vec![
                label,
                "not measured yet".into(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    let offered: Vec<String> = relay_runs
        .iter()
        .flatten()
        .map(|r| {
            format!(
                "{} transitions/s for {} s",
                rate(r.extra_f64("offered_rate")),
                r.duration_s
            )
        })
        .collect();
    let load = match offered.as_slice() {
        [] => format!(
            "both to be offered {RELAY_RATE} transitions/s for {RELAY_SECS} s (not measured yet)"
        ),
        [one, rest @ ..] if rest.iter().all(|o| o == one) => format!("both offered {one}"),
        _ => format!(
            "offered loads differ, not comparable: {}",
            offered.join(" and ")
        ),
    };
    let _ = write!(
        out,
        "\n**Outbox relay to JetStream**: lag from the outbox row's insert to its `published_at` (both the database's clock), one relay, {load}, on a fixed schedule (open loop, one fresh order per transition):\n\n"
    );
    out.push_str(&markdown_table(
        &[
            "Relay",
            "Committed (transitions/s)",
            "Messages",
            "Lag p50",
            "Lag p99",
        ],
        &relay,
    ));
    if let Some(d) = by_name(results, "relay-drain") {
        let _ = writeln!(
            out,
            "\nDraining a backlog of {} messages (one per order) with one relay: {} messages/s.",
            d.ops,
            rate(d.ops_per_sec)
        );
    }
    if let Some(r) = by_name(results, "replay") {
        let _ = writeln!(
            out,
            "\n**Event replay**: {} events of {} orders read in one query and folded: {} events/s ({} per core).",
            r.ops,
            r.extra_f64("orders").unwrap_or(0.0),
            rate(r.ops_per_sec),
            rate(r.ops_per_core()),
        );
    }
    Ok(out)
}
// ANCHOR_END: render

fn committed() -> Result<Vec<BenchResult>> {
    bookkit::results::committed(CHAPTER)
}

/// `performance.md`, from the committed results.
pub fn performance_markdown() -> Result<String> {
    let results = committed()?;
    let header = bookkit::table::measured_header(COMMAND, &results.iter().collect::<Vec<_>>());
    if results.is_empty() {
        return Ok(format!("{header}Not measured yet: run `{COMMAND}`.\n"));
    }
    Ok(format!("{header}{}", render(&results)?))
}

/// `measured.json`: transitions per second per core of the sizing run.
pub fn measured_json() -> Result<String> {
    let results = committed()?;
    let name = transition_result(SIZING_WORKERS);
    let Some(run) = by_name(&results, &name) else {
        return Ok("{}\n".to_string());
    };
    let measured = capacity::Measured {
        ops_per_core: run.ops_per_core().context("no throughput")?,
        path: format!("the {name} run of the transition path"),
        measured_on: run.machine.as_ref().map_or_else(
            || "an unrecorded machine".to_string(),
            bookkit::MachineHeader::one_line,
        ),
    };
    Ok(measured.to_json())
}

/// `capacity.md`, from [`measured_json`] (a note until the first measurement).
pub fn capacity_markdown() -> Result<String> {
    let json = measured_json()?;
    if json.trim() == "{}" {
        return Ok(format!("Not measured yet: run `{COMMAND}`.\n"));
    }
    crate::capacity::capacity_markdown(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_labels_are_read_from_the_wake_values() {
        assert_eq!(
            wake_label(Wake::Poll(Duration::from_millis(25))),
            "Polling every 25 ms, `SKIP LOCKED`"
        );
        assert_eq!(
            wake_label(Wake::Notify(Duration::from_secs(2))),
            "LISTEN/NOTIFY, 2 s fallback"
        );
        assert_eq!(interval(Duration::from_micros(1_500)), "1500 µs");
        let recorded = BenchResult::new(CHAPTER, "relay-lag-poll", bookkit::ResultKind::Load)
            .with_extra(WAKE_INTERVAL_US, 50_000u64);
        assert_eq!(
            wake_label(recorded_wake(RELAY_WAKES[0].1, Some(&recorded))),
            "Polling every 50 ms, `SKIP LOCKED`",
            "a run's recorded interval names its row, not today's constant"
        );
    }
}
