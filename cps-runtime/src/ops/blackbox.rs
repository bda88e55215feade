//! Black-box operations: an opaque function with no gradient of its own,
//! whose backward step estimates the vector-Jacobian product `Jᵀ·g` from
//! calls of the function on perturbed inputs.
//!
//! How the estimate is made is a strategy, a [`JacobianEstimator`]: it is
//! handed the function, the input, the output there and the output's
//! gradient, and may call the function on whatever inputs it chooses.
//!
//! | strategy | calls (input of n elements) | knows |
//! |---|---|---|
//! | [`ForwardDifferences`] | n (the forward pass's output reused) | nothing |
//! | [`CentralDifferences`] | 2n, an error of the order of the step squared | nothing |
//! | [`RandomSensing`] with [`LeastSquares`] | n along random directions (fewer: the least-norm estimate) | nothing |
//! | [`RandomSensing`] with [`L1`] | 2n, exact when a minority of calls return garbage | nothing |
//! | [`RandomSensing::with_independent_rows`] | the calls of one row for a whole batch | rows are independent |
//! | [`ColouredDifferences`] | one per colour of the columns: 3 for any tridiagonal Jacobian | the sparsity pattern |
//!
//! The sensing strategies follow Choromanski and Sindhwani, "On Blackbox
//! Backpropagation and Jacobian Sensing" (NeurIPS 2017): each call along a
//! direction `δᵢ` gives a linear equation in `Jᵀg`
//! ([`Measurements`]), and a [`Decoder`] solves them, by least squares or
//! by L1 minimisation, which recovers the product exactly when a minority
//! of the calls are corrupted. Known structure cuts the calls: a sparsity
//! pattern through graph colouring ([`SparsityPattern`], [`Colouring`],
//! Curtis, Powell and Reid 1974) or through decoding fewer unknowns per
//! output, which L1 keeps robust ([`Measurements::decode_sparse`]);
//! symmetry through sharing the unknowns of mirrored positions
//! ([`Measurements::decode_symmetric`]: an arrowhead Hessian from 2 calls,
//! where colouring needs one per input); a batch of independent samples
//! through measuring them all in each call. The same strategies recover
//! whole Jacobians ([`RandomSensing::jacobian`],
//! [`RandomSensing::sparse_jacobian`], [`ColouredDifferences::jacobian`])
//! to linearise a simulator.
//!
//! [`CallCounter`] counts the calls a function receives, and
//! [`CorruptedCalls`] makes a seeded fraction of them return garbage.

mod coloured;
mod colouring;
mod decoders;
mod dense;
mod faults;
mod l1;
mod measurements;
mod sensing;
mod sparsity;
mod structured;

pub use coloured::{ColouredDifferences, SparseJacobian};
pub use colouring::{Colouring, ColumnOrder};
pub use decoders::{Decoder, LeastSquares};
pub use faults::CorruptedCalls;
pub use l1::L1;
pub use measurements::{Measurements, random_directions};
pub use sensing::{MeasurementCount, RandomSensing};
pub use sparsity::SparsityPattern;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ndarray::{ArrayD, Zip};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::var::Var;

/// A way to estimate the vector-Jacobian product `Jᵀ·g` of a function
/// from calls of it, used by [`Var::black_box`]'s backward step.
///
/// A strategy that draws random perturbations owns its generator (a
/// seeded one reproduces its draws); to share one strategy, and its
/// generator, between several operations, pass an `Rc<RefCell<_>>` of it.
/// A strategy chosen at run time can be passed as a
/// `Box<dyn JacobianEstimator<A>>`.
pub trait JacobianEstimator<A: Element> {
    /// The estimate of `Jᵀ·g`, in the shape of `x`, where `J` is the
    /// Jacobian of `f` at `x`, `y = f(x)` (already computed: reusing it
    /// saves a call) and `g` is a gradient in the shape of `y`. The
    /// estimator may call `f` on any input of `x`'s shape.
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A>;
}

