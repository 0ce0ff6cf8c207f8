//! Properties of the model that must hold for every valid input.

use capacity::{Estimate, InputError, Inputs, Workload};
use proptest::prelude::*;

/// Valid inputs spanning the scales the book's chapters use, and beyond.
fn inputs() -> impl Strategy<Value = Inputs> {
    (
        1..=10_000_000_000u64,
        (0.0..1_000.0f64, 0..1_000_000u64, 0..10_000_000u64),
        (0.0..100.0f64, 0..10_000_000u64, 0..10_000_000u64),
        (1.0..10.0f64, 0.0..100.0f64, 1..=7u32),
        (0.0..=1.0f64, 0..100_000u64, 1.0..1_000.0f64),
        (1.0..1e6f64, 1..=256u32, 0.01..=1.0f64),
    )
        .prop_map(
            |(
                dau,
                (reads, req, resp),
                (writes, upload, stored),
                (peak, years, replication),
                (hot, entry, per_item),
                (per_core, cores, util),
            )| Inputs {
                daily_active_users: dau,
                workloads: vec![
                    Workload::read("get", reads)
                        .payload(req, resp)
                        .reads_per_item(per_item),
                    Workload::write("put", writes)
                        .payload(upload, 100)
                        .stores(stored),
                ],
                peak_factor: peak,
                retention_years: years,
                replication,
                cache_hot_fraction: hot,
                cache_entry_bytes: entry,
                ops_per_core: per_core,
                ops_per_core_source: "generated".to_owned(),
                cores_per_machine: cores,
                target_utilisation: util,
            },
        )
}

fn estimate(inputs: &Inputs) -> Result<Estimate, TestCaseError> {
    Estimate::new(inputs).map_err(|e| TestCaseError::fail(format!("valid inputs rejected: {e}")))
}

proptest! {
    #[test]
    fn qps_is_monotone_in_daily_active_users(inputs in inputs(), extra in 0..1_000_000_000u64) {
        let small = estimate(&inputs)?;
        let more = Inputs { daily_active_users: inputs.daily_active_users + extra, ..inputs };
        let large = estimate(&more)?;
        prop_assert!(large.total_qps.average >= small.total_qps.average);
        prop_assert!(large.total_qps.peak >= small.total_qps.peak);
        for (l, s) in large.workloads.iter().zip(&small.workloads) {
            prop_assert!(l.qps.average >= s.qps.average);
        }
        prop_assert!(large.cores >= small.cores);
        prop_assert!(large.retained_bytes >= small.retained_bytes);
    }

    #[test]
    fn peak_is_never_below_average(inputs in inputs()) {
        let e = estimate(&inputs)?;
        for rate in [e.read_qps, e.write_qps, e.total_qps, e.ingress, e.egress] {
            prop_assert!(rate.peak >= rate.average);
        }
        for w in &e.workloads {
            prop_assert!(w.qps.peak >= w.qps.average);
        }
    }

    #[test]
    fn the_cache_never_holds_more_entries_than_there_were_reads(inputs in inputs()) {
        let e = estimate(&inputs)?;
        let reads_per_day = e.read_qps.average * capacity::SECONDS_PER_DAY;
        prop_assert!(e.distinct_items_per_day <= reads_per_day * (1.0 + 1e-12));
        let per_read = reads_per_day * inputs.cache_hot_fraction * inputs.cache_entry_bytes as f64;
        prop_assert!(e.cache_bytes <= per_read * (1.0 + 1e-12) + 1e-9);
    }

    #[test]
    fn any_load_needs_at_least_one_machine(inputs in inputs()) {
        let e = estimate(&inputs)?;
        if e.total_qps.average > 0.0 {
            prop_assert!(e.cores >= 1);
            prop_assert!(e.machines >= 1);
        } else {
            prop_assert_eq!((e.cores, e.machines), (0, 0));
        }
    }

    #[test]
    fn provisioned_cores_cover_the_peak_without_a_spare_machine(inputs in inputs()) {
        let e = estimate(&inputs)?;
        let capacity = e.cores as f64 * inputs.ops_per_core * inputs.target_utilisation;
        prop_assert!(capacity >= e.total_qps.peak * (1.0 - 1e-9));
        // One core fewer would not be enough (up to the floating-point tolerance).
        if e.cores > 0 {
            let one_less = (e.cores - 1) as f64 * inputs.ops_per_core * inputs.target_utilisation;
            prop_assert!(one_less < e.total_qps.peak * (1.0 + 1e-9));
        }
        let per_machine = u64::from(inputs.cores_per_machine);
        prop_assert!(e.machines * per_machine >= e.cores);
        prop_assert!(e.machines == 0 || (e.machines - 1) * per_machine < e.cores);
    }

    #[test]
    fn storage_is_linear_in_retention(inputs in inputs(), k in 1u32..20) {
        let base = estimate(&inputs)?;
        let longer = Inputs { retention_years: inputs.retention_years * f64::from(k), ..inputs.clone() };
        let scaled = estimate(&longer)?;
        let expected = base.retained_bytes * f64::from(k);
        prop_assert!((scaled.retained_bytes - expected).abs() <= 1e-9 * expected.max(1.0));
        let none = estimate(&Inputs { retention_years: 0.0, ..inputs })?;
        prop_assert_eq!(none.retained_bytes, 0.0);
    }

    #[test]
    fn storage_is_linear_in_replication(inputs in inputs(), copies in 1u32..10) {
        let one = estimate(&Inputs { replication: 1, ..inputs.clone() })?;
        let many = estimate(&Inputs { replication: copies, ..inputs })?;
        let expected = one.retained_bytes * f64::from(copies);
        prop_assert!((many.retained_bytes - expected).abs() <= 1e-9 * expected.max(1.0));
        prop_assert_eq!(many.stored_bytes_per_day, one.stored_bytes_per_day);
    }

    #[test]
    fn out_of_range_inputs_are_rejected_by_name(
        inputs in inputs(),
        low in -10.0..1.0f64,
        high in 1.000_001..10.0f64,
    ) {
        let peak = Estimate::new(&Inputs { peak_factor: low, ..inputs.clone() });
        prop_assert_eq!(peak, Err(InputError::PeakBelowAverage(low)));
        let hot = Estimate::new(&Inputs { cache_hot_fraction: high, ..inputs.clone() });
        prop_assert_eq!(hot, Err(InputError::HotFractionOutOfRange(high)));
        let util = Estimate::new(&Inputs { target_utilisation: high, ..inputs });
        prop_assert_eq!(util, Err(InputError::UtilisationOutOfRange(high)));
    }

    #[test]
    fn every_table_row_has_three_cells_whatever_the_names(
        inputs in inputs(),
        read in "[a-z |]{0,12}",
        write in "[A-Z |]{0,12}",
    ) {
        let mut inputs = inputs;
        // The prefixes keep the names non-empty and distinct.
        inputs.workloads[0].name = format!("r{read}");
        inputs.workloads[1].name = format!("W{write}");
        let e = estimate(&inputs)?;
        for table in [e.to_markdown(), inputs.to_markdown()] {
            for line in table.lines() {
                let unescaped = line.replace("\\|", "");
                prop_assert_eq!(unescaped.matches('|').count(), 4, "{}", line);
            }
        }
    }
}
