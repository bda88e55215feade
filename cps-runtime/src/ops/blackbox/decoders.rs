//! Decoders: the unknown `z` from linear measurements `a z ≈ b`, one
//! equation per call of the black box. [`LeastSquares`] minimises the sum
//! of the squared residuals; [`L1`](super::L1) the sum of their
//! magnitudes, which a few grossly wrong measurements cannot drag far.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::dense::least_squares;

/// A way to solve the measurement equations `a z ≈ b` (`a` is `m × n`:
/// one row per measurement, one column per unknown) for `z`.
///
/// A decoder is a value (its settings), used by
/// [`RandomSensing`](super::RandomSensing) and
/// [`Measurements`](super::Measurements); a `Box<dyn Decoder>` is one too.
pub trait Decoder {
    /// The `z` (of length `n`) that fits `a z ≈ b` best by this decoder's
    /// measure.
    ///
    /// # Panics
    /// When `b`'s length is not `a`'s number of rows, or when the
    /// measurements cannot tell the unknowns apart (`a`'s columns are
    /// linearly dependent when it has at least as many rows as columns;
    /// its rows are when it has fewer).
    fn decode(&self, a: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64>;

    /// Each column of `b` (`m × p`) decoded against the same `a`: the
    /// `n × p` matrix of the solutions. The default decodes one column at
    /// a time.
    fn decode_columns(&self, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        let mut z = Array2::zeros((a.ncols(), b.ncols()));
        for (column, b) in z.axis_iter_mut(Axis(1)).zip(b.axis_iter(Axis(1))) {
            let mut column = column;
            column.assign(&self.decode(a, b));
        }
        z
    }
}

impl<D: Decoder + ?Sized> Decoder for &D {
    fn decode(&self, a: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
        (**self).decode(a, b)
    }
    fn decode_columns(&self, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        (**self).decode_columns(a, b)
    }
}

impl<D: Decoder + ?Sized> Decoder for Box<D> {
    fn decode(&self, a: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
        (**self).decode(a, b)
    }
    fn decode_columns(&self, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        (**self).decode_columns(a, b)
    }
}

/// Least squares: the `z` minimising `Σᵢ (aᵢ z − bᵢ)²` (by Householder QR,
/// not the normal equations), or, with fewer measurements than unknowns,
/// the `z` of least norm that fits them all: the part of the unknown in
/// the span of the directions measured.
///
/// Exact on exact measurements, and the best linear unbiased estimate
/// under small independent noise; but one measurement off by `e` moves
/// the estimate by an amount proportional to `e`, however large.
///
/// ```
/// use cps_runtime::ops::blackbox::{Decoder, LeastSquares};
/// use ndarray::array;
///
/// // Three measurements of (z₀, z₁) = (2, -1): z₀, z₁ and z₀ + z₁.
/// let a = array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
/// let z = LeastSquares.decode(a.view(), array![2.0, -1.0, 1.0].view());
/// assert!((z[0] - 2.0).abs() < 1e-14 && (z[1] + 1.0).abs() < 1e-14);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeastSquares;

impl Decoder for LeastSquares {
    #[track_caller]
    fn decode(&self, a: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
        let b = b.insert_axis(Axis(1));
        self.decode_columns(a, b).remove_axis(Axis(1))
    }

    /// All columns from one factorisation of `a`.
    #[track_caller]
    fn decode_columns(&self, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        check_lengths(a, b.nrows());
        least_squares(a, b).unwrap_or_else(|_| undetermined(a))
    }
}

/// The number of measurements, checked against the right-hand side's.
#[track_caller]
pub(super) fn check_lengths(a: ArrayView2<f64>, b_len: usize) -> usize {
    if a.nrows() != b_len {
        crate::ops::shape_mismatch(
            "decode",
            a.shape(),
            &[b_len],
            "one measurement (right-hand side element) per row of the directions",
        );
    }
    a.nrows()
}

#[track_caller]
pub(super) fn undetermined(a: ArrayView2<f64>) -> ! {
    let (m, n) = a.dim();
    panic!(
        "decode: the {m} measurement directions cannot tell the {n} unknowns apart (they are \
         linearly dependent); measure along other directions"
    )
}
