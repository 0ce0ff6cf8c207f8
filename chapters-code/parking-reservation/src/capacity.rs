//! The chapter's capacity estimate: the requirements as model inputs, with
//! the throughput per core taken from the chapter's own load run.
//!
//! `cargo xtask bench-report parking-reservation` measures the reserve path and, through
//! [`crate::report::measured_json`], writes the per-core figure to
//! `src/parking-reservation/generated/measured.json`; the estimate table is generated
//! from that file (`cargo xtask gen`), so the core count in the book always
//! follows the last committed measurement.

use anyhow::{Context, Result};
use capacity::{Inputs, Measured, Workload};

/// An operation's own throughput per core, and the run that measured it.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnRate {
    /// Operations per second per logical CPU.
    pub ops_per_core: f64,
    /// The committed result that measured it.
    pub source: String,
}

/// The reads measured beside the reserve in the same load run. An
/// operation with no rate here is priced at the reserve's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnRates {
    /// `GET /lots/{lot}/availability`.
    pub availability: Option<OwnRate>,
    /// `GET /reservations/{id}`.
    pub read: Option<OwnRate>,
}

fn priced(w: Workload, rate: Option<&OwnRate>) -> Workload {
    match rate {
        Some(r) => w.measured(r.ops_per_core, &r.source),
        None => w,
    }
}

/// Where the measured per-core figure is committed (relative to the repository root).
pub const MEASURED_PATH: &str = "src/parking-reservation/generated/measured.json";
/// Where the generated estimate goes (relative to the repository root).
pub const CAPACITY_PATH: &str = "src/parking-reservation/generated/capacity.md";

/// Bytes one reserve stores, one copy: the reservation with its indexes,
/// its `reserve` event and its idempotency row (checked against measured
/// row sizes by the storage generator, `storage.md`).
pub const RESERVE_STORED_BYTES: u64 = 1_500;
/// Bytes one state change stores: its row in the audit trail.
pub const EVENT_STORED_BYTES: u64 = 200;
/// How many days ahead a reservation is made, on average: what decides how
/// many live reservations the hot queries may touch (an assumption, stated).
pub const MEAN_LEAD_DAYS: f64 = 7.0;

// ANCHOR: inputs
/// The requirements as capacity inputs; `measured` supplies the reserve's
/// throughput per core, `rates` those of the reads measured beside it. A
/// state change (an UPDATE and an event row, committed) has no run of its
/// own yet and is priced at the reserve's rate, an over-count.
pub fn inputs(measured: &Measured, rates: &OwnRates) -> Inputs {
    Inputs {
        // Drivers who use the service on a given day, each making one
        // reservation: with the peak factor below, 1,000 reservations a
        // minute in the busiest second.
        daily_active_users: 480_000,
        workloads: vec![
            // A driver looks before booking: a GET with a lot and a range,
            // answered with the free count per kind.
            priced(
                Workload::read("availability", 4.0).payload(300, 500),
                rates.availability.as_ref(),
            ),
            // One hold per driver and day: the reservation row with its
            // indexes, its first event and the idempotency row that keeps the
            // response (sizes measured in `storage.md`).
            Workload::write("reserve", 1.0)
                .payload(400, 700)
                .stores(RESERVE_STORED_BYTES),
            // Confirm, check in, check out, cancel: UPDATEs of the same row
            // (MVCC's old versions are reclaimed by VACUUM) and one row of the
            // audit trail each.
            Workload::write("state change", 3.0)
                .payload(300, 700)
                .stores(EVENT_STORED_BYTES),
            // The driver's app shows the reservation.
            priced(
                Workload::read("read reservation", 2.0).payload(300, 700),
                rates.read.as_ref(),
            ),
        ],
        // The morning rush: three times the daily average.
        peak_factor: 3.0,
        // Reservations and their charges are kept three years for billing disputes.
        retention_years: 3.0,
        // A primary and two standbys, committed on either (quorum commit).
        replication: 3,
        // No cache: an availability answer changes with every reservation,
        // and the reservations still to come fit in PostgreSQL's own
        // buffers (`storage.md` measures them).
        cache_hot_fraction: 0.0,
        cache_entry_bytes: 0,
        ops_per_core: measured.ops_per_core,
        ops_per_core_source: measured.source(),
        cores_per_machine: 16,
        target_utilisation: 0.5,
    }
}
// ANCHOR_END: inputs

