//! The inputs, the formulas and the estimate.
//!
//! Each formula is a small function of its own so that the book can show it
//! beside the paragraph that explains it. [`Estimate::new`] validates the
//! inputs and then applies the formulas in order: rates, storage, bandwidth,
//! cache, hardware.

use serde::{Deserialize, Serialize};

// ANCHOR: inputs
/// What a chapter states about its load; validated by [`Estimate::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Distinct users active on a given day.
    pub daily_active_users: u64,
    /// The operations users perform, one entry per kind of request.
    pub workloads: Vec<Workload>,
    /// Request rate in the busiest second divided by the daily average (>= 1).
    pub peak_factor: f64,
    /// How long stored data is kept, in years of 365 days (>= 0).
    pub retention_years: f64,
    /// Copies kept of every stored byte (>= 1).
    pub replication: u32,
    /// Fraction of the distinct items read on a day that the cache holds (0..=1).
    pub cache_hot_fraction: f64,
    /// Bytes one cache entry occupies: key, value and the cache's own overhead.
    pub cache_entry_bytes: u64,
    /// Operations per second one core sustains on this workload mix (> 0).
    pub ops_per_core: f64,
    /// Where `ops_per_core` comes from: the benchmark that measured it.
    pub ops_per_core_source: String,
    /// Cores in one machine (>= 1).
    pub cores_per_machine: u32,
    /// Fraction of each core planned to be busy at peak, leaving headroom (0 < u <= 1).
    pub target_utilisation: f64,
}

/// Whether an operation only reads state or also changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Reads state; may be served from a cache; stores nothing.
    Read,
    /// Changes state; its stored bytes count towards storage.
    Write,
}

/// One kind of request and what it costs in rate, bytes on the wire and bytes stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Name shown in the tables, such as "redirect" or "upload photo".
    pub name: String,
    /// Read or write.
    pub kind: Kind,
    /// Operations per daily active user per day (>= 0).
    pub per_user_per_day: f64,
    /// Bytes the client sends per operation.
    pub request_bytes: u64,
    /// Bytes the server sends back per operation.
    pub response_bytes: u64,
    /// Bytes persisted per operation, before replication (writes only).
    pub stored_bytes: u64,
    /// Reads only: how many times, on average, an item read on a given day
    /// is read that day (>= 1). Distinct items = reads ÷ this. Required
    /// when the cache or a counter sizes by item.
    #[serde(default)]
    pub reads_per_item: Option<f64>,
    /// Reads only: bytes stored per distinct item read per day, before
    /// replication, such as a daily counter row.
    #[serde(default)]
    pub counter_bytes: u64,
    /// This operation's own measured throughput per core, when it differs
    /// from the mix's [`Inputs::ops_per_core`]: a read served from a cache
    /// costs far less than a write that commits, and pricing both at one
    /// rate gives a wrong machine count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<OwnRate>,
}

/// A workload's own measured throughput per core, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnRate {
    /// Operations of this workload per second per core (> 0).
    pub ops_per_core: f64,
    /// The benchmark that measured it.
    pub source: String,
}
// ANCHOR_END: inputs

// ANCHOR: workload
impl Workload {
    /// A read performed `per_user_per_day` times by each daily user; sizes start at zero.
    pub fn read(name: &str, per_user_per_day: f64) -> Self {
        Self::new(name, Kind::Read, per_user_per_day)
    }

    /// A write performed `per_user_per_day` times by each daily user; sizes start at zero.
    pub fn write(name: &str, per_user_per_day: f64) -> Self {
        Self::new(name, Kind::Write, per_user_per_day)
    }

    /// Sets the request and response sizes in bytes.
    pub fn payload(mut self, request_bytes: u64, response_bytes: u64) -> Self {
        self.request_bytes = request_bytes;
        self.response_bytes = response_bytes;
        self
    }

    /// Sets the bytes persisted per operation (before replication).
    pub fn stores(mut self, stored_bytes: u64) -> Self {
        self.stored_bytes = stored_bytes;
        self
    }

    /// States how many times an item read on a day is read that day, on average.
    pub fn reads_per_item(mut self, reads: f64) -> Self {
        self.reads_per_item = Some(reads);
        self
    }

    /// Sets the bytes stored per distinct item read per day (a daily counter).
    pub fn counter_bytes(mut self, bytes: u64) -> Self {
        self.counter_bytes = bytes;
        self
    }

