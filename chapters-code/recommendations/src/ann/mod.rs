//! Approximate nearest neighbours over the item tower's unit vectors.
//!
//! [`hnsw`] is the index written here; [`reference`] wraps the crate we
//! compare it with (instant-distance: a small, pure-Rust HNSW whose only
//! heavy dependency is rayon; hnsw_rs pulls memory-mapping and a distance
//! crate we do not need); [`versioned`] is the handle through which the
//! service swaps in a rebuilt index and inserts new items.

pub mod hnsw;
pub mod reference;
pub mod versioned;

use crate::rng::Rng;
use crate::vector::{Matrix, normalized};

/// `n` unit vectors of dimension `dim` around `clusters` centres: the shape
/// of a trained item tower's output, for the ANN tests and the sweep.
pub fn clustered_unit_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Matrix {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| rng.normals(dim, 1.0))
        .collect();
    let mut m = Matrix::zeros(0, dim);
    for _ in 0..n {
        let c = &centres[rng.below(centres.len())];
        let v: Vec<f32> = c.iter().map(|x| x + 0.6 * rng.normal()).collect();
        m.push(&normalized(&v));
    }
    m
}

/// Share of the exact top-k found by an approximate top-k.
pub fn recall(exact: &[(u32, f32)], approximate: &[(u32, f32)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hits = exact
        .iter()
        .filter(|e| approximate.iter().any(|a| a.0 == e.0))
        .count();
    hits as f64 / exact.len() as f64
}
