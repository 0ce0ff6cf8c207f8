//! Human units: how the book prints counts, rates, sizes and bandwidth.
//!
//! Conventions, the same in every table:
//!
//! - Counts are whole numbers with thousands separators: `11,574`.
//! - Rates, sizes and bandwidth have three significant figures, which is all
//!   an estimate deserves, and decimal SI prefixes: K = 10^3, M = 10^6,
//!   G = 10^9, T = 10^12, P = 10^15, E = 10^18. Decimal, not binary (KiB),
//!   because capacity planning, network links and disk vendors all count in
//!   powers of ten; a "TB" here is 10^12 bytes.
//! - A rate of things carries its prefix on the number, `11.6K/s`; a unit
//!   is separated by a space, `1.83 TB`, `3.47 GB/s`.
//! - Bandwidth is shown in bytes and in bits per second, `3.47 GB/s (27.8
//!   Gbit/s)`, because storage speaks bytes and network links speak bits.

/// Decimal SI prefixes, 10^0 to 10^18.
const PREFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];

/// A whole number with thousands separators: `11574.07` becomes `11,574`.
pub fn count(x: f64) -> String {
    group_thousands(&format!("{:.0}", x.round()))
}

/// An input as written: `30`, `0.2`, `50,000,000`.
pub fn decimal(x: f64) -> String {
    let text = format!("{x}");
    match text.split_once('.') {
        Some((whole, fraction)) => format!("{}.{fraction}", group_thousands(whole)),
        None => group_thousands(&text),
    }
}

/// A fraction as a percentage with up to three significant figures: `0.2` becomes `20%`.
pub fn percent(fraction: f64) -> String {
    format!("{}%", decimal(three_significant(fraction * 100.0)))
}

/// Operations per second as a count, `11,574/s`; below 1,000 with three significant figures, `1.74/s`.
pub fn qps(per_second: f64) -> String {
    if per_second.abs() >= 1000.0 {
        format!("{}/s", count(per_second))
    } else {
        rate(per_second)
    }
}

/// The ratio of `a` to `b` with the smaller side as 1: `150:1`, `1:4`; `b` must be > 0.
pub fn ratio(a: f64, b: f64) -> String {
    if a >= b {
        format!("{}:1", decimal(three_significant(a / b)))
    } else {
        format!("1:{}", decimal(three_significant(b / a)))
    }
}

/// Operations per second with an SI prefix: `11.6K/s`, `1.16M/s`, `950/s`.
pub fn rate(per_second: f64) -> String {
    let (number, prefix) = si(per_second);
    format!("{number}{prefix}/s")
}

/// A size in decimal units: `500 B`, `1.83 TB`.
pub fn bytes(bytes: f64) -> String {
    let (number, prefix) = si(bytes);
    format!("{number} {prefix}B")
}

/// A size as stated in the inputs, without rounding: `2.5 MB`, `1 KB`, `1,024 B`.
pub fn bytes_exact(bytes: u64) -> String {
    let x = bytes as f64;
    if three_significant(x) != x {
        // Not expressible in three significant figures: show every byte.
        return format!("{} B", count(x));
    }
    let mut scale = 1.0;
    let mut prefix = 0;
    while x >= scale * 1000.0 && prefix + 1 < PREFIXES.len() {
        scale *= 1000.0;
        prefix += 1;
    }
    format!("{} {}B", decimal(x / scale), PREFIXES[prefix])
}

/// Bytes per second, then bits per second: `3.47 GB/s (27.8 Gbit/s)`.
pub fn bandwidth(bytes_per_second: f64) -> String {
    let (number, prefix) = si(bytes_per_second);
    let (bit_number, bit_prefix) = si(bytes_per_second * 8.0);
    format!("{number} {prefix}B/s ({bit_number} {bit_prefix}bit/s)")
}

/// `x` rounded to three significant figures.
pub(crate) fn three_significant(x: f64) -> f64 {
    // Formatting rounds correctly; arithmetic with log10 would not at every power of ten.
    format!("{x:.2e}").parse().unwrap_or(x)
}