impl<A: Element, E: JacobianEstimator<A> + ?Sized> JacobianEstimator<A> for Rc<RefCell<E>> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        self.borrow_mut().vjp(f, x, y, g)
    }
}

impl<A: Element, E: JacobianEstimator<A> + ?Sized> JacobianEstimator<A> for Box<E> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        (**self).vjp(f, x, y, g)
    }
}

/// Forward differences along the coordinate axes:
/// `(Jᵀg)_i ≈ <g, f(x + h_i e_i) - f(x)> / h_i`, one call of `f` per
/// element of `x` (n calls, n + 1 with the forward pass, whose output is
/// reused).
///
/// The step is relative: `h_i = step · max(|x_i|, 1)`, rounded so that
/// `x_i + h_i` is exactly representable. The default `step` is the square
/// root of the element type's machine epsilon (about `1.5e-8` for `f64`,
/// `3.5e-4` for `f32`), which balances the truncation error (about `h`)
/// against the rounding error (about `ε / h`): a relative error of the
/// order of `√ε` for a function whose second derivatives are of the order
/// of its values.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::ops::blackbox::ForwardDifferences;
/// use ndarray::{array, ArrayD};
///
/// // An opaque cube, whose gradient the backward step estimates as 3x^2.
/// let cube = |x: &ArrayD<f64>| x.mapv(|v| v * v * v);
/// let x = Param::new(array![1.0f64, -2.0]);
/// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     x.black_box(cube, ForwardDifferences::default()).bind(|y| y.sum().bind(|s| k(s)))
/// });
/// assert_eq!(loss.backward(), -7.0);
/// assert!((x.grad()[0] - 3.0).abs() < 1e-6);
/// assert!((x.grad()[1] - 12.0).abs() < 1e-6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForwardDifferences<A> {
    /// The relative step (see the type's documentation).
    pub step: A,
}

impl<A: Element> ForwardDifferences<A> {
    /// Forward differences with the given relative step.
    ///
    /// # Panics
    /// When `step` is not positive and finite.
    #[track_caller]
    pub fn with_step(step: A) -> Self {
        check_step("ForwardDifferences", step);
        ForwardDifferences { step }
    }
}

impl<A: Element> Default for ForwardDifferences<A> {
    /// Forward differences with the relative step `√ε`.
    fn default() -> Self {
        ForwardDifferences {
            step: A::epsilon().sqrt(),
        }
    }
}

impl<A: Element> JacobianEstimator<A> for ForwardDifferences<A> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        let step = self.step;
        along_each_coordinate(x, |shifted, i, x_i| {
            let above = x_i + step * x_i.abs().max(A::one());
            let at_above = call_at(f, shifted, i, above, x_i, y);
            // The step actually taken, which `x_i + h` may have rounded.
            dot_of_difference(g, &at_above, y) / (above - x_i)
        })
    }
}

/// Central differences along the coordinate axes:
/// `(Jᵀg)_i ≈ <g, f(x + h_i e_i) - f(x - h_i e_i)> / (2 h_i)`, two calls of
/// `f` per element of `x` (2n calls; the forward pass's output is not
/// used).
///
/// The step is relative: `h_i = step · max(|x_i|, 1)`, rounded so that
/// `x_i ± h_i` are exactly representable. The default `step` is the cube
/// root of the element type's machine epsilon (about `6e-6` for `f64`,
/// `4.9e-3` for `f32`), which balances the truncation error (about `h²`)
/// against the rounding error (about `ε / h`): a relative error of the
/// order of `ε^(2/3)` (about `4e-11` for `f64`, `2.4e-5` for `f32`) for a
/// function whose third derivatives are of the order of its values.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::ops::blackbox::{CallCounter, CentralDifferences};
/// use ndarray::{array, ArrayD};
///
/// // An opaque function of any output shape: here the sum of squares.
/// let calls = CallCounter::new();
/// let f = calls.wrap(|x: &ArrayD<f64>| ndarray::arr0(x.mapv(|v| v * v).sum()).into_dyn());
/// let x = Param::new(array![[1.0f64, 2.0, 3.0]]);
/// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     x.black_box(f, CentralDifferences::default()).bind(|y| y.sum().bind(|s| k(s)))
/// });
/// assert_eq!(loss.backward(), 14.0);
/// assert!((&x.grad() - &array![[2.0, 4.0, 6.0]]).iter().all(|d| d.abs() < 1e-9));
/// assert_eq!(calls.calls(), 1 + 2 * 3); // the forward pass, then 2n
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CentralDifferences<A> {
    /// The relative step (see the type's documentation).
    pub step: A,
}

