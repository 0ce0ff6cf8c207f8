//! Dense `f32` vector helpers shared by the models and the indexes.

/// Dot product of two equal-length slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// `a` scaled to unit length (a zero vector stays zero).
pub fn normalized(a: &[f32]) -> Vec<f32> {
    let n = norm(a);
    if n == 0.0 {
        return a.to_vec();
    }
    a.iter().map(|x| x / n).collect()
}

/// `acc += scale * x`.
pub fn axpy(acc: &mut [f32], scale: f32, x: &[f32]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += scale * v;
    }
}

/// Row-major matrix of `rows` vectors of dimension `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Dimension of each row.
    pub dim: usize,
    /// The rows, concatenated.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, dim: usize) -> Self {
        Self {
            dim,
            data: vec![0.0; rows * dim],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Appends a row (its length must be `dim`).
    pub fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.dim);
        self.data.extend_from_slice(row);
    }
}
