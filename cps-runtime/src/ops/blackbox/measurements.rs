//! Perturbation measurements: a black box called along a few directions,
//! each call giving linear equations in its Jacobian `J` (`p × n` for `n`
//! inputs and `p` outputs):
//!
//! ```text
//! (f(x + h δᵢ) − f(x)) / h ≈ J δᵢ                  (p equations in J)
//! vᵀ (f(x + h δᵢ) − f(x)) / h ≈ (Jᵀ v) · δᵢ       (1 equation in Jᵀv)
//! ```
//!
//! Stacked, `m` directions give `D Jᵀ ≈ Y` and `D (Jᵀ v) ≈ Y v`, where
//! `D` holds the directions and `Y` the differences as rows: a
//! [`Decoder`] solves them.

use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;

use super::decoders::Decoder;
use crate::element::Element;

/// The directions a black box was perturbed along and what its output did.
///
/// ```
/// use cps_runtime::ops::blackbox::{LeastSquares, Measurements};
/// use ndarray::{array, ArrayD};
///
/// // f(x) = (x₀ x₁, x₀ + 2 x₁), whose Jacobian at (3, 1) is [[1, 3], [1, 2]].
/// let f = |x: &ArrayD<f64>| array![x[0] * x[1], x[0] + 2.0 * x[1]].into_dyn();
/// let x = array![3.0, 1.0].into_dyn();
/// let directions = array![[0.6, 0.8], [-0.8, 0.6]];
/// let measured = Measurements::take(&f, &x, &f(&x), directions.view(), 1e-7);
/// let jacobian = measured.decode_jacobian(&LeastSquares);
/// let exact = array![[1.0, 3.0], [1.0, 2.0]];
/// assert!((&jacobian - &exact).iter().all(|e| e.abs() < 1e-6));
/// // Jᵀv for v = (1, -1): one number per direction, decoded.
/// let vjp = measured.decode_vjp(array![1.0, -1.0].view(), &LeastSquares);
/// assert!((vjp[0] - 0.0).abs() < 1e-6 && (vjp[1] - 1.0).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Measurements {
    /// One row per call (`m × n`): the perturbation the call was made at,
    /// divided by the step. This is the direction asked for as rounded
    /// into the input's element type, so that rounding the input does not
    /// count as an error of the function.
    pub directions: Array2<f64>,
    /// One row per call (`m × p`): `(f(x + h δᵢ) − f(x)) / h`, the output
    /// flattened in logical order.
    pub differences: Array2<f64>,
}

impl Measurements {
    /// Calls `f` once per row `δᵢ` of `directions` (`m × n`, `n` the
    /// number of elements of `x`, flattened in logical order), at
    /// `x + h δᵢ` with `h = step · max(‖x‖∞, 1)`; `y` is `f(x)`, which is
    /// not called again.
    ///
    /// The step trades the error of the linear approximation (about `h`)
    /// against rounding (about `ε / h`): the square root of the element
    /// type's machine epsilon balances them for unit-length directions.
    ///
    /// # Panics
    /// When `directions` does not have one column per element of `x`, when
    /// `step` is not positive and finite, or when an output of `f` has a
    /// shape other than `y`'s.
    #[track_caller]
    pub fn take<A: Element>(
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        directions: ArrayView2<f64>,
        step: f64,
    ) -> Measurements {
        let n = x.len();
        if directions.ncols() != n {
            crate::ops::shape_mismatch(
                "Measurements::take",
                &[directions.nrows(), n],
                directions.shape(),
                "one column of directions per element of the input",
            );
        }
        super::check_step("Measurements::take", step);
        let base = x.as_standard_layout().into_owned();
        let largest = base
            .iter()
            .fold(0.0f64, |m, v| m.max(v.to_f64_lossless().abs()));
        let h = step * largest.max(1.0);
        let m = directions.nrows();
        let mut taken = Array2::zeros((m, n));
        let mut differences = Array2::zeros((m, y.len()));
        let mut shifted = base.clone();
        for i in 0..m {
            for (((s, &x), &d), t) in shifted
                .iter_mut()
                .zip(base.iter())
                .zip(directions.row(i))
                .zip(taken.row_mut(i))
            {
                *s = x + A::from_f64_lossy(h * d);
                *t = (s.to_f64_lossless() - x.to_f64_lossless()) / h;
            }
            let out = f(&shifted);
            if out.shape() != y.shape() {
                crate::ops::shape_mismatch(
                    "black_box",
                    y.shape(),
                    out.shape(),
                    "the function's output at the input and at a perturbed input must have the \
                     same shape",
                );
            }
            for ((d, &o), &y) in differences
                .row_mut(i)
                .iter_mut()
                .zip(out.iter())
                .zip(y.iter())
            {
                *d = (o.to_f64_lossless() - y.to_f64_lossless()) / h;
            }
        }
        Measurements {
            directions: taken,
            differences,
        }
    }

