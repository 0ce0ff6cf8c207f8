//! Ranking scores side by side: the mean, a Bayesian average and the Wilson
//! lower bound (Evan Miller, "How Not To Sort By Average Rating").

use super::aggregate::Aggregate;

/// The normal quantile for a 95% two-sided interval, as in Evan Miller's post.
pub const Z_95: f64 = 1.959_963_984_540_054;

// ANCHOR: scores
/// The plain mean of the stars: one 5-star review beats a thousand 4.9s.
pub fn mean(a: &Aggregate) -> Option<f64> {
    (a.count > 0).then(|| a.sum as f64 / a.count as f64)
}

/// The Bayesian average: the mean pulled towards the catalog's mean `prior`
/// as if every product had `weight` extra ratings at the prior
/// (IMDb's weighted rating: v/(v+m)·R + m/(v+m)·C).
pub fn bayesian(a: &Aggregate, prior: f64, weight: f64) -> f64 {
    (a.sum as f64 + prior * weight) / (a.count as f64 + weight)
}

/// The lower bound of the Wilson score interval for `positive` successes
/// out of `n`: the share of positive ratings we are 95% sure (for `Z_95`)
/// the product at least has. Zero for no ratings.
pub fn wilson_lower_bound(positive: i64, n: i64, z: f64) -> f64 {
    if n <= 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = positive as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}
// ANCHOR_END: scores

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rating;
    use proptest::prelude::*;

    fn agg(stars: [i64; 5]) -> Aggregate {
        let sum = stars.iter().zip(1..).map(|(n, s)| n * s).sum();
        Aggregate {
            count: stars.iter().sum(),
            sum,
            stars,
        }
    }

    proptest! {
        #[test]
        fn wilson_lies_between_zero_and_the_observed_share(pos in 0i64..10_000, extra in 0i64..10_000) {
            let n = pos + extra;
            let w = wilson_lower_bound(pos, n, Z_95);
            prop_assert!(w >= 0.0);
            if n > 0 {
                prop_assert!(w <= pos as f64 / n as f64 + 1e-12);
            }
        }

        #[test]
        fn more_evidence_at_the_same_share_raises_wilson(pos in 1i64..500, extra in 0i64..500, k in 2i64..20) {
            let n = pos + extra;
            prop_assert!(wilson_lower_bound(pos * k, n * k, Z_95) >= wilson_lower_bound(pos, n, Z_95) - 1e-12);
        }

        #[test]
        fn one_more_positive_never_lowers_wilson(pos in 0i64..1000, extra in 0i64..1000) {
            let n = pos + extra;
            prop_assert!(wilson_lower_bound(pos + 1, n + 1, Z_95) >= wilson_lower_bound(pos, n, Z_95) - 1e-12);
        }

        #[test]
        fn the_bayesian_average_lies_between_prior_and_mean(stars in proptest::array::uniform5(0i64..200), prior in 1.0f64..5.0, weight in 0.1f64..100.0) {
            let a = agg(stars);
            let b = bayesian(&a, prior, weight);
            match mean(&a) {
                None => prop_assert!((b - prior).abs() < 1e-9),
                Some(m) => {
                    prop_assert!(b >= m.min(prior) - 1e-9 && b <= m.max(prior) + 1e-9);
                    prop_assert!((1.0..=5.0).contains(&m));
                }
            }
        }
    }

    #[test]
    fn evan_millers_example_the_mean_ranks_one_review_first_wilson_does_not() {
        // 2 positive of 2 against 100 positive of 101 (the post's "wrong #2").
        let small = wilson_lower_bound(2, 2, Z_95);
        let big = wilson_lower_bound(100, 101, Z_95);
        assert!(big > small, "{big} <= {small}");
    }

    #[test]
    fn the_stored_score_is_wilson_of_four_and_five_stars() {
        let a = Aggregate::recompute([5, 4, 1].map(|s| Rating::new(s).expect("valid")));
        assert_eq!(a.score(), wilson_lower_bound(2, 3, Z_95));
    }
}
