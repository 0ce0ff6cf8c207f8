//! Recommendations: a two-stage funnel with two-tower retrieval and ANN,
//! recall measured at every stage.
//!
//! "Recommended for you" for an online shop. Candidate generation narrows
//! the catalog to a few hundred items; ranking orders them; re-ranking
//! applies diversity and the business rules (nothing out of stock, nothing
//! already bought). Every stage is measured offline against a seeded world
//! whose preferences are planted, so "better" has a ground truth.
//!
//! - [`data`]: the seeded generator (users, items, content features,
//!   implicit feedback) and the held-out split.
//! - [`candidates`]: popularity, item-item co-occurrence and the two-tower
//!   model, trained here with in-batch negatives and the log-Q correction.
//! - [`ann`]: an HNSW index written here, the versioned handle the service
//!   swaps a rebuilt index through, and exact search as the reference.
//! - [`rank`]: a logistic ranker over candidate features, MMR diversity
//!   re-ranking and the business filters.
//! - [`metrics`] and [`offline`]: recall@K, NDCG@K, intra-list similarity.
//! - [`store`]: the interactions store behind a trait (in memory in this
//!   version), read per request, so new events change the user vector at once.
//! - [`service`]: the axum route; errors become problem+json in one place.
#![warn(missing_docs)]

pub mod ann;
#[cfg(feature = "book")]
pub mod book;
pub mod candidates;
pub mod data;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod rank;
#[cfg(feature = "book")]
pub mod report;
pub mod rng;
pub mod service;
pub mod store;
pub mod vector;
