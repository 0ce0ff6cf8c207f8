//! Ranking and re-ranking: a logistic model over candidate features, MMR
//! for diversity, and the business filters.

use crate::candidates::Scored;
use crate::data::ItemIx;
use crate::rng::Rng;
use crate::vector::dot;

/// Number of features per candidate.
pub const FEATURES: usize = 5;

// ANCHOR: features
/// What the ranker knows about one candidate for one user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// The two-tower cosine (the retrieval score).
    pub two_tower: f32,
    /// ln(1 + weighted popularity).
    pub log_popularity: f32,
    /// The item-item co-occurrence score with the history.
    pub co_occurrence: f32,
    /// Share of the user's history in the item's category.
    pub category_share: f32,
}

impl Features {
    /// As the model's input vector (with a constant for the bias).
    pub fn as_vector(&self) -> [f32; FEATURES] {
        [
            self.two_tower,
            self.log_popularity,
            self.co_occurrence,
            self.category_share,
            1.0,
        ]
    }
}
// ANCHOR_END: features

/// Anything that scores candidates (the logistic model, or a test's slow one).
pub trait Rank: Send + Sync {
    /// One score per feature row, higher is better.
    fn scores(&self, features: &[Features]) -> Vec<f32>;
}

/// Logistic regression: p(interaction) = sigmoid(w . x).
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// The weights, the last one the bias.
    pub weights: [f32; FEATURES],
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Logistic {
    // ANCHOR: fit
    /// Fits by stochastic gradient descent on (features, clicked?) rows,
    /// with the rows shuffled by `seed`.
    pub fn fit(rows: &[(Features, bool)], epochs: usize, learning_rate: f32, seed: u64) -> Self {
        let mut w = [0.0f32; FEATURES];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut rng = Rng::new(seed);
        // Positives are rare among candidates; weigh them up so the model
        // does not learn "never".
        let positives = rows.iter().filter(|r| r.1).count().max(1) as f32;
        let pos_weight = (rows.len() as f32 - positives) / positives;
        for _ in 0..epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for &i in &order {
                let (f, y) = rows[i];
                let x = f.as_vector();
                let p = sigmoid(dot(&w, &x));
                let (target, weight) = if y { (1.0, pos_weight) } else { (0.0, 1.0) };
                let g = (p - target) * weight;
                for k in 0..FEATURES {
                    w[k] -= learning_rate * g * x[k] / pos_weight.max(1.0);
                }
            }
        }
        Self { weights: w }
    }
    // ANCHOR_END: fit
}

impl Rank for Logistic {
    fn scores(&self, features: &[Features]) -> Vec<f32> {
        features
            .iter()
            .map(|f| sigmoid(dot(&self.weights, &f.as_vector())))
            .collect()
    }
}

/// Orders candidates by the ranker's scores, best first (ties by item).
pub fn order_by(candidates: &[Scored], scores: &[f32]) -> Vec<Scored> {
    let mut out: Vec<Scored> = candidates
        .iter()
        .zip(scores)
        .map(|(c, &score)| Scored {
            item: c.item,
            score,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    out
}

// ANCHOR: mmr
/// Maximal marginal relevance: picks `k` items one at a time, each
/// maximising `lambda * relevance - (1 - lambda) * (max similarity to the
/// items already picked)`. Relevance is rescaled to [0, 1] first, so lambda
/// means the same for any scorer. `lambda` = 1 is the ranked order.
pub fn mmr(
    ranked: &[Scored],
    k: usize,
    lambda: f32,
    similarity: impl Fn(ItemIx, ItemIx) -> f32,
) -> Vec<Scored> {
    let (lo, hi) = ranked
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.score), hi.max(s.score))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut left: Vec<Scored> = ranked.to_vec();
    let mut picked: Vec<Scored> = Vec::with_capacity(k);
    while picked.len() < k && !left.is_empty() {
        let value = |c: &Scored| {
            let redundancy = picked
                .iter()
                .map(|p| similarity(c.item, p.item))
                .fold(0.0f32, f32::max);
            lambda * (c.score - lo) / span - (1.0 - lambda) * redundancy
        };
        let mut best = 0;
        let mut best_value = value(&left[0]);
        for (i, c) in left.iter().enumerate().skip(1) {
            let v = value(c);
            if v > best_value {
                best = i;
                best_value = v;
            }
        }
        picked.push(left.remove(best));
    }
    picked
}
// ANCHOR_END: mmr

// ANCHOR: filters
/// The business rules: drop what cannot be sold now and what the user
/// already bought. Applied after ranking, before the final cut to k, so a
/// filtered item's place goes to the next one.
pub fn business_filter(
    candidates: Vec<Scored>,
    in_stock: impl Fn(ItemIx) -> bool,
    bought: &[ItemIx],
) -> Vec<Scored> {
    candidates
        .into_iter()
        .filter(|c| in_stock(c.item) && !bought.contains(&c.item))
        .collect()
}
// ANCHOR_END: filters

#[cfg(test)]
mod tests {
    use super::*;

    fn s(item: ItemIx, score: f32) -> Scored {
        Scored { item, score }
    }

    #[test]
    fn mmr_with_lambda_one_keeps_the_ranked_order() {
        let ranked = [s(1, 0.9), s(2, 0.8), s(3, 0.1)];
        let out = mmr(&ranked, 3, 1.0, |_, _| 1.0);
        assert_eq!(out.iter().map(|c| c.item).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn mmr_skips_a_near_duplicate_of_what_it_picked() {
        // 1 and 2 are the same product in two colours; 3 is different.
        let sim = |a: ItemIx, b: ItemIx| if a + b == 3 { 0.99 } else { 0.0 };
        let ranked = [s(1, 0.9), s(2, 0.85), s(3, 0.6)];
        let out = mmr(&ranked, 2, 0.5, sim);
        assert_eq!(out.iter().map(|c| c.item).collect::<Vec<_>>(), [1, 3]);
    }
}