/// The inputs and estimate tables, for `src/parking-reservation/generated/capacity.md`.
pub fn capacity_markdown(measured_json: &str, rates: &OwnRates) -> Result<String> {
    let measured = Measured::from_json(measured_json)?;
    let tables = capacity::chapter_tables(&inputs(&measured, rates))
        .context("the chapter's capacity inputs are invalid")?;
    Ok(format!(
        "<!-- Generated by `cargo xtask gen` from chapters-code/parking-reservation/src/capacity.rs and \
         {MEASURED_PATH}; do not edit by hand. -->\n\n{tables}"
    ))
}

/// Where the key numbers of "the design in 45 minutes" go.
pub const KEY_NUMBERS_PATH: &str = "src/parking-reservation/generated/key-numbers.md";

/// The few numbers a candidate quotes, from the same model and measurement as `capacity.md`.
pub fn key_numbers_markdown(measured_json: &str, rates: &OwnRates) -> Result<String> {
    let measured = Measured::from_json(measured_json)?;
    let i = inputs(&measured, rates);
    let e = capacity::Estimate::new(&i).context("the chapter's capacity inputs are invalid")?;
    let reserve = e
        .workloads
        .iter()
        .find(|w| w.name == "reserve")
        .map_or(0.0, |w| w.qps.peak);
    let rows = [
        (
            "Reservations a minute, peak",
            capacity::units::count(reserve * 60.0),
        ),
        (
            "Reserves a second per core, measured",
            capacity::units::qps(measured.ops_per_core),
        ),
        (
            "All operations a second, peak",
            capacity::units::qps(e.total_qps.peak),
        ),
        (
            "Reads : writes",
            format!(
                "{:.1} : 1",
                e.read_qps.average / e.write_qps.average.max(f64::EPSILON)
            ),
        ),
        (
            "Stored per year, all copies",
            capacity::units::bytes(e.stored_bytes_per_year * f64::from(i.replication)),
        ),
        (
            "Cores at the peak, each operation at its measured rate",
            e.cores.to_string(),
        ),
    ];
    let mut out = format!(
        "<!-- Generated by `cargo xtask gen` from chapters-code/parking-reservation/src/capacity.rs and \
         {MEASURED_PATH}; do not edit by hand. -->\n\n| Quantity | Value |\n|---|---|\n"
    );
    for (q, v) in rows {
        out.push_str(&format!("| {q} | {v} |\n"));
    }
    out.push_str("\nComputed by `cargo xtask gen` from the [capacity estimate](capacity.md).\n");
    Ok(out)
}

/// Where the 10x/100x table goes.
pub const SCALING_PATH: &str = "src/parking-reservation/generated/scaling.md";

/// The load multiples the scaling section discusses.
pub const SCALES: [u32; 3] = [1, 10, 100];

