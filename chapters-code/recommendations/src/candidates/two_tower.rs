//! The two-tower model, trained here in plain Rust.
//!
//! The user tower is the mean of a learned embedding of each item in the
//! user's history, scaled to unit length. The item tower is a learned ID
//! embedding plus a learned projection of the item's content features, also
//! unit length. The score is their dot product (a cosine), so serving is a
//! nearest-neighbour search over item vectors ([`crate::ann`]).
//!
//! Training follows Yi et al. (RecSys 2019): each batch holds B (history,
//! next item) pairs, every other pair's item is a negative ("in-batch
//! negatives"), the loss is the softmax cross-entropy over the batch, and
//! the logit of item j is corrected by `- ln Q(j)`, Q being the chance that
//! j appears in a batch at all. Without that correction popular items are
//! over-used as negatives and pushed down. The paper estimates Q from a
//! stream; we count it exactly from the training data.
//!
//! The user tower has no user-ID embedding: a user is their history. That is
//! what lets the service fold interactions made seconds ago (from Redis)
//! into the user vector, and lets a user unseen in training be served.

use super::{Retriever, Scored, top_k};
use crate::data::{Dataset, ItemIx};
use crate::rng::Rng;
use crate::vector::{Matrix, axpy, dot, norm};

// ANCHOR: train_config
/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Embedding dimension of both towers.
    pub dim: usize,
    /// Passes over the training pairs.
    pub epochs: usize,
    /// Pairs per batch (each batch gives every pair batch - 1 negatives).
    pub batch: usize,
    /// Adagrad learning rate.
    pub learning_rate: f32,
    /// Softmax temperature over cosines.
    pub temperature: f32,
    /// Subtract ln Q(item) from each logit (Yi et al.'s correction).
    pub log_q: bool,
    /// The seed of the initial weights and the batch order.
    pub seed: u64,
}
// ANCHOR_END: train_config

impl TrainConfig {
    /// The book's configuration (trains in seconds in a debug build).
    pub const BOOK: TrainConfig = TrainConfig {
        dim: 16,
        epochs: 4,
        batch: 64,
        learning_rate: 0.1,
        temperature: 0.1,
        log_q: true,
        seed: 19,
    };
}

/// The trained towers.
#[derive(Debug, Clone)]
pub struct TwoTower {
    /// Embedding dimension.
    pub dim: usize,
    /// User tower: one row per item, averaged over a history.
    history_emb: Matrix,
    /// Item tower: one row per item (zero for an item unseen in training).
    item_emb: Matrix,
    /// Item tower: one row per content feature.
    feature_proj: Matrix,
}

/// Per-parameter Adagrad state for one matrix.
struct Adagrad {
    acc: Vec<f32>,
}

impl Adagrad {
    fn new(len: usize) -> Self {
        Self {
            acc: vec![1e-6; len],
        }
    }

    fn step(&mut self, params: &mut [f32], offset: usize, grad: &[f32], lr: f32) {
        for (k, g) in grad.iter().enumerate() {
            let a = &mut self.acc[offset + k];
            *a += g * g;
            params[offset + k] -= lr * g / a.sqrt();
        }
    }
}

/// Gradient of `x / |x|` at `x`: maps d(out) to d(x).
fn through_normalize(x: &[f32], unit: &[f32], d_unit: &[f32]) -> Vec<f32> {
    let n = norm(x).max(1e-6);
    let along = dot(unit, d_unit);
    d_unit
        .iter()
        .zip(unit)
        .map(|(g, u)| (g - u * along) / n)
        .collect()
}

fn unit(x: &[f32]) -> Vec<f32> {
    let n = norm(x).max(1e-6);
    x.iter().map(|v| v / n).collect()
}

impl TwoTower {
    fn init(items: usize, features: usize, dim: usize, rng: &mut Rng) -> Self {
        let mut m = |rows| Matrix {
            dim,
            data: rng.normals(rows * dim, 0.1),
        };
        Self {
            dim,
            history_emb: m(items),
            item_emb: m(items),
            feature_proj: m(features),
        }
    }

