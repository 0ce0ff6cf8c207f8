//! Candidate generation: narrow the catalog to a few hundred items.
//!
//! Three retrievers behind one trait, so the funnel and the offline tables
//! treat them alike: [`popularity`] (the baseline and the cold-start
//! fallback), [`cooccur`] (item-item collaborative filtering) and
//! [`two_tower`] (a user tower and an item tower trained with in-batch
//! negatives; retrieval is a dot product, served by an ANN index).

pub mod cooccur;
pub mod popularity;
pub mod two_tower;

use crate::data::ItemIx;

/// A scored candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The item.
    pub item: ItemIx,
    /// The retriever's score (higher is better; scales differ by retriever).
    pub score: f32,
}

/// A retriever: from a user's history to the best `k` items not in it.
pub trait Retriever: Send + Sync {
    /// A short name for tables and the API's `stage` field.
    fn name(&self) -> &'static str;
    /// The best `k` items for this history, excluding the history itself.
    fn retrieve(&self, history: &[ItemIx], k: usize) -> Vec<Scored>;
}

/// The best `k` of `scores` (indexed by item) that are not in `exclude`, best first.
pub fn top_k(scores: &[f32], exclude: &[ItemIx], k: usize) -> Vec<Scored> {
    // Sorted once, so the filter costs log |exclude| per item, not |exclude|.
    let mut exclude = exclude.to_vec();
    exclude.sort_unstable();
    let mut all: Vec<Scored> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| exclude.binary_search(&(*i as ItemIx)).is_err())
        .map(|(i, &score)| Scored {
            item: i as ItemIx,
            score,
        })
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    // Ties go to the lower item index, so every run ranks the same way.
    let order = |a: &Scored, b: &Scored| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item));
    all.select_nth_unstable_by(k - 1, order);
    all.truncate(k);
    all.sort_by(order);
    all
}
