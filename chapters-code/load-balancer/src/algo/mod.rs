//! The balancing algorithms, behind one trait.
//!
//! A [`Balancer`] sees the pool as a slice of [`Candidate`]s (the proxy
//! builds it from its live counters before each pick; the simulations build
//! it from theirs) and returns the index of the one to use. It never does
//! I/O and never reads a clock, so every algorithm is tested and simulated
//! without a network.
//!
//! - [`basic`]: round robin, smooth weighted round robin (nginx's), random.
//! - [`load`]: least connections, power of two choices, Peak-EWMA.
//! - [`affinity`]: a consistent-hash ring with virtual nodes, Maglev,
//!   rendezvous hashing and jump hash, for keys that should stick.

pub mod affinity;
pub mod basic;
pub mod load;

use std::fmt;

use serde::{Deserialize, Serialize};

// ANCHOR: candidate
/// One backend as a balancer sees it at the moment of a pick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// A stable identity (a hash of the address): what the hashing schemes place.
    pub id: u64,
    /// The effective weight, above 0: the configured weight, scaled down
    /// while the backend warms up after a recovery (slow start).
    pub weight: f64,
    /// Requests sent to it and not yet answered.
    pub in_flight: u32,
    /// Peak-EWMA's cost: the latency estimate times `in_flight + 1`.
    pub cost: f64,
    /// False while it is ejected, failing its health checks or draining.
    pub up: bool,
}
// ANCHOR_END: candidate

impl Candidate {
    /// An up backend of weight 1 with nothing in flight.
    pub fn idle(id: u64) -> Self {
        Self {
            id,
            weight: 1.0,
            in_flight: 0,
            cost: 0.0,
            up: true,
        }
    }
}

// ANCHOR: trait
/// Chooses a backend for each request.
pub trait Balancer: Send {
    /// The algorithm's name, as the tables print it.
    fn name(&self) -> &'static str;

    /// The index in `backends` of the one to use for a request whose
    /// affinity key is `key` (ignored by the algorithms without affinity);
    /// `None` when no backend is up. Never returns a backend that is down.
    fn pick(&mut self, backends: &[Candidate], key: u64) -> Option<usize>;
}
// ANCHOR_END: trait

/// Every algorithm of the chapter, by name: what the proxy's configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// [`basic::RoundRobin`].
    RoundRobin,
    /// [`basic::SmoothWeighted`].
    WeightedRoundRobin,
    /// [`basic::Random`].
    Random,
    /// [`load::LeastConnections`].
    LeastConnections,
    /// [`load::PowerOfTwo`].
    P2c,
    /// [`load::PeakEwma`].
    PeakEwma,
    /// [`affinity::RingBalancer`] with [`affinity::DEFAULT_VNODES`] points per backend.
    RingHash,
    /// [`affinity::MaglevBalancer`] with [`affinity::MAGLEV_DEFAULT_SIZE`] entries.
    Maglev,
    /// [`affinity::RendezvousBalancer`].
    Rendezvous,
    /// [`affinity::JumpBalancer`].
    JumpHash,
}

impl Algorithm {
    /// Every algorithm, in the order the tables list them.
    pub const ALL: [Algorithm; 10] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::LeastConnections,
        Algorithm::P2c,
        Algorithm::PeakEwma,
        Algorithm::RingHash,
        Algorithm::Maglev,
        Algorithm::Rendezvous,
        Algorithm::JumpHash,
    ];

    /// A fresh balancer of this kind; `seed` feeds the random choices.
    pub fn build(self, seed: u64) -> Box<dyn Balancer> {
        match self {
            Algorithm::RoundRobin => Box::new(basic::RoundRobin::default()),
            Algorithm::WeightedRoundRobin => Box::new(basic::SmoothWeighted::default()),
            Algorithm::Random => Box::new(basic::Random::seeded(seed)),
            Algorithm::LeastConnections => Box::new(load::LeastConnections::default()),
            Algorithm::P2c => Box::new(load::PowerOfTwo::seeded(seed)),
            Algorithm::PeakEwma => Box::new(load::PeakEwma::seeded(seed)),
            Algorithm::RingHash => Box::new(affinity::RingBalancer::new(affinity::DEFAULT_VNODES)),
            Algorithm::Maglev => {
                Box::new(affinity::MaglevBalancer::new(affinity::MAGLEV_DEFAULT_SIZE))
            }
            Algorithm::Rendezvous => Box::new(affinity::RendezvousBalancer),
            Algorithm::JumpHash => Box::new(affinity::JumpBalancer),
        }
    }

    /// True for the schemes that send one key to one backend.
    pub fn has_affinity(self) -> bool {
        matches!(
            self,
            Algorithm::RingHash | Algorithm::Maglev | Algorithm::Rendezvous | Algorithm::JumpHash
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.build(0).name())
    }
}

/// The indices of the backends that are up.
pub(crate) fn up_indices(backends: &[Candidate]) -> impl Iterator<Item = usize> + '_ {
    backends
        .iter()
        .enumerate()
        .filter(|(_, c)| c.up)
        .map(|(i, _)| i)
}
