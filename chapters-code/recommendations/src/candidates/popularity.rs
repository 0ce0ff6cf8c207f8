//! The popularity baseline: the same list for everybody, minus what they have seen.

use super::{Retriever, Scored, top_k};
use crate::data::{Dataset, ItemIx};

/// Items ranked by weighted interaction count in training.
#[derive(Debug, Clone)]
pub struct Popularity {
    scores: Vec<f32>,
}

impl Popularity {
    /// Counts every training event, weighted by its kind.
    pub fn fit(data: &Dataset) -> Self {
        let mut scores = vec![0.0; data.config.items];
        for events in &data.train {
            for e in events {
                scores[e.item as usize] += e.kind.weight();
            }
        }
        Self { scores }
    }

    /// The popularity score of each item (for the ranker's features).
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
}

impl Retriever for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn retrieve(&self, history: &[ItemIx], k: usize) -> Vec<Scored> {
        top_k(&self.scores, history, k)
    }
}