    /// The number of calls measured.
    pub fn len(&self) -> usize {
        self.directions.nrows()
    }

    /// Whether no call was measured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One number per call: `vᵀ (f(x + h δᵢ) − f(x)) / h`, the
    /// measurements of `Jᵀ v` along the directions.
    ///
    /// # Panics
    /// When `v` does not have one element per output element.
    #[track_caller]
    pub fn along(&self, v: ArrayView1<f64>) -> Array1<f64> {
        if v.len() != self.differences.ncols() {
            crate::ops::shape_mismatch(
                "Measurements::along",
                &[self.differences.ncols()],
                v.shape(),
                "one weight per output element",
            );
        }
        self.differences.dot(&v)
    }

    /// The estimate of `Jᵀ v` (one element per input element) that
    /// `decoder` makes of [`along(v)`](Measurements::along).
    ///
    /// # Panics
    /// As [`along`](Measurements::along) and the decoder's
    /// [`decode`](Decoder::decode).
    #[track_caller]
    pub fn decode_vjp(&self, v: ArrayView1<f64>, decoder: &dyn Decoder) -> Array1<f64> {
        decoder.decode(self.directions.view(), self.along(v).view())
    }

    /// The estimate of the Jacobian (`p × n`, outputs by inputs) that
    /// `decoder` makes, one output element (a column of the differences)
    /// at a time: it needs at least as many calls as inputs.
    ///
    /// # Panics
    /// As the decoder's [`decode_columns`](Decoder::decode_columns).
    #[track_caller]
    pub fn decode_jacobian(&self, decoder: &dyn Decoder) -> Array2<f64> {
        decoder
            .decode_columns(self.directions.view(), self.differences.view())
            .reversed_axes()
    }

    /// The measurements of the inputs `inputs` and outputs `outputs` (both
    /// ranges of flat indices) alone: for a function made of independent
    /// parts, the part's own measurements.
    pub(crate) fn block(
        &self,
        inputs: std::ops::Range<usize>,
        outputs: std::ops::Range<usize>,
    ) -> (ArrayView2<'_, f64>, ArrayView2<'_, f64>) {
        (
            self.directions.slice_axis(Axis(1), inputs.into()),
            self.differences.slice_axis(Axis(1), outputs.into()),
        )
    }
}

/// `m` random directions for an input of `n` elements (`m × n`), each row
/// drawn from the standard normal distribution and scaled to unit length
/// within each of `blocks` equal consecutive parts of the input (one part
/// per independent sample of a batch, say; 1 for the whole input).
///
/// Gaussian directions are the classic choice of compressed sensing:
/// every set of `n` of them is linearly independent, and no direction is
/// favoured, so that a wrong measurement is no worse along one than
/// another.
///
/// # Panics
/// When `blocks` is 0 or does not divide `n`.
///
/// ```
/// use cps_runtime::ops::blackbox::random_directions;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let d = random_directions(&mut rng, 3, 4, 2);
/// for row in d.rows() {
///     for part in [row.slice(ndarray::s![..2]), row.slice(ndarray::s![2..])] {
///         assert!((part.dot(&part) - 1.0).abs() < 1e-12);
///     }
/// }
/// ```
#[track_caller]
pub fn random_directions<R: Rng + ?Sized>(
    rng: &mut R,
    m: usize,
    n: usize,
    blocks: usize,
) -> Array2<f64> {
    assert!(
        blocks > 0 && n.is_multiple_of(blocks),
        "random_directions: {blocks} blocks do not divide an input of {n} elements"
    );
    let mut d = Array2::from_shape_simple_fn((m, n), || rng.sample::<f64, _>(StandardNormal));
    let part = n / blocks;
    if part == 0 {
        return d;
    }
    for mut row in d.rows_mut() {
        for mut block in row.exact_chunks_mut(part) {
            let length = block.dot(&block).sqrt();
            if length > 0.0 {
                block /= length;
            }
        }
    }
    d
}
