//! A seeded catalog for the rank-flip table: products with few and many
//! reviews, drawn from a true share of happy buyers.

use super::aggregate::Aggregate;
use super::review::Rating;
use super::score::{Z_95, bayesian, mean, wilson_lower_bound};
use crate::spam::corpus::Rng;

// ANCHOR: catalog
/// The catalog's seed.
pub const CATALOG_SEED: u64 = 0xC0FFEE;
/// Products in the catalog.
pub const CATALOG_PRODUCTS: usize = 60;
/// The Bayesian average's weight: as if each product had this many extra
/// ratings at the catalog's mean.
pub const PRIOR_WEIGHT: f64 = 20.0;
// ANCHOR_END: catalog

/// One product of the catalog with its three scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// Its number in the catalog.
    pub id: usize,
    /// Its ratings.
    pub agg: Aggregate,
    /// The mean.
    pub mean: f64,
    /// The Bayesian average.
    pub bayes: f64,
    /// The Wilson lower bound of 4 and 5 stars.
    pub wilson: f64,
}

/// The catalog of `seed`: review counts from 1 to about 3,000 (log-uniform),
/// each product's ratings drawn from its own quality.
pub fn catalog(seed: u64) -> Vec<Aggregate> {
    let mut rng = Rng::new(seed);
    (0..CATALOG_PRODUCTS)
        .map(|_| {
            let n = (3000f64.powf(rng.below(1000) as f64 / 1000.0)) as usize;
            // Quality: how likely a buyer gives 4 or 5 stars.
            let q = 0.3 + 0.65 * (rng.below(1000) as f64 / 1000.0);
            Aggregate::recompute((0..n.max(1)).map(|_| {
                let happy = rng.below(1000) as f64 / 1000.0 < q;
                let stars = if happy {
                    4 + rng.below(2)
                } else {
                    1 + rng.below(3)
                };
                Rating::new(stars as i64).unwrap_or_else(|_| unreachable!("1 to 5 by construction"))
            }))
        })
        .collect()
}

/// Every product's three scores; the prior is the catalog's own mean.
pub fn scored(catalog: &[Aggregate]) -> Vec<Scored> {
    let (sum, n) = catalog
        .iter()
        .fold((0, 0), |(s, n), a| (s + a.sum, n + a.count));
    let prior = sum as f64 / n.max(1) as f64;
    catalog
        .iter()
        .enumerate()
        .map(|(id, a)| Scored {
            id,
            agg: *a,
            mean: mean(a).unwrap_or(0.0),
            bayes: bayesian(a, prior, PRIOR_WEIGHT),
            wilson: wilson_lower_bound(a.positive(), a.count, Z_95),
        })
        .collect()
}

/// The ids ranked by `key`, best first (ties by id).
pub fn ranking(s: &[Scored], key: impl Fn(&Scored) -> f64) -> Vec<usize> {
    let mut ids: Vec<&Scored> = s.iter().collect();
    ids.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.id.cmp(&b.id)));
    ids.into_iter().map(|x| x.id).collect()
}
