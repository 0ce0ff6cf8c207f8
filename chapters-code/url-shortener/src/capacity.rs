//! The chapter's capacity estimate: the requirements as model inputs, with
//! the throughput per core taken from the chapter's own load test.
//!
//! `cargo xtask bench-report url-shortener` measures redirects per second and
//! writes the per-core figure to `src/url-shortener/generated/measured.json`;
//! the estimate table is generated from that file (`cargo xtask gen`), so the
//! machine count in the book always follows the last committed measurement.

use anyhow::{Context, Result};
use capacity::{DAYS_PER_YEAR, Estimate, Inputs, Measured, SECONDS_PER_DAY, Workload};

// ANCHOR: inputs
/// The requirements as capacity inputs; `measured` supplies the throughput per core.
pub fn inputs(measured: &Measured) -> Inputs {
    Inputs {
        // People who follow short links on a given day (they need no account).
        daily_active_users: 300_000_000,
        workloads: vec![
            // A GET with ordinary browser headers; a 302 with a Location
            // header. A link clicked on a day is clicked ten times that day
            // on average (an assumption: a few links take most clicks). Each
            // link clicked on a day gets one `link_clicks_daily` row: a
            // 48-byte tuple with its header, a line pointer, and an entry
            // in the primary key's index, about 80 bytes.
            Workload::read("redirect", 10.0)
                .payload(400, 300)
                .reads_per_item(10.0)
                .counter_bytes(80),
            // 100 reads per write. A link row with its index entries and
            // tuple overhead is about 500 bytes.
            Workload::write("create link", 0.1)
                .payload(500, 400)
                .stores(500),
        ],
        peak_factor: 3.0,
        retention_years: 5.0,
        // A primary and two replicas.
        replication: 3,
        // The in-process and Redis caches hold the hottest fifth of the
        // links clicked on a day: a code and its target, about 200 bytes
        // with the cache's own overhead.
        cache_hot_fraction: 0.2,
        cache_entry_bytes: 200,
        ops_per_core: measured.ops_per_core,
        ops_per_core_source: measured.source(),
        cores_per_machine: 16,
        target_utilisation: 0.5,
    }
}
// ANCHOR_END: inputs

/// The estimate at the requirements, for figures that do not depend on the
/// throughput per core (rates, storage, links kept): any positive figure works.
pub fn requirements_estimate() -> Result<Estimate> {
    let unused = Measured {
        ops_per_core: 1.0,
        path: "not used".into(),
        measured_on: "not used".into(),
    };
    Estimate::new(&inputs(&unused)).context("the chapter's capacity inputs are invalid")
}

/// Links created over the retention period: the number of codes the code
/// length must accommodate.
pub fn links_kept() -> Result<f64> {
    let e = requirements_estimate()?;
    Ok(e.write_qps.average * SECONDS_PER_DAY * DAYS_PER_YEAR * e.inputs.retention_years)
}

/// Cores the capacity model asks for at the peak, for a throughput per core.
/// The performance table uses it too, so the two pages cannot disagree.
pub fn cores_at_peak(ops_per_core: f64) -> Result<u64> {
    let measured = Measured {
        ops_per_core,
        path: "a load-test path".into(),
        measured_on: "this run".into(),
    };
    Ok(Estimate::new(&inputs(&measured))
        .context("the chapter's capacity inputs are invalid")?
        .cores)
}

/// The inputs and estimate tables, for `src/url-shortener/generated/capacity.md`.
pub fn capacity_markdown(measured_json: &str) -> Result<String> {
    let measured = Measured::from_json(measured_json)?;
    capacity::chapter_tables(&inputs(&measured))
        .context("the chapter's capacity inputs are invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(per_core: f64) -> Measured {
        Measured {
            ops_per_core: per_core,
            path: "redirect_redis".into(),
            measured_on: "a test".into(),
        }
    }

    #[test]
    fn requirements_give_the_stated_peak_of_about_100k_redirects_per_second() {
        let e = Estimate::new(&inputs(&measured(10_000.0))).expect("valid inputs");
        let redirect = &e.workloads[0];
        // 300M x 10 / 86,400 s = 34,722/s average; x3 at peak.
        assert_eq!(redirect.qps.average.round(), 34_722.0);
        assert!((100_000.0..110_000.0).contains(&redirect.qps.peak));
        // Read:write 100:1, as required.
        assert!((e.read_qps.average / e.write_qps.average - 100.0).abs() < 1e-9);
    }

    #[test]
    fn more_throughput_per_core_needs_fewer_cores() {
        let slow = Estimate::new(&inputs(&measured(5_000.0))).expect("valid");
        let fast = Estimate::new(&inputs(&measured(20_000.0))).expect("valid");
        assert!(fast.cores < slow.cores);
    }

    #[test]
    fn a_missing_or_zero_measurement_is_an_error() {
        assert!(capacity_markdown("{}").is_err());
        assert!(capacity_markdown(&measured(0.0).to_json()).is_err());
        assert!(capacity_markdown("not json").is_err());
    }

    #[test]
    fn the_table_names_its_measurement() {
        let md = capacity_markdown(&measured(12_345.0).to_json()).expect("a table");
        assert!(md.contains("redirect_redis"));
        assert!(md.contains("| Machines |"));
    }
}
