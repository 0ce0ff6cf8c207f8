//! The worked example of the "Capacity estimation" page: a photo-sharing service.
//!
//! Its throughput per core is assumed for illustration; nothing in this
//! repository measures a photo service. Case-study chapters build their own
//! [`Inputs`] in the same way and take the throughput per core from their
//! benchmarks.

use crate::model::{Estimate, InputError, Inputs, Workload};

// ANCHOR: worked_example
/// Inputs of the photo-sharing example: 50M DAU, 30 views and 0.2 uploads per user per day.
pub fn worked_example() -> Inputs {
    Inputs {
        daily_active_users: 50_000_000,
        workloads: vec![
            // A view fetches one resized photo of about 200 KB. A photo
            // viewed on a day is viewed ten times that day, on average.
            Workload::read("view photo", 30.0)
                .payload(300, 200_000)
                .reads_per_item(10.0),
            // An upload sends a 2 MB original; we keep it plus three resized copies.
            Workload::write("upload photo", 0.2)
                .payload(2_000_000, 300)
                .stores(2_500_000),
        ],
        peak_factor: 3.0,
        retention_years: 5.0,
        replication: 3,
        // The cache holds photo metadata (owner, caption, URLs), not image bytes.
        cache_hot_fraction: 0.2,
        cache_entry_bytes: 1_000,
        ops_per_core: 2_000.0,
        ops_per_core_source: "assumed for illustration, not measured".to_owned(),
        cores_per_machine: 32,
        target_utilisation: 0.5,
    }
}
// ANCHOR_END: worked_example

/// The estimate table of the worked example (`src/method/generated/capacity-example.md`).
pub fn worked_example_markdown() -> Result<String, InputError> {
    Ok(Estimate::new(&worked_example())?.to_markdown())
}

/// The inputs table of the worked example (`src/method/generated/capacity-example-inputs.md`).
pub fn worked_example_inputs_markdown() -> String {
    worked_example().to_markdown()
}