/// `x` as a number below 1000 with three significant figures, and its prefix.
fn si(x: f64) -> (String, &'static str) {
    let mut value = three_significant(x);
    let mut prefix = 0;
    // Round first, then pick the prefix: 999.7 K rounds to 1.00 M, not "1000 K".
    while value.abs() >= 1000.0 && prefix + 1 < PREFIXES.len() {
        value /= 1000.0;
        prefix += 1;
    }
    let number = match value.abs() {
        0.0 => "0".to_owned(),
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        // Below 1 (only without a prefix) the rounded value prints as it is: 0.116.
        _ => format!("{value}"),
    };
    (number, PREFIXES[prefix])
}

/// Inserts a comma every three digits from the right of an integer's digits.
fn group_thousands(digits: &str) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rounded_and_grouped_in_thousands() {
        assert_eq!(count(11_574.07), "11,574");
        assert_eq!(count(0.4), "0");
        assert_eq!(count(999.5), "1,000");
        assert_eq!(count(1_000_000.0), "1,000,000");
        assert_eq!(count(123.0), "123");
    }

    #[test]
    fn qps_is_a_count_above_a_thousand() {
        assert_eq!(qps(11_574.07), "11,574/s");
        assert_eq!(qps(115.74), "116/s");
        assert_eq!(qps(1.7361), "1.74/s");
    }

    #[test]
    fn ratios_put_the_smaller_side_at_one() {
        assert_eq!(ratio(17_361.0, 115.74), "150:1");
        assert_eq!(ratio(1.0, 4.0), "1:4");
        assert_eq!(ratio(2.0, 2.0), "1:1");
    }

    #[test]
    fn decimals_keep_their_fraction() {
        assert_eq!(decimal(0.2), "0.2");
        assert_eq!(decimal(30.0), "30");
        assert_eq!(decimal(50_000_000.0), "50,000,000");
        assert_eq!(decimal(12_345.5), "12,345.5");
    }

    #[test]
    fn percentages_hide_floating_noise() {
        assert_eq!(percent(0.2), "20%");
        assert_eq!(percent(0.07), "7%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.125), "12.5%");
    }

    #[test]
    fn rates_have_three_significant_figures_and_si_prefixes() {
        assert_eq!(rate(11_574.07), "11.6K/s");
        assert_eq!(rate(1_157_407.4), "1.16M/s");
        assert_eq!(rate(950.0), "950/s");
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(0.1157), "0.116/s");
    }

    #[test]
    fn bytes_are_decimal_not_binary() {
        assert_eq!(bytes(1000.0), "1.00 KB");
        assert_eq!(bytes(1024.0), "1.02 KB");
        assert_eq!(bytes(500.0), "500 B");
        assert_eq!(bytes(1.834e12), "1.83 TB");
        assert_eq!(bytes(2.5e15), "2.50 PB");
    }

    #[test]
    fn stated_sizes_are_exact() {
        assert_eq!(bytes_exact(1_000), "1 KB");
        assert_eq!(bytes_exact(2_500_000), "2.5 MB");
        assert_eq!(bytes_exact(300), "300 B");
        assert_eq!(bytes_exact(0), "0 B");
        assert_eq!(bytes_exact(1_024), "1,024 B");
        assert_eq!(bytes_exact(1_230_000_000_000), "1.23 TB");
    }

    #[test]
    fn rounding_carries_into_the_next_prefix() {
        assert_eq!(bytes(999_700.0), "1.00 MB");
        assert_eq!(rate(999_999.0), "1.00M/s");
        assert_eq!(bytes(99_960.0), "100 KB");
    }

    #[test]
    fn bandwidth_is_shown_in_bytes_and_bits() {
        assert_eq!(bandwidth(3.47e9), "3.47 GB/s (27.8 Gbit/s)");
        assert_eq!(bandwidth(125_000.0), "125 KB/s (1.00 Mbit/s)");
        assert_eq!(bandwidth(0.0), "0 B/s (0 bit/s)");
    }
}
