//! Markdown tables and number formats, so every chapter's tables look alike.
//!
//! Tables must fit the book's text column (about 750 px): keep them to six
//! columns or fewer, and split a wide table into two rather than let it
//! scroll sideways (the browser checks fail on a table wider than the column).

use crate::results::{BenchResult, Spread};

/// A Markdown table: a header row, the alignment row, then `rows` (cells must not contain `|`).
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for _ in headers {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// The header of a table computed from `results`: a generated-file notice and the
/// machine, commit and date of the run(s) that measured them (not of the rendering).
pub fn measured_header(command: &str, results: &[&BenchResult]) -> String {
    // One line per run (machine, compiler, commit, date); the load average
    // shown is the highest any of the run's results saw.
    let mut runs: Vec<crate::MachineHeader> = Vec::new();
    let mut unrecorded = false;
    for r in results {
        let Some(m) = &r.machine else {
            unrecorded = true;
            continue;
        };
        let same_run = |h: &crate::MachineHeader| {
            (&h.cpu_model, h.cores, &h.rustc, &h.commit, &h.date_utc)
                == (&m.cpu_model, m.cores, &m.rustc, &m.commit, &m.date_utc)
        };
        match runs.iter_mut().find(|h| same_run(h)) {
            Some(h) => {
                h.load_average = match (h.load_average, m.load_average) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }
            }
            None => runs.push(m.clone()),
        }
    }
    let mut lines: Vec<String> = runs.iter().map(crate::MachineHeader::to_markdown).collect();
    if unrecorded {
        lines.push("**Measured on** an unrecorded machine.\n\n".to_string());
    }
    if lines.is_empty() {
        lines.push("**Not measured yet.**\n\n".to_string());
    }
    format!(
        "<!-- Generated from the committed results of `{command}`; do not edit by hand. -->\n\n{}",
        lines.concat()
    )
}

/// A duration in nanoseconds with three significant digits and a fitting unit: `83.2 ns`, `1.53 ms`.
pub fn fmt_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", sig3(value))
}

/// A latency in microseconds, as [`fmt_ns`] does; `—` when unknown.
pub fn fmt_us(us: Option<f64>) -> String {
    us.map_or("—".into(), |us| fmt_ns(us * 1_000.0))
}

/// Like [`fmt_ns`] without trailing zeros, for round figures and axis ticks: `7 ns`, `1 µs`, `1.5 ms`.
pub fn fmt_ns_round(ns: f64) -> String {
    let full = fmt_ns(ns);
    match full.split_once(' ') {
        Some((num, unit)) if num.contains('.') => {
            format!("{} {unit}", num.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => full,
    }
}

/// A ratio with two significant digits and a `×`: `0.84×`, `12×`, `0.031×`.
pub fn fmt_ratio(ratio: f64) -> String {
    if !ratio.is_finite() || ratio <= 0.0 {
        return "n/a".to_string();
    }
    let digits = 1 - ratio.log10().floor() as i32; // two significant digits
    let decimals = digits.clamp(0, 6) as usize;
    format!("{ratio:.decimals$}×")
}

/// A ratio's median with its range over the rounds: `0.55× (0.50–0.61)`.
pub fn fmt_spread(spread: Option<Spread>) -> String {
    match spread {
        Some(s) => format!(
            "{} ({}–{})",
            fmt_ratio(s.median),
            fmt_ratio(s.min).trim_end_matches('×'),
            fmt_ratio(s.max).trim_end_matches('×')
        ),
        None => "—".to_string(),
    }
}

/// A count with thousands separators and no decimals: `1,234,567`.
pub fn fmt_count(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let n = v.round() as i128;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `v` with three significant digits (no exponent): `1.23`, `12.3`, `123`.
fn sig3(v: f64) -> String {
    if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ratios_are_formatted() {
        assert_eq!(fmt_ns(0.512), "0.51 ns");
        assert_eq!(fmt_ns(83.24), "83.2 ns");
        assert_eq!(fmt_ns(999.0), "999 ns");
        assert_eq!(fmt_ns(1_530.0), "1.53 µs");
        assert_eq!(fmt_ns(150_000.0), "150 µs");
        assert_eq!(fmt_ns(2_345_678.0), "2.35 ms");
        assert_eq!(fmt_ns_round(7.0), "7 ns");
        assert_eq!(fmt_ns_round(1_500_000.0), "1.5 ms");
        assert_eq!(fmt_ratio(0.8412), "0.84×");
        assert_eq!(fmt_ratio(12.3), "12×");
        assert_eq!(fmt_ratio(0.0312), "0.031×");
        assert_eq!(fmt_ratio(0.0), "n/a");
        let s = Spread {
            median: 0.55,
            min: 0.5,
            max: 0.61,
        };
        assert_eq!(fmt_spread(Some(s)), "0.55× (0.50–0.61)");
        assert_eq!(fmt_count(1_234_567.4), "1,234,567");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(-1000.0), "-1,000");
    }

    #[test]
    fn tables_are_markdown() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }

    #[test]
    fn the_header_names_the_measuring_run() {
        let mut r = BenchResult::new("x", "a", crate::ResultKind::Load);
        r.machine = Some(crate::MachineHeader {
            cpu_model: "CPU X".into(),
            cores: 2,
            rustc: "rustc 1.95.0".into(),
            commit: "abc1234".into(),
            date_utc: "2026-01-02".into(),
            load_average: None,
        });
        let mut busier = r.clone();
        if let Some(m) = busier.machine.as_mut() {
            m.load_average = Some(3.0);
        }
        let h = measured_header("cargo xtask bench-report x", &[&r, &busier]);
        assert!(h.contains("load average 3.0"), "{h}");
        assert_eq!(h.matches("**Measured on**").count(), 1, "{h}");
        assert!(h.contains("abc1234") && h.contains("2026-01-02"), "{h}");
    }
}
