//! The per-product aggregate: count, sum and a five-star histogram.

use serde::Serialize;

use super::review::Rating;
use super::score;

// ANCHOR: aggregate
/// Count, sum and histogram of a product's published ratings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    /// Published reviews.
    pub count: i64,
    /// Sum of their stars.
    pub sum: i64,
    /// Reviews per star, one star first.
    pub stars: [i64; 5],
}

impl Aggregate {
    /// The aggregate of `ratings`, counted from scratch (the recompute).
    pub fn recompute(ratings: impl IntoIterator<Item = Rating>) -> Self {
        let mut a = Self::default();
        for r in ratings {
            a.add(r);
        }
        a
    }

    /// Counts one more published rating.
    pub fn add(&mut self, r: Rating) {
        self.count += 1;
        self.sum += i64::from(r.stars());
        self.stars[r.bucket()] += 1;
    }

    /// Stops counting one published rating.
    pub fn remove(&mut self, r: Rating) {
        self.count -= 1;
        self.sum -= i64::from(r.stars());
        self.stars[r.bucket()] -= 1;
    }

    /// Ratings of 4 or 5 stars: the "positive" share the Wilson score ranks by.
    pub fn positive(&self) -> i64 {
        self.stars[3] + self.stars[4]
    }

    /// The mean, or `None` with no ratings.
    pub fn mean(&self) -> Option<f64> {
        score::mean(self)
    }

    /// The ranking score stored in `product_ratings.score`.
    pub fn score(&self) -> f64 {
        score::wilson_lower_bound(self.positive(), self.count, score::Z_95)
    }
}
// ANCHOR_END: aggregate

/// What a write does to the aggregate: a rating leaves it, one joins it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// The published rating that stops counting.
    pub out: Option<Rating>,
    /// The published rating that starts counting.
    pub into: Option<Rating>,
}

impl Delta {
    /// The delta of a review that was counted with `before` (if published)
    /// and is counted with `after` (if published).
    pub fn between(before: Option<Rating>, after: Option<Rating>) -> Self {
        if before == after {
            Self::default()
        } else {
            Self {
                out: before,
                into: after,
            }
        }
    }

    /// True when the aggregate does not change.
    pub fn is_empty(&self) -> bool {
        self.out.is_none() && self.into.is_none()
    }

    /// Per-star change, count change and sum change.
    pub fn columns(&self) -> ([i64; 5], i64, i64) {
        let mut stars = [0; 5];
        let (mut n, mut sum) = (0, 0);
        if let Some(r) = self.out {
            stars[r.bucket()] -= 1;
            n -= 1;
            sum -= i64::from(r.stars());
        }
        if let Some(r) = self.into {
            stars[r.bucket()] += 1;
            n += 1;
            sum += i64::from(r.stars());
        }
        (stars, n, sum)
    }

    /// Applies the delta to `a`.
    pub fn apply(&self, a: &mut Aggregate) {
        if let Some(r) = self.out {
            a.remove(r);
        }
        if let Some(r) = self.into {
            a.add(r);
        }
    }
}
