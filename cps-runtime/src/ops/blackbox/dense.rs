//! Least squares on small dense matrices by Householder QR, all that the
//! decoders need of linear algebra.
//!
//! QR works on the matrix itself, not on the normal equations `AᵀA`,
//! whose condition number is the square of `A`'s: the L1 decoder weights
//! its rows by factors that span many orders of magnitude, and squaring
//! that spread would cost it the digits it is after.

use ndarray::{Array2, ArrayView2};

/// A matrix reduced to upper-triangular form by Householder reflections,
/// stored column by column (so that each reflection runs down contiguous
/// memory): the reflections' vectors below the diagonal, `R` on and above
/// it.
struct Householder {
    rows: usize,
    cols: usize,
    /// Column `j` at `[j * rows .. (j + 1) * rows]`.
    data: Vec<f64>,
    /// The diagonal of `R`.
    diagonal: Vec<f64>,
    /// `vᵀv / 2` of each reflection `I − v vᵀ / (vᵀv / 2)`, 0 for none.
    half_norms: Vec<f64>,
}

impl Householder {
    /// Factors the `rows × cols` matrix `a` (with `rows ≥ cols`), or fails
    /// when a column is (to rounding) a combination of those before it.
    fn factor(a: ArrayView2<f64>) -> Result<Householder, RankDeficient> {
        let (rows, cols) = a.dim();
        debug_assert!(rows >= cols);
        let mut data = Vec::with_capacity(rows * cols);
        for column in a.columns() {
            data.extend(column.iter().copied());
        }
        let largest = (0..cols)
            .map(|j| norm(&data[j * rows..(j + 1) * rows]))
            .fold(0.0, f64::max);
        let mut diagonal = vec![0.0; cols];
        let mut half_norms = vec![0.0; cols];
        for k in 0..cols {
            let (done, rest) = data.split_at_mut((k + 1) * rows);
            let v = &mut done[k * rows + k..];
            let length = norm(v);
            if length.is_nan() || length <= RANK_TOLERANCE * largest {
                return Err(RankDeficient);
            }
            // The sign that adds magnitudes, so that nothing cancels.
            let alpha = if v[0] > 0.0 { -length } else { length };
            v[0] -= alpha;
            let half = -alpha * v[0];
            diagonal[k] = alpha;
            half_norms[k] = half;
            for column in rest.chunks_exact_mut(rows) {
                reflect(v, half, &mut column[k..]);
            }
        }
        Ok(Householder {
            rows,
            cols,
            data,
            diagonal,
            half_norms,
        })
    }

    /// The reflection vector of step `k`, from row `k` down.
    fn vector(&self, k: usize) -> &[f64] {
        &self.data[k * self.rows + k..(k + 1) * self.rows]
    }

    /// `Qᵀ b`, in place (`b` of length `rows`).
    fn apply_qt(&self, b: &mut [f64]) {
        for k in 0..self.cols {
            reflect(self.vector(k), self.half_norms[k], &mut b[k..]);
        }
    }

    /// `Q b`, in place (`b` of length `rows`).
    fn apply_q(&self, b: &mut [f64]) {
        for k in (0..self.cols).rev() {
            reflect(self.vector(k), self.half_norms[k], &mut b[k..]);
        }
    }

    /// `R[i][j]` for `i ≤ j`.
    fn r(&self, i: usize, j: usize) -> f64 {
        if i == j {
            self.diagonal[i]
        } else {
            self.data[j * self.rows + i]
        }
    }

    /// Solves `R z = b` for the first `cols` elements of `b`, in place.
    fn solve_r(&self, b: &mut [f64]) {
        for i in (0..self.cols).rev() {
            let tail: f64 = (i + 1..self.cols).map(|j| self.r(i, j) * b[j]).sum();
            b[i] = (b[i] - tail) / self.diagonal[i];
        }
    }

    /// Solves `Rᵀ z = b` for the first `cols` elements of `b`, in place.
    fn solve_rt(&self, b: &mut [f64]) {
        for j in 0..self.cols {
            let head: f64 = (0..j).map(|i| self.r(i, j) * b[i]).sum();
            b[j] = (b[j] - head) / self.diagonal[j];
        }
    }
}

/// A column within this fraction of the largest column's length of the
/// span of those before it counts as dependent on them.
const RANK_TOLERANCE: f64 = 1e-13;

