//! The offline evaluation: every retriever against the planted truth.

use crate::candidates::Retriever;
use crate::data::Dataset;
use crate::metrics::{mean, ndcg_at_k, recall_at_k};

/// One retriever's offline scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The retriever's name.
    pub name: &'static str,
    /// Mean recall@k over users.
    pub recall: f64,
    /// Mean NDCG@k over users.
    pub ndcg: f64,
}

// ANCHOR: evaluate
/// Recall@k and NDCG@k of `retriever` over every user's held-out items,
/// given the user's training history.
pub fn evaluate(data: &Dataset, retriever: &dyn Retriever, k: usize) -> Scores {
    let per_user: Vec<(f64, f64)> = (0..data.config.users)
        .map(|u| {
            let ranked: Vec<_> = retriever
                .retrieve(&data.history(u), k)
                .into_iter()
                .map(|s| s.item)
                .collect();
            (
                recall_at_k(&ranked, &data.test[u], k),
                ndcg_at_k(&ranked, &data.test[u], k),
            )
        })
        .collect();
    Scores {
        name: retriever.name(),
        recall: mean(per_user.iter().map(|p| p.0)),
        ndcg: mean(per_user.iter().map(|p| p.1)),
    }
}
// ANCHOR_END: evaluate

use crate::candidates::Scored;
use crate::data::ItemIx;
use crate::metrics::intra_list_similarity;
use crate::model::{self, Model};
use crate::rank::{self, Rank};
use crate::vector::dot;

/// One point of the diversity trade-off.
#[derive(Debug, Clone, PartialEq)]
pub struct MmrPoint {
    /// MMR's lambda (1 = the ranked order).
    pub lambda: f32,
    /// NDCG@k of the re-ranked list.
    pub ndcg: f64,
    /// Mean intra-list similarity of the re-ranked list.
    pub ils: f64,
}

/// The funnel measured stage by stage against the held-out truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// Mean number of candidates retrieval hands to ranking.
    pub candidates: f64,
    /// Recall of the whole candidate set (the ceiling of every later stage).
    pub candidate_recall: f64,
    /// Recall@k and NDCG@k of the candidates in retrieval order.
    pub retrieval: (f64, f64),
    /// Recall@k and NDCG@k after the ranker.
    pub ranked: (f64, f64),
    /// NDCG@k and intra-list similarity after MMR, per lambda.
    pub mmr: Vec<MmrPoint>,
}

// ANCHOR: funnel
/// Runs the funnel for every user on their training history. The items
/// they touched in the validation window (the ranker's labels) are removed
/// from the candidates first, as already seen, so they count for no order.
pub fn funnel(data: &Dataset, model: &Model, k: usize, lambdas: &[f32]) -> Funnel {
    let catalog = model.catalog.read().unwrap_or_else(|e| e.into_inner());
    let mut rows = Vec::new();
    for u in 0..data.config.users {
        let history = data.history(u);
        let (user, found) = model::retrieve(model, &catalog, &history);
        let candidates: Vec<Scored> = found
            .iter()
            .map(|c| c.0)
            .filter(|c| !data.valid[u].contains(&c.item))
            .collect();
        let features = model::features(model, &catalog, &history, &candidates, &user);
        let ranked = rank::order_by(&candidates, &model.ranker.scores(&features));
        let ids = |l: &[Scored]| l.iter().map(|s| s.item).collect::<Vec<ItemIx>>();
        let truth = &data.test[u];
        let sim = |a: ItemIx, b: ItemIx| {
            dot(
                catalog.index.vector(a as usize),
                catalog.index.vector(b as usize),
            )
        };
        let vector = |i: ItemIx| data.item_latent.row(i as usize).to_vec();
        let mmr: Vec<(f64, f64)> = lambdas
            .iter()
            .map(|&l| {
                let picked = ids(&rank::mmr(&ranked, k, l, sim));
                (
                    ndcg_at_k(&picked, truth, k),
                    intra_list_similarity(&picked, vector),
                )
            })
            .collect();
        rows.push((
            candidates.len() as f64,
            recall_at_k(&ids(&candidates), truth, candidates.len()),
            (
                recall_at_k(&ids(&candidates), truth, k),
                ndcg_at_k(&ids(&candidates), truth, k),
            ),
            (
                recall_at_k(&ids(&ranked), truth, k),
                ndcg_at_k(&ids(&ranked), truth, k),
            ),
            mmr,
        ));
    }
    Funnel {
        candidates: mean(rows.iter().map(|r| r.0)),
        candidate_recall: mean(rows.iter().map(|r| r.1)),
        retrieval: (
            mean(rows.iter().map(|r| r.2.0)),
            mean(rows.iter().map(|r| r.2.1)),
        ),
        ranked: (
            mean(rows.iter().map(|r| r.3.0)),
            mean(rows.iter().map(|r| r.3.1)),
        ),
        mmr: lambdas
            .iter()
            .enumerate()
            .map(|(i, &lambda)| MmrPoint {
                lambda,
                ndcg: mean(rows.iter().map(|r| r.4[i].0)),
                ils: mean(rows.iter().map(|r| r.4[i].1)),
            })
            .collect(),
    }
}
// ANCHOR_END: funnel
