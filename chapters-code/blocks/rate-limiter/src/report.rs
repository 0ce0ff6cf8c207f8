//! The page's tables, computed from the committed results (feature `book`).

use anyhow::Result;
use bookkit::criterion::CriterionBench;
use bookkit::results::{self, BenchResult};
use bookkit::table::{fmt_count, fmt_ns, fmt_ratio, fmt_spread, markdown_table, measured_header};

use crate::bucket::TokenBucket;
use crate::fairness;

/// The block's slug.
pub const BLOCK: &str = "blocks/rate-limiter";
/// The criterion group of `benches/limiters.rs`.
pub const GROUP: &str = "rate-limiter";
/// The command that measures everything here.
const COMMAND: &str = "cargo xtask bench-report blocks/rate-limiter";

/// In-process limiters: criterion id, label, and state per key.
const IN_PROCESS: &[(&str, &str, &str)] = &[
    ("noop", "Ceiling: admits everything", "none"),
    (
        "token_bucket_global",
        "Token bucket (ours), global",
        "bucket",
    ),
    ("gcra_governor_global", "GCRA (governor), global", "gcra"),
    (
        "token_bucket_keyed",
        "Token bucket (ours), per key, bounded map",
        "bucket",
    ),
    (
        "gcra_governor_keyed",
        "GCRA (governor), per key, DashMap",
        "gcra",
    ),
];

fn state_bytes(kind: &str) -> String {
    match kind {
        "bucket" => format!("{} B", std::mem::size_of::<TokenBucket>()),
        // governor keeps the TAT in one AtomicU64.
        "gcra" => format!("{} B", std::mem::size_of::<std::sync::atomic::AtomicU64>()),
        _ => "—".to_string(),
    }
}

/// Decisions per second per core of each limiter, beside its ceiling.
pub fn throughput_markdown() -> Result<String> {
    let committed = results::committed(BLOCK)?;
    let benches = CriterionBench::from_results(&committed);
    let median = |id: &str| {
        benches
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.median_ns.point)
    };
    let mut used: Vec<&BenchResult> = committed
        .iter()
        .filter(|r| r.kind == bookkit::ResultKind::Criterion)
        .collect();
    let ceiling = median("noop");
    let mut rows = Vec::new();
    for (id, label, state) in IN_PROCESS {
        let Some(ns) = median(id) else { continue };
        rows.push(vec![
            (*label).to_string(),
            state_bytes(state),
            fmt_ns(ns),
            fmt_count(1e9 / ns),
            ceiling.map_or("—".into(), |c| fmt_ratio(c / ns)),
        ]);
    }
    let mut out = String::new();
    let redis: Vec<&BenchResult> = ["redis_ping", "redis_window"]
        .iter()
        .filter_map(|n| committed.iter().find(|r| r.name == *n))
        .collect();
    used.extend(redis.iter().copied());
    out.push_str(&measured_header(COMMAND, &used));
    out.push_str(&markdown_table(
        &[
            "In process (one core)",
            "State per key",
            "Per decision",
            "Decisions/s",
            "Ratio to ceiling",
        ],
        &rows,
    ));
    let mut rows = Vec::new();
    for r in redis {
        let label = if r.name == "redis_ping" {
            "Ceiling: PING round trip"
        } else {
            "Sliding-window log, one Lua script"
        };
        rows.push(vec![
            label.to_string(),
            r.ops_per_sec.map_or("—".into(), fmt_count),
            r.ops_per_core().map_or("—".into(), fmt_count),
            bookkit::table::fmt_us(r.p99_us),
            if r.ceiling.is_some() {
                fmt_spread(r.ratio)
            } else {
                "1×".into()
            },
        ]);
    }
    if !rows.is_empty() {
        let concurrency = committed
            .iter()
            .find(|r| r.name == "redis_window")
            .and_then(|r| r.concurrency)
            .unwrap_or(0);
        out.push_str(&format!(
            "\nRedis, {concurrency} requests in flight over one connection:\n\n"
        ));
        out.push_str(&markdown_table(
            &[
                "Redis",
                "Decisions/s",
                "Per client core",
                "p99",
                "Ratio to PING",
            ],
            &rows,
        ));
    }
    Ok(out)
}

