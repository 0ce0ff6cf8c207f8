//! What this block publishes into its Part II page (feature `book`): the
//! relay's measured table, from the committed results of `benches/relay.rs`.

use std::time::Duration;

use anyhow::Result;
use bookkit::table::{fmt_spread, fmt_us, markdown_table};
use bookkit::{BenchResult, Chapter, GeneratedFile, Report};

use crate::relay::Wake;

/// The slug the results are filed under.
pub const SLUG: &str = "blocks/outbox";
/// The command that measures.
pub const COMMAND: &str = "cargo xtask bench-report blocks/outbox";
/// Where the table goes.
pub const RELAY_PATH: &str = "src/blocks/outbox/generated/relay.md";

/// Aggregates of a drain round's backlog...
pub const DRAIN_AGGREGATES: usize = 200;
/// ...and messages per aggregate: a round drains their product.
pub const DRAIN_VERSIONS: i64 = 10;
/// Rows per drain (the relay's default batch).
pub const DRAIN_BATCH: i64 = 100;
/// Messages offered per second in the lag runs, one transaction each...
pub const LAG_RATE: u32 = 200;
/// ...for this many seconds (one in the quick check).
pub const LAG_SECS: u64 = 5;

/// The lag runs: the result's name and how the relay wakes.
pub const LAG_WAKES: [(&str, Wake); 2] = [
    ("lag-poll", Wake::Poll(Duration::from_millis(10))),
    ("lag-notify", Wake::Notify(Duration::from_secs(1))),
];

/// The block's generated files and bench report.
pub fn book() -> Chapter {
    Chapter {
        slug: SLUG,
        package: "block-outbox",
        generated: vec![GeneratedFile::pure(RELAY_PATH, relay_markdown)],
        report: Some(Report {
            benches: &["relay"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}

fn wake_label(wake: Wake) -> String {
    match wake {
        Wake::Poll(d) => format!("polling every {d:?}"),
        Wake::Notify(d) => format!("LISTEN/NOTIFY, fallback poll {d:?}"),
    }
}

/// The relay's table: drain throughput beside a bare JetStream publish of
/// the same messages, and the lag of the two ways to wake.
pub fn relay_markdown() -> Result<String> {
    let results = bookkit::results::committed(SLUG)?;
    let header = bookkit::table::measured_header(COMMAND, &results.iter().collect::<Vec<_>>());
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let rate = |r: Option<&BenchResult>| {
        r.and_then(|r| r.ops_per_sec)
            .map_or("not measured".to_string(), |v| format!("{v:.0}"))
    };
    let (ceiling, drain) = (find("jetstream-publish"), find("relay-drain"));
    let throughput = markdown_table(
        &[
            "Path",
            "Messages/s",
            "Ratio to the ceiling (median, min–max)",
        ],
        &[
            vec![
                "Ceiling: JetStream publish of the same messages, same batches, no database".into(),
                rate(ceiling),
                "1".into(),
            ],
            vec![
                "Relay drain: claim, publish, mark, commit".into(),
                rate(drain),
                fmt_spread(drain.and_then(|r| r.ratio)),
            ],
        ],
    );
    let mut lag_rows = Vec::new();
    for (name, wake) in LAG_WAKES {
        let r = find(name);
        let offered = r
            .and_then(|r| r.extra.get("offered"))
            .and_then(serde_json::Value::as_u64);
        lag_rows.push(vec![
            wake_label(wake),
            match (r, offered) {
                (Some(r), Some(o)) => format!("{} of {o}", r.ops),
                _ => "not measured".into(),
            },
            fmt_us(r.and_then(|r| r.p50_us)),
            fmt_us(r.and_then(|r| r.p99_us)),
        ]);
    }
    let lag = markdown_table(
        &[
            "Relay wakes by",
            "Published of offered",
            "Lag p50",
            "Lag p99",
        ],
        &lag_rows,
    );
    Ok(format!(
        "{header}**Throughput**: a backlog of {DRAIN_AGGREGATES} aggregates × {DRAIN_VERSIONS} \
         messages drained by one relay in batches of {DRAIN_BATCH}, against the same messages \
         published straight to JetStream, interleaved over rounds:\n\n{throughput}\n\
         **Lag**: messages offered at {LAG_RATE}/s on a fixed schedule, one transaction each; lag \
         from the row's insert to its mark after the broker's acknowledgement (both the \
         database's clock):\n\n{lag}"
    ))
}
