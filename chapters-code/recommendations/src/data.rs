//! The seeded world: users and items with planted latent vectors, item
//! content features, and implicit feedback drawn from the planted
//! preferences. The held-out part of each user's feedback is the truth the
//! offline metrics are measured against.
//!
//! Each user's items are drawn *without replacement* from a softmax over
//! `sharpness * <user, item> + popularity_bias` (a Gumbel top-n), then put
//! in a random time order. The last `test` events of that order are held
//! out, the `valid` events before them train the ranker, and the rest train
//! the retrievers. Because the time order is random, held-out items are
//! exchangeable with the training ones: a model that recovers the planted
//! preferences is rewarded, and nothing else is.

use crate::rng::Rng;
use crate::vector::{Matrix, dot};

/// An item's index in the dataset (`0..items`).
pub type ItemIx = u32;

// ANCHOR: config
/// Everything the generator needs; the same config and seed give the same data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Number of users.
    pub users: usize,
    /// Number of items in the catalog.
    pub items: usize,
    /// Item categories; each user prefers one or two.
    pub categories: usize,
    /// Dimension of the planted latent vectors.
    pub latent_dim: usize,
    /// Fewest distinct items a user touches.
    pub min_events: usize,
    /// Most distinct items a user touches.
    pub max_events: usize,
    /// Events per user held out as the ground truth.
    pub test: usize,
    /// Events per user before the test ones, for training the ranker.
    pub valid: usize,
    /// How sharply users follow their planted taste (higher: less noise).
    pub sharpness: f32,
    /// Spread of the per-item popularity bias (a log-scale weight).
    pub popularity_skew: f32,
    /// Share of items out of stock.
    pub out_of_stock: f32,
    /// The seed.
    pub seed: u64,
}
// ANCHOR_END: config

impl Config {
    /// The configuration the book's offline tables are generated from:
    /// small enough to run in seconds inside `cargo test`.
    pub const BOOK: Config = Config {
        users: 1200,
        items: 600,
        categories: 12,
        latent_dim: 12,
        min_events: 10,
        max_events: 24,
        test: 4,
        valid: 3,
        sharpness: 4.0,
        popularity_skew: 0.8,
        out_of_stock: 0.1,
        seed: 32,
    };

    /// A smaller world for unit tests.
    pub const TINY: Config = Config {
        users: 300,
        items: 200,
        categories: 6,
        latent_dim: 8,
        min_events: 10,
        max_events: 18,
        test: 3,
        valid: 2,
        sharpness: 4.0,
        popularity_skew: 0.8,
        out_of_stock: 0.1,
        seed: 7,
    };
}

/// What a user did with an item (implicit feedback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Looked at the product page.
    View,
    /// Put it in the cart.
    Cart,
    /// Bought it.
    Purchase,
}

impl Kind {
    /// How much an event counts as evidence of interest.
    pub fn weight(self) -> f32 {
        match self {
            Kind::View => 1.0,
            Kind::Cart => 2.0,
            Kind::Purchase => 3.0,
        }
    }

    /// The name stored in PostgreSQL and Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Cart => "cart",
            Kind::Purchase => "purchase",
        }
    }

    /// Parses a stored name; anything else is `None` (garbage, not a panic).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "view" => Some(Kind::View),
            "cart" => Some(Kind::Cart),
            "purchase" => Some(Kind::Purchase),
            _ => None,
        }
    }
}

/// One interaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// The item.
    pub item: ItemIx,
    /// What the user did.
    pub kind: Kind,
}

/// The generated world.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The configuration it was generated from.
    pub config: Config,
    /// Planted user preferences (users x latent_dim).
    pub user_latent: Matrix,
    /// Planted item properties (items x latent_dim).
    pub item_latent: Matrix,
    /// Each item's category.
    pub item_category: Vec<u16>,
    /// Content features (items x (categories + TAGS)): a one-hot category
    /// and noisy tags. All a brand-new item has.
    pub item_features: Matrix,
    /// Per-item popularity bias (log scale).
    pub popularity_bias: Vec<f32>,
    /// Whether each item can be sold now.
    pub in_stock: Vec<bool>,
    /// Per user, the training events in time order.
    pub train: Vec<Vec<Event>>,
    /// Per user, the events after training (the ranker's training labels).
    pub valid: Vec<Vec<ItemIx>>,
    /// Per user, the held-out items: the ground truth.
    pub test: Vec<Vec<ItemIx>>,
}

/// Noisy content tags per item, beside the one-hot category.
pub const TAGS: usize = 4;