/// What GET-then-INCR and the script admit beyond the limit under concurrent clients.
pub fn race_markdown() -> Result<String> {
    let committed = results::committed(BLOCK)?;
    let found: Vec<&BenchResult> = ["race_naive", "race_script"]
        .iter()
        .filter_map(|n| committed.iter().find(|r| r.name == *n))
        .collect();
    let mut out = measured_header(COMMAND, &found);
    let mut rows = Vec::new();
    for r in &found {
        let f = |k: &str| r.extra_f64(k).unwrap_or(f64::NAN);
        rows.push(vec![
            if r.name == "race_naive" {
                "GET, then INCR (two commands)".to_string()
            } else {
                "One Lua script".to_string()
            },
            format!(
                "{} × {} attempts, limit {}",
                fmt_count(f("trials")),
                fmt_count(f("attempts_per_trial")),
                fmt_count(f("limit"))
            ),
            fmt_count(f("trials_over")),
            fmt_count(f("over_admitted_total")),
            fmt_count(f("over_admitted_max")),
        ]);
    }
    out.push_str(&markdown_table(
        &[
            "Version",
            "Trials",
            "Trials over the limit",
            "Extra admitted, total",
            "Worst trial",
        ],
        &rows,
    ));
    Ok(out)
}

/// Who gets admitted when one client bursts beside steady ones.
pub fn fairness_markdown() -> Result<String> {
    let committed = results::committed(BLOCK)?;
    let rows_spec = [
        ("fairness_token_bucket_global", "Token bucket", "global"),
        ("fairness_gcra_global", "GCRA (governor)", "global"),
        ("fairness_redis_global", "Redis window", "global"),
        (
            "fairness_token_bucket_per_client",
            "Token bucket",
            "per client",
        ),
        ("fairness_gcra_per_client", "GCRA (governor)", "per client"),
        ("fairness_redis_per_client", "Redis window", "per client"),
    ];
    let found: Vec<(&BenchResult, &str, &str)> = rows_spec
        .iter()
        .filter_map(|(n, l, m)| committed.iter().find(|r| r.name == *n).map(|r| (r, *l, *m)))
        .collect();
    let refs: Vec<&BenchResult> = found.iter().map(|(r, _, _)| *r).collect();
    let mut out = measured_header(COMMAND, &refs);
    let pct = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.0}%", v * 100.0));
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|(r, label, mode)| {
            // The burster's share of the requests, to read its share of admissions against.
            let offered: Option<Vec<f64>> = r
                .extra
                .get("offered")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect());
            let requested = offered
                .filter(|o| !o.is_empty())
                .map(|o| o[0] / o.iter().sum::<f64>().max(1.0));
            vec![
                (*label).to_string(),
                (*mode).to_string(),
                r.extra_f64("total_admitted").map_or("—".into(), fmt_count),
                pct(requested),
                pct(r.extra_f64("burster_share")),
                pct(r.extra_f64("steady_admitted")),
            ]
        })
        .collect();
    out.push_str(&format!(
        "One client sends {} requests a second beside {} clients sending {} a second each, for {} s; \
         the global limit is {} a second (burst {}), the per-client one {} a second (burst {}).\n\n",
        fairness::BURST_PER_SECOND,
        fairness::STEADY_CLIENTS,
        fairness::STEADY_PER_SECOND,
        fairness::TRACE.as_secs(),
        fairness::GLOBAL.0,
        fairness::GLOBAL.1,
        fairness::PER_CLIENT.0,
        fairness::PER_CLIENT.1,
    ));
    out.push_str(&markdown_table(
        &[
            "Limiter",
            "Limit",
            "Admitted",
            "Burster's requests",
            "Burster's admissions",
            "Steady requests admitted",
        ],
        &rows,
    ));
    Ok(out)
}

/// What each window admits of two bursts either side of a boundary (a pure model).
pub fn boundary_markdown() -> Result<String> {
    use crate::windows::{GAP, LIMIT, WINDOW, boundary_burst};
    let label = |name: &str| match name {
        "fixed" => "Fixed window (`INCR` per calendar window)",
        "log" => "Sliding log (the block's script)",
        "counter" => "Sliding counter (two counters, an estimate)",
        _ => "Token bucket / GCRA (burst = limit)",
    };
    let rows: Vec<Vec<String>> = boundary_burst()
        .into_iter()
        .map(|(name, admitted)| {
            vec![
                label(name).to_string(),
                fmt_count(f64::from(admitted)),
                fmt_ratio(f64::from(admitted) / f64::from(LIMIT)),
            ]
        })
        .collect();
    let mut out = String::from(
        "<!-- Generated by `cargo xtask gen` from chapters-code/blocks/rate-limiter/src/windows.rs; do not edit by hand. -->\n\n",
    );
    out.push_str(&format!(
        "A limit of {LIMIT} per {} s; {LIMIT} requests arrive {} ms before a window boundary and {LIMIT} more {} ms after it.\n\n",
        WINDOW.as_secs(),
        GAP.as_millis(),
        GAP.as_millis(),
    ));
    out.push_str(&markdown_table(
        &["Limiter", "Admitted", "Ratio to the limit"],
        &rows,
    ));
    Ok(out)
}
