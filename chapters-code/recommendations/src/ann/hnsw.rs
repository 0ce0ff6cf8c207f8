//! HNSW (Malkov and Yashunin, <https://arxiv.org/abs/1603.09320>), written
//! here to show the mechanism.
//!
//! Each vector gets a random top layer, geometrically distributed
//! (`level = floor(-ln(U) * mL)`, `mL = 1 / ln M`), so each layer holds
//! about 1/M of the one below. A search descends greedily from the single
//! entry point through the upper layers and then runs a best-first search
//! of width `ef` on layer 0. An insert is a search for the new vector's
//! neighbours on each of its layers, then links both ways, pruning a
//! neighbour's list back to M (2M on layer 0) with the paper's heuristic
//! (keep a candidate only if it is closer to the new node than to every
//! neighbour kept so far), which keeps links pointing in different
//! directions. Distance is `1 - dot` over unit vectors (cosine).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::rng::Rng;
use crate::vector::{Matrix, dot};

/// A distance with a total order, for the heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

// ANCHOR: params
/// Build parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Links per node on the upper layers (2M on layer 0).
    pub m: usize,
    /// Width of the search that finds a new node's neighbours.
    pub ef_construction: usize,
    /// Seed of the level draws.
    pub seed: u64,
}
// ANCHOR_END: params

/// The index: vectors, their layers and their links.
#[derive(Debug, Clone)]
pub struct Hnsw {
    params: Params,
    vectors: Matrix,
    /// links[node][layer] = neighbour ids.
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    top: usize,
    rng: Rng,
}

impl Hnsw {
    /// An empty index for vectors of dimension `dim`.
    pub fn new(dim: usize, params: Params) -> Self {
        Self {
            params,
            vectors: Matrix::zeros(0, dim),
            links: Vec::new(),
            entry: None,
            top: 0,
            rng: Rng::new(params.seed),
        }
    }

    /// Builds an index by inserting every row of `vectors` in order.
    pub fn build(vectors: &Matrix, params: Params) -> Self {
        let mut index = Self::new(vectors.dim, params);
        for i in 0..vectors.rows() {
            index.insert(vectors.row(i));
        }
        index
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The stored vector of node `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        self.vectors.row(i)
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.vectors.dim
    }

    /// Bytes held by vectors and links (the memory the sweep reports).
    pub fn heap_bytes(&self) -> usize {
        let links: usize = self
            .links
            .iter()
            .map(|layers| layers.iter().map(|l| l.capacity() * 4 + 24).sum::<usize>() + 24)
            .sum();
        self.vectors.data.capacity() * 4 + links
    }

    fn distance(&self, q: &[f32], node: u32) -> f32 {
        1.0 - dot(q, self.vectors.row(node as usize))
    }

    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    // ANCHOR: search_layer
    /// Best-first search of one layer from `entry`, keeping the `ef` nearest.
    fn search_layer(&self, q: &[f32], entry: &[Near], ef: usize, layer: usize) -> Vec<Near> {
        let mut visited: HashSet<u32> = entry.iter().map(|n| n.1).collect();
        let mut candidates: BinaryHeap<Reverse<Near>> =
            entry.iter().copied().map(Reverse).collect();
        let mut best: BinaryHeap<Near> = entry.iter().copied().collect();
        while let Some(Reverse(c)) = candidates.pop() {
            let worst = best.peek().map_or(f32::INFINITY, |w| w.0);
            if c.0 > worst && best.len() >= ef {
                break; // Nothing left can improve the result.
            }
            for &n in &self.links[c.1 as usize][layer] {
                if !visited.insert(n) {
                    continue;
                }
                let d = self.distance(q, n);
                let worst = best.peek().map_or(f32::INFINITY, |w| w.0);
                if best.len() < ef || d < worst {
                    candidates.push(Reverse(Near(d, n)));
                    best.push(Near(d, n));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    }
    // ANCHOR_END: search_layer

    /// The paper's neighbour-selection heuristic (algorithm 4, without
    /// extending candidates): nearest first, keep one only if it is closer
    /// to the query than to anything already kept.
    fn select(&self, candidates: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            let diverse = kept.iter().all(|&k| {
                1.0 - dot(self.vectors.row(c.1 as usize), self.vectors.row(k as usize)) > c.0
            });
            if diverse {
                kept.push(c.1);
            }
        }
        // Top up with the nearest skipped ones, so a node is never left with too few links.
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            if !kept.contains(&c.1) {
                kept.push(c.1);
            }
        }
        kept
    }

    // ANCHOR: insert
    /// Adds a vector (unit length) and returns its id. No rebuild: the new
    /// node links into the graph where a search for it lands.
    pub fn insert(&mut self, v: &[f32]) -> u32 {
        let id = self.links.len() as u32;
        let ml = 1.0 / (self.params.m.max(2) as f32).ln();
        let level = ((-self.rng.unit().max(1e-7).ln()) * ml).floor() as usize;
        self.vectors.push(v);
        self.links.push(vec![Vec::new(); level + 1]);
        let Some(mut entry) = self.entry else {
            self.entry = Some(id);
            self.top = level;
            return id;
        };
        let mut nearest = vec![Near(self.distance(v, entry), entry)];
        for layer in (level + 1..=self.top).rev() {
            nearest = self.search_layer(v, &nearest, 1, layer);
        }
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(v, &nearest, self.params.ef_construction, layer);
            let chosen = self.select(&found, self.params.m);
            for &n in &chosen {
                self.links[n as usize][layer].push(id);
                if self.links[n as usize][layer].len() > self.max_links(layer) {
                    self.prune(n, layer);
                }
            }
            self.links[id as usize][layer] = chosen;
            nearest = found;
        }
        if level > self.top {
            self.top = level;
            entry = id;
            self.entry = Some(entry);
        }
        id
    }
    // ANCHOR_END: insert

    /// Cuts node `n`'s links on `layer` back to the maximum, by the heuristic.
    fn prune(&mut self, n: u32, layer: usize) {
        let base = self.vectors.row(n as usize).to_vec();
        let mut near: Vec<Near> = self.links[n as usize][layer]
            .iter()
            .map(|&x| Near(self.distance(&base, x), x))
            .collect();
        near.sort();
        let kept = self.select(&near, self.max_links(layer));
        self.links[n as usize][layer] = kept;
    }

    // ANCHOR: search
    /// The `k` nearest ids to `q` (unit length) with their distances,
    /// searching layer 0 with width `ef` (at least `k`).
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<(u32, f32)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let mut nearest = vec![Near(self.distance(q, entry), entry)];
        for layer in (1..=self.top).rev() {
            nearest = self.search_layer(q, &nearest, 1, layer);
        }
        let found = self.search_layer(q, &nearest, ef.max(k), 0);
        found.into_iter().take(k).map(|n| (n.1, n.0)).collect()
    }
    // ANCHOR_END: search
}

/// Exact search: the distance to every vector, the reference for recall.
pub fn brute_force(vectors: &Matrix, q: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<Near> = (0..vectors.rows())
        .map(|i| Near(1.0 - dot(q, vectors.row(i)), i as u32))
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    all.select_nth_unstable(k - 1);
    all.truncate(k);
    all.sort();
    all.into_iter().map(|n| (n.1, n.0)).collect()
}