    /// Prices this operation at its own measured throughput per core
    /// instead of the mix's, naming the benchmark that measured it.
    pub fn measured(mut self, ops_per_core: f64, source: &str) -> Self {
        self.measured = Some(OwnRate {
            ops_per_core,
            source: source.to_owned(),
        });
        self
    }

    /// The throughput per core this workload is priced at: its own, or the mix's.
    pub fn ops_per_core(&self, mix: f64) -> f64 {
        self.measured.as_ref().map_or(mix, |m| m.ops_per_core)
    }

    fn new(name: &str, kind: Kind, per_user_per_day: f64) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            per_user_per_day,
            request_bytes: 0,
            response_bytes: 0,
            stored_bytes: 0,
            reads_per_item: None,
            counter_bytes: 0,
            measured: None,
        }
    }
}
// ANCHOR_END: workload

// ANCHOR: errors
/// Why a set of inputs cannot be estimated; one variant per bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Daily active users is zero.
    #[error("daily active users must be at least 1")]
    NoUsers,
    /// The workload list is empty.
    #[error("at least one workload is needed")]
    NoWorkloads,
    /// A workload has an empty name.
    #[error("every workload needs a name")]
    UnnamedWorkload,
    /// Two workloads share a name, so the tables would be ambiguous.
    #[error("workload {0:?} appears twice")]
    DuplicateWorkload(String),
    /// Operations per user per day is negative, infinite or NaN.
    #[error(
        "workload {workload:?}: operations per user per day must be finite and >= 0, got {value}"
    )]
    BadRate {
        /// The workload's name.
        workload: String,
        /// The rejected value.
        value: f64,
    },
    /// A read claims to store bytes.
    #[error("workload {0:?} is a read and cannot store bytes; make it a write")]
    ReadStoresBytes(String),
    /// A write states distinct items or counters, which belong to reads.
    #[error("workload {0:?} is a write; reads per item and counters describe reads")]
    WriteCountsItems(String),
    /// Reads per item below 1 (an item read that day was read at least once) or not finite.
    #[error("workload {workload:?}: reads per item must be finite and >= 1, got {value}")]
    BadReadsPerItem {
        /// The workload's name.
        workload: String,
        /// The rejected value.
        value: f64,
    },
    /// The cache or a counter sizes by distinct item, and a read does not say how many there are.
    #[error(
        "workload {0:?}: state reads_per_item; the cache and counters hold one entry per distinct item, not per read"
    )]
    DistinctItemsUnstated(String),
    /// Peak factor below 1 (a peak cannot be below the average), or not finite.
    #[error("peak factor must be finite and >= 1, got {0}")]
    PeakBelowAverage(f64),
    /// Retention is negative or not finite.
    #[error("retention must be finite and >= 0 years, got {0}")]
    BadRetention(f64),
    /// Replication factor is zero.
    #[error("replication factor must be at least 1")]
    NoReplicas,
    /// Cache hot fraction outside 0..=1.
    #[error("cache hot fraction must be within 0..=1, got {0}")]
    HotFractionOutOfRange(f64),
    /// Throughput per core is zero, negative or not finite.
    #[error("throughput per core must be finite and > 0 ops/s, got {0}")]
    ThroughputNotPositive(f64),
    /// The throughput per core does not say where it came from.
    #[error("name the benchmark that measured the throughput per core")]
    ThroughputUnsourced,
    /// A workload's own throughput per core is zero, negative or not finite.
    #[error(
        "workload {workload:?}: its own throughput per core must be finite and > 0 ops/s, got {value}"
    )]
    WorkloadThroughputNotPositive {
        /// The workload's name.
        workload: String,
        /// The rejected value.
        value: f64,
    },
    /// A workload's own throughput per core does not say where it came from.
    #[error("workload {0:?}: name the benchmark that measured its own throughput per core")]
    WorkloadThroughputUnsourced(String),
    /// Cores per machine is zero.
    #[error("cores per machine must be at least 1")]
    NoCores,
    /// Target utilisation outside (0, 1].
    #[error("target utilisation must be within (0, 1], got {0}")]
    UtilisationOutOfRange(f64),
    /// A result is too large for exact arithmetic; the inputs' units are likely wrong.
    #[error("{0} is too large to estimate; check the units of the inputs")]
    TooLarge(&'static str),
}
// ANCHOR_END: errors