impl<A: Element> CentralDifferences<A> {
    /// Central differences with the given relative step.
    ///
    /// # Panics
    /// When `step` is not positive and finite.
    #[track_caller]
    pub fn with_step(step: A) -> Self {
        check_step("CentralDifferences", step);
        CentralDifferences { step }
    }
}

impl<A: Element> Default for CentralDifferences<A> {
    /// Central differences with the relative step `∛ε`.
    fn default() -> Self {
        CentralDifferences {
            step: A::epsilon().cbrt(),
        }
    }
}

impl<A: Element> JacobianEstimator<A> for CentralDifferences<A> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        let step = self.step;
        along_each_coordinate(x, |shifted, i, x_i| {
            let h = step * x_i.abs().max(A::one());
            let (above, below) = (x_i + h, x_i - h);
            let at_above = call_at(f, shifted, i, above, x_i, y);
            let at_below = call_at(f, shifted, i, below, x_i, y);
            dot_of_difference(g, &at_above, &at_below) / (above - below)
        })
    }
}

#[track_caller]
fn check_step<A: Element>(estimator: &str, step: A) {
    if !(step > A::zero() && step.is_finite()) {
        panic!("{estimator}: the step must be positive and finite, got {step}");
    }
}

/// The estimate whose element `i` is `estimate(shifted, i, x_i)`, where
/// `shifted` is a copy of `x` in standard layout (so that flat index `i`
/// is the `i`-th element in logical order) which `estimate` may change at
/// `i` only, and must leave as it found it.
fn along_each_coordinate<A: Element>(
    x: &ArrayD<A>,
    mut estimate: impl FnMut(&mut ArrayD<A>, usize, A) -> A,
) -> ArrayD<A> {
    let mut shifted = x.as_standard_layout().into_owned();
    let values: Vec<A> = (0..x.len())
        .map(|i| {
            let x_i = flat(&mut shifted)[i];
            estimate(&mut shifted, i, x_i)
        })
        .collect();
    ArrayD::from_shape_vec(x.raw_dim(), values).expect("one estimate per element of the input")
}

fn flat<A: Element>(array: &mut ArrayD<A>) -> &mut [A] {
    array.as_slice_mut().expect("made in standard layout")
}

/// `f` at `shifted` with element `i` set to `value`, then restored to
/// `original`.
///
/// # Panics
/// When the output's shape differs from `y`'s, the output at the input.
fn call_at<A: Element>(
    f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
    shifted: &mut ArrayD<A>,
    i: usize,
    value: A,
    original: A,
    y: &ArrayD<A>,
) -> ArrayD<A> {
    flat(shifted)[i] = value;
    let out = f(shifted);
    flat(shifted)[i] = original;
    if out.shape() != y.shape() {
        crate::ops::shape_mismatch(
            "black_box",
            y.shape(),
            out.shape(),
            "the function's output at the input and at a perturbed input must have the same shape",
        );
    }
    out
}

/// `<g, a - b>`, the differences taken first so that the large common part
/// of `a` and `b` cancels before it is weighted.
fn dot_of_difference<A: Element>(g: &ArrayD<A>, a: &ArrayD<A>, b: &ArrayD<A>) -> A {
    Zip::from(g)
        .and(a)
        .and(b)
        .fold(A::zero(), |acc, &g, &a, &b| acc + g * (a - b))
}

