//! Decoding under known structure: a Jacobian known to be zero outside a
//! sparsity pattern has fewer unknowns per output, and a symmetric one (a
//! Hessian) fewer still, so that fewer calls determine it. Unlike
//! colouring, which needs every call exact, these decode the same way as
//! dense sensing, and the [`L1`](super::L1) decoder still outvotes calls
//! that returned garbage.

use ndarray::{Array1, Array2};

use super::coloured::SparseJacobian;
use super::decoders::Decoder;
use super::measurements::Measurements;
use super::sparsity::SparsityPattern;

impl Measurements {
    /// The Jacobian decoded under the knowledge that it is zero outside
    /// `pattern` (outputs by inputs): output `k` has as many unknowns as
    /// its row of the pattern has positions, and each call gives one
    /// equation in them, so that the longest row's count of calls
    /// determines it (decoded row by row).
    ///
    /// ```
    /// use cps_runtime::ops::blackbox::{LeastSquares, Measurements, SparsityPattern, random_directions};
    /// use ndarray::{array, Array1, ArrayD};
    /// use rand::SeedableRng;
    ///
    /// // y_i = x_i² + x_{i+1}, an upper-bidiagonal Jacobian: 2 calls for any n.
    /// let n = 6;
    /// let f = move |x: &ArrayD<f64>| {
    ///     ArrayD::from_shape_fn(x.raw_dim(), |i| x[i[0]].powi(2) + if i[0] + 1 < n { x[i[0] + 1] } else { 0.0 })
    /// };
    /// let x: ArrayD<f64> = Array1::linspace(0.5, 3.0, n).into_dyn();
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let directions = random_directions(&mut rng, 2, n, 1);
    /// let measured = Measurements::take(&f, &x, &f(&x), directions.view(), 1e-8);
    /// let j = measured.decode_sparse(&SparsityPattern::banded(n, 0, 1), &LeastSquares);
    /// assert!((j.get(2, 2) - 2.0 * x[2]).abs() < 1e-6 && (j.get(2, 3) - 1.0).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// When the pattern's shape is not outputs by inputs, or as the
    /// decoder's [`decode`](Decoder::decode).
    #[track_caller]
    pub fn decode_sparse(
        &self,
        pattern: &SparsityPattern,
        decoder: &dyn Decoder,
    ) -> SparseJacobian {
        self.check_pattern("Measurements::decode_sparse", pattern);
        let mut jacobian = SparseJacobian::zeros(pattern.clone());
        for (k, columns) in pattern.rows_to_columns().iter().enumerate() {
            if columns.is_empty() {
                continue;
            }
            let directions = self.directions.select(ndarray::Axis(1), columns);
            let values = decoder.decode(directions.view(), self.differences.column(k));
            for (&c, v) in columns.iter().zip(values) {
                jacobian.set(k, c, v);
            }
        }
        jacobian
    }

