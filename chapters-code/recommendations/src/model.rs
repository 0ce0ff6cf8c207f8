//! What the offline job builds and the service loads: the retrievers, the
//! ANN index over the item tower, the ranker and the catalog facts the
//! filters need, as one versioned [`Model`]. And the funnel itself, as a
//! pure function of a model and a user's history.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::ann::hnsw::{Hnsw, Params};
use crate::ann::versioned::HasVersion;
use crate::candidates::cooccur::CoOccurrence;
use crate::candidates::popularity::Popularity;
use crate::candidates::two_tower::{TrainConfig, TwoTower, TwoTowerRetriever};
use crate::candidates::{Retriever, Scored};
use crate::data::{Dataset, ItemIx};
use crate::rank::{Features, Logistic};

/// An item's public id (what the API returns and PostgreSQL stores).
pub type ItemId = i64;

// ANCHOR: budgets
/// Candidates the two-tower stage hands to ranking.
pub const TWO_TOWER_CANDIDATES: usize = 100;
/// Candidates the item-item stage adds.
pub const ITEM_ITEM_CANDIDATES: usize = 50;
/// ANN search width at the chosen operating point.
pub const EF_SEARCH: usize = 128;
/// HNSW build parameters at the chosen operating point.
pub const HNSW: Params = Params {
    m: 16,
    ef_construction: 100,
    seed: 1,
};
/// Neighbours kept per item by item-item CF.
pub const NEIGHBOURS: usize = 50;
/// The MMR trade-off the service uses.
pub const MMR_LAMBDA: f32 = 0.8;
// ANCHOR_END: budgets

/// Which stage produced a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// ANN over the two-tower item vectors.
    TwoTower,
    /// Item-item co-occurrence with the history.
    ItemItem,
    /// The popularity list (cold start).
    Popularity,
}

/// The catalog part of a model, which grows by inserts without a rebuild.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// ANN index over the unit item vectors (row = item index).
    pub index: Hnsw,
    /// Public id of each item index.
    pub ids: Vec<ItemId>,
    /// Category of each item.
    pub category: Vec<u16>,
    /// Whether each item can be sold now.
    pub in_stock: Vec<bool>,
    /// Item index of each public id (a request maps its whole history).
    by_id: HashMap<ItemId, ItemIx>,
}

impl Catalog {
    /// A catalog over `index`, whose row i is the item with public id `ids[i]`.
    pub fn new(index: Hnsw, ids: Vec<ItemId>, category: Vec<u16>, in_stock: Vec<bool>) -> Self {
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as ItemIx))
            .collect();
        Self {
            index,
            ids,
            category,
            in_stock,
            by_id,
        }
    }

    /// The item index of a public id.
    pub fn index_of(&self, id: ItemId) -> Option<ItemIx> {
        self.by_id.get(&id).copied()
    }
}

/// Everything the service serves from, built offline.
#[derive(Debug)]
pub struct Model {
    /// Build number; a swap only accepts a larger one.
    pub version: u64,
    /// Popularity list (cold start).
    pub popularity: Popularity,
    /// Item-item neighbours.
    pub co_occurrence: CoOccurrence,
    /// The towers (user vectors are computed per request).
    pub towers: TwoTower,
    /// The ranker.
    pub ranker: Logistic,
    /// Index, ids, categories, stock.
    pub catalog: RwLock<Catalog>,
}

/// A model ranks with its own ranker, so a swap changes the weights too.
impl crate::rank::Rank for Model {
    fn scores(&self, features: &[Features]) -> Vec<f32> {
        self.ranker.scores(features)
    }
}

