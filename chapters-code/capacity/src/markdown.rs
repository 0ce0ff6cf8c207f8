//! Markdown tables of the inputs and of the estimate, as the book includes them.

use crate::model::{Estimate, Inputs, Kind};
use crate::units;

/// Rows of a three-column table: quantity, value, how it was computed.
struct Table {
    rows: Vec<[String; 3]>,
}

impl Table {
    fn new() -> Self {
        Self { rows: Vec::new() }
    }

    fn row(&mut self, quantity: impl Into<String>, value: impl Into<String>, how: &str) {
        self.rows
            .push([quantity.into(), value.into(), how.to_owned()]);
    }

    fn render(&self, header: [&str; 3]) -> String {
        let mut out = format!(
            "| {} | {} | {} |\n| --- | ---: | --- |\n",
            header[0], header[1], header[2]
        );
        for [a, b, c] in &self.rows {
            out.push_str(&format!("| {} | {} | {} |\n", cell(a), cell(b), cell(c)));
        }
        out
    }
}

/// Escapes the one character that would break a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Read => "read",
        Kind::Write => "write",
    }
}

impl Inputs {
    /// The inputs as a Markdown table with columns Input | Value | Meaning.
    pub fn to_markdown(&self) -> String {
        let mut t = Table::new();
        t.row(
            "Daily active users (DAU)",
            units::count(self.daily_active_users as f64),
            "distinct users on a day",
        );
        for w in &self.workloads {
            let kind = kind_name(w.kind);
            t.row(
                format!("{}, per user per day", w.name),
                units::decimal(w.per_user_per_day),
                &format!("a {kind}"),
            );
            t.row(
                format!("{}, request / response", w.name),
                format!(
                    "{} / {}",
                    units::bytes_exact(w.request_bytes),
                    units::bytes_exact(w.response_bytes)
                ),
                "bytes on the wire per operation",
            );
            if w.kind == Kind::Write {
                t.row(
                    format!("{}, bytes stored", w.name),
                    units::bytes_exact(w.stored_bytes),
                    "per operation, one copy",
                );
            }
            if let Some(r) = w.reads_per_item {
                t.row(
                    format!("{}, reads per item", w.name),
                    units::decimal(r),
                    "times an item read on a day is read that day",
                );
            }
            if w.counter_bytes > 0 {
                t.row(
                    format!("{}, counter bytes", w.name),
                    units::bytes_exact(w.counter_bytes),
                    "per distinct item read per day, one copy",
                );
            }
            if let Some(own) = &w.measured {
                t.row(
                    format!("{}, throughput per core", w.name),
                    units::qps(own.ops_per_core),
                    &own.source,
                );
            }
        }
        t.row(
            "Peak factor",
            units::decimal(self.peak_factor),
            "busiest second ÷ daily average",
        );
        t.row(
            "Retention",
            format!("{} years", units::decimal(self.retention_years)),
            "how long stored data is kept",
        );
        t.row(
            "Replication factor",
            units::decimal(f64::from(self.replication)),
            "copies of every stored byte",
        );
        t.row(
            "Cache hot fraction",
            units::percent(self.cache_hot_fraction),
            "share of the distinct items read on a day kept in memory",
        );
        t.row(
            "Cache entry size",
            units::bytes_exact(self.cache_entry_bytes),
            "key, value and overhead",
        );
        // Shown only when some workload is priced at the mix's rate.
        if self.workloads.iter().any(|w| w.measured.is_none()) {
            let label = if self.workloads.iter().any(|w| w.measured.is_some()) {
                "Throughput per core, other workloads"
            } else {
                "Throughput per core"
            };
            t.row(
                label,
                units::qps(self.ops_per_core),
                &self.ops_per_core_source,
            );
        }
        t.row(
            "Cores per machine",
            units::decimal(f64::from(self.cores_per_machine)),
            "cores in one machine",
        );
        t.row(
            "Target utilisation at peak",
            units::percent(self.target_utilisation),
            "the rest is headroom",
        );
        t.render(["Input", "Value", "Meaning"])
    }
}