/// The matrix's columns are (to rounding) linearly dependent, or its rows
/// are when it has fewer rows than columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RankDeficient;

/// `x ← (I − v vᵀ / half) x`, for a reflection with `half = vᵀv / 2`.
fn reflect(v: &[f64], half: f64, x: &mut [f64]) {
    let scale = dot(v, x) / half;
    for (x, v) in x.iter_mut().zip(v) {
        *x -= scale * v;
    }
}

/// `Σ aᵢ bᵢ`, in four interleaved sums that the compiler can keep in
/// vector registers (one running sum would serialise every addition).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (a4, a_rest) = a.split_at(a.len() / 4 * 4);
    let (b4, b_rest) = b.split_at(a4.len());
    let mut sums = [0.0; 4];
    for (a, b) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for k in 0..4 {
            sums[k] += a[k] * b[k];
        }
    }
    let tail: f64 = a_rest.iter().zip(b_rest).map(|(a, b)| a * b).sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

fn norm(v: &[f64]) -> f64 {
    let squares = dot(v, v);
    if squares.is_finite() && squares > 1e-250 {
        return squares.sqrt();
    }
    // Scaled, so that neither huge nor tiny entries overflow or vanish.
    let largest = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        return largest;
    }
    largest * v.iter().map(|x| (x / largest).powi(2)).sum::<f64>().sqrt()
}

/// For each column `b` of `b` (`m × p`), the `z` (a column of the `n × p`
/// result) minimising `‖a z − b‖₂` when `a` (`m × n`) has at least as many
/// rows as columns, and the `z` of least norm with `a z = b` when it has
/// fewer: the one in the span of `a`'s rows.
pub(crate) fn least_squares(
    a: ArrayView2<f64>,
    b: ArrayView2<f64>,
) -> Result<Array2<f64>, RankDeficient> {
    let (m, n) = a.dim();
    assert_eq!(b.nrows(), m, "one right-hand side element per row");
    let p = b.ncols();
    let mut z = Array2::zeros((n, p));
    if n == 0 {
        return Ok(z);
    }
    if m >= n {
        let qr = Householder::factor(a)?;
        let mut column = vec![0.0; m];
        for c in 0..p {
            column
                .iter_mut()
                .zip(b.column(c))
                .for_each(|(x, &v)| *x = v);
            qr.apply_qt(&mut column);
            qr.solve_r(&mut column);
            z.column_mut(c)
                .iter_mut()
                .zip(&column)
                .for_each(|(x, &v)| *x = v);
        }
    } else {
        // aᵀ = Q R, so a = Rᵀ Qᵀ: z = Q [w; 0] with Rᵀ w = b.
        let qr = Householder::factor(a.t())?;
        let mut column = vec![0.0; n];
        for c in 0..p {
            column.fill(0.0);
            column
                .iter_mut()
                .zip(b.column(c))
                .for_each(|(x, &v)| *x = v);
            qr.solve_rt(&mut column);
            qr.apply_q(&mut column);
            z.column_mut(c)
                .iter_mut()
                .zip(&column)
                .for_each(|(x, &v)| *x = v);
        }
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn an_overdetermined_system_has_the_normal_equations_solution() {
        // Fitting a line through (0, 1), (1, 2), (2, 4): the normal
        // equations [[3, 3], [3, 5]] z = [7, 10] give z = (5/6, 3/2).
        let a = array![[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]];
        let b = array![[1.0], [2.0], [4.0]];
        let z = least_squares(a.view(), b.view()).unwrap();
        assert!((z[[0, 0]] - 5.0 / 6.0).abs() < 1e-14, "{z}");
        assert!((z[[1, 0]] - 1.5).abs() < 1e-14, "{z}");
    }

    #[test]
    fn an_underdetermined_system_has_the_least_norm_solution() {
        // x + y = 2: the least-norm solution is (1, 1).
        let a = array![[1.0, 1.0]];
        let b = array![[2.0]];
        let z = least_squares(a.view(), b.view()).unwrap();
        assert!((z[[0, 0]] - 1.0).abs() < 1e-14 && (z[[1, 0]] - 1.0).abs() < 1e-14);
    }

    #[test]
    fn dependent_columns_are_reported() {
        let a = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]];
        let b = array![[1.0], [2.0], [3.0]];
        assert_eq!(least_squares(a.view(), b.view()), Err(RankDeficient));
    }
}
