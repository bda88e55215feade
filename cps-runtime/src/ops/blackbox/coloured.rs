//! Coloured forward differences: a Jacobian of known sparsity from one
//! call per colour of its columns, perturbing a whole colour at once.

use ndarray::{Array2, ArrayD};

use super::colouring::{Colouring, ColumnOrder};
use super::sparsity::SparsityPattern;
use super::{JacobianEstimator, check_step};
use crate::element::Element;

/// A Jacobian known to be zero outside a [`SparsityPattern`], with its
/// values on the pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseJacobian {
    pattern: SparsityPattern,
    /// For each column, the values at the rows the pattern lists for it.
    values: Vec<Vec<f64>>,
}

impl SparseJacobian {
    /// Zeros on `pattern`.
    pub(crate) fn zeros(pattern: SparsityPattern) -> Self {
        let values = (0..pattern.cols())
            .map(|c| vec![0.0; pattern.column(c).len()])
            .collect();
        SparseJacobian { pattern, values }
    }

    /// Sets the element at `(r, c)`, a position of the pattern.
    pub(crate) fn set(&mut self, r: usize, c: usize, value: f64) {
        let i = self
            .pattern
            .column(c)
            .binary_search(&r)
            .expect("a position of the pattern");
        self.values[c][i] = value;
    }

    /// The pattern.
    pub fn pattern(&self) -> &SparsityPattern {
        &self.pattern
    }

    /// The element at row `r` (output) and column `c` (input): zero off
    /// the pattern.
    pub fn get(&self, r: usize, c: usize) -> f64 {
        match self.pattern.column(c).binary_search(&r) {
            Ok(i) => self.values[c][i],
            Err(_) => 0.0,
        }
    }

    /// The dense matrix, outputs by inputs.
    pub fn to_dense(&self) -> Array2<f64> {
        let mut dense = Array2::zeros((self.pattern.rows(), self.pattern.cols()));
        for (c, values) in self.values.iter().enumerate() {
            for (&r, &v) in self.pattern.column(c).iter().zip(values) {
                dense[[r, c]] = v;
            }
        }
        dense
    }

    /// `Jᵀ g`, for `g` with one element per row (output).
    ///
    /// # Panics
    /// When `g` does not have one element per row.
    #[track_caller]
    pub fn transpose_times(&self, g: &[f64]) -> Vec<f64> {
        assert_eq!(
            g.len(),
            self.pattern.rows(),
            "SparseJacobian::transpose_times: one element per row (output)"
        );
        self.values
            .iter()
            .enumerate()
            .map(|(c, values)| {
                self.pattern
                    .column(c)
                    .iter()
                    .zip(values)
                    .map(|(&r, v)| g[r] * v)
                    .sum()
            })
            .collect()
    }
}

/// A [`JacobianEstimator`] for a function whose Jacobian's sparsity
/// pattern is known: its columns (inputs) are coloured greedily so that no
/// two of a colour share a row (Curtis, Powell and Reid), and one call
/// per colour, perturbing every input of the colour together, recovers
/// every nonzero by forward differences. A banded Jacobian of bandwidth
/// `w` takes `w` calls whatever its size, where plain forward differences
/// take one per input.
///
/// The step is relative per input, as [`ForwardDifferences`]'s:
/// `h_j = step · max(|x_j|, 1)`, the square root of the element type's
/// machine epsilon by default. Inputs and outputs are numbered in logical
/// order, flattened.
///
/// [`ForwardDifferences`]: super::ForwardDifferences
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::ops::blackbox::{CallCounter, ColouredDifferences, SparsityPattern};
/// use ndarray::{Array1, ArrayD};
///
/// // y_i = x_{i-1} x_i + sin(x_{i+1}), a tridiagonal Jacobian, n = 50.
/// let n = 50;
/// let calls = CallCounter::new();
/// let f = calls.wrap(move |x: &ArrayD<f64>| {
///     ArrayD::from_shape_fn(x.raw_dim(), |i| {
///         let i = i[0];
///         let left = if i > 0 { x[i - 1] } else { 1.0 };
///         let right = if i + 1 < n { x[i + 1].sin() } else { 0.0 };
///         left * x[i] + right
///     })
/// });
/// let estimator = ColouredDifferences::new(SparsityPattern::banded(n, 1, 1));
/// let x: ArrayD<f64> = Array1::linspace(-1.0, 1.0, n).into_dyn();
/// let jacobian = estimator.jacobian(&f, &x, &f(&x));
/// assert_eq!(calls.calls(), 1 + 3); // f(x), then one call per colour
/// assert!((jacobian.get(4, 3) - x[4]).abs() < 1e-7);
/// assert!((jacobian.get(4, 5) - x[5].cos()).abs() < 1e-7);
/// ```
#[derive(Clone, Debug)]
pub struct ColouredDifferences {
    pattern: SparsityPattern,
    colouring: Colouring,
    step: Option<f64>,
}