impl HasVersion for Model {
    fn version(&self) -> u64 {
        self.version
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// Item index in the model's catalog.
    pub item: ItemIx,
    /// Its public id.
    pub id: ItemId,
    /// The final score.
    pub score: f32,
    /// The stage that produced it.
    pub stage: Stage,
}

/// Features of each candidate for one user (pure; used offline and online).
pub fn features(
    model: &Model,
    catalog: &Catalog,
    history: &[ItemIx],
    candidates: &[Scored],
    user_vector: &[f32],
) -> Vec<Features> {
    let co = model.co_occurrence.scores(history);
    let mut share = vec![
        0.0f32;
        catalog
            .category
            .iter()
            .map(|&c| c as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for &h in history {
        if let Some(&c) = catalog.category.get(h as usize) {
            share[c as usize] += 1.0 / history.len() as f32;
        }
    }
    let pop = model.popularity.scores();
    candidates
        .iter()
        .map(|c| {
            let i = c.item as usize;
            let v = model.towers.item_vector_of(catalog, c.item);
            Features {
                two_tower: crate::vector::dot(user_vector, &v),
                log_popularity: pop.get(i).map_or(0.0, |p| (1.0 + p).ln()),
                co_occurrence: co.get(i).copied().unwrap_or(0.0),
                category_share: catalog
                    .category
                    .get(i)
                    .and_then(|&k| share.get(k as usize))
                    .copied()
                    .unwrap_or(0.0),
            }
        })
        .collect()
}

impl TwoTower {
    /// The item vector stored in the catalog's index for item `item`.
    pub fn item_vector_of(&self, catalog: &Catalog, item: ItemIx) -> Vec<f32> {
        catalog.index.vector(item as usize).to_vec()
    }
}

// ANCHOR: retrieve
/// Stage one for a known user: ANN over the item tower, plus item-item
/// neighbours, merged (an item found by both keeps the two-tower stage).
/// An empty history is the cold-start path: the popularity list.
pub fn retrieve(
    model: &Model,
    catalog: &Catalog,
    history: &[ItemIx],
) -> (Vec<f32>, Vec<(Scored, Stage)>) {
    let user = model.towers.user_vector(history);
    // A history of items the user tower has no row for (inserted after
    // training) pools to a zero vector: that is no signal, so cold start.
    if user.iter().all(|x| *x == 0.0) {
        let list = model.popularity.retrieve(history, TWO_TOWER_CANDIDATES);
        return (
            Vec::new(),
            list.into_iter().map(|s| (s, Stage::Popularity)).collect(),
        );
    }
    let mut out: Vec<(Scored, Stage)> = catalog
        .index
        .search(&user, TWO_TOWER_CANDIDATES + history.len(), EF_SEARCH)
        .into_iter()
        .filter(|(i, _)| !history.contains(i))
        .take(TWO_TOWER_CANDIDATES)
        .map(|(item, d)| {
            (
                Scored {
                    item,
                    score: 1.0 - d,
                },
                Stage::TwoTower,
            )
        })
        .collect();
    for s in model.co_occurrence.retrieve(history, ITEM_ITEM_CANDIDATES) {
        if s.score > 0.0 && !out.iter().any(|(o, _)| o.item == s.item) {
            out.push((s, Stage::ItemItem));
        }
    }
    (user, out)
}
// ANCHOR_END: retrieve

/// Builds a model from a dataset: trains every stage and indexes the items.
/// The ranker learns from each user's validation items.
pub fn build(data: &Dataset, train: TrainConfig, version: u64, id_base: ItemId) -> Model {
    let popularity = Popularity::fit(data);
    let co_occurrence = CoOccurrence::fit(data, NEIGHBOURS);
    let (towers, _) = TwoTower::train(data, train);
    let vectors = towers.item_vectors(data);
    let catalog = Catalog::new(
        Hnsw::build(&vectors, HNSW),
        (0..data.config.items as ItemId)
            .map(|i| id_base + i)
            .collect(),
        data.item_category.clone(),
        data.in_stock.clone(),
    );
    let mut model = Model {
        version,
        popularity,
        co_occurrence,
        towers,
        ranker: Logistic {
            weights: [1.0, 0.0, 0.0, 0.0, 0.0],
        },
        catalog: RwLock::new(catalog),
    };
    model.ranker = fit_ranker(&model, data);
    model
}

/// Trains the ranker on candidates for each user's training history,
/// labelled by the user's validation items.
pub fn fit_ranker(model: &Model, data: &Dataset) -> Logistic {
    let catalog = model.catalog.read().unwrap_or_else(|e| e.into_inner());
    let mut rows = Vec::new();
    for u in 0..data.config.users {
        let history = data.history(u);
        let (user, candidates) = retrieve(model, &catalog, &history);
        let scored: Vec<Scored> = candidates.iter().map(|c| c.0).collect();
        for (f, c) in features(model, &catalog, &history, &scored, &user)
            .into_iter()
            .zip(&scored)
        {
            rows.push((f, data.valid[u].contains(&c.item)));
        }
    }
    Logistic::fit(&rows, 3, 0.05, 5)
}

/// Two-tower retriever over the model's towers (for the offline tables).
pub fn exact_two_tower(model: &Model, data: &Dataset) -> TwoTowerRetriever {
    TwoTowerRetriever::new(model.towers.clone(), data)
}

impl Model {
    // ANCHOR: insert_item
    /// Adds a new item without a rebuild: its vector comes from the item
    /// tower's content half (it has no ID embedding yet, the cold-start
    /// path), and it links into the live HNSW graph. Readers of this
    /// version see it from their next request.
    pub fn insert_item(
        &self,
        id: ItemId,
        features: &[f32],
        category: u16,
        in_stock: bool,
    ) -> ItemIx {
        let vector = self.towers.item_vector(None, features);
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let ix = catalog.index.insert(&vector);
        catalog.ids.push(id);
        catalog.by_id.insert(id, ix);
        catalog.category.push(category);
        catalog.in_stock.push(in_stock);
        ix
    }
    // ANCHOR_END: insert_item
}
