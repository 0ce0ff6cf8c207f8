//! Offline metrics against the held-out truth.

use crate::data::ItemIx;
use crate::vector::{dot, normalized};

// ANCHOR: metrics
/// Share of the truth found in the first `k` of `ranked`.
pub fn recall_at_k(ranked: &[ItemIx], truth: &[ItemIx], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = ranked.iter().take(k).filter(|i| truth.contains(i)).count();
    hits as f64 / truth.len() as f64
}

/// Normalised discounted cumulative gain with binary relevance: a hit at
/// rank r (from 0) is worth 1/log2(r+2), divided by the best possible.
pub fn ndcg_at_k(ranked: &[ItemIx], truth: &[ItemIx], k: usize) -> f64 {
    let gain = |r: usize| 1.0 / ((r + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| truth.contains(i))
        .map(|(r, _)| gain(r))
        .sum();
    let ideal: f64 = (0..truth.len().min(k)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// Mean pairwise cosine similarity of a list's items (lower: more diverse).
pub fn intra_list_similarity(list: &[ItemIx], vector: impl Fn(ItemIx) -> Vec<f32>) -> f64 {
    let vs: Vec<Vec<f32>> = list.iter().map(|&i| normalized(&vector(i))).collect();
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for a in 0..vs.len() {
        for b in a + 1..vs.len() {
            sum += f64::from(dot(&vs[a], &vs[b]));
            pairs += 1;
        }
    }
    if pairs == 0 { 0.0 } else { sum / pairs as f64 }
}
// ANCHOR_END: metrics

/// Mean of `f` over users, for a per-user metric.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for v in values {
        s += v;
        n += 1;
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_and_ndcg_on_hand_checked_lists() {
        assert_eq!(recall_at_k(&[1, 2, 3], &[3, 9], 3), 0.5);
        assert_eq!(recall_at_k(&[1, 2, 3], &[3, 9], 2), 0.0);
        assert!((ndcg_at_k(&[3, 9], &[3, 9], 2) - 1.0).abs() < 1e-12);
        // One hit at rank 1 of 2 relevant: (1/log2 3) / (1 + 1/log2 3).
        let expected = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at_k(&[5, 9], &[3, 9], 2) - expected).abs() < 1e-12);
    }

    #[test]
    fn identical_items_are_maximally_similar() {
        let v = |i: ItemIx| {
            if i < 2 {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            }
        };
        assert!((intra_list_similarity(&[0, 1], v) - 1.0).abs() < 1e-6);
        assert!(intra_list_similarity(&[0, 2], v).abs() < 1e-6);
    }
}