impl ColouredDifferences {
    /// Coloured differences for Jacobians of `pattern` (outputs by
    /// inputs), its columns coloured greedily in their natural order.
    pub fn new(pattern: SparsityPattern) -> Self {
        ColouredDifferences::with_order(pattern, ColumnOrder::Natural)
    }

    /// The same, colouring the columns in `order`.
    pub fn with_order(pattern: SparsityPattern, order: ColumnOrder) -> Self {
        let colouring = Colouring::greedy_in(&pattern, order);
        ColouredDifferences {
            pattern,
            colouring,
            step: None,
        }
    }

    /// The same, with relative step `step`.
    ///
    /// # Panics
    /// When `step` is not positive and finite.
    #[track_caller]
    pub fn with_step(mut self, step: f64) -> Self {
        check_step("ColouredDifferences", step);
        self.step = Some(step);
        self
    }

    /// The pattern.
    pub fn pattern(&self) -> &SparsityPattern {
        &self.pattern
    }

    /// The colouring: [`count`](Colouring::count) calls make an estimate.
    pub fn colouring(&self) -> &Colouring {
        &self.colouring
    }

    /// The Jacobian of `f` at `x`, where its output is `y`, on the
    /// pattern, from one call per colour.
    ///
    /// # Panics
    /// When the pattern does not have one column per element of `x` and
    /// one row per element of `y`, or when an output of `f` has a shape
    /// other than `y`'s.
    #[track_caller]
    pub fn jacobian<A: Element>(
        &self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
    ) -> SparseJacobian {
        if self.pattern.cols() != x.len() || self.pattern.rows() != y.len() {
            crate::ops::shape_mismatch(
                "ColouredDifferences",
                &[self.pattern.rows(), self.pattern.cols()],
                &[y.len(), x.len()],
                "the sparsity pattern must have one row per output element and one column per \
                 input element",
            );
        }
        let step = self
            .step
            .map_or_else(|| A::epsilon().sqrt(), A::from_f64_lossy);
        let base = x.as_standard_layout().into_owned();
        let y_flat: Vec<f64> = y.iter().map(|v| v.to_f64_lossless()).collect();
        let mut values: Vec<Vec<f64>> = (0..self.pattern.cols())
            .map(|c| vec![0.0; self.pattern.column(c).len()])
            .collect();
        let mut shifted = base.clone();
        for group in self.colouring.groups() {
            let flat = shifted.as_slice_mut().expect("made in standard layout");
            for &c in &group {
                let x_c = flat[c];
                flat[c] = x_c + step * x_c.abs().max(A::one());
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
            let out: Vec<f64> = out.iter().map(|v| v.to_f64_lossless()).collect();
            let flat = shifted.as_slice_mut().expect("made in standard layout");
            let original = base.as_slice().expect("made in standard layout");
            for &c in &group {
                // The step actually taken, which `x_c + h` may have rounded.
                let h = flat[c].to_f64_lossless() - original[c].to_f64_lossless();
                for (v, &r) in values[c].iter_mut().zip(self.pattern.column(c)) {
                    *v = (out[r] - y_flat[r]) / h;
                }
                flat[c] = original[c];
            }
        }
        SparseJacobian {
            pattern: self.pattern.clone(),
            values,
        }
    }
}

impl<A: Element> JacobianEstimator<A> for ColouredDifferences {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        let jacobian = self.jacobian(f, x, y);
        let g: Vec<f64> = g.iter().map(|v| v.to_f64_lossless()).collect();
        let estimate = jacobian
            .transpose_times(&g)
            .into_iter()
            .map(A::from_f64_lossy)
            .collect();
        ArrayD::from_shape_vec(x.raw_dim(), estimate).expect("one estimate per input element")
    }
}
