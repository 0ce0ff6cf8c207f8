//! Item-item collaborative filtering from co-occurrence.
//!
//! Two items are similar when the same users touched both, normalised by
//! how popular each is (cosine over the user sets), so a best-seller is not
//! every item's neighbour. Each item keeps its `neighbours` most similar
//! items; a user's score for an item is the sum of its similarity to their
//! history.

use super::{Retriever, Scored, top_k};
use crate::data::{Dataset, ItemIx};

/// The item-item neighbour lists.
#[derive(Debug, Clone)]
pub struct CoOccurrence {
    items: usize,
    neighbours: Vec<Vec<(ItemIx, f32)>>,
}

// ANCHOR: cooccur_fit
impl CoOccurrence {
    /// Builds the neighbour lists from the training histories.
    pub fn fit(data: &Dataset, neighbours: usize) -> Self {
        let items = data.config.items;
        let mut users_of: Vec<Vec<usize>> = vec![Vec::new(); items];
        for (u, events) in data.train.iter().enumerate() {
            for e in events {
                users_of[e.item as usize].push(u);
            }
        }
        let count: Vec<f32> = users_of.iter().map(|u| u.len() as f32).collect();
        let mut scratch = vec![0.0f32; items];
        let mut lists = Vec::with_capacity(items);
        for a in 0..items {
            // Cost: the sum over users of |history|^2, not items^2.
            for &u in &users_of[a] {
                for e in &data.train[u] {
                    scratch[e.item as usize] += 1.0;
                }
            }
            scratch[a] = 0.0;
            for (b, s) in scratch.iter_mut().enumerate() {
                if *s > 0.0 {
                    *s /= (count[a] * count[b]).sqrt();
                }
            }
            let best = top_k(&scratch, &[], neighbours);
            lists.push(
                best.into_iter()
                    .filter(|s| s.score > 0.0)
                    .map(|s| (s.item, s.score))
                    .collect(),
            );
            scratch.fill(0.0);
        }
        Self {
            items,
            neighbours: lists,
        }
    }
    // ANCHOR_END: cooccur_fit

    /// The score of every item for this history (for the ranker's features).
    pub fn scores(&self, history: &[ItemIx]) -> Vec<f32> {
        let mut scores = vec![0.0; self.items];
        for &h in history {
            if let Some(list) = self.neighbours.get(h as usize) {
                for &(b, s) in list {
                    scores[b as usize] += s;
                }
            }
        }
        scores
    }
}

impl Retriever for CoOccurrence {
    fn name(&self) -> &'static str {
        "item-item"
    }

    fn retrieve(&self, history: &[ItemIx], k: usize) -> Vec<Scored> {
        top_k(&self.scores(history), history, k)
    }
}