// ANCHOR: generate
/// Generates the world from `config`. Pure: the same config gives the same data.
pub fn generate(config: Config) -> Dataset {
    let mut rng = Rng::new(config.seed);
    let d = config.latent_dim;
    let centroids: Vec<Vec<f32>> = (0..config.categories)
        .map(|_| rng.normals(d, 1.0 / (d as f32).sqrt() * 1.5))
        .collect();
    let tag_proj: Vec<Vec<f32>> = (0..TAGS).map(|_| rng.normals(d, 1.0)).collect();

    let mut item_latent = Matrix::zeros(0, d);
    let mut item_category = Vec::with_capacity(config.items);
    let mut item_features = Matrix::zeros(0, config.categories + TAGS);
    let mut popularity_bias = Vec::with_capacity(config.items);
    let mut in_stock = Vec::with_capacity(config.items);
    for _ in 0..config.items {
        let c = rng.below(config.categories);
        let noise = rng.normals(d, 0.6 / (d as f32).sqrt());
        let v: Vec<f32> = centroids[c]
            .iter()
            .zip(&noise)
            .map(|(a, b)| a + b)
            .collect();
        let mut features = vec![0.0; config.categories + TAGS];
        features[c] = 1.0;
        for (t, proj) in tag_proj.iter().enumerate() {
            features[config.categories + t] = (dot(&v, proj) + 0.5 * rng.normal()).tanh();
        }
        item_latent.push(&v);
        item_features.push(&features);
        item_category.push(c as u16);
        popularity_bias.push(config.popularity_skew * rng.normal());
        in_stock.push(rng.unit() >= config.out_of_stock);
    }

    let mut user_latent = Matrix::zeros(0, d);
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    let mut keys: Vec<(f32, ItemIx)> = Vec::with_capacity(config.items);
    for _ in 0..config.users {
        // One or two favourite categories, plus a personal twist.
        let a = rng.below(config.categories);
        let b = rng.below(config.categories);
        let mix = if rng.unit() < 0.5 { 1.0 } else { 0.6 };
        let u: Vec<f32> = (0..d)
            .map(|k| mix * centroids[a][k] + (1.0 - mix) * centroids[b][k])
            .zip(rng.normals(d, 0.4 / (d as f32).sqrt()))
            .map(|(x, n)| x + n)
            .collect();
        // Gumbel top-n: a sample without replacement from the softmax.
        keys.clear();
        for (i, bias) in popularity_bias.iter().enumerate() {
            let score = config.sharpness * dot(&u, item_latent.row(i)) + bias;
            let gumbel = -(-rng.unit().max(1e-7).ln()).ln();
            keys.push((score + gumbel, i as ItemIx));
        }
        let n = config.min_events + rng.below(config.max_events - config.min_events + 1);
        let n = n.min(config.items);
        keys.select_nth_unstable_by(n - 1, |x, y| y.0.total_cmp(&x.0));
        let mut chosen: Vec<ItemIx> = keys[..n].iter().map(|k| k.1).collect();
        chosen.sort_unstable();
        // A random time order (Fisher-Yates), so the split is exchangeable.
        for i in (1..chosen.len()).rev() {
            chosen.swap(i, rng.below(i + 1));
        }
        let held = config.test.min(n.saturating_sub(1));
        let val = config.valid.min(n - held - 1);
        let cut = n - held - val;
        let events = chosen[..cut]
            .iter()
            .map(|&item| {
                let affinity = dot(&u, item_latent.row(item as usize));
                let r = rng.unit();
                let kind = if r < 0.08 + 0.1 * affinity.max(0.0) {
                    Kind::Purchase
                } else if r < 0.25 {
                    Kind::Cart
                } else {
                    Kind::View
                };
                Event { item, kind }
            })
            .collect();
        train.push(events);
        valid.push(chosen[cut..cut + val].to_vec());
        test.push(chosen[cut + val..].to_vec());
        user_latent.push(&u);
    }
    Dataset {
        config,
        user_latent,
        item_latent,
        item_category,
        item_features,
        popularity_bias,
        in_stock,
        train,
        valid,
        test,
    }
}
// ANCHOR_END: generate

impl Dataset {
    /// The items of a user's training history, in time order.
    pub fn history(&self, user: usize) -> Vec<ItemIx> {
        self.train[user].iter().map(|e| e.item).collect()
    }

    /// Items the user bought in training (the already-bought filter's input).
    pub fn bought(&self, user: usize) -> Vec<ItemIx> {
        self.train[user]
            .iter()
            .filter(|e| e.kind == Kind::Purchase)
            .map(|e| e.item)
            .collect()
    }

    /// Number of content features per item.
    pub fn feature_dim(&self) -> usize {
        self.item_features.dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_world() {
        let a = generate(Config::TINY);
        let b = generate(Config::TINY);
        assert_eq!(a.item_latent, b.item_latent);
        assert_eq!(a.test, b.test);
        let c = generate(Config {
            seed: 8,
            ..Config::TINY
        });
        assert_ne!(a.test, c.test);
    }

    #[test]
    fn held_out_items_are_never_in_the_training_history() {
        let d = generate(Config::TINY);
        for u in 0..d.config.users {
            let h = d.history(u);
            assert!(d.test[u].iter().all(|t| !h.contains(t)));
            assert!(d.valid[u].iter().all(|t| !h.contains(t)));
            assert_eq!(d.test[u].len(), d.config.test);
        }
    }

    #[test]
    fn users_prefer_items_near_their_planted_taste() {
        // The planted truth is visible in the data: held-out items score
        // higher under the planted vectors than random items do.
        let d = generate(Config::TINY);
        let (mut held, mut all) = (0.0, 0.0);
        for u in 0..d.config.users {
            let uv = d.user_latent.row(u);
            for &t in &d.test[u] {
                held += dot(uv, d.item_latent.row(t as usize));
            }
            for i in 0..d.config.items {
                all += dot(uv, d.item_latent.row(i)) * d.config.test as f32 / d.config.items as f32;
            }
        }
        assert!(held > all + 0.1 * d.config.users as f32, "{held} vs {all}");
    }
}