// ANCHOR: scaling
/// The requirements at 1x, 10x and 100x the drivers, through the same model
/// and the same measured throughput per core.
pub fn scaling_markdown(measured_json: &str, rates: &OwnRates) -> Result<String> {
    let measured = Measured::from_json(measured_json)?;
    let mut out = format!(
        "<!-- Generated by `cargo xtask gen` from chapters-code/parking-reservation/src/capacity.rs and \
         {MEASURED_PATH}; do not edit by hand. -->\n\n\
         | Load | Reserves/s at peak | All operations/s at peak | Cores at {}% | Stored per year, all copies |\n\
         |---|---:|---:|---:|---:|\n",
        (inputs(&measured, rates).target_utilisation * 100.0).round()
    );
    for scale in SCALES {
        let mut i = inputs(&measured, rates);
        i.daily_active_users *= u64::from(scale);
        let e = capacity::Estimate::new(&i).context("the scaled inputs are invalid")?;
        let reserve = e
            .workloads
            .iter()
            .find(|w| w.name == "reserve")
            .map_or(0.0, |w| w.qps.peak);
        out.push_str(&format!(
            "| {scale}x | {} | {} | {} | {} |\n",
            capacity::units::qps(reserve),
            capacity::units::qps(e.total_qps.peak),
            e.cores,
            capacity::units::bytes(e.stored_bytes_per_year * f64::from(i.replication)),
        ));
    }
    let own = [
        ("availability", rates.availability.as_ref()),
        ("a reservation read", rates.read.as_ref()),
    ];
    let mut priced_at = vec![format!(
        "a reserve and a state change at {} a second per core ({})",
        capacity::units::count(measured.ops_per_core),
        measured.path,
    )];
    for (what, rate) in own {
        priced_at.push(match rate {
            Some(r) => format!(
                "{what} at {} ({})",
                capacity::units::count(r.ops_per_core),
                r.source
            ),
            None => format!("{what} at the reserve's rate (not measured)"),
        });
    }
    out.push_str(&format!(
        "\nCores are the model's: the sum over operations of each one's peak rate ÷ its own \
         measured throughput per core ÷ the target utilisation; {}.\n",
        priced_at.join("; "),
    ));
    Ok(out)
}
// ANCHOR_END: scaling

#[cfg(test)]
mod tests {
    use super::*;

    use capacity::Estimate;

    fn measured(per_core: f64) -> Measured {
        Measured {
            ops_per_core: per_core,
            path: "reserve-c32".into(),
            measured_on: "a test".into(),
        }
    }

    #[test]
    fn requirements_give_1000_reservations_a_minute_at_peak() {
        let e =
            Estimate::new(&inputs(&measured(1_000.0), &OwnRates::default())).expect("valid inputs");
        let reserve = e
            .workloads
            .iter()
            .find(|w| w.name == "reserve")
            .expect("a reserve workload");
        // 480,000 / 86,400 s = 5.56/s on average; x3 at peak = 16.7/s = 1,000 a minute.
        assert!((reserve.qps.peak * 60.0 - 1_000.0).abs() < 1e-6);
    }

    #[test]
    fn more_throughput_per_core_needs_no_more_cores() {
        let slow = Estimate::new(&inputs(&measured(10.0), &OwnRates::default())).expect("valid");
        let fast = Estimate::new(&inputs(&measured(1_000.0), &OwnRates::default())).expect("valid");
        assert!(fast.cores < slow.cores);
    }

    /// Issue 24, item 3: a read measured faster than a reserve needs fewer
    /// cores when priced at its own rate than when costed as a reserve.
    #[test]
    fn each_operation_is_priced_at_its_own_rate() {
        let rate = |r: f64| OwnRate {
            ops_per_core: r,
            source: "a test".into(),
        };
        let as_reserves =
            Estimate::new(&inputs(&measured(100.0), &OwnRates::default())).expect("valid");
        let own = OwnRates {
            availability: Some(rate(1_000.0)),
            read: Some(rate(10_000.0)),
        };
        let priced = Estimate::new(&inputs(&measured(100.0), &own)).expect("valid");
        assert!(
            priced.cores < as_reserves.cores,
            "{} vs {}",
            priced.cores,
            as_reserves.cores
        );
        let availability = priced
            .workloads
            .iter()
            .find(|w| w.name == "availability")
            .expect("an availability workload");
        // Its share of the cores: the peak ÷ (its own rate × utilisation).
        let utilisation = inputs(&measured(100.0), &own).target_utilisation;
        assert!(
            (availability.qps.peak / (1_000.0 * utilisation) - availability.cores).abs() < 1e-9
        );
    }

    #[test]
    fn a_missing_or_zero_measurement_is_an_error() {
        assert!(capacity_markdown("{}", &OwnRates::default()).is_err());
        assert!(capacity_markdown(&measured(0.0).to_json(), &OwnRates::default()).is_err());
        assert!(capacity_markdown("not json", &OwnRates::default()).is_err());
    }

    #[test]
    fn the_table_names_its_measurement() {
        let md =
            capacity_markdown(&measured(1_234.0).to_json(), &OwnRates::default()).expect("a table");
        assert!(md.contains("reserve-c32"));
        assert!(md.contains("| Machines |"));
    }
}