// ANCHOR: validate
impl Inputs {
    /// Returns the first bad input, if any.
    pub fn validate(&self) -> Result<(), InputError> {
        if self.daily_active_users == 0 {
            return Err(InputError::NoUsers);
        }
        if self.workloads.is_empty() {
            return Err(InputError::NoWorkloads);
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if w.name.trim().is_empty() {
                return Err(InputError::UnnamedWorkload);
            }
            if self.workloads[..i]
                .iter()
                .any(|earlier| earlier.name == w.name)
            {
                return Err(InputError::DuplicateWorkload(w.name.clone()));
            }
            if !(w.per_user_per_day.is_finite() && w.per_user_per_day >= 0.0) {
                return Err(InputError::BadRate {
                    workload: w.name.clone(),
                    value: w.per_user_per_day,
                });
            }
            if w.kind == Kind::Read && w.stored_bytes > 0 {
                return Err(InputError::ReadStoresBytes(w.name.clone()));
            }
            if w.kind == Kind::Write && (w.reads_per_item.is_some() || w.counter_bytes > 0) {
                return Err(InputError::WriteCountsItems(w.name.clone()));
            }
            if let Some(r) = w.reads_per_item
                && !(r.is_finite() && r >= 1.0)
            {
                return Err(InputError::BadReadsPerItem {
                    workload: w.name.clone(),
                    value: r,
                });
            }
            if let Some(own) = &w.measured {
                if !(own.ops_per_core.is_finite() && own.ops_per_core > 0.0) {
                    return Err(InputError::WorkloadThroughputNotPositive {
                        workload: w.name.clone(),
                        value: own.ops_per_core,
                    });
                }
                if own.source.trim().is_empty() {
                    return Err(InputError::WorkloadThroughputUnsourced(w.name.clone()));
                }
            }
        }
        // Each check reads "not (valid)", so NaN, which fails every comparison, is rejected.
        if !(self.peak_factor.is_finite() && self.peak_factor >= 1.0) {
            return Err(InputError::PeakBelowAverage(self.peak_factor));
        }
        if !(self.retention_years.is_finite() && self.retention_years >= 0.0) {
            return Err(InputError::BadRetention(self.retention_years));
        }
        if self.replication == 0 {
            return Err(InputError::NoReplicas);
        }
        if !(0.0..=1.0).contains(&self.cache_hot_fraction) {
            return Err(InputError::HotFractionOutOfRange(self.cache_hot_fraction));
        }
        if !(self.ops_per_core.is_finite() && self.ops_per_core > 0.0) {
            return Err(InputError::ThroughputNotPositive(self.ops_per_core));
        }
        if self.ops_per_core_source.trim().is_empty() {
            return Err(InputError::ThroughputUnsourced);
        }
        if self.cores_per_machine == 0 {
            return Err(InputError::NoCores);
        }
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            return Err(InputError::UtilisationOutOfRange(self.target_utilisation));
        }
        // Last, so that every other mistake is named first.
        for w in &self.workloads {
            let sizes_by_item = self.cache_hot_fraction > 0.0 || w.counter_bytes > 0;
            if w.kind == Kind::Read && sizes_by_item && w.reads_per_item.is_none() {
                return Err(InputError::DistinctItemsUnstated(w.name.clone()));
            }
        }
        Ok(())
    }
}
// ANCHOR_END: validate

// ANCHOR: qps
/// Seconds in a day: turns "per user per day" into "per second".
pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// Average operations per second over a day.
pub fn average_qps(daily_active_users: u64, per_user_per_day: f64) -> f64 {
    daily_active_users as f64 * per_user_per_day / SECONDS_PER_DAY
}

/// The rate in the busiest second, given the daily average.
pub fn peak_qps(average_qps: f64, peak_factor: f64) -> f64 {
    average_qps * peak_factor
}
// ANCHOR_END: qps

// ANCHOR: storage
/// Days in a year of retention; leap days are ignored (a 0.07% error).
pub const DAYS_PER_YEAR: f64 = 365.0;

/// Bytes written per day, one copy: operations per day times bytes stored per operation.
pub fn stored_bytes_per_day(daily_active_users: u64, workloads: &[Workload]) -> f64 {
    workloads
        .iter()
        .map(|w| daily_active_users as f64 * w.per_user_per_day * w.stored_bytes as f64)
        .sum()
}

