//! The reference HNSW: the `instant-distance` crate, behind the same calls
//! as ours. Its M is fixed by the crate (32 links per node on the upper
//! layers); `ef_construction` and `ef_search` are settable.

use instant_distance::{Builder, HnswMap, Point, Search};

use crate::vector::{Matrix, dot};

/// A unit vector with cosine distance, as instant-distance wants it.
#[derive(Debug, Clone)]
pub struct UnitPoint(pub Vec<f32>);

impl Point for UnitPoint {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

/// The crate's index, mapping each point to its row id.
pub struct Reference {
    map: HnswMap<UnitPoint, u32>,
}

impl Reference {
    /// Builds over every row of `vectors` (the crate builds in parallel with rayon).
    pub fn build(vectors: &Matrix, ef_construction: usize, ef_search: usize, seed: u64) -> Self {
        let points = (0..vectors.rows())
            .map(|i| UnitPoint(vectors.row(i).to_vec()))
            .collect();
        let values = (0..vectors.rows() as u32).collect();
        let map = Builder::default()
            .ef_construction(ef_construction)
            .ef_search(ef_search)
            .seed(seed)
            .build(points, values);
        Self { map }
    }

    /// The `k` nearest row ids with distances.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut search = Search::default();
        self.map
            .search(&UnitPoint(q.to_vec()), &mut search)
            .take(k)
            .map(|item| (*item.value, item.distance))
            .collect()
    }
}