    fn user_raw(&self, history: &[ItemIx]) -> Vec<f32> {
        let mut u = vec![0.0; self.dim];
        let known: Vec<&ItemIx> = history
            .iter()
            .filter(|&&h| (h as usize) < self.history_emb.rows())
            .collect();
        for &&h in &known {
            axpy(
                &mut u,
                1.0 / known.len() as f32,
                self.history_emb.row(h as usize),
            );
        }
        u
    }

    // ANCHOR: towers
    /// The user tower: a unit vector from a history (zero if it is empty).
    pub fn user_vector(&self, history: &[ItemIx]) -> Vec<f32> {
        unit(&self.user_raw(history))
    }

    /// The item tower for a catalog item, or for a new item from its
    /// content features alone (`item` = `None`: the cold-start path).
    pub fn item_vector(&self, item: Option<ItemIx>, features: &[f32]) -> Vec<f32> {
        unit(&self.item_raw(item, features))
    }
    // ANCHOR_END: towers

    fn item_raw(&self, item: Option<ItemIx>, features: &[f32]) -> Vec<f32> {
        let mut v = match item {
            Some(i) if (i as usize) < self.item_emb.rows() => {
                self.item_emb.row(i as usize).to_vec()
            }
            _ => vec![0.0; self.dim],
        };
        for (k, &f) in features.iter().enumerate() {
            if f != 0.0 && k < self.feature_proj.rows() {
                axpy(&mut v, f, self.feature_proj.row(k));
            }
        }
        v
    }

    /// Unit item vectors for the whole catalog (what the ANN index holds).
    pub fn item_vectors(&self, data: &Dataset) -> Matrix {
        let mut m = Matrix::zeros(0, self.dim);
        for i in 0..data.config.items {
            m.push(&self.item_vector(Some(i as ItemIx), data.item_features.row(i)));
        }
        m
    }

    // ANCHOR: train
    /// Trains both towers on the training histories; returns the model and
    /// the mean loss of each epoch.
    pub fn train(data: &Dataset, cfg: TrainConfig) -> (Self, Vec<f32>) {
        let mut rng = Rng::new(cfg.seed);
        let items = data.config.items;
        let mut model = Self::init(items, data.feature_dim(), cfg.dim, &mut rng);
        let (mut g_hist, mut g_item, mut g_feat) = (
            Adagrad::new(model.history_emb.data.len()),
            Adagrad::new(model.item_emb.data.len()),
            Adagrad::new(model.feature_proj.data.len()),
        );
        // Every (user, position) pair: predict that item from the rest.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        let mut count = vec![0.0f32; items];
        for (u, events) in data.train.iter().enumerate() {
            for (t, e) in events.iter().enumerate() {
                if events.len() > 1 {
                    pairs.push((u, t));
                    count[e.item as usize] += 1.0;
                }
            }
        }
        // Q(j): the chance that item j is some pair's target in a batch.
        let total = pairs.len().max(1) as f32;
        let log_q: Vec<f32> = count
            .iter()
            .map(|&c| {
                (1.0 - (1.0 - c / total).powi(cfg.batch as i32))
                    .max(1e-9)
                    .ln()
            })
            .collect();
        let mut losses = Vec::with_capacity(cfg.epochs);
        for _ in 0..cfg.epochs {
            for i in (1..pairs.len()).rev() {
                pairs.swap(i, rng.below(i + 1));
            }
            let mut epoch_loss = 0.0;
            for batch in pairs.chunks(cfg.batch) {
                epoch_loss += model.step(
                    data,
                    batch,
                    &log_q,
                    cfg,
                    &mut g_hist,
                    &mut g_item,
                    &mut g_feat,
                );
            }
            losses.push(epoch_loss / pairs.chunks(cfg.batch).len().max(1) as f32);
        }
        (model, losses)
    }
    // ANCHOR_END: train