    /// The Jacobian decoded under the knowledge that it is symmetric (the
    /// Jacobian of a gradient, a Hessian) and zero outside `pattern`
    /// (made symmetric: a position or its mirror image suffices). The
    /// unknowns are the positions on and above the diagonal, and each
    /// call gives one equation per output in them, all decoded as one
    /// system of `m n` equations.
    ///
    /// Symmetry pays on sparse patterns with a dense row: an arrowhead
    /// Hessian (a diagonal and a full last row and column) has every
    /// column sharing the last row, so colouring needs `n` calls, and
    /// sparsity alone needs `n` (the last row's unknowns), but symmetry
    /// reads the last row off the others: 2 calls for any `n`. A dense
    /// symmetric Jacobian still needs `n` calls: `n - 1` directions leave
    /// the multiples of `u uᵀ` undetermined, `u` orthogonal to them all.
    ///
    /// ```
    /// use cps_runtime::ops::blackbox::{LeastSquares, Measurements, SparsityPattern, random_directions};
    /// use ndarray::{Array1, ArrayD};
    /// use rand::SeedableRng;
    ///
    /// // The gradient of φ(x) = Σ xᵢ³/3 + x_last Σ xᵢ: an arrowhead Hessian.
    /// let n = 8;
    /// let grad = move |x: &ArrayD<f64>| {
    ///     let last = x[n - 1];
    ///     let sum: f64 = x.iter().take(n - 1).sum();
    ///     ArrayD::from_shape_fn(x.raw_dim(), |i| {
    ///         let i = i[0];
    ///         if i + 1 < n { x[i] * x[i] + last } else { last * last + sum + 2.0 * last }
    ///     })
    /// };
    /// let arrowhead = SparsityPattern::from_fn(n, n, |r, c| r == c || r == n - 1 || c == n - 1);
    /// let x: ArrayD<f64> = Array1::linspace(-1.0, 1.0, n).into_dyn();
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let directions = random_directions(&mut rng, 2, n, 1); // 2 calls, not n
    /// let measured = Measurements::take(&grad, &x, &grad(&x), directions.view(), 1e-8);
    /// let h = measured.decode_symmetric(&arrowhead, &LeastSquares);
    /// assert!((h.get(3, 3) - 2.0 * x[3]).abs() < 1e-6);
    /// assert!((h.get(n - 1, 3) - 1.0).abs() < 1e-6 && (h.get(3, n - 1) - 1.0).abs() < 1e-6);
    /// assert!((h.get(n - 1, n - 1) - (2.0 * x[n - 1] + 2.0)).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// When the pattern is not square with one row per output and one
    /// column per input, or as the decoder's [`decode`](Decoder::decode).
    #[track_caller]
    pub fn decode_symmetric(
        &self,
        pattern: &SparsityPattern,
        decoder: &dyn Decoder,
    ) -> SparseJacobian {
        self.check_pattern("Measurements::decode_symmetric", pattern);
        let symmetric = symmetrised(pattern);
        let unknowns = upper_positions(&symmetric);
        let (m, n) = self.directions.dim();
        // `index[c]` lists (row, unknown) for the positions of column c.
        let mut index: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (u, &(r, c)) in unknowns.iter().enumerate() {
            index[c].push((r, u));
            if r != c {
                index[r].push((c, u));
            }
        }
        let mut system = Array2::zeros((m * n, unknowns.len()));
        let mut rhs = Array1::zeros(m * n);
        for i in 0..m {
            for (j, positions) in index.iter().enumerate() {
                let d = self.directions[[i, j]];
                for &(k, u) in positions {
                    system[[i * n + k, u]] += d;
                }
            }
            for k in 0..n {
                rhs[i * n + k] = self.differences[[i, k]];
            }
        }
        let values = decoder.decode(system.view(), rhs.view());
        let mut jacobian = SparseJacobian::zeros(symmetric);
        for (&(r, c), v) in unknowns.iter().zip(values) {
            jacobian.set(r, c, v);
            jacobian.set(c, r, v);
        }
        jacobian
    }

    #[track_caller]
    fn check_pattern(&self, op: &str, pattern: &SparsityPattern) {
        let (outputs, inputs) = (self.differences.ncols(), self.directions.ncols());
        if pattern.rows() != outputs || pattern.cols() != inputs {
            crate::ops::shape_mismatch(
                op,
                &[outputs, inputs],
                &[pattern.rows(), pattern.cols()],
                "the sparsity pattern must have one row per output element and one column per \
                 input element",
            );
        }
    }
}

/// The pattern with each position's mirror image added.
fn symmetrised(pattern: &SparsityPattern) -> SparsityPattern {
    let positions = (0..pattern.cols()).flat_map(|c| {
        pattern
            .column(c)
            .iter()
            .flat_map(move |&r| [(r, c), (c, r)])
    });
    SparsityPattern::new(pattern.rows(), pattern.cols(), positions)
}

/// The positions `(r, c)` with `r ≤ c` of a symmetric pattern, column by
/// column.
fn upper_positions(pattern: &SparsityPattern) -> Vec<(usize, usize)> {
    (0..pattern.cols())
        .flat_map(|c| {
            pattern
                .column(c)
                .iter()
                .take_while(move |&&r| r <= c)
                .map(move |&r| (r, c))
        })
        .collect()
}