/// Counts the calls of the functions it wraps (all of them together), for
/// instance to see what an estimator costs. Clones share the count.
///
/// ```
/// use cps_runtime::ops::blackbox::CallCounter;
/// use ndarray::{array, ArrayD};
///
/// let counter = CallCounter::new();
/// let double = counter.wrap(|x: &ArrayD<f64>| x * 2.0);
/// double(&array![1.0].into_dyn());
/// double(&array![2.0].into_dyn());
/// assert_eq!(counter.calls(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Rc<Cell<usize>>);

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        CallCounter::default()
    }

    /// `f`, counting each call on this counter.
    pub fn wrap<A, F>(&self, f: F) -> impl Fn(&ArrayD<A>) -> ArrayD<A> + use<A, F>
    where
        F: Fn(&ArrayD<A>) -> ArrayD<A>,
    {
        let count = Rc::clone(&self.0);
        move |x| {
            count.set(count.get() + 1);
            f(x)
        }
    }

    /// How many calls the wrapped functions have received.
    pub fn calls(&self) -> usize {
        self.0.get()
    }

    /// Sets the count back to zero.
    pub fn reset(&self) {
        self.0.set(0);
    }
}

impl<A: Element> Var<A> {
    /// An opaque function `f` of this tensor, of any output shape, as an
    /// operation: the forward pass calls `f` once, and the backward step
    /// estimates `Jᵀ·g` (the gradient of the input, given the output's
    /// gradient `g`) with `estimator`, which calls `f` on perturbed
    /// inputs. `f` need not be differentiable code, or even Rust: only its
    /// values are used.
    ///
    /// `f` and `estimator` move into the backward step; they may borrow
    /// what outlives the binding of the result.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::blackbox::{CallCounter, ForwardDifferences};
    /// use ndarray::{array, ArrayD, Ix1};
    ///
    /// // y = M x, computed outside the runtime; the gradient of sum(y) is Mᵀ 1.
    /// let m = array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]];
    /// let calls = CallCounter::new();
    /// let f = calls.wrap(|x: &ArrayD<f64>| {
    ///     m.dot(&x.view().into_dimensionality::<Ix1>().unwrap()).into_dyn()
    /// });
    /// let x = Param::new(array![1.0f64, -1.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
    ///     x.black_box(&f, ForwardDifferences::default()).bind(|y| y.sum().bind(|s| k(s)))
    /// });
    /// assert_eq!(loss.backward(), -3.0);
    /// assert!((x.grad()[0] - 9.0).abs() < 1e-6 && (x.grad()[1] - 12.0).abs() < 1e-6);
    /// assert_eq!(calls.calls(), 2 + 1); // n + 1
    /// ```
    ///
    /// # Panics
    /// In the backward step, when the estimate's shape is not the input's,
    /// or (with the estimators of this module) when `f`'s output at a
    /// perturbed input has a shape other than at the input.
    pub fn black_box<F, E>(
        &self,
        f: F,
        estimator: E,
    ) -> Pending<A, impl BackwardStep<A> + use<A, F, E>>
    where
        F: Fn(&ArrayD<A>) -> ArrayD<A>,
        E: JacobianEstimator<A>,
    {
        let y = f(self.array());
        let x = self.clone();
        let mut estimator = estimator;
        Pending::new(
            "black_box",
            y,
            self.requires_grad(),
            move |y: &ArrayD<A>, grad: ArrayD<A>| {
                let estimate = estimator.vjp(&f, x.array(), y, &grad);
                if estimate.shape() != x.shape() {
                    crate::ops::shape_mismatch(
                        "black_box",
                        x.shape(),
                        estimate.shape(),
                        "the estimator must return an estimate of Jᵀg in the input's shape",
                    );
                }
                x.accumulate(estimate);
            },
        )
    }
}