/// Bytes on disk at the end of the retention period, counting every replica.
pub fn retained_bytes(per_day: f64, retention_years: f64, replication: u32) -> f64 {
    per_day * DAYS_PER_YEAR * retention_years * f64::from(replication)
}
// ANCHOR_END: storage

// ANCHOR: bandwidth
/// Bytes per second on the wire for `rate` operations per second of `bytes` each.
pub fn bandwidth(rate: f64, bytes: u64) -> f64 {
    rate * bytes as f64
}
// ANCHOR_END: bandwidth

// ANCHOR: cache
/// Distinct items read on a day: an item read ten times is one item.
pub fn distinct_items_per_day(reads_per_day: f64, reads_per_item: f64) -> f64 {
    reads_per_day / reads_per_item
}

/// Memory to hold the hot fraction of the distinct items read on a day,
/// one entry per item.
pub fn cache_bytes(distinct_items_per_day: f64, hot_fraction: f64, entry_bytes: u64) -> f64 {
    distinct_items_per_day * hot_fraction * entry_bytes as f64
}

/// Bytes a day of per-item records (one counter row per item read that day).
pub fn counter_bytes_per_day(distinct_items_per_day: f64, counter_bytes: u64) -> f64 {
    distinct_items_per_day * counter_bytes as f64
}
// ANCHOR_END: cache

// ANCHOR: cores
/// Cores needed to serve `peak` operations per second at the target utilisation.
pub fn cores_at_peak(peak: f64, ops_per_core: f64, target_utilisation: f64) -> f64 {
    peak / (ops_per_core * target_utilisation)
}

/// Rounds a count of things to buy up to a whole number.
///
/// Values within one part in 10^9 of an integer are that integer: the
/// difference is floating-point error in the inputs (0.1 has no exact binary
/// form), not demand, and must not buy an extra machine.
pub fn round_up(x: f64) -> u64 {
    let nearest = x.round();
    // Never snap down to zero: any load at all needs one core.
    let whole = if nearest >= 1.0 && (x - nearest).abs() <= 1e-9 * nearest {
        nearest
    } else {
        x.ceil()
    };
    // `as` saturates; `Estimate::new` rejects values beyond MAX_EXACT first.
    whole as u64
}

/// Machines needed to hold `cores`, rounded up.
pub fn machines_for(cores: u64, cores_per_machine: u32) -> u64 {
    cores.div_ceil(u64::from(cores_per_machine))
}
// ANCHOR_END: cores

/// Largest value below which every integer is exact in an `f64` (2^53).
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// A rate at the daily average and in the busiest second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Per second, averaged over a day.
    pub average: f64,
    /// Per second, at peak (average times the peak factor).
    pub peak: f64,
}

impl Rate {
    fn new(average: f64, peak_factor: f64) -> Self {
        Self {
            average,
            peak: peak_qps(average, peak_factor),
        }
    }
}

/// The load of one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkloadEstimate {
    /// The workload's name.
    pub name: String,
    /// Read or write.
    pub kind: Kind,
    /// Operations per second.
    pub qps: Rate,
    /// Cores this workload keeps busy at peak at the target utilisation,
    /// before rounding: its peak ÷ (its throughput per core × utilisation).
    pub cores: f64,
}

/// Everything that follows from a set of valid inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Estimate {
    /// The inputs this estimate was computed from.
    pub inputs: Inputs,
    /// Operations per second of each workload, in input order.
    pub workloads: Vec<WorkloadEstimate>,
    /// Read operations per second, all read workloads together.
    pub read_qps: Rate,
    /// Write operations per second, all write workloads together.
    pub write_qps: Rate,
    /// All operations per second.
    pub total_qps: Rate,
    /// Distinct items read per day, over the reads that state it.
    pub distinct_items_per_day: f64,
    /// Bytes of per-item counters written per day, one copy (part of `stored_bytes_per_day`).
    pub counter_bytes_per_day: f64,
    /// New bytes stored per day, one copy: writes plus counters.
    pub stored_bytes_per_day: f64,
    /// New bytes stored per year, one copy.
    pub stored_bytes_per_year: f64,
    /// Bytes on disk after the retention period, all replicas.
    pub retained_bytes: f64,
    /// Bytes per second from clients to the service.
    pub ingress: Rate,
    /// Bytes per second from the service to clients.
    pub egress: Rate,
    /// Memory for the cache, in bytes.
    pub cache_bytes: f64,
    /// Cores busy at peak at the target utilisation, rounded up.
    pub cores: u64,
    /// Machines holding those cores, rounded up.
    pub machines: u64,
}