    /// One batch of in-batch-negative softmax; returns its mean loss.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        data: &Dataset,
        batch: &[(usize, usize)],
        log_q: &[f32],
        cfg: TrainConfig,
        g_hist: &mut Adagrad,
        g_item: &mut Adagrad,
        g_feat: &mut Adagrad,
    ) -> f32 {
        let b = batch.len();
        let tau = cfg.temperature;
        // Forward: the user side leaves the target out of the history.
        let mut histories = Vec::with_capacity(b);
        let (mut u_raw, mut u_hat, mut targets, mut v_raw, mut v_hat) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(u, t) in batch {
            let h: Vec<ItemIx> = data.train[u]
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != t)
                .map(|(_, e)| e.item)
                .collect();
            let ur = self.user_raw(&h);
            u_hat.push(unit(&ur));
            u_raw.push(ur);
            histories.push(h);
            let item = data.train[u][t].item;
            targets.push(item);
            let vr = self.item_raw(Some(item), data.item_features.row(item as usize));
            v_hat.push(unit(&vr));
            v_raw.push(vr);
        }
        // Logits and softmax per row; a repeated target is masked, not a negative.
        let mut grad = vec![0.0f32; b * b];
        let mut loss = 0.0;
        for i in 0..b {
            let mut logits: Vec<f32> = (0..b)
                .map(|j| {
                    if j != i && targets[j] == targets[i] {
                        f32::NEG_INFINITY
                    } else {
                        let correction = if cfg.log_q {
                            log_q[targets[j] as usize]
                        } else {
                            0.0
                        };
                        dot(&u_hat[i], &v_hat[j]) / tau - correction
                    }
                })
                .collect();
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for l in &mut logits {
                *l = (*l - max).exp();
                sum += *l;
            }
            loss += -(logits[i] / sum).max(1e-12).ln();
            for j in 0..b {
                let p = logits[j] / sum;
                grad[i * b + j] = (p - if i == j { 1.0 } else { 0.0 }) / b as f32;
            }
        }
        // Backward: d(u_hat_i) = sum_j g_ij v_hat_j / tau, and symmetrically.
        let lr = cfg.learning_rate;
        for i in 0..b {
            let mut du = vec![0.0; self.dim];
            for j in 0..b {
                axpy(&mut du, grad[i * b + j] / tau, &v_hat[j]);
            }
            let du = through_normalize(&u_raw[i], &u_hat[i], &du);
            let n = histories[i].len().max(1) as f32;
            let share: Vec<f32> = du.iter().map(|g| g / n).collect();
            for &h in &histories[i] {
                g_hist.step(
                    &mut self.history_emb.data,
                    h as usize * self.dim,
                    &share,
                    lr,
                );
            }
        }
        for j in 0..b {
            let mut dv = vec![0.0; self.dim];
            for i in 0..b {
                axpy(&mut dv, grad[i * b + j] / tau, &u_hat[i]);
            }
            let dv = through_normalize(&v_raw[j], &v_hat[j], &dv);
            let item = targets[j] as usize;
            g_item.step(&mut self.item_emb.data, item * self.dim, &dv, lr);
            for (k, &f) in data.item_features.row(item).iter().enumerate() {
                if f != 0.0 {
                    let df: Vec<f32> = dv.iter().map(|g| g * f).collect();
                    g_feat.step(&mut self.feature_proj.data, k * self.dim, &df, lr);
                }
            }
        }
        loss / b as f32
    }
}

/// The two-tower model as a retriever by exact (brute-force) dot product.
#[derive(Debug, Clone)]
pub struct TwoTowerRetriever {
    /// The towers.
    pub model: TwoTower,
    /// Unit item vectors of the catalog.
    pub items: Matrix,
}

impl TwoTowerRetriever {
    /// Precomputes the catalog's item vectors.
    pub fn new(model: TwoTower, data: &Dataset) -> Self {
        let items = model.item_vectors(data);
        Self { model, items }
    }

    /// The cosine of every item with this history's user vector.
    pub fn scores(&self, history: &[ItemIx]) -> Vec<f32> {
        let u = self.model.user_vector(history);
        (0..self.items.rows())
            .map(|i| dot(&u, self.items.row(i)))
            .collect()
    }
}

impl Retriever for TwoTowerRetriever {
    fn name(&self) -> &'static str {
        "two-tower"
    }

    fn retrieve(&self, history: &[ItemIx], k: usize) -> Vec<Scored> {
        top_k(&self.scores(history), history, k)
    }
}
