//! The chapter's capacity estimate: the requirements as model inputs, with
//! the throughput per core taken from the chapter's own measured run
//! (the reserve path spread over many SKUs, `store-spread`).

use anyhow::{Context, Result};
use capacity::{Inputs, Measured, Workload};

// ANCHOR: inputs
/// The requirements as capacity inputs; `measured` supplies the throughput per core.
pub fn inputs(measured: &Measured) -> Inputs {
    Inputs {
        // Shoppers on a given day. Each views availability on several
        // product pages and a fraction check out.
        daily_active_users: 20_000_000,
        workloads: vec![
            // Product and cart pages ask "how many left?": `GET /stock`
            // reads the primary by key (other services read their own
            // event-fed models), counted here as load.
            // Many shoppers look at the same products: a position read on a
            // day is read about fifty times that day.
            Workload::read("availability", 20.0)
                .payload(200, 300)
                .reads_per_item(50.0),
            // A checkout reserves; a third of shoppers start one.
            Workload::write("reserve", 0.3)
                .payload(300, 400)
                // Reservation row, ledger row, outbox row, with indexes.
                .stores(600),
            // Every reserve ends in a commit, a release or an expiry.
            Workload::write("commit or release", 0.3)
                .payload(200, 400)
                .stores(300),
            // Warehouses receive and count: small next to checkouts.
            Workload::write("receive and adjust", 0.01)
                .payload(200, 300)
                .stores(300),
        ],
        // Flash sales: ten times the daily average in the busiest second.
        peak_factor: 10.0,
        // The ledger is kept seven years (audit).
        retention_years: 7.0,
        // A primary and two replicas.
        replication: 3,
        // Availability is read from the event-fed read model, a few hundred
        // bytes per position; the hot fifth of the catalogue in memory.
        cache_hot_fraction: 0.2,
        cache_entry_bytes: 300,
        ops_per_core: measured.ops_per_core,
        ops_per_core_source: measured.source(),
        cores_per_machine: 16,
        target_utilisation: 0.5,
    }
}
// ANCHOR_END: inputs

/// The inputs and estimate tables, for `src/inventory/generated/capacity.md`.
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
            path: "store-spread".into(),
            measured_on: "a test".into(),
        }
    }

    #[test]
    fn the_table_names_its_measurement_and_refuses_a_missing_one() {
        let md = capacity_markdown(&measured(2_000.0).to_json()).expect("a table");
        assert!(md.contains("store-spread"));
        assert!(capacity_markdown("{}").is_err());
        assert!(capacity_markdown(&measured(0.0).to_json()).is_err());
    }
}
