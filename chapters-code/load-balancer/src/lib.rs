//! A layer-7 load balancer: the algorithms, measured against each other and
//! against theory, and a real HTTP proxy in front of in-process backends.
//!
//! - [`algo`]: every balancing algorithm behind one [`algo::Balancer`]
//!   trait, pure (no I/O, no clock).
//! - [`hash`]: the mixing function the hashing schemes share.
//! - [`sim`]: the seeded simulations the chapter's tables come from
//!   (disruption and spread of the hashing schemes, balls into bins, stale
//!   load information with many balancers).
#![warn(missing_docs)]

pub mod algo;
#[cfg(feature = "book")]
pub mod book;
pub mod hash;
pub mod proxy;
#[cfg(feature = "book")]
pub mod report;
pub mod sim;