// ANCHOR: estimate
impl Estimate {
    /// Validates `inputs` and computes the estimate.
    pub fn new(inputs: &Inputs) -> Result<Self, InputError> {
        inputs.validate()?;
        let dau = inputs.daily_active_users;
        let peak = inputs.peak_factor;

        let workloads: Vec<WorkloadEstimate> = inputs
            .workloads
            .iter()
            .map(|w| {
                let qps = Rate::new(average_qps(dau, w.per_user_per_day), peak);
                WorkloadEstimate {
                    name: w.name.clone(),
                    kind: w.kind,
                    qps,
                    cores: cores_at_peak(
                        qps.peak,
                        w.ops_per_core(inputs.ops_per_core),
                        inputs.target_utilisation,
                    ),
                }
            })
            .collect();
        let of_kind = |kind: Kind| -> f64 {
            let matching = workloads.iter().filter(|w| w.kind == kind);
            matching.map(|w| w.qps.average).sum()
        };
        let read_qps = Rate::new(of_kind(Kind::Read), peak);
        let write_qps = Rate::new(of_kind(Kind::Write), peak);
        let total_qps = Rate::new(read_qps.average + write_qps.average, peak);

        // Per read workload that states it: distinct items a day, and their counters.
        let items: Vec<(f64, u64)> = inputs
            .workloads
            .iter()
            .zip(&workloads)
            .filter_map(|(w, e)| {
                let per_item = w.reads_per_item?;
                let reads_per_day = e.qps.average * SECONDS_PER_DAY;
                Some((
                    distinct_items_per_day(reads_per_day, per_item),
                    w.counter_bytes,
                ))
            })
            .collect();
        let distinct: f64 = items.iter().map(|(n, _)| n).sum();
        let counters: f64 = items
            .iter()
            .map(|(n, b)| counter_bytes_per_day(*n, *b))
            .sum();
        let per_day = stored_bytes_per_day(dau, &inputs.workloads) + counters;
        let on_wire = |bytes: fn(&Workload) -> u64| -> f64 {
            let pairs = inputs.workloads.iter().zip(&workloads);
            pairs.map(|(w, e)| bandwidth(e.qps.average, bytes(w))).sum()
        };
        let ingress = Rate::new(on_wire(|w| w.request_bytes), peak);
        let egress = Rate::new(on_wire(|w| w.response_bytes), peak);
        // With one rate for the mix, one division (the formula the book
        // shows); with rates of their own, each workload's cores are summed.
        let cores_exact = if inputs.workloads.iter().any(|w| w.measured.is_some()) {
            workloads.iter().map(|w| w.cores).sum()
        } else {
            cores_at_peak(
                total_qps.peak,
                inputs.ops_per_core,
                inputs.target_utilisation,
            )
        };
        if cores_exact.is_nan() || cores_exact > MAX_EXACT {
            return Err(InputError::TooLarge("cores at peak"));
        }
        let cores = round_up(cores_exact);

        let estimate = Self {
            inputs: inputs.clone(),
            workloads,
            read_qps,
            write_qps,
            total_qps,
            distinct_items_per_day: distinct,
            counter_bytes_per_day: counters,
            stored_bytes_per_day: per_day,
            stored_bytes_per_year: per_day * DAYS_PER_YEAR,
            retained_bytes: retained_bytes(per_day, inputs.retention_years, inputs.replication),
            ingress,
            egress,
            cache_bytes: cache_bytes(
                distinct,
                inputs.cache_hot_fraction,
                inputs.cache_entry_bytes,
            ),
            cores,
            machines: machines_for(cores, inputs.cores_per_machine),
        };
        estimate.check_finite()?;
        Ok(estimate)
    }
}
// ANCHOR_END: estimate

impl Estimate {
    /// Rejects results that overflowed `f64` (only absurd inputs get here).
    fn check_finite(&self) -> Result<(), InputError> {
        let all = [
            ("total QPS", self.total_qps.peak),
            ("storage", self.retained_bytes),
            ("ingress", self.ingress.peak),
            ("egress", self.egress.peak),
            ("cache memory", self.cache_bytes),
        ];
        match all.iter().find(|(_, v)| !v.is_finite()) {
            Some((what, _)) => Err(InputError::TooLarge(what)),
            None => Ok(()),
        }
    }
}