// ANCHOR: to_markdown
impl Estimate {
    /// The estimate as a Markdown table with columns Quantity | Value | How.
    pub fn to_markdown(&self) -> String {
        let inputs = &self.inputs;
        let mut t = Table::new();
        for w in &self.workloads {
            t.row(
                format!("Average QPS, {}", w.name),
                units::qps(w.qps.average),
                "DAU × operations per user per day ÷ 86,400 s",
            );
            t.row(
                format!("Peak QPS, {}", w.name),
                units::qps(w.qps.peak),
                "average × peak factor",
            );
        }
        for (kind, rate) in [(Kind::Read, self.read_qps), (Kind::Write, self.write_qps)] {
            // A subtotal only adds information when it sums more than one workload.
            if self.workloads.iter().filter(|w| w.kind == kind).count() > 1 {
                let name = kind_name(kind);
                t.row(
                    format!("Average {name} QPS"),
                    units::qps(rate.average),
                    &format!("sum over {name} workloads"),
                );
                t.row(
                    format!("Peak {name} QPS"),
                    units::qps(rate.peak),
                    "average × peak factor",
                );
            }
        }
        if self.read_qps.average > 0.0 && self.write_qps.average > 0.0 {
            t.row(
                "Read:write ratio",
                units::ratio(self.read_qps.average, self.write_qps.average),
                "read QPS ÷ write QPS",
            );
        }
        t.row(
            "Average QPS, all operations",
            units::qps(self.total_qps.average),
            "sum over workloads",
        );
        t.row(
            "Peak QPS, all operations",
            units::qps(self.total_qps.peak),
            "average × peak factor",
        );
        if self.distinct_items_per_day > 0.0 {
            t.row(
                "Distinct items read per day",
                units::count(self.distinct_items_per_day),
                "reads per day ÷ reads per item",
            );
        }
        let counters = self.counter_bytes_per_day > 0.0;
        if counters {
            t.row(
                "Counters per day, one copy",
                units::bytes(self.counter_bytes_per_day),
                "distinct items read per day × counter bytes",
            );
        }
        t.row(
            "New data per day, one copy",
            units::bytes(self.stored_bytes_per_day),
            if counters {
                "writes per day × bytes stored per write, plus counters"
            } else {
                "writes per day × bytes stored per write"
            },
        );
        t.row(
            "New data per year, one copy",
            units::bytes(self.stored_bytes_per_year),
            "per day × 365",
        );
        t.row(
            format!(
                "Storage after {} years, {} copies",
                units::decimal(inputs.retention_years),
                inputs.replication
            ),
            units::bytes(self.retained_bytes),
            "per year × retention years × replication factor",
        );
        t.row(
            "Ingress, average",
            units::bandwidth(self.ingress.average),
            "QPS × request bytes, summed over workloads",
        );
        t.row(
            "Ingress, peak",
            units::bandwidth(self.ingress.peak),
            "average × peak factor",
        );
        t.row(
            "Egress, average",
            units::bandwidth(self.egress.average),
            "QPS × response bytes, summed over workloads",
        );
        t.row(
            "Egress, peak",
            units::bandwidth(self.egress.peak),
            "average × peak factor",
        );
        t.row(
            "Cache memory",
            units::bytes(self.cache_bytes),
            "distinct items read per day × hot fraction × cache entry size",
        );
        let own_rates = inputs.workloads.iter().any(|w| w.measured.is_some());
        if own_rates {
            for w in &self.workloads {
                t.row(
                    format!("Cores at peak, {}", w.name),
                    units::decimal(units::three_significant(w.cores)),
                    "its peak QPS ÷ (its throughput per core × target utilisation)",
                );
            }
        }
        t.row(
            "Cores at peak",
            units::count(self.cores as f64),
            if own_rates {
                "sum of the workloads' cores, rounded up"
            } else {
                "peak QPS ÷ (throughput per core × target utilisation), rounded up"
            },
        );
        t.row(
            "Machines",
            units::count(self.machines as f64),
            "cores ÷ cores per machine, rounded up",
        );
        t.render(["Quantity", "Value", "How"])
    }
}
// ANCHOR_END: to_markdown
